"""Plain-PostgreSQL rollups: what they cost the ingester and what they save a Grafana panel.

In a fresh database on the server given (default the local one), migrated by the project:
1. the ingester's batch statement (`write_batch`, 2,000 readings) with the rollups' trigger on
   and off, interleaved, best of `--rounds`: the write cost the rollups add;
2. a Grafana-style panel query (`WHERE metric = ... AND bucket BETWEEN $from AND $to`, one hour)
   over `--days` of history, on the rollup view and on the former `date_bin` view over the raw
   table (recreated here as the baseline), after `refresh_readings_rollups()`.
Prints milliseconds and ratios; the database is dropped at the end.

Example: `.venv/bin/python benchmarks/bench_rollups.py --days 7 --devices 20`
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql as pgsql

from zhongdu import storage
from zhongdu.storage import telemetry as sql

TRIGGERS_ON = "ALTER TABLE readings ENABLE TRIGGER USER"
TRIGGERS_OFF = "ALTER TABLE readings DISABLE TRIGGER USER"
FORMER_VIEW = """CREATE VIEW readings_1m_datebin AS
SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket, device_id, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS n
FROM readings GROUP BY 1, 2, 3"""


def _batch(start: datetime, devices: int, size: int) -> sql.BatchRows:
    rows = sql.BatchRows()
    per_device = size // devices
    for k in range(per_device):
        t = start + timedelta(seconds=k)
        for d in range(devices):
            rows.readings.append((t, f"bench-{d}", "pm2_5", float(k % 90), "ug/m3", None))
    return rows


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=10, help="batches per variant (default 10)")
    parser.add_argument("--batch", type=int, default=2000, help="readings per batch (default 2000)")
    parser.add_argument("--days", type=int, default=7, help="history for the panel query (default 7)")
    parser.add_argument("--devices", type=int, default=20, help="devices in the history (default 20)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    name = f"zhongdu_bench_rollups_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    url = args.server.rsplit("/", 1)[0] + "/" + name
    results: dict[str, float] = {}
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn, timescale=False)
        with storage.connect(url, autocommit=True) as conn:
            now = datetime.now(UTC).replace(microsecond=0)
            on: list[float] = []
            off: list[float] = []
            for k in range(args.rounds):
                for enabled, times in ((True, on), (False, off)):
                    start = now - timedelta(days=400) + timedelta(hours=2 * k + (0 if enabled else 1))
                    batch = _batch(start, 10, args.batch)
                    conn.execute(TRIGGERS_ON if enabled else TRIGGERS_OFF)
                    times.append(_timed(lambda b=batch: sql.write_batch(conn, b, optimistic=True)))
            conn.execute(TRIGGERS_ON)
            results["batch_with_rollups_ms"] = min(on)
            results["batch_without_rollups_ms"] = min(off)

            history_start = now - timedelta(days=args.days)
            print(f"loading {args.days} days x {args.devices} devices x 2 metrics, one reading a minute ...")
            conn.execute(
                """INSERT INTO readings (time, device_id, metric, value, unit)
                   SELECT t, 'air-' || d, m, extract(minute from t) + d, 'ug/m3'
                   FROM generate_series(%s::timestamptz, %s::timestamptz, INTERVAL '1 minute') AS t,
                        generate_series(1, %s) AS d, unnest(ARRAY['pm2_5', 'pm10']) AS m""",
                (history_start, now, args.devices),
            )
            refreshed = _timed(lambda: conn.execute("SELECT refresh_readings_rollups(100000)"))
            results["refresh_all_history_ms"] = refreshed
            conn.execute(FORMER_VIEW)
            conn.execute("ANALYZE")
            panel = pgsql.SQL(
                "SELECT bucket, device_id, avg FROM {} WHERE metric = 'pm2_5'"
                " AND bucket BETWEEN %s AND %s ORDER BY 1"
            )
            window = (now - timedelta(hours=3), now - timedelta(hours=2))
            for view, key in (
                ("readings_1m", "panel_rollup_ms"),
                ("readings_1m_datebin", "panel_datebin_ms"),
            ):
                query = panel.format(pgsql.Identifier(view))
                results[key] = min(
                    _timed(lambda q=query: conn.execute(q, window).fetchall()) for _ in range(3)
                )
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
    ratios = {
        "rollup_write_overhead": round(
            results["batch_with_rollups_ms"] / results["batch_without_rollups_ms"], 3
        ),
        "panel_speedup": round(results["panel_datebin_ms"] / results["panel_rollup_ms"], 1),
    }
    if args.json:
        print(json.dumps({**{k: round(v, 2) for k, v in results.items()}, **ratios}))
    else:
        for key, value in {**results, **ratios}.items():
            print(f"{key:28s} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
