-- Plain PostgreSQL: the continuous aggregates become ordinary views with the same columns,
-- bucketed with date_bin (TimescaleDB's time_bucket aligns buckets on the same origin).

CREATE INDEX readings_time ON readings (time DESC);
CREATE INDEX station_telemetry_time ON station_telemetry (time DESC);

CREATE VIEW readings_1m AS
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, device_id, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS n
FROM readings GROUP BY 1, 2, 3;

CREATE VIEW readings_1h AS
SELECT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, device_id, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS n
FROM readings GROUP BY 1, 2, 3;

CREATE VIEW station_load_1m AS
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, station_id, sector_id,
       min(prb_utilisation) AS prb_min, avg(prb_utilisation) AS prb_avg, max(prb_utilisation) AS prb_max,
       min(active_users) AS users_min, avg(active_users) AS users_avg, max(active_users) AS users_max,
       count(*) AS n
FROM station_telemetry GROUP BY 1, 2, 3;

CREATE VIEW station_load_1h AS
SELECT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, station_id, sector_id,
       min(prb_utilisation) AS prb_min, avg(prb_utilisation) AS prb_avg, max(prb_utilisation) AS prb_max,
       min(active_users) AS users_min, avg(active_users) AS users_avg, max(active_users) AS users_max,
       count(*) AS n
FROM station_telemetry GROUP BY 1, 2, 3;
