"""SQL of the ingestion path: registry look-ups, and one idempotent statement per batch.

`write_batch` sends everything a batch holds (auto-registrations, readings, station telemetry,
latest status, rejected messages) as ONE statement of data-modifying CTEs, each an
`INSERT … SELECT FROM unnest(%b::timestamptz[], …) ON CONFLICT DO NOTHING`: one round trip, one
transaction, and a redelivered message adds nothing. (`%b` is psycopg's `%s` with the arrays sent
in binary: measured ~40 % faster here.) It runs unchanged on plain PostgreSQL and on TimescaleDB
hypertables (including the PGlite test server).

`entity_status` keeps, per station or device:
- `status`/`observed_at`/`source` from telemetry; a report only wins when its time is newer than the
  stored one, or when the row so far only knows the status topic (`source = 'status'`);
- `connection` (online/offline) from the retained status topic, last processed wins (the broker
  delivers one topic in order, and a retained re-delivery repeats the current value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

ReadingRow = tuple[datetime, str, str, float | None, str | None, str | None]
TelemetryRow = tuple[datetime, str, str, str, float | None, int | None, float | None]
#: (kind, entity_id, status, connection, source, observed_at)
StatusRow = tuple[str, str, str, str | None, str, datetime]
#: (received_at, topic, payload, payload_size, reason, detail)
RejectRow = tuple[datetime, str, bytes, int, str, str]


@dataclass
class BatchRows:
    """Everything one batch writes. Status rows must be unique per (kind, entity_id)."""

    readings: list[ReadingRow] = field(default_factory=list)
    telemetry: list[TelemetryRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    rejected: list[RejectRow] = field(default_factory=list)
    new_devices: list[tuple[str, str]] = field(default_factory=list)  # (device_id, kind)
    new_stations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchCounts:
    """Rows actually inserted (duplicates of earlier deliveries are not counted)."""

    readings: int = 0
    telemetry: int = 0
    statuses: int = 0
    rejected: int = 0
    devices: int = 0
    stations: int = 0


_READINGS = """readings_in AS (
    INSERT INTO readings (time, device_id, metric, value, unit, value_text)
    SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::float8[], %b::text[], %b::text[])
    ON CONFLICT DO NOTHING RETURNING 1)"""

_TELEMETRY = """telemetry_in AS (
    INSERT INTO station_telemetry
        (time, station_id, sector_id, status, prb_utilisation, active_users, tx_power_dbm)
    SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::float8[],
                         %b::int4[], %b::float8[])
    ON CONFLICT DO NOTHING RETURNING 1)"""

_STATUS = """status_in AS (
    INSERT INTO entity_status AS e (kind, entity_id, status, connection, source, observed_at)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[])
    ON CONFLICT (kind, entity_id) DO UPDATE SET
        status = CASE WHEN EXCLUDED.source = 'telemetry'
                           AND (e.source = 'status' OR e.observed_at < EXCLUDED.observed_at)
                      THEN EXCLUDED.status ELSE e.status END,
        observed_at = CASE WHEN EXCLUDED.source = 'telemetry'
                                AND (e.source = 'status' OR e.observed_at < EXCLUDED.observed_at)
                           THEN EXCLUDED.observed_at ELSE e.observed_at END,
        source = CASE WHEN EXCLUDED.source = 'telemetry'
                           AND (e.source = 'status' OR e.observed_at < EXCLUDED.observed_at)
                      THEN 'telemetry' ELSE e.source END,
        connection = COALESCE(EXCLUDED.connection, e.connection),
        updated_at = now()
    RETURNING 1)"""

_REJECTED = """rejected_in AS (
    INSERT INTO rejected_messages (received_at, topic, payload, payload_size, reason, detail)
    SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::bytea[], %b::int4[], %b::text[], %b::text[])
    RETURNING 1)"""

_DEVICES = """devices_in AS (
    INSERT INTO devices (device_id, kind, auto_registered)
    SELECT d, k, true FROM unnest(%b::text[], %b::text[]) AS u (d, k)
    ON CONFLICT DO NOTHING RETURNING 1)"""

_STATIONS = """stations_in AS (
    INSERT INTO stations (station_id, auto_registered)
    SELECT s, true FROM unnest(%b::text[]) AS u (s)
    ON CONFLICT DO NOTHING RETURNING 1)"""

_PARTS = (
    ("readings", "readings_in", _READINGS),
    ("telemetry", "telemetry_in", _TELEMETRY),
    ("statuses", "status_in", _STATUS),
    ("rejected", "rejected_in", _REJECTED),
    ("devices", "devices_in", _DEVICES),
    ("stations", "stations_in", _STATIONS),
)


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Transpose rows into one list per column (what `unnest` takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def batch_statement(rows: BatchRows) -> tuple[str, list[object], list[str]]:
    """The single SQL statement for `rows`, its parameters and the count columns it returns."""
    present: list[tuple[str, str, str, list[list[object]]]] = []
    if rows.readings:
        present.append(("readings", *_PARTS[0][1:], _columns(rows.readings, 6)))
    if rows.telemetry:
        present.append(("telemetry", *_PARTS[1][1:], _columns(rows.telemetry, 7)))
    if rows.statuses:
        present.append(("statuses", *_PARTS[2][1:], _columns(rows.statuses, 6)))
    if rows.rejected:
        present.append(("rejected", *_PARTS[3][1:], _columns(rows.rejected, 6)))
    if rows.new_devices:
        present.append(("devices", *_PARTS[4][1:], _columns(rows.new_devices, 2)))
    if rows.new_stations:
        present.append(("stations", *_PARTS[5][1:], [list(rows.new_stations)]))
    if not present:
        return "", [], []
    ctes = ",\n".join(part[2] for part in present)
    counts = ", ".join(f"(SELECT count(*) FROM {part[1]})" for part in present)  # noqa: S608
    params: list[object] = [column for part in present for column in part[3]]
    # Composed only from the fixed fragments above; the data travels as parameters.
    query = f"WITH {ctes}\nSELECT {counts}"
    return query, params, [part[0] for part in present]


def write_batch(conn: psycopg.Connection, rows: BatchRows) -> BatchCounts:
    """Write `rows` in one statement and commit; return what was newly inserted.

    On any error the transaction is rolled back and the error raised: the caller keeps the batch
    (and its messages unacknowledged) and retries.
    """
    query, params, names = batch_statement(rows)
    if not query:
        return BatchCounts()
    try:
        with conn.transaction():
            row = conn.execute(query.encode(), params).fetchone()
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        raise
    assert row is not None
    return BatchCounts(**{name: int(value) for name, value in zip(names, row, strict=True)})


def load_registry(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """Every registered device id and station id (the ingester's in-memory cache)."""
    devices = conn.execute("SELECT device_id FROM devices").fetchall()
    stations = conn.execute("SELECT station_id FROM stations").fetchall()
    conn.commit()
    return {str(r[0]) for r in devices}, {str(r[0]) for r in stations}


def registered(
    conn: psycopg.Connection, device_ids: Iterable[str], station_ids: Iterable[str]
) -> tuple[set[str], set[str]]:
    """Which of these devices and stations are in the registry (registered since the cache)."""
    devices, stations = list(device_ids), list(station_ids)
    found_devices: set[str] = set()
    found_stations: set[str] = set()
    if devices:
        rows = conn.execute(
            "SELECT device_id FROM devices WHERE device_id = ANY(%b::text[])", (devices,)
        ).fetchall()
        found_devices = {str(r[0]) for r in rows}
    if stations:
        rows = conn.execute(
            "SELECT station_id FROM stations WHERE station_id = ANY(%b::text[])", (stations,)
        ).fetchall()
        found_stations = {str(r[0]) for r in rows}
    conn.commit()
    return found_devices, found_stations


def register_device(conn: psycopg.Connection, device_id: str, kind: str, *, name: str | None = None) -> None:
    """Add a device to the registry (for tests and operators; the ingester auto-registers in batch)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO devices (device_id, kind, name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (device_id, kind, name),
        )


def register_station(conn: psycopg.Connection, station_id: str, *, name: str | None = None) -> None:
    """Add a base station to the registry (no sectors)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO stations (station_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (station_id, name),
        )


def rejected_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rejected messages per reason (for tests, the benchmark and operators)."""
    rows = conn.execute("SELECT reason, count(*) FROM rejected_messages GROUP BY reason").fetchall()
    conn.commit()
    return {str(r[0]): int(r[1]) for r in rows}
