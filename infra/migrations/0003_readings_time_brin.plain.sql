-- Plain PostgreSQL: the readings time index becomes BRIN. Readings arrive in time order (late
-- ones stay within the raw-telemetry window), so block ranges summarise time well; a BRIN index
-- is a few pages and costs next to nothing per insert, where the B-tree cost ~0.6 of ~8 µs per
-- row in the ingester's batch insert (measured). Lookups by device go through the primary key
-- (device_id, metric, time); city-wide time ranges scan the few block ranges BRIN points to.
-- TimescaleDB keeps its per-chunk B-tree (nothing to do there).
DROP INDEX IF EXISTS readings_time;
CREATE INDEX readings_time_brin ON readings USING brin (time) WITH (pages_per_range = 32);
