"""The ingestion SQL: binary array encoders round-trip through PostgreSQL; batch statement semantics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongdu import storage
from zhongdu.storage import telemetry as sql

pytestmark = pytest.mark.postgres

times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
floats = st.floats(allow_nan=False, allow_infinity=False) | st.none()
texts = st.text(max_size=20).filter(lambda s: "\x00" not in s) | st.none()


@pytest.fixture(scope="module")
def conn(pg_migrated: str) -> Iterator[psycopg.Connection]:
    with storage.connect(pg_migrated, autocommit=True) as connection:
        yield connection


@settings(max_examples=60, deadline=None)
@given(
    ts=st.lists(times, max_size=30),
    fs=st.lists(floats, max_size=30),
    ss=st.lists(texts, max_size=30),
    ns=st.lists(st.integers(-(2**31), 2**31 - 1) | st.none(), max_size=30),
)
def test_binary_arrays_round_trip(
    conn: psycopg.Connection,
    ts: list[datetime],
    fs: list[float | None],
    ss: list[str | None],
    ns: list[int | None],
) -> None:
    row = conn.execute(
        "SELECT %b::timestamptz[], %b::float8[], %b::text[], %b::int4[]",
        (sql.encode_timestamptz(ts), sql.encode_float8(fs), sql.encode_text(ss), sql.encode_int4(ns)),
    ).fetchone()
    assert row is not None
    assert [t.astimezone(UTC) for t in row[0]] == ts
    assert row[1] == fs and row[2] == ss and row[3] == ns


def test_batch_is_idempotent_and_status_keeps_the_newest(conn: psycopg.Connection) -> None:
    now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    rows = sql.BatchRows(
        readings=[
            (now, "a-1", "pm2_5", 1.5, "ug/m3", None),
            (now, "a-1", "charger_status", None, None, "charging"),
        ],
        telemetry=[(now, "S-1", "", "up", None, None, None), (now, "S-1", "1", "up", 0.5, 3, None)],
        statuses=[("bs", "S-1", "up", "online", "telemetry", now)],
        rejected=[(now, "x", b"\x00\xff", 2, "bad_topic", "")],
        new_devices=[("a-1", "air")],
        new_stations=["S-1"],
    )
    conn.autocommit = False
    try:
        first = sql.write_batch(conn, rows)
        second = sql.write_batch(conn, rows)
        older = sql.BatchRows(statuses=[("bs", "S-1", "down", None, "telemetry", now - timedelta(minutes=1))])
        sql.write_batch(conn, older)
        status = conn.execute("SELECT status, connection, observed_at FROM entity_status").fetchone()
        payload = conn.execute("SELECT payload FROM rejected_messages").fetchall()
        conn.commit()
    finally:
        conn.autocommit = True
    assert first == sql.BatchCounts(
        readings=2, telemetry=2, statuses=1, rejected=1, devices=1, stations=1, datastreams=2
    )
    assert (second.readings, second.telemetry, second.devices, second.stations) == (0, 0, 0, 0)
    assert second.rejected == 1  # rejects have no natural key: each delivery is kept
    assert status == ("up", "online", now)  # the older "down" report did not win
    assert payload == [(b"\x00\xff",), (b"\x00\xff",)]


@pytest.mark.postgres
def test_auto_registered_unknown_kind_is_named_by_readings(pg_migrated: str) -> None:
    """A device auto-registered as `unknown` takes the kind its readings show; a known kind stays."""
    from zhongdu import storage

    with storage.connect(pg_migrated) as conn:
        storage.telemetry.register_device(conn, "kind-later", "unknown")
        storage.telemetry.register_device(conn, "kind-fixed", "meter")
        rows = storage.telemetry.BatchRows()
        rows.new_devices = [("kind-later", "air"), ("kind-fixed", "air")]
        storage.telemetry.write_batch(conn, rows)
        conn.commit()
        kinds = dict(
            conn.execute("SELECT device_id, kind FROM devices WHERE device_id LIKE 'kind-%'").fetchall()
        )
    assert kinds == {"kind-later": "air", "kind-fixed": "meter"}


def test_optimistic_batch_refuses_duplicates_and_writes_nothing(conn: psycopg.Connection) -> None:
    """Without ON CONFLICT a stored row makes the whole statement fail: no half-written batch."""
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    first = sql.BatchRows(readings=[(now, "o-1", "pm2_5", 1.0, "ug/m3", None)])
    assert sql.write_batch(conn, first, optimistic=True).readings == 1
    again = sql.BatchRows(
        readings=[(now + timedelta(seconds=1), "o-1", "pm2_5", 2.0, "ug/m3", None), *first.readings],
        telemetry=[(now, "S-9", "", "up", None, None, None)],
        statuses=[("park", "o-1", "online", None, "telemetry", now)],
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql.write_batch(conn, again, optimistic=True)
    stored = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'o-1'").fetchone()
    assert stored == (1,)  # the new reading of the failed statement is not there either
    assert conn.execute("SELECT count(*) FROM station_telemetry WHERE station_id = 'S-9'").fetchone() == (0,)
    counts = sql.write_batch(conn, again)  # idempotent: the new rows only
    assert (counts.readings, counts.telemetry, counts.statuses) == (1, 1, 1)


def test_writer_falls_back_on_a_redelivery_and_stays_idempotent_a_while(pg_migrated: str) -> None:
    from zhongdu.ingest._parse import parse_message
    from zhongdu.ingest._senml import build_pack
    from zhongdu.ingest._writer import Item, Writer

    now = datetime.now(UTC)

    def item(mid: int, device: str, value: float) -> Item:
        topic = f"zhongdu/v1/park/{device}/senml"
        payload = json.dumps(build_pack(device, {"pm2_5": value}, time_s=now.timestamp() - mid)).encode()
        return Item(0, mid, 1, payload, parse_message(topic, payload, received_at=now))

    writer = Writer(pg_migrated, auto_register=True)
    try:
        assert writer.write([item(1, "w-1", 5.0)]) is not None
        assert writer.duplicate_batches == 0
        redelivered = writer.write([item(1, "w-1", 5.0), item(2, "w-1", 6.0)])  # mid 1 again
        assert redelivered is not None and redelivered.counts.readings == 1
        assert writer.duplicate_batches == 1
        fresh = writer.write([item(3, "w-1", 7.0)])  # right after: idempotent mode, no new failure
        assert fresh is not None and fresh.counts.readings == 1 and writer.duplicate_batches == 1
    finally:
        writer.close()
    with psycopg.connect(pg_migrated) as check:
        assert check.execute("SELECT count(*) FROM readings WHERE device_id = 'w-1'").fetchone() == (3,)
