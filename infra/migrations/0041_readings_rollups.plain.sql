-- Plain PostgreSQL: readings_1m and readings_1h become index-friendly (a Grafana panel filters on
-- `bucket BETWEEN $from AND $to`; over date_bin views that filter cannot use an index and every
-- refresh scanned the metric's whole history). TimescaleDB keeps its continuous aggregates.
--
-- How it stays exact without slowing the ingester:
-- - rollup tables hold per-bucket min, max, sum, count of values and count of rows, indexed on
--   bucket;
-- - a statement-level trigger notes the hours each insert, update or delete touches in
--   readings_rollup_dirty (one small insert per ingest batch: the batch is one statement);
-- - refresh_readings_rollups() recomputes dirty hours from the raw rows (the ingester's first
--   writer calls it every ZHONGDU_INGEST_ROLLUP_REFRESH_S seconds; any client may);
-- - the views read the rollups for clean hours and aggregate the raw rows of dirty hours, so they
--   are exact at every moment, refreshed or not (late readings included).

CREATE TABLE readings_rollup_1m (
    bucket      timestamptz NOT NULL,
    device_id   text NOT NULL,
    metric      text NOT NULL,
    min         double precision,
    max         double precision,
    sum         double precision,
    nv          bigint NOT NULL,                  -- rows with a numeric value (for the average)
    n           bigint NOT NULL,                  -- rows
    PRIMARY KEY (device_id, metric, bucket)
);
CREATE INDEX readings_rollup_1m_bucket ON readings_rollup_1m (bucket);

CREATE TABLE readings_rollup_1h (LIKE readings_rollup_1m INCLUDING ALL);

CREATE TABLE readings_rollup_dirty (
    bucket      timestamptz NOT NULL              -- an hour whose rollups are stale
);
CREATE INDEX readings_rollup_dirty_bucket ON readings_rollup_dirty (bucket);

CREATE FUNCTION readings_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_rollup_dirty (bucket)
    SELECT DISTINCT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM changed;
    RETURN NULL;
END $$;

CREATE TRIGGER readings_rollup_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();
CREATE TRIGGER readings_rollup_update AFTER UPDATE ON readings
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();
CREATE TRIGGER readings_rollup_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();

-- Recompute up to `max_hours` dirty hours (oldest first); returns how many, or -1 when another
-- session is refreshing.
CREATE FUNCTION refresh_readings_rollups(max_hours integer DEFAULT 48) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(7234001) THEN
        RETURN -1;
    END IF;
    SELECT array_agg(bucket) INTO hours
    FROM (SELECT DISTINCT bucket FROM readings_rollup_dirty ORDER BY bucket LIMIT max_hours) AS d;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM readings_rollup_dirty WHERE bucket = ANY (hours);
    DELETE FROM readings_rollup_1m r USING unnest(hours) AS h (hour)
        WHERE r.bucket >= h.hour AND r.bucket < h.hour + INTERVAL '1 hour';
    DELETE FROM readings_rollup_1h WHERE bucket = ANY (hours);
    INSERT INTO readings_rollup_1m (bucket, device_id, metric, min, max, sum, nv, n)
    SELECT date_bin(INTERVAL '1 minute', r.time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), r.device_id, r.metric,
           min(r.value), max(r.value), sum(r.value), count(r.value), count(*)
    FROM unnest(hours) AS h (hour)
    JOIN readings r ON r.time >= h.hour AND r.time < h.hour + INTERVAL '1 hour'
    GROUP BY 1, 2, 3;
    INSERT INTO readings_rollup_1h (bucket, device_id, metric, min, max, sum, nv, n)
    SELECT date_bin(INTERVAL '1 hour', m.bucket, TIMESTAMPTZ '2000-01-03 00:00:00+00'), m.device_id, m.metric,
           min(m.min), max(m.max), sum(m.sum), sum(m.nv), sum(m.n)
    FROM unnest(hours) AS h (hour)
    JOIN readings_rollup_1m m ON m.bucket >= h.hour AND m.bucket < h.hour + INTERVAL '1 hour'
    GROUP BY 1, 2, 3;
    RETURN cardinality(hours);
END $$;

DROP VIEW readings_1m;
DROP VIEW readings_1h;

CREATE VIEW readings_1m AS
SELECT r.bucket, r.device_id, r.metric, r.min, r.sum / NULLIF(r.nv, 0) AS avg, r.max, r.n
FROM readings_rollup_1m r
WHERE NOT EXISTS (
    SELECT 1 FROM readings_rollup_dirty d
    WHERE d.bucket = date_bin(INTERVAL '1 hour', r.bucket, TIMESTAMPTZ '2000-01-03 00:00:00+00'))
UNION ALL
SELECT date_bin(INTERVAL '1 minute', x.time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, x.device_id, x.metric,
       min(x.value), avg(x.value), max(x.value), count(*)
FROM (SELECT DISTINCT bucket FROM readings_rollup_dirty) AS d
JOIN readings x ON x.time >= d.bucket AND x.time < d.bucket + INTERVAL '1 hour'
GROUP BY 1, 2, 3;

CREATE VIEW readings_1h AS
SELECT r.bucket, r.device_id, r.metric, r.min, r.sum / NULLIF(r.nv, 0) AS avg, r.max, r.n
FROM readings_rollup_1h r
WHERE NOT EXISTS (SELECT 1 FROM readings_rollup_dirty d WHERE d.bucket = r.bucket)
UNION ALL
SELECT d.bucket, x.device_id, x.metric, min(x.value), avg(x.value), max(x.value), count(*)
FROM (SELECT DISTINCT bucket FROM readings_rollup_dirty) AS d
JOIN readings x ON x.time >= d.bucket AND x.time < d.bucket + INTERVAL '1 hour'
GROUP BY 1, 2, 3;

-- Readings stored before this migration: every hour they cover is dirty until refreshed.
INSERT INTO readings_rollup_dirty (bucket)
SELECT DISTINCT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM readings;
