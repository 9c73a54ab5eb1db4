-- TimescaleDB: hypertables, continuous aggregates (per minute, per hour), compression, retention.

SELECT create_hypertable('readings', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('station_telemetry', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('coverage_snapshots', by_range('time', INTERVAL '30 days'));

CREATE MATERIALIZED VIEW readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, device_id, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS n
FROM readings GROUP BY 1, 2, 3 WITH NO DATA;

CREATE MATERIALIZED VIEW readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS n
FROM readings GROUP BY 1, 2, 3 WITH NO DATA;

CREATE MATERIALIZED VIEW station_load_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, station_id, sector_id,
       min(prb_utilisation) AS prb_min, avg(prb_utilisation) AS prb_avg, max(prb_utilisation) AS prb_max,
       min(active_users) AS users_min, avg(active_users) AS users_avg, max(active_users) AS users_max,
       count(*) AS n
FROM station_telemetry GROUP BY 1, 2, 3 WITH NO DATA;

CREATE MATERIALIZED VIEW station_load_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, station_id, sector_id,
       min(prb_utilisation) AS prb_min, avg(prb_utilisation) AS prb_avg, max(prb_utilisation) AS prb_max,
       min(active_users) AS users_min, avg(active_users) AS users_avg, max(active_users) AS users_max,
       count(*) AS n
FROM station_telemetry GROUP BY 1, 2, 3 WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1m', start_offset => INTERVAL '2 hours',
       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('readings_1h', start_offset => INTERVAL '3 days',
       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('station_load_1m', start_offset => INTERVAL '2 hours',
       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('station_load_1h', start_offset => INTERVAL '3 days',
       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes');

ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, metric',
                          timescaledb.compress_orderby = 'time DESC');
ALTER TABLE station_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'station_id, sector_id',
                                   timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('readings', INTERVAL '7 days');
SELECT add_compression_policy('station_telemetry', INTERVAL '7 days');

-- Raw telemetry is kept ~13 months (a year-on-year comparison); the hourly aggregates 5 years.
SELECT add_retention_policy('readings', INTERVAL '400 days');
SELECT add_retention_policy('station_telemetry', INTERVAL '400 days');
SELECT add_retention_policy('readings_1m', INTERVAL '90 days');
SELECT add_retention_policy('station_load_1m', INTERVAL '90 days');
SELECT add_retention_policy('readings_1h', INTERVAL '1825 days');
SELECT add_retention_policy('station_load_1h', INTERVAL '1825 days');
