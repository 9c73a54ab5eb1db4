-- Plan indicators as the commission works them: append-only entries with components, notes and
-- corrections; locked years; target amendments with reason and countermeasures; the yearly review
-- status per indicator.

ALTER TABLE indicator_actuals
    ADD COLUMN components  jsonb,   -- the parts the value is computed from (B6-1, B7-1, M1-1)
    ADD COLUMN note        text,
    ADD COLUMN corrects    bigint REFERENCES indicator_actuals (id),
    ADD COLUMN computation text;    -- name@version of the platform computation that filled it

-- An entry is evidence in an evaluation: it is never edited or removed, only corrected by a newer one.
CREATE FUNCTION indicator_actuals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'indicator_actuals is append-only: record a correction instead';
END $$;
CREATE TRIGGER indicator_actuals_append_only BEFORE UPDATE OR DELETE ON indicator_actuals
    FOR EACH ROW EXECUTE FUNCTION indicator_actuals_append_only();

CREATE TABLE indicator_year_locks (
    plan_id     text NOT NULL,
    year        integer NOT NULL CHECK (year BETWEEN 1990 AND 2100),
    locked_by   text NOT NULL,
    locked_at   timestamptz NOT NULL DEFAULT now(),
    note        text,
    PRIMARY KEY (plan_id, year)
);

CREATE TABLE indicator_amendments (
    id              bigserial PRIMARY KEY,
    plan_id         text NOT NULL,
    indicator_id    text NOT NULL,
    year            integer NOT NULL CHECK (year BETWEEN 1990 AND 2100),
    old_target      double precision,
    new_target      double precision NOT NULL,
    reason          text NOT NULL CHECK (length(btrim(reason)) > 0),
    countermeasures text NOT NULL CHECK (length(btrim(countermeasures)) > 0),
    amended_by      text NOT NULL,
    amended_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (plan_id, indicator_id) REFERENCES indicators (plan_id, indicator_id)
);
CREATE INDEX indicator_amendments_lookup ON indicator_amendments (plan_id, year, indicator_id, id DESC);

-- The yearly cycle: agency self-assessment -> commission review -> approval (a log; latest wins).
CREATE TABLE indicator_reviews (
    id              bigserial PRIMARY KEY,
    plan_id         text NOT NULL,
    indicator_id    text NOT NULL,
    year            integer NOT NULL CHECK (year BETWEEN 1990 AND 2100),
    status          text NOT NULL CHECK (status IN ('draft', 'self_assessed', 'reviewed', 'approved', 'returned')),
    changed_by      text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    note            text,
    FOREIGN KEY (plan_id, indicator_id) REFERENCES indicators (plan_id, indicator_id)
);
CREATE INDEX indicator_reviews_lookup ON indicator_reviews (plan_id, year, indicator_id, id DESC);
