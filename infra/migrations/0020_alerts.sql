-- Alerts: rules, per-source evaluation state, incidents with their history, webhook delivery.
-- The one-open-incident rule lives in a partial unique index, so concurrent evaluators (or an
-- evaluator and a hand-raised incident) cannot open two incidents for the same source and rule.

CREATE TABLE alert_rules (
    rule_id          text PRIMARY KEY CHECK (rule_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name             text NOT NULL,
    -- above/below a threshold, rate of change per minute, no data, an event value, a station
    -- outage, or raised from outside the telemetry (hotspots, other systems)
    condition        text NOT NULL CHECK (condition IN
                         ('above', 'below', 'rate_above', 'rate_below', 'no_data', 'event',
                          'station_down', 'external')),
    metric           text,                        -- from the ingester's catalogue
    device_id        text,                        -- one device, or
    device_kind      text,                        -- every device of a kind, or
    area             text,                        -- devices whose metadata names this area
    threshold        double precision,
    clear_threshold  double precision,            -- hysteresis: clears only past this value
    no_data_s        double precision CHECK (no_data_s IS NULL OR no_data_s > 0),
    for_s            double precision NOT NULL DEFAULT 0 CHECK (for_s >= 0),
    clear_for_s      double precision NOT NULL DEFAULT 0 CHECK (clear_for_s >= 0),
    active_hours     text,                        -- 'HH-HH' local time (Asia/Taipei); NULL: always
    severity         text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    escalate_after_s double precision CHECK (escalate_after_s IS NULL OR escalate_after_s > 0),
    flap_window_s    double precision NOT NULL DEFAULT 600 CHECK (flap_window_s > 0),
    flap_count       integer NOT NULL DEFAULT 4 CHECK (flap_count >= 2),
    auto_resolve     boolean NOT NULL DEFAULT true,  -- false: a person resolves (intrusions)
    enabled          boolean NOT NULL DEFAULT true,
    source_note      text NOT NULL DEFAULT '',    -- where the threshold comes from
    created_by       text NOT NULL DEFAULT 'system',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The state machine of one rule for one source (device or station), saved after every pass so
-- that a restart resumes where it stopped.
CREATE TABLE alert_state (
    rule_id          text NOT NULL REFERENCES alert_rules (rule_id) ON DELETE CASCADE,
    source           text NOT NULL,
    firing           boolean NOT NULL DEFAULT false,
    pending_since    timestamptz,                 -- condition true since (not yet sustained)
    clear_since      timestamptz,                 -- condition false since (while firing)
    last_time        timestamptz,                 -- data time of the last reading evaluated
    last_value       double precision,
    transitions      double precision[] NOT NULL DEFAULT '{}',  -- epoch s of recent on/off changes
    flapping         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (rule_id, source)
);

CREATE TABLE alert_incidents (
    incident_id      bigserial PRIMARY KEY,
    rule_id          text NOT NULL REFERENCES alert_rules (rule_id) ON DELETE CASCADE,
    source           text NOT NULL,
    source_kind      text NOT NULL DEFAULT 'device',  -- device, station, hotspot, ...
    state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    severity         text NOT NULL,
    summary          text NOT NULL,
    value            double precision,
    lon              double precision,
    lat              double precision,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    flapping         boolean NOT NULL DEFAULT false,
    flaps            integer NOT NULL DEFAULT 0,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    data_time        timestamptz,                 -- time of the reading that opened it
    acked_by         text,
    acked_at         timestamptz,
    ack_note         text,
    escalation_level integer NOT NULL DEFAULT 0,
    escalated_at     timestamptz,
    resolved_at      timestamptz,
    resolved_by      text,                        -- 'auto' when the condition cleared
    resolve_note     text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'acknowledged') <= (acked_by IS NOT NULL)),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alert_incidents_one_open ON alert_incidents (rule_id, source) WHERE state <> 'resolved';
CREATE INDEX alert_incidents_state ON alert_incidents (state, opened_at DESC);

-- Everything that happened to an incident, in order: the page's stream and the webhooks read it.
CREATE TABLE alert_events (
    event_id         bigserial PRIMARY KEY,
    incident_id      bigint NOT NULL REFERENCES alert_incidents (incident_id) ON DELETE CASCADE,
    at               timestamptz NOT NULL DEFAULT now(),
    kind             text NOT NULL CHECK (kind IN
                         ('opened', 'acknowledged', 'resolved', 'escalated', 'flapping', 'reopened')),
    actor            text NOT NULL DEFAULT 'system',
    note             text
);
CREATE INDEX alert_events_incident ON alert_events (incident_id, event_id);

CREATE TABLE alert_webhooks (
    webhook_id       text PRIMARY KEY CHECK (webhook_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    url              text NOT NULL CHECK (url ~ '^https?://'),
    secret           text NOT NULL,               -- shared HMAC key (the receiver must know it)
    format           text NOT NULL DEFAULT 'zhongdu' CHECK (format IN ('zhongdu', 'alertmanager')),
    min_severity     text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    enabled          boolean NOT NULL DEFAULT true,
    created_by       text NOT NULL DEFAULT 'system',
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- events before this one existed when the hook was added: not sent
    start_after      bigint NOT NULL DEFAULT 0
);

-- One row per (event, webhook) once tried: the outbox's memory across restarts.
CREATE TABLE alert_deliveries (
    event_id         bigint NOT NULL REFERENCES alert_events (event_id) ON DELETE CASCADE,
    webhook_id       text NOT NULL REFERENCES alert_webhooks (webhook_id) ON DELETE CASCADE,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    gave_up_at       timestamptz,
    last_error       text,
    PRIMARY KEY (event_id, webhook_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Cursors of long-running loops (the evaluator's position in the readings, the dispatcher's in
-- the events), so a restart neither repeats nor skips.
CREATE TABLE alert_cursors (
    name             text PRIMARY KEY,
    position         timestamptz,
    event_id         bigint
);
