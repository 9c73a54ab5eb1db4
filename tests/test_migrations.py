"""The schema migrates on plain PostgreSQL and on TimescaleDB, with the same tables and queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from zhongdu import storage
from zhongdu.errors import StorageError

CORE_TABLES = {
    "devices",
    "stations",
    "sectors",
    "readings",
    "station_telemetry",
    "entity_status",
    "rejected_messages",
    "coverage_snapshots",
    "scenarios",
    "api_keys",
    "indicators",
    "indicator_actuals",
    "schema_migrations",
}
AGGREGATES = {"readings_1m", "readings_1h", "station_load_1m", "station_load_1h"}


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def _bucket_query(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """The same aggregate query the API runs, on either flavour."""
    return conn.execute(
        "SELECT bucket, min, avg, max, n FROM readings_1m WHERE device_id = 'aq-1' AND metric = 'pm2_5'"
        " ORDER BY bucket"
    ).fetchall()


def _insert_readings(conn: psycopg.Connection) -> None:
    base = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    times = [base + timedelta(seconds=s) for s in (0, 20, 40, 70)]
    for _ in range(2):  # the second pass is a redelivery: the natural key absorbs it
        conn.execute(
            "INSERT INTO readings (time, device_id, metric, value, unit)"
            " SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::float8[], %s::text[])"
            " ON CONFLICT DO NOTHING",
            (times, ["aq-1"] * 4, ["pm2_5"] * 4, [10.0, 20.0, 30.0, 5.0], ["ug/m3"] * 4),
        )
    conn.commit()


@pytest.mark.postgres
def test_plain_postgres_migrates_and_records(pg_url: str) -> None:
    with storage.connect(pg_url) as conn:
        applied = storage.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in storage.discover()]
        assert storage.migrate(conn) == []  # idempotent: nothing pending the second time
        assert set(storage.applied_versions(conn).values()) == {"plain"}
        tables = _tables(conn)
        assert tables >= CORE_TABLES | AGGREGATES
        _insert_readings(conn)
        rows = _bucket_query(conn)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(10.0, 20.0, 30.0, 3), (5.0, 5.0, 5.0, 1)]


@pytest.mark.postgres
def test_refuses_to_switch_flavour(pg_migrated: str) -> None:
    with storage.connect(pg_migrated) as conn, pytest.raises(StorageError, match="plain"):
        storage.migrate(conn, timescale=True)


@pytest.mark.timescale
def test_timescale_hypertables_aggregates_and_policies(timescale_schema: tuple[str, str]) -> None:
    url, schema = timescale_schema
    with storage.connect(url, schema=schema) as conn:
        assert storage.has_timescale(conn)
        storage.migrate(conn)
        assert set(storage.applied_versions(conn).values()) == {"timescale"}
        assert _tables(conn) >= CORE_TABLES
        hypertables = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = %s",
                (schema,),
            )
        }
        assert hypertables >= {"readings", "station_telemetry", "coverage_snapshots"}
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s",
                (schema,),
            )
        }
        assert caggs == AGGREGATES
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
            (schema,),
        ).fetchall()
        kinds = {p for p, _ in jobs}
        assert {"policy_refresh_continuous_aggregate", "policy_retention"} <= kinds
        assert kinds & {"policy_compression", "policy_columnstore"}, kinds
        compressed = {h for p, h in jobs if p in ("policy_compression", "policy_columnstore")}
        assert compressed == {"readings", "station_telemetry"}
        _insert_readings(conn)
        rows = _bucket_query(conn)  # real-time aggregation: fresh rows visible before a refresh
        conn.commit()
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(10.0, 20.0, 30.0, 3), (5.0, 5.0, 5.0, 1)]
