"""Plain PostgreSQL rollups behind readings_1m / readings_1h: exact at every moment, and a
Grafana-style `WHERE bucket BETWEEN $from AND $to` uses an index (checked with EXPLAIN)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from zhongdu.ingest._writer import Writer

pytestmark = pytest.mark.postgres

BASE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


def _raw(conn: psycopg.Connection, width: str) -> list[tuple[Any, ...]]:
    """What the views must say: the aggregate straight from the raw rows (the former views)."""
    return conn.execute(
        f"""SELECT date_bin(INTERVAL '{width}', time, {ORIGIN}) AS bucket, device_id, metric,
                   min(value), avg(value), max(value), count(*)
            FROM readings GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    ).fetchall()


def _view(conn: psycopg.Connection, view: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT bucket, device_id, metric, min, avg, max, n FROM {view} ORDER BY 1, 2, 3"
    ).fetchall()


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[:3] != y[:3] or x[6] != y[6]:
            return False
        for u, v in zip(x[3:6], y[3:6], strict=True):
            if (u is None) != (v is None) or (u is not None and abs(u - v) > 1e-9 * max(1.0, abs(u))):
                return False
    return True


def _insert(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    times, devices, metrics, values, units, texts = (list(c) for c in zip(*rows, strict=True))
    conn.execute(
        "INSERT INTO readings (time, device_id, metric, value, unit, value_text)"
        " SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[])",
        (times, devices, metrics, values, units, texts),
    )
    conn.commit()


def _plan(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> str:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert row is not None
    return json.dumps(row[0])


def test_rollups_stay_exact_and_grafana_ranges_use_an_index(pg_migrated: str) -> None:
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE readings, readings_rollup_1m, readings_rollup_1h, readings_rollup_dirty")
        conn.commit()
        rows: list[tuple[Any, ...]] = []
        for hour in range(6):
            for minute in range(60):
                t = BASE + timedelta(hours=hour, minutes=minute, seconds=7)
                for d in range(12):
                    rows.append((t, f"air-{d}", "pm2_5", float((hour * 60 + minute + d) % 97), "ug/m3", None))
                    rows.append((t, f"air-{d}", "co2", 400.0 + minute + d, "ppm", None))
                rows.append((t, "ev-1", "charger_status", None, None, "charging"))
        _insert(conn, rows)
        assert conn.execute("SELECT count(DISTINCT bucket) FROM readings_rollup_dirty").fetchone() == (360,)
        # nothing refreshed yet: the views aggregate the dirty hours from the raw rows
        assert _same(_view(conn, "readings_1m"), _raw(conn, "1 minute"))
        assert _same(_view(conn, "readings_1h"), _raw(conn, "1 hour"))

        writer = Writer(pg_migrated)
        try:
            assert writer.refresh_rollups() == 6 * 60
            assert writer.refresh_rollups() == 0
        finally:
            writer.close()
        assert conn.execute("SELECT count(*) FROM readings_rollup_dirty").fetchone() == (0,)
        assert _same(_view(conn, "readings_1m"), _raw(conn, "1 minute"))
        assert _same(_view(conn, "readings_1h"), _raw(conn, "1 hour"))

        # a late reading into a refreshed hour, and a deletion: exact at once, then refreshed
        _insert(
            conn, [(BASE + timedelta(hours=2, minutes=5, seconds=30), "air-0", "pm2_5", 999.0, "ug/m3", None)]
        )
        conn.execute(
            "DELETE FROM readings WHERE device_id = 'air-3' AND time < %s", (BASE + timedelta(hours=1),)
        )
        conn.commit()
        assert _same(_view(conn, "readings_1m"), _raw(conn, "1 minute"))
        assert _same(_view(conn, "readings_1h"), _raw(conn, "1 hour"))
        assert conn.execute("SELECT refresh_readings_rollups()").fetchone() == (
            61,
        )  # the late minute, and the deleted hour's 60
        conn.commit()
        assert _same(_view(conn, "readings_1m"), _raw(conn, "1 minute"))
        assert _same(_view(conn, "readings_1h"), _raw(conn, "1 hour"))

        conn.execute("ANALYZE readings_rollup_1m")
        conn.execute("ANALYZE readings_rollup_1h")
        conn.execute("ANALYZE readings_rollup_dirty")
        conn.commit()
        start, end = BASE + timedelta(hours=3), BASE + timedelta(hours=3, minutes=15)
        # what a Grafana time-series panel sends: $__timeFrom() / $__timeTo() as literals
        grafana = (
            "SELECT bucket AS time, avg AS value, device_id AS metric FROM readings_1m"
            " WHERE metric = 'pm2_5' AND bucket BETWEEN %s AND %s ORDER BY 1"
        )
        plan = _plan(conn, grafana, (start, end))
        assert "readings_rollup_1m_bucket" in plan or "readings_rollup_1m_pkey" in plan, plan
        assert "readings_rollup_1m" not in _seq_relations(plan), plan
        # 90 days of hourly history: what an hourly panel over a long-running park ranges over
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s - make_interval(hours => h), 'air-' || d, 'co2', 400 + h %% 50, 'ppm'
               FROM generate_series(1, 2160) AS h, generate_series(0, 11) AS d""",
            (BASE,),
        )
        conn.commit()
        assert conn.execute("SELECT refresh_readings_rollups(5000)").fetchone() == (2160,)
        conn.execute("ANALYZE readings_rollup_1h")
        conn.execute("ANALYZE readings_rollup_dirty")
        conn.commit()
        hourly = _plan(
            conn,
            "SELECT bucket, device_id, avg FROM readings_1h WHERE metric = 'co2' AND bucket BETWEEN %s AND %s",
            (BASE - timedelta(hours=48), BASE),
        )
        assert "readings_rollup_1h" in hourly and "readings_rollup_1h" not in _seq_relations(hourly), hourly
        assert _same(_view(conn, "readings_1h"), _raw(conn, "1 hour"))
        got = conn.execute(grafana, (start, end)).fetchall()
        assert len(got) == 16 * 12  # 16 minute buckets (BETWEEN is inclusive) x 12 devices


def _seq_relations(plan_json: str) -> str:
    """Relation names read by sequential scans in a JSON plan (as one string, for `in` tests)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan":
                found.append(str(node.get("Relation Name")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(plan_json))
    return " ".join(found)


def _load_raw(conn: psycopg.Connection, width: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"""SELECT date_bin(INTERVAL '{width}', time, {ORIGIN}), station_id, sector_id,
                   min(prb_utilisation), avg(prb_utilisation), max(prb_utilisation),
                   min(active_users), avg(active_users), max(active_users), count(*)
            FROM station_telemetry GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    ).fetchall()


def _load_view(conn: psycopg.Connection, view: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"""SELECT bucket, station_id, sector_id, prb_min, prb_avg, prb_max, users_min, users_avg, users_max, n
            FROM {view} ORDER BY 1, 2, 3"""
    ).fetchall()


def _same_load(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x[:3] != y[:3] or x[9] != y[9] or x[6] != y[6] or x[8] != y[8]:
            return False
        for u, v in ((x[3], y[3]), (x[4], y[4]), (x[5], y[5]), (x[7], y[7])):
            if (u is None) != (v is None) or (u is not None and abs(float(u) - float(v)) > 1e-9):
                return False
    return True


def test_station_load_rollups_stay_exact_and_use_an_index(pg_migrated: str) -> None:
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE station_telemetry, station_load_rollup_1m, station_load_rollup_1h")
        conn.execute("TRUNCATE station_load_rollup_dirty")
        times, stations, sectors, loads, users = [], [], [], [], []
        for minute in range(180):
            for s in range(8):
                for sector in ("", "1", "2"):
                    times.append(BASE + timedelta(minutes=minute, seconds=11))
                    stations.append(f"TC-{s}")
                    sectors.append(sector)
                    loads.append(None if sector == "" else ((minute + s) % 100) / 100)
                    users.append(None if sector == "" else (minute * 7 + s) % 60)
        conn.execute(
            "INSERT INTO station_telemetry (time, station_id, sector_id, status, prb_utilisation, active_users)"
            " SELECT t, s, c, 'up', p, u FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::float8[],"
            " %s::int4[]) AS x (t, s, c, p, u)",
            (times, stations, sectors, loads, users),
        )
        conn.commit()
        assert _same_load(_load_view(conn, "station_load_1m"), _load_raw(conn, "1 minute"))
        assert _same_load(_load_view(conn, "station_load_1h"), _load_raw(conn, "1 hour"))
        assert conn.execute("SELECT refresh_station_load_rollups()").fetchone() == (180,)
        conn.commit()
        assert _same_load(_load_view(conn, "station_load_1m"), _load_raw(conn, "1 minute"))
        assert _same_load(_load_view(conn, "station_load_1h"), _load_raw(conn, "1 hour"))
        late = BASE + timedelta(minutes=70, seconds=40)
        conn.execute(
            "INSERT INTO station_telemetry (time, station_id, sector_id, status, prb_utilisation, active_users)"
            " VALUES (%s, 'TC-1', '1', 'degraded', 0.99, 59)",
            (late,),
        )
        conn.commit()
        assert _same_load(_load_view(conn, "station_load_1m"), _load_raw(conn, "1 minute"))
        assert _same_load(_load_view(conn, "station_load_1h"), _load_raw(conn, "1 hour"))
        conn.execute("SELECT refresh_station_load_rollups()")
        conn.execute("ANALYZE station_load_rollup_1m")
        conn.execute("ANALYZE station_load_rollup_dirty")
        conn.commit()
        plan = _plan(
            conn,
            "SELECT bucket, station_id, prb_avg FROM station_load_1m WHERE bucket BETWEEN %s AND %s",
            (BASE + timedelta(minutes=100), BASE + timedelta(minutes=110)),
        )
        assert "station_load_rollup_1m" in plan and "station_load_rollup_1m" not in _seq_relations(plan), plan
