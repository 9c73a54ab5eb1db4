-- Registry, telemetry, rejects, coverage, planning and the plan indicators.
-- Natural keys make every telemetry insert idempotent (at-least-once delivery upstream).

CREATE TABLE devices (
    device_id       text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    kind            text NOT NULL,               -- air, weather, noise, meter, solar, ev_charger, security, ...
    name            text,
    lon             double precision,
    lat             double precision,
    auto_registered boolean NOT NULL DEFAULT false,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE stations (
    station_id      text PRIMARY KEY CHECK (station_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name            text,
    district        text,
    lon             double precision,
    lat             double precision,
    auto_registered boolean NOT NULL DEFAULT false,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- One row per sector, columns as the coverage engine's station CSV (docs/coverage.md#stations-csv).
CREATE TABLE sectors (
    station_id      text NOT NULL REFERENCES stations (station_id) ON DELETE CASCADE,
    sector_id       text NOT NULL,
    lon             double precision NOT NULL,
    lat             double precision NOT NULL,
    height_m        double precision NOT NULL,
    eirp_dbm        double precision NOT NULL,
    frequency_mhz   double precision NOT NULL,
    bandwidth_mhz   double precision NOT NULL,
    azimuth_deg     double precision,            -- NULL: omni
    beamwidth_deg   double precision,
    radius_m        double precision,
    PRIMARY KEY (station_id, sector_id)
);

-- Park sensor datapoints (SenML records resolved to absolute time).
CREATE TABLE readings (
    time            timestamptz NOT NULL,
    device_id       text NOT NULL,
    metric          text NOT NULL,
    value           double precision,            -- numeric and boolean values (true = 1)
    unit            text,
    value_text      text,                        -- SenML vs / vd
    PRIMARY KEY (device_id, metric, time)
);

-- Base-station telemetry: one row per sector per report; sector_id '' is the station itself.
CREATE TABLE station_telemetry (
    time            timestamptz NOT NULL,
    station_id      text NOT NULL,
    sector_id       text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('up', 'degraded', 'down')),
    prb_utilisation double precision,            -- 0..1
    active_users    integer,
    tx_power_dbm    double precision,
    PRIMARY KEY (station_id, sector_id, time)
);

-- Latest known status of every station and device, from telemetry and the retained status topic.
CREATE TABLE entity_status (
    kind            text NOT NULL CHECK (kind IN ('park', 'bs')),
    entity_id       text NOT NULL,
    status          text NOT NULL,               -- up/degraded/down for stations, online/offline
    connection      text,                        -- online/offline from the retained status topic
    source          text NOT NULL,               -- 'telemetry' or 'status'
    observed_at     timestamptz NOT NULL,        -- time the status refers to
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, entity_id)
);

-- Messages that failed validation: kept with their reason, never dropped silently.
CREATE TABLE rejected_messages (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    payload         bytea NOT NULL,              -- capped at the ingester's limit
    payload_size    integer NOT NULL,            -- size before capping
    reason          text NOT NULL,               -- machine-readable reason code
    detail          text NOT NULL DEFAULT ''
);
CREATE INDEX rejected_messages_received_at ON rejected_messages (received_at);
CREATE INDEX rejected_messages_reason ON rejected_messages (reason, received_at);

CREATE TABLE coverage_snapshots (
    time               timestamptz NOT NULL,
    model              text NOT NULL,
    trigger            text NOT NULL DEFAULT 'schedule',   -- schedule, status-change, manual
    population_total   double precision NOT NULL,
    population_covered double precision NOT NULL,
    share              double precision NOT NULL CHECK (share >= 0 AND share <= 1),
    stations_serving   integer,
    districts          jsonb NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (model, time)
);

CREATE TABLE scenarios (
    scenario_id     text PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    name            text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    request         jsonb NOT NULL,
    result          jsonb,
    error           text,
    finished_at     timestamptz
);

CREATE TABLE api_keys (
    key_id          text PRIMARY KEY,            -- public prefix of the key, shown in logs
    key_hash        text NOT NULL,               -- hash of the secret; the key itself is never stored
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN ('viewer', 'planner', 'operator', 'admin')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- Plan indicator catalogue (loaded from a versioned file by a data migration) and actuals.
CREATE TABLE indicators (
    plan_id         text NOT NULL,
    indicator_id    text NOT NULL,
    dimension       text NOT NULL,               -- 業務 / 人力 / 經費
    goal            text,
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    weight          double precision NOT NULL,   -- percent
    formula         text NOT NULL,
    unit            text NOT NULL,
    direction       text NOT NULL DEFAULT 'higher',
    kind            text NOT NULL DEFAULT 'ratio',  -- ratio, count, boolean
    targets         jsonb NOT NULL,              -- {"2015": 0.7, ...}
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (plan_id, indicator_id)
);

CREATE TABLE indicator_actuals (
    id              bigserial PRIMARY KEY,
    plan_id         text NOT NULL,
    indicator_id    text NOT NULL,
    year            integer NOT NULL CHECK (year BETWEEN 1990 AND 2100),
    numerator       double precision,
    denominator     double precision,
    value           double precision NOT NULL,
    source          text NOT NULL DEFAULT 'recorded',  -- recorded, modelled, live
    recorded_by     text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    evidence        text,
    FOREIGN KEY (plan_id, indicator_id) REFERENCES indicators (plan_id, indicator_id)
);
CREATE INDEX indicator_actuals_lookup ON indicator_actuals (plan_id, indicator_id, year, recorded_at DESC);
