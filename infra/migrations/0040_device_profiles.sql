-- Device profiles and custom metrics: what devices' SenML names mean, changed while ingesters run.
-- Ingesters poll ingest_config_version (bumped by a trigger on every change, whoever makes it) and
-- reload both tables when it moves.

CREATE TABLE custom_metrics (
    metric          text PRIMARY KEY CHECK (metric ~ '^[a-z][a-z0-9_-]{0,62}$'),
    value_type      text NOT NULL CHECK (value_type IN ('number', 'boolean', 'text', 'data')),
    unit            text,                         -- SenML unit; numbers only
    min             double precision,
    max             double precision,
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((value_type = 'number') = (unit IS NOT NULL))
);

CREATE TABLE device_profiles (
    profile_id      text PRIMARY KEY,
    document        jsonb NOT NULL,              -- validated by zhongdu.ingest._profiles.Profile
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest_config_version (
    single          boolean PRIMARY KEY DEFAULT true CHECK (single),
    version         bigint NOT NULL
);
INSERT INTO ingest_config_version (single, version) VALUES (true, 0);

CREATE FUNCTION bump_ingest_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ingest_config_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER custom_metrics_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON custom_metrics
    FOR EACH STATEMENT EXECUTE FUNCTION bump_ingest_config_version();
CREATE TRIGGER device_profiles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON device_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION bump_ingest_config_version();
