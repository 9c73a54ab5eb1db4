-- Citizen petitions and 1999 hotline cases (陳情, 1999 派工), their rejected rows, import batches and
-- the breakpoints (category changes, policy changes) that trends are read against.
-- case_id is the key: importing the same export twice changes nothing.
CREATE TABLE petitions (
    case_id         text PRIMARY KEY CHECK (length(case_id) BETWEEN 1 AND 64),
    received_at     timestamptz NOT NULL,
    category        text NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
    lon             double precision NOT NULL,
    lat             double precision NOT NULL,
    coarse          boolean NOT NULL,            -- placed at the village's population-weighted centre
    h3_10           bigint NOT NULL,             -- resolution-10 cell; coarser cells are its parents
    district        text,
    village         text,
    status          text NOT NULL CHECK (status IN ('received', 'dispatched', 'resolved', 'withdrawn')),
    dispatched_at   timestamptz,                 -- work order created (派工), not the same as resolved
    closed_at       timestamptz,
    description     text,
    synthetic       boolean NOT NULL DEFAULT false,
    source          text NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_at IS NULL OR closed_at >= received_at),
    CHECK ((status IN ('resolved', 'withdrawn')) = (closed_at IS NOT NULL))
);
CREATE INDEX petitions_received ON petitions (received_at);
CREATE INDEX petitions_category_received ON petitions (category, received_at);
CREATE INDEX petitions_district ON petitions (district, received_at);

CREATE TABLE petition_imports (
    batch_id        bigserial PRIMARY KEY,
    source          text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    rows            integer NOT NULL,
    inserted        integer NOT NULL,
    updated         integer NOT NULL,
    unchanged       integer NOT NULL,
    rejected        integer NOT NULL
);

-- A row that could not be imported, kept with its reason and its raw fields.
CREATE TABLE petition_rejects (
    id              bigserial PRIMARY KEY,
    batch_id        bigint NOT NULL REFERENCES petition_imports (batch_id) ON DELETE CASCADE,
    row_number      integer NOT NULL,
    case_id         text,
    reason          text NOT NULL,
    raw             jsonb NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX petition_rejects_batch ON petition_rejects (batch_id);

CREATE TABLE petition_breakpoints (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL,
    category        text,                        -- NULL: every category
    kind            text NOT NULL CHECK (kind IN ('category_change', 'policy', 'data')),
    note            text NOT NULL CHECK (length(note) BETWEEN 1 AND 500),
    created_at      timestamptz NOT NULL DEFAULT now()
);
