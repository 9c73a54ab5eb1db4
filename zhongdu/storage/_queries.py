"""SQL for the HTTP API: registry and telemetry reads, bucketed history, coverage snapshots,
scenarios, plan indicators and their actuals, API keys.

Every function takes an open connection and returns plain dicts (JSON-ready apart from datetimes),
so the API layer never writes SQL. The bucketed history reads the `*_1m` / `*_1h` relations, which
are continuous aggregates on TimescaleDB and `date_bin` views on plain PostgreSQL: same columns,
same answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Row = dict[str, Any]
Conn = psycopg.Connection[Any]
Bucket = Literal["1m", "1h"]

_READINGS_VIEWS = {"1m": "readings_1m", "1h": "readings_1h"}
_LOAD_VIEWS = {"1m": "station_load_1m", "1h": "station_load_1h"}


def _all(conn: Conn, query: str | sql.Composed, params: Sequence[Any] = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def _one(conn: Conn, query: str | sql.Composed, params: Sequence[Any] = ()) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


# --- registry and latest telemetry -------------------------------------------------------------


def count_stations(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM stations").fetchone()
    return int(row[0]) if row else 0


def list_stations(conn: Conn, *, limit: int, offset: int) -> list[Row]:
    """Registered stations in id order, each with its latest status (None when never heard)."""
    return _all(
        conn,
        """SELECT s.station_id, s.name, s.district, s.lon, s.lat, s.auto_registered, s.registered_at,
                  e.status, e.connection, e.observed_at AS status_observed_at
           FROM stations s
           LEFT JOIN entity_status e ON e.kind = 'bs' AND e.entity_id = s.station_id
           ORDER BY s.station_id LIMIT %s OFFSET %s""",
        (limit, offset),
    )


def get_station(conn: Conn, station_id: str) -> Row | None:
    """One station with its status, sectors and the latest load report of each sector."""
    station = _one(
        conn,
        """SELECT s.station_id, s.name, s.district, s.lon, s.lat, s.auto_registered, s.registered_at,
                  s.metadata, e.status, e.connection, e.observed_at AS status_observed_at
           FROM stations s
           LEFT JOIN entity_status e ON e.kind = 'bs' AND e.entity_id = s.station_id
           WHERE s.station_id = %s""",
        (station_id,),
    )
    if station is None:
        return None
    station["sectors"] = _all(
        conn,
        """SELECT sector_id, lon, lat, height_m, eirp_dbm, frequency_mhz, bandwidth_mhz,
                  azimuth_deg, beamwidth_deg, radius_m
           FROM sectors WHERE station_id = %s ORDER BY sector_id""",
        (station_id,),
    )
    station["latest_load"] = _all(
        conn,
        """SELECT DISTINCT ON (sector_id) sector_id, time, status, prb_utilisation, active_users,
                  tx_power_dbm
           FROM station_telemetry WHERE station_id = %s
           ORDER BY sector_id, time DESC""",
        (station_id,),
    )
    return station


def station_statuses(conn: Conn) -> dict[str, tuple[str, datetime]]:
    """Latest (status, observed_at) of every base station that ever reported.

    A station known only from its retained status topic has no radio status yet: `online` says
    nothing about serving and is left out; `offline` (its will fired) counts as `down`.
    """
    rows = conn.execute(
        """SELECT entity_id,
                  CASE WHEN source = 'telemetry' THEN status ELSE 'down' END,
                  observed_at
           FROM entity_status
           WHERE kind = 'bs' AND (source = 'telemetry' OR connection = 'offline')"""
    ).fetchall()
    return {str(r[0]): (str(r[1]), r[2]) for r in rows}


def count_devices(conn: Conn, *, kind: str | None = None) -> int:
    row = conn.execute(
        "SELECT count(*) FROM devices WHERE %s::text IS NULL OR kind = %s", (kind, kind)
    ).fetchone()
    return int(row[0]) if row else 0


def list_devices(conn: Conn, *, limit: int, offset: int, kind: str | None = None) -> list[Row]:
    """Registered park devices in id order with their latest status."""
    return _all(
        conn,
        """SELECT d.device_id, d.kind, d.name, d.lon, d.lat, d.auto_registered, d.registered_at,
                  e.status, e.connection, e.observed_at AS status_observed_at
           FROM devices d
           LEFT JOIN entity_status e ON e.kind = 'park' AND e.entity_id = d.device_id
           WHERE %s::text IS NULL OR d.kind = %s
           ORDER BY d.device_id LIMIT %s OFFSET %s""",
        (kind, kind, limit, offset),
    )


def get_device(conn: Conn, device_id: str) -> Row | None:
    """One device with its status and the latest reading of each metric."""
    device = _one(
        conn,
        """SELECT d.device_id, d.kind, d.name, d.lon, d.lat, d.auto_registered, d.registered_at,
                  d.metadata, e.status, e.connection, e.observed_at AS status_observed_at
           FROM devices d
           LEFT JOIN entity_status e ON e.kind = 'park' AND e.entity_id = d.device_id
           WHERE d.device_id = %s""",
        (device_id,),
    )
    if device is None:
        return None
    device["latest"] = _all(
        conn,
        """SELECT DISTINCT ON (metric) metric, time, value, unit, value_text
           FROM readings WHERE device_id = %s ORDER BY metric, time DESC""",
        (device_id,),
    )
    return device


def insert_device(
    conn: Conn,
    *,
    device_id: str,
    kind: str,
    name: str | None,
    lon: float | None,
    lat: float | None,
    metadata: Mapping[str, Any],
) -> Row | None:
    """Register a device; None when the id is already taken (nothing is overwritten)."""
    return _one(
        conn,
        """INSERT INTO devices (device_id, kind, name, lon, lat, metadata)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (device_id) DO NOTHING
           RETURNING device_id, kind, name, lon, lat, auto_registered, registered_at, metadata""",
        (device_id, kind, name, lon, lat, Jsonb(dict(metadata))),
    )


def park_trends(conn: Conn, *, start: datetime, bucket_s: int = 60) -> list[Row]:
    """Per device kind and metric: the mean over the kind's devices per bucket since `start`.

    Reads `readings` directly (its time index bounds the scan) rather than the bucketed views,
    whose plain-PostgreSQL form would group the whole table before filtering.
    """
    return _all(
        conn,
        """SELECT d.kind, r.metric, max(r.unit) AS unit,
                  date_bin(make_interval(secs => %s), r.time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,
                  avg(r.value) AS avg, count(*) AS n, count(DISTINCT r.device_id) AS devices
           FROM readings r JOIN devices d ON d.device_id = r.device_id
           WHERE r.time >= %s AND r.value IS NOT NULL
           GROUP BY 1, 2, 4 ORDER BY 1, 2, 4""",
        (bucket_s, start),
    )


# --- bucketed history ------------------------------------------------------------------------


def device_history(
    conn: Conn, device_id: str, metric: str, *, start: datetime, end: datetime, bucket: Bucket
) -> list[Row]:
    """min/avg/max/n per bucket of one device's metric, buckets in [start, end)."""
    query = sql.SQL(
        """SELECT bucket, min, avg, max, n FROM {}
           WHERE device_id = %s AND metric = %s AND bucket >= %s AND bucket < %s
           ORDER BY bucket"""
    ).format(sql.Identifier(_READINGS_VIEWS[bucket]))
    return _all(conn, query, (device_id, metric, start, end))


def device_metrics(conn: Conn, device_id: str) -> list[str]:
    """The metrics a device ever reported (for a helpful 422 when one is misspelt)."""
    rows = conn.execute(
        "SELECT DISTINCT metric FROM readings WHERE device_id = %s ORDER BY metric", (device_id,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def station_history(
    conn: Conn,
    station_id: str,
    *,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    sector_id: str | None = None,
) -> list[Row]:
    """PRB utilisation and active users, min/avg/max per bucket and sector, buckets in [start, end)."""
    query = sql.SQL(
        """SELECT bucket, sector_id, prb_min, prb_avg, prb_max, users_min, users_avg, users_max, n
           FROM {}
           WHERE station_id = %s AND (%s::text IS NULL OR sector_id = %s)
             AND bucket >= %s AND bucket < %s
           ORDER BY bucket, sector_id"""
    ).format(sql.Identifier(_LOAD_VIEWS[bucket]))
    return _all(conn, query, (station_id, sector_id, sector_id, start, end))


# --- coverage snapshots ------------------------------------------------------------------------


def insert_coverage_snapshot(conn: Conn, record: Mapping[str, Any]) -> None:
    """Store one snapshot (keys as the table's columns); a second one at the same instant is ignored."""
    conn.execute(
        """INSERT INTO coverage_snapshots (time, model, trigger, population_total, population_covered,
                                           share, stations_serving, districts)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (model, time) DO NOTHING""",
        (
            record["time"],
            record["model"],
            record["trigger"],
            record["population_total"],
            record["population_covered"],
            record["share"],
            record.get("stations_serving"),
            Jsonb(list(record.get("districts", []))),
        ),
    )


def list_coverage_snapshots(
    conn: Conn, *, start: datetime, end: datetime, model: str | None, limit: int
) -> list[Row]:
    """Snapshots in [start, end), newest first."""
    return _all(
        conn,
        """SELECT time, model, trigger, population_total, population_covered, share,
                  stations_serving, districts
           FROM coverage_snapshots
           WHERE time >= %s AND time < %s AND (%s::text IS NULL OR model = %s)
           ORDER BY time DESC LIMIT %s""",
        (start, end, model, model, limit),
    )


# --- scenarios ---------------------------------------------------------------------------------

_SCENARIO_COLUMNS = sql.SQL(", ").join(
    sql.Identifier(c)
    for c in (
        "scenario_id",
        "created_at",
        "created_by",
        "name",
        "note",
        "status",
        "request",
        "result",
        "error",
        "finished_at",
    )
)

# What a list or a comparison shows of each scenario, read out of its request and result bodies
# (the bodies themselves can be megabytes: thousands of candidates).
_SCENARIO_SUMMARY = sql.SQL(
    """scenario_id, created_at, created_by, name, note, status, error, finished_at,
       COALESCE(request->>'criterion', 'outdoor') AS criterion,
       COALESCE(request->>'operator', 'any') AS operator,
       COALESCE(request->'candidate_source'->>'source', request->>'candidate_origin', 'list') AS source,
       jsonb_array_length(result->'picks') AS picks_count,
       (result->>'total_cost')::double precision AS total_cost,
       (result->>'covered_after')::double precision
         - (result->>'covered_before')::double precision AS people_added,
       (result->>'share_before')::double precision AS share_before,
       (result->>'share_after')::double precision AS share_after,
       (result->>'target')::double precision AS target"""
)


def insert_scenario(
    conn: Conn,
    *,
    scenario_id: str,
    created_by: str,
    name: str | None,
    request: Mapping[str, Any],
    note: str | None = None,
) -> Row:
    row = _one(
        conn,
        sql.SQL(
            """INSERT INTO scenarios (scenario_id, created_by, name, note, request)
               VALUES (%s, %s, %s, %s, %s) RETURNING {}"""
        ).format(_SCENARIO_COLUMNS),
        (scenario_id, created_by, name, note, Jsonb(dict(request))),
    )
    assert row is not None
    return row


def update_scenario(
    conn: Conn,
    scenario_id: str,
    *,
    status: str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Move a scenario to `running`, `done` or `failed` (the last two stamp `finished_at`)."""
    conn.execute(
        """UPDATE scenarios SET status = %s, result = COALESCE(%s, result), error = %s,
                  finished_at = CASE WHEN %s IN ('done', 'failed') THEN now() ELSE finished_at END
           WHERE scenario_id = %s""",
        (status, Jsonb(dict(result)) if result is not None else None, error, status, scenario_id),
    )


def rename_scenario(
    conn: Conn, scenario_id: str, *, name: str | None, note: str | None, set_note: bool
) -> Row | None:
    """Set the name (when given) and the note (when `set_note`; None clears it); the summary back."""
    return _one(
        conn,
        sql.SQL(
            """UPDATE scenarios SET name = COALESCE(%s, name),
                      note = CASE WHEN %s THEN %s ELSE note END
               WHERE scenario_id = %s RETURNING {}"""
        ).format(_SCENARIO_SUMMARY),
        (name, set_note, note, scenario_id),
    )


def delete_scenario(conn: Conn, scenario_id: str) -> bool:
    cur = conn.execute("DELETE FROM scenarios WHERE scenario_id = %s", (scenario_id,))
    return cur.rowcount > 0


def get_scenario(conn: Conn, scenario_id: str) -> Row | None:
    query = sql.SQL("SELECT {} FROM scenarios WHERE scenario_id = %s").format(_SCENARIO_COLUMNS)
    return _one(conn, query, (scenario_id,))


def get_scenarios(conn: Conn, scenario_ids: Sequence[str]) -> list[Row]:
    """The summaries of these scenarios with their request and result (for comparing), in the order asked."""
    rows = _all(
        conn,
        sql.SQL("SELECT {}, request, result FROM scenarios WHERE scenario_id = ANY(%s)").format(
            _SCENARIO_SUMMARY
        ),
        (list(scenario_ids),),
    )
    order = {sid: i for i, sid in enumerate(scenario_ids)}
    return sorted(rows, key=lambda r: order[r["scenario_id"]])


def list_scenarios(conn: Conn, *, limit: int, offset: int) -> list[Row]:
    """Newest first, summarised (names, goal, counts, shares), without the request and result bodies."""
    return _all(
        conn,
        sql.SQL(
            "SELECT {} FROM scenarios ORDER BY created_at DESC, scenario_id LIMIT %s OFFSET %s"
        ).format(_SCENARIO_SUMMARY),
        (limit, offset),
    )


def count_scenarios(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM scenarios").fetchone()
    return int(row[0]) if row else 0


# --- plan indicators ---------------------------------------------------------------------------


def list_plans(conn: Conn) -> list[Row]:
    """Every loaded plan with the span of years its targets cover."""
    return _all(
        conn,
        """SELECT plan_id, count(*) AS indicators,
                  min(y::int) AS first_year, max(y::int) AS last_year
           FROM indicators, jsonb_object_keys(targets) AS y
           GROUP BY plan_id ORDER BY plan_id""",
    )


def list_indicators(conn: Conn, plan_id: str) -> list[Row]:
    return _all(
        conn,
        """SELECT plan_id, indicator_id, dimension, goal, name_zh, name_en, weight, formula, unit,
                  direction, kind, targets, details
           FROM indicators WHERE plan_id = %s
           ORDER BY CASE dimension WHEN '業務' THEN 1 WHEN '人力' THEN 2 WHEN '經費' THEN 3 ELSE 4 END,
                    indicator_id""",
        (plan_id,),
    )


def get_indicator(conn: Conn, plan_id: str, indicator_id: str) -> Row | None:
    return _one(
        conn,
        """SELECT plan_id, indicator_id, dimension, goal, name_zh, name_en, weight, formula, unit,
                  direction, kind, targets, details
           FROM indicators WHERE plan_id = %s AND indicator_id = %s""",
        (plan_id, indicator_id),
    )


def insert_indicator_actual(
    conn: Conn,
    *,
    plan_id: str,
    indicator_id: str,
    year: int,
    value: float,
    numerator: float | None,
    denominator: float | None,
    source: str,
    recorded_by: str,
    evidence: str | None,
    components: dict[str, float] | None = None,
    note: str | None = None,
    corrects: int | None = None,
    computation: str | None = None,
) -> Row:
    """Append an entry (entries are never updated: a correction is a new entry naming the old one)."""
    row = _one(
        conn,
        """INSERT INTO indicator_actuals (plan_id, indicator_id, year, numerator, denominator, value,
                                          source, recorded_by, evidence, components, note, corrects,
                                          computation)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           RETURNING id, plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by,
                  recorded_at, evidence, components, note, corrects, computation""",
        (plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by, evidence,
         Jsonb(components) if components is not None else None, note, corrects, computation),
    )
    assert row is not None
    return row


def latest_indicator_actuals(conn: Conn, plan_id: str, year: int) -> dict[str, Row]:
    """The most recent recorded actual of each indicator for a year (later records supersede)."""
    rows = _all(
        conn,
        """SELECT DISTINCT ON (indicator_id)
                  id, plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by,
                  recorded_at, evidence, components, note, corrects, computation
           FROM indicator_actuals WHERE plan_id = %s AND year = %s
           ORDER BY indicator_id, recorded_at DESC, id DESC""",
        (plan_id, year),
    )
    return {str(r["indicator_id"]): r for r in rows}


def latest_indicator_actuals_all_years(conn: Conn, plan_id: str) -> list[Row]:
    """The current entry of every indicator and year (for trends and projections)."""
    return _all(
        conn,
        """SELECT DISTINCT ON (indicator_id, year)
                  id, plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by,
                  recorded_at, evidence, components, note, corrects, computation
           FROM indicator_actuals WHERE plan_id = %s
           ORDER BY indicator_id, year, recorded_at DESC, id DESC""",
        (plan_id,),
    )


def list_indicator_actuals(
    conn: Conn, plan_id: str, indicator_id: str, *, year: int | None = None
) -> list[Row]:
    """Every recorded actual of one indicator, newest first (the audit trail)."""
    return _all(
        conn,
        """SELECT id, plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by,
                  recorded_at, evidence, components, note, corrects, computation
           FROM indicator_actuals
           WHERE plan_id = %s AND indicator_id = %s AND (%s::int IS NULL OR year = %s)
           ORDER BY recorded_at DESC, id DESC""",
        (plan_id, indicator_id, year, year),
    )


def get_indicator_actual(conn: Conn, plan_id: str, entry_id: int) -> Row | None:
    return _one(
        conn,
        """SELECT id, plan_id, indicator_id, year, numerator, denominator, value, source, recorded_by,
                  recorded_at, evidence, components, note, corrects, computation
           FROM indicator_actuals WHERE plan_id = %s AND id = %s""",
        (plan_id, entry_id),
    )


def year_lock(conn: Conn, plan_id: str, year: int) -> Row | None:
    """Who locked a plan year and when (None while it is open)."""
    return _one(
        conn,
        "SELECT plan_id, year, locked_by, locked_at, note FROM indicator_year_locks"
        " WHERE plan_id = %s AND year = %s",
        (plan_id, year),
    )


def lock_year(conn: Conn, plan_id: str, year: int, locked_by: str, note: str | None) -> Row:
    row = _one(
        conn,
        """INSERT INTO indicator_year_locks (plan_id, year, locked_by, note) VALUES (%s, %s, %s, %s)
           ON CONFLICT (plan_id, year) DO UPDATE SET note = indicator_year_locks.note
           RETURNING plan_id, year, locked_by, locked_at, note""",
        (plan_id, year, locked_by, note),
    )
    assert row is not None
    return row


def insert_amendment(
    conn: Conn, *, plan_id: str, indicator_id: str, year: int, old_target: float | None, new_target: float,
    reason: str, countermeasures: str, amended_by: str,
) -> Row:
    row = _one(
        conn,
        """INSERT INTO indicator_amendments (plan_id, indicator_id, year, old_target, new_target, reason,
                                             countermeasures, amended_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           RETURNING id, plan_id, indicator_id, year, old_target, new_target, reason, countermeasures,
                     amended_by, amended_at""",
        (plan_id, indicator_id, year, old_target, new_target, reason, countermeasures, amended_by),
    )
    assert row is not None
    return row


def list_amendments(conn: Conn, plan_id: str, year: int | None = None) -> list[Row]:
    """Target amendments, oldest first (the last one of an indicator and year is in force)."""
    return _all(
        conn,
        """SELECT id, plan_id, indicator_id, year, old_target, new_target, reason, countermeasures,
                  amended_by, amended_at
           FROM indicator_amendments WHERE plan_id = %s AND (%s::int IS NULL OR year = %s)
           ORDER BY id""",
        (plan_id, year, year),
    )


def insert_review(
    conn: Conn, *, plan_id: str, indicator_id: str, year: int, status: str, changed_by: str, note: str | None
) -> Row:
    row = _one(
        conn,
        """INSERT INTO indicator_reviews (plan_id, indicator_id, year, status, changed_by, note)
           VALUES (%s, %s, %s, %s, %s, %s)
           RETURNING id, plan_id, indicator_id, year, status, changed_by, changed_at, note""",
        (plan_id, indicator_id, year, status, changed_by, note),
    )
    assert row is not None
    return row


def latest_reviews(conn: Conn, plan_id: str, year: int) -> dict[str, Row]:
    """The current review status of each indicator in a year."""
    rows = _all(
        conn,
        """SELECT DISTINCT ON (indicator_id) id, plan_id, indicator_id, year, status, changed_by,
                  changed_at, note
           FROM indicator_reviews WHERE plan_id = %s AND year = %s
           ORDER BY indicator_id, id DESC""",
        (plan_id, year),
    )
    return {str(r["indicator_id"]): r for r in rows}


# --- API keys ----------------------------------------------------------------------------------


def insert_api_key(conn: Conn, *, key_id: str, key_hash: str, name: str, role: str) -> Row:
    row = _one(
        conn,
        """INSERT INTO api_keys (key_id, key_hash, name, role) VALUES (%s, %s, %s, %s)
           RETURNING key_id, name, role, created_at, revoked_at""",
        (key_id, key_hash, name, role),
    )
    assert row is not None
    return row


def get_api_key(conn: Conn, key_id: str) -> Row | None:
    """The stored key (with its hash) when it exists and is not revoked."""
    return _one(
        conn,
        "SELECT key_id, key_hash, name, role FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
        (key_id,),
    )


def list_api_keys(conn: Conn) -> list[Row]:
    return _all(
        conn, "SELECT key_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id"
    )


def revoke_api_key(conn: Conn, key_id: str) -> bool:
    """Revoke a key; False when there is no such active key."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


def ping(conn: Conn) -> None:
    """Round trip to the server (health checks)."""
    conn.execute("SELECT 1").fetchone()
