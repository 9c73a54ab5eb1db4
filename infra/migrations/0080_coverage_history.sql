-- The operations page's memory: the city share per criterion over time and the outage incidents
-- (site, start, end, people affected at worst), written by the API's live loop when they change
-- and pruned after `ZHONGDU_OPS_HISTORY_DAYS`. Small tables (a row per change), the same on plain
-- PostgreSQL and TimescaleDB: no hypertable needed.

CREATE TABLE ops_share_history (
    time               timestamptz NOT NULL,
    criterion          text NOT NULL,
    operator           text NOT NULL,
    share              double precision NOT NULL CHECK (share >= 0 AND share <= 1),
    population_covered double precision NOT NULL,
    sites_down         integer NOT NULL CHECK (sites_down >= 0),
    PRIMARY KEY (criterion, operator, time)
);
CREATE INDEX ops_share_history_time ON ops_share_history (time);

CREATE TABLE ops_incidents (
    incident_id  bigserial PRIMARY KEY,
    station_id   text NOT NULL,
    status       text NOT NULL CHECK (status IN ('down', 'silent')),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    -- the most people and cells this site's outage left uncovered, under `criterion`/`operator`
    criterion    text,
    operator     text,
    people_worst double precision NOT NULL DEFAULT 0 CHECK (people_worst >= 0),
    cells_worst  integer NOT NULL DEFAULT 0 CHECK (cells_worst >= 0)
);
-- one open incident per site: a restart finds it and keeps its true start
CREATE UNIQUE INDEX ops_incidents_open ON ops_incidents (station_id) WHERE ended_at IS NULL;
CREATE INDEX ops_incidents_started ON ops_incidents (started_at);
CREATE INDEX ops_incidents_ended ON ops_incidents (ended_at);
