-- Plain PostgreSQL: station_load_1m and station_load_1h become index-friendly, as readings_1m/1h
-- in 0041 (same design: rollup tables, dirty minutes noted by a statement trigger, a refresh
-- function, views exact at every moment). TimescaleDB keeps its continuous aggregates.

CREATE TABLE station_load_rollup_1m (
    bucket      timestamptz NOT NULL,
    station_id  text NOT NULL,
    sector_id   text NOT NULL,
    prb_min     double precision,
    prb_max     double precision,
    prb_sum     double precision,
    prb_nv      bigint NOT NULL,
    users_min   integer,
    users_max   integer,
    users_sum   bigint,
    users_nv    bigint NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (station_id, sector_id, bucket)
);
CREATE INDEX station_load_rollup_1m_bucket ON station_load_rollup_1m (bucket);

CREATE TABLE station_load_rollup_1h (LIKE station_load_rollup_1m INCLUDING ALL);

CREATE TABLE station_load_rollup_dirty (
    bucket      timestamptz NOT NULL              -- a minute whose rollups are stale
);
CREATE INDEX station_load_rollup_dirty_bucket ON station_load_rollup_dirty (bucket);

CREATE FUNCTION station_load_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO station_load_rollup_dirty (bucket)
    SELECT DISTINCT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM changed;
    RETURN NULL;
END $$;

CREATE TRIGGER station_load_rollup_insert AFTER INSERT ON station_telemetry
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION station_load_mark_dirty();
CREATE TRIGGER station_load_rollup_update AFTER UPDATE ON station_telemetry
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION station_load_mark_dirty();
CREATE TRIGGER station_load_rollup_delete AFTER DELETE ON station_telemetry
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION station_load_mark_dirty();

CREATE FUNCTION refresh_station_load_rollups(max_minutes integer DEFAULT 1440) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    minutes timestamptz[];
    hours timestamptz[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(7234002) THEN
        RETURN -1;
    END IF;
    SELECT array_agg(bucket) INTO minutes
    FROM (SELECT DISTINCT bucket FROM station_load_rollup_dirty ORDER BY bucket LIMIT max_minutes) AS d;
    IF minutes IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(DISTINCT date_bin(INTERVAL '1 hour', m, TIMESTAMPTZ '2000-01-03 00:00:00+00')) INTO hours
    FROM unnest(minutes) AS m;
    DELETE FROM station_load_rollup_dirty WHERE bucket = ANY (minutes);
    DELETE FROM station_load_rollup_1m WHERE bucket = ANY (minutes);
    INSERT INTO station_load_rollup_1m
    SELECT date_bin(INTERVAL '1 minute', s.time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), s.station_id, s.sector_id,
           min(s.prb_utilisation), max(s.prb_utilisation), sum(s.prb_utilisation), count(s.prb_utilisation),
           min(s.active_users), max(s.active_users), sum(s.active_users), count(s.active_users), count(*)
    FROM readings_minute_runs(minutes) AS runs
    JOIN station_telemetry s ON s.time >= runs.lo AND s.time < runs.hi
    GROUP BY 1, 2, 3;
    DELETE FROM station_load_rollup_1h WHERE bucket = ANY (hours);
    INSERT INTO station_load_rollup_1h
    SELECT h.hour, m.station_id, m.sector_id, min(m.prb_min), max(m.prb_max), sum(m.prb_sum), sum(m.prb_nv),
           min(m.users_min), max(m.users_max), sum(m.users_sum), sum(m.users_nv), sum(m.n)
    FROM unnest(hours) AS h (hour)
    JOIN station_load_rollup_1m m ON m.bucket >= h.hour AND m.bucket < h.hour + INTERVAL '1 hour'
    GROUP BY 1, 2, 3;
    RETURN cardinality(minutes);
END $$;

CREATE VIEW station_load_1m_parts AS
SELECT r.bucket, r.station_id, r.sector_id, r.prb_min, r.prb_max, r.prb_sum, r.prb_nv,
       r.users_min, r.users_max, r.users_sum, r.users_nv, r.n
FROM station_load_rollup_1m r
WHERE NOT EXISTS (SELECT 1 FROM station_load_rollup_dirty d WHERE d.bucket = r.bucket)
UNION ALL
SELECT date_bin(INTERVAL '1 minute', s.time, TIMESTAMPTZ '2000-01-03 00:00:00+00'), s.station_id, s.sector_id,
       min(s.prb_utilisation), max(s.prb_utilisation), sum(s.prb_utilisation), count(s.prb_utilisation),
       min(s.active_users), max(s.active_users), sum(s.active_users), count(s.active_users), count(*)
FROM readings_minute_runs(ARRAY(SELECT DISTINCT bucket FROM station_load_rollup_dirty)) AS runs
JOIN station_telemetry s ON s.time >= runs.lo AND s.time < runs.hi
GROUP BY 1, 2, 3;

DROP VIEW station_load_1m;
DROP VIEW station_load_1h;

-- Same columns and types as before (avg of an integer column is numeric).
CREATE VIEW station_load_1m AS
SELECT bucket, station_id, sector_id, prb_min, prb_sum / NULLIF(prb_nv, 0) AS prb_avg, prb_max,
       users_min, (users_sum::numeric / NULLIF(users_nv, 0)) AS users_avg, users_max, n
FROM station_load_1m_parts;

CREATE VIEW station_load_1h AS
SELECT r.bucket, r.station_id, r.sector_id, r.prb_min, r.prb_sum / NULLIF(r.prb_nv, 0) AS prb_avg, r.prb_max,
       r.users_min, (r.users_sum::numeric / NULLIF(r.users_nv, 0)) AS users_avg, r.users_max, r.n
FROM station_load_rollup_1h r
WHERE NOT EXISTS (
    SELECT 1 FROM station_load_rollup_dirty d
    WHERE d.bucket >= r.bucket AND d.bucket < r.bucket + INTERVAL '1 hour')
UNION ALL
SELECT h.hour, p.station_id, p.sector_id, min(p.prb_min), sum(p.prb_sum) / NULLIF(sum(p.prb_nv), 0), max(p.prb_max),
       min(p.users_min), sum(p.users_sum)::numeric / NULLIF(sum(p.users_nv), 0), max(p.users_max), sum(p.n)::bigint
FROM (SELECT DISTINCT date_bin(INTERVAL '1 hour', bucket, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS hour
      FROM station_load_rollup_dirty) AS h
JOIN station_load_1m_parts p ON p.bucket >= h.hour AND p.bucket < h.hour + INTERVAL '1 hour'
GROUP BY 1, 2, 3;

INSERT INTO station_load_rollup_dirty (bucket)
SELECT DISTINCT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') FROM station_telemetry;
