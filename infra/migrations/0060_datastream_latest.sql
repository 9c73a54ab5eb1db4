-- One row per (device, metric) that ever reported: the SensorThings Datastreams, with their time
-- span and latest value. The ingest writer keeps it current in the same statement that inserts the
-- readings (only rows newly inserted move it), so "the latest observation of every Datastream" is
-- a read of a few hundred rows, not a scan of the readings' history.
CREATE TABLE datastream_latest (
    id              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- the Datastream's @iot.id
    device_id       text NOT NULL,
    metric          text NOT NULL,
    unit            text,
    first_time      timestamptz NOT NULL,
    last_time       timestamptz NOT NULL,
    last_value      double precision,
    last_value_text text,
    PRIMARY KEY (device_id, metric)
);

INSERT INTO datastream_latest (device_id, metric, unit, first_time, last_time, last_value, last_value_text)
SELECT DISTINCT ON (device_id, metric)
       device_id, metric, unit, min(time) OVER w, time, value, value_text
FROM readings
WINDOW w AS (PARTITION BY device_id, metric)
ORDER BY device_id, metric, time DESC;
