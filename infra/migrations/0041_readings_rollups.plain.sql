-- Plain PostgreSQL: readings_1m and readings_1h become index-friendly (a Grafana panel filters on
-- `bucket BETWEEN $from AND $to`; over date_bin views that filter cannot use an index and every
-- refresh aggregated the metric's whole history). TimescaleDB keeps its continuous aggregates.
--
-- How it stays exact without slowing the ingester:
-- - rollup tables hold per-bucket min, max, sum, count of values and count of rows, indexed on
--   bucket;
-- - a statement-level trigger notes the minutes each insert, update or delete touches in
--   readings_rollup_dirty (one small insert per ingest batch: the batch is one statement);
-- - refresh_readings_rollups() recomputes dirty minutes from the raw rows and their hours from the
--   minute rollups (the ingester's first writer calls it every ZHONGDU_INGEST_ROLLUP_REFRESH_S
--   seconds; any client may), so each raw row is read about once per refresh interval it spans;
-- - the views read the rollups for clean buckets and aggregate the raw rows of dirty minutes, so
--   they are exact at every moment, refreshed or not (late readings included).

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

-- Append-only (no unique key: concurrent writers never wait on each other here).
CREATE TABLE readings_rollup_dirty (
    bucket      timestamptz NOT NULL              -- a minute whose rollups are stale
);
CREATE INDEX readings_rollup_dirty_bucket ON readings_rollup_dirty (bucket);

CREATE FUNCTION readings_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_rollup_dirty (bucket)
    SELECT DISTINCT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM changed;
    RETURN NULL;
END $$;

CREATE TRIGGER readings_rollup_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();
CREATE TRIGGER readings_rollup_update AFTER UPDATE ON readings
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();
CREATE TRIGGER readings_rollup_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION readings_mark_dirty();

-- Runs of consecutive minutes as [lo, hi) ranges (gaps and islands).
CREATE FUNCTION readings_minute_runs(minutes timestamptz[]) RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE ROWS 8 AS $$  -- few runs: keeps plans (and JIT) small
    SELECT min(m), max(m) + INTERVAL '1 minute'
    FROM (SELECT m, m - INTERVAL '1 minute' * row_number() OVER (ORDER BY m) AS island
          FROM (SELECT DISTINCT m FROM unnest(minutes) AS u (m)) AS d) AS s
    GROUP BY island
$$;

-- Recompute up to `max_minutes` dirty minutes (oldest first) and the hours holding them; returns
-- how many minutes, or -1 when another session is refreshing.
CREATE FUNCTION refresh_readings_rollups(max_minutes integer DEFAULT 1440) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    minutes timestamptz[];
    hours timestamptz[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(7234001) THEN
        RETURN -1;
    END IF;
    SELECT array_agg(bucket) INTO minutes
    FROM (SELECT DISTINCT bucket FROM readings_rollup_dirty ORDER BY bucket LIMIT max_minutes) AS d;
    IF minutes IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(DISTINCT date_bin(INTERVAL '1 hour', m, TIMESTAMPTZ '2000-01-03 00:00:00+00')) INTO hours
    FROM unnest(minutes) AS m;
    DELETE FROM readings_rollup_dirty WHERE bucket = ANY (minutes);
    DELETE FROM readings_rollup_1m WHERE bucket = ANY (minutes);
    -- one range scan per run of consecutive minutes, however the rows lie on disk
    INSERT INTO readings_rollup_1m (bucket, device_id, metric, min, max, sum, nv, n)
    SELECT date_bin(INTERVAL '1 minute', r.time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), r.device_id, r.metric,
           min(r.value), max(r.value), sum(r.value), count(r.value), count(*)
    FROM readings_minute_runs(minutes) AS runs
    JOIN readings r ON r.time >= runs.lo AND r.time < runs.hi
    GROUP BY 1, 2, 3;
    DELETE FROM readings_rollup_1h WHERE bucket = ANY (hours);
    INSERT INTO readings_rollup_1h (bucket, device_id, metric, min, max, sum, nv, n)
    SELECT h.hour, m.device_id, m.metric, min(m.min), max(m.max), sum(m.sum), sum(m.nv), sum(m.n)
    FROM unnest(hours) AS h (hour)
    JOIN readings_rollup_1m m ON m.bucket >= h.hour AND m.bucket < h.hour + INTERVAL '1 hour'
    GROUP BY 1, 2, 3;
    RETURN cardinality(minutes);
END $$;

-- Minute buckets with their partial sums: rollups for clean minutes, raw rows for dirty ones.
CREATE VIEW readings_1m_parts AS
SELECT r.bucket, r.device_id, r.metric, r.min, r.max, r.sum, r.nv, r.n
FROM readings_rollup_1m r
WHERE NOT EXISTS (SELECT 1 FROM readings_rollup_dirty d WHERE d.bucket = r.bucket)
UNION ALL
SELECT date_bin(INTERVAL '1 minute', x.time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), x.device_id, x.metric,
       min(x.value), max(x.value), sum(x.value), count(x.value), count(*)
FROM readings_minute_runs(ARRAY(SELECT DISTINCT bucket FROM readings_rollup_dirty)) AS runs
JOIN readings x ON x.time >= runs.lo AND x.time < runs.hi
GROUP BY 1, 2, 3;

DROP VIEW readings_1m;
DROP VIEW readings_1h;

CREATE VIEW readings_1m AS
SELECT bucket, device_id, metric, min, sum / NULLIF(nv, 0) AS avg, max, n FROM readings_1m_parts;

CREATE VIEW readings_1h AS
SELECT r.bucket, r.device_id, r.metric, r.min, r.sum / NULLIF(r.nv, 0) AS avg, r.max, r.n
FROM readings_rollup_1h r
WHERE NOT EXISTS (
    SELECT 1 FROM readings_rollup_dirty d
    WHERE d.bucket >= r.bucket AND d.bucket < r.bucket + INTERVAL '1 hour')
UNION ALL
SELECT h.hour, p.device_id, p.metric, min(p.min), sum(p.sum) / NULLIF(sum(p.nv), 0), max(p.max), sum(p.n)::bigint
FROM (SELECT DISTINCT date_bin(INTERVAL '1 hour', bucket, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS hour
      FROM readings_rollup_dirty) AS h
JOIN readings_1m_parts p ON p.bucket >= h.hour AND p.bucket < h.hour + INTERVAL '1 hour'
GROUP BY 1, 2, 3;

-- Readings stored before this migration: every minute they cover is dirty until refreshed.
INSERT INTO readings_rollup_dirty (bucket)
SELECT DISTINCT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM readings;
