-- MQTT credentials of devices, stations and ingest workers. The broker (Mosquitto's
-- dynamic security plugin) checks the password; this table records who holds which username,
-- a hash of the secret (never the secret), and when it was issued, rotated or revoked.
CREATE TABLE mqtt_credentials (
    username        text PRIMARY KEY,            -- park:{device_id}, bs:{station_id}, ingest:{name}
    entity_kind     text NOT NULL CHECK (entity_kind IN ('park', 'bs', 'ingest')),
    entity_id       text NOT NULL CHECK (entity_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    secret_hash     text,                        -- NULL once revoked
    issued_at       timestamptz NOT NULL DEFAULT now(),
    rotations       integer NOT NULL DEFAULT 0,
    revoked_at      timestamptz,
    UNIQUE (entity_kind, entity_id)
);
