"""SensorThings benchmark: the latest Observation of every Datastream, and what keeping it costs
the ingest writer.

    .venv/bin/python benchmarks/bench_sensorthings.py [--streams 300] [--per-stream 3000]

A temporary database on the local PostgreSQL (127.0.0.1:5432, or ZHONGDU_DATABASE_URL's server),
migrated, filled through the ingest writer, dropped at the end. Printed, each with its baseline
measured in the same run:
1. `GET /sta/v1.1/Datastreams?$expand=Observations($orderby=phenomenonTime desc;$top=1)` through
   the app (served from `datastream_latest`), against the same answer computed from the readings
   (`DISTINCT ON (device_id, metric) … ORDER BY time DESC`, what a server without the table does);
2. the writer's statement for a 2,000-reading batch with the `datastream_latest` upkeep, against
   the same statement without it.
Medians of repeated runs; wall clock on a shared machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

BASE_URL = os.environ.get("ZHONGDU_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LATEST = "/sta/v1.1/Datastreams?$top=10000&$expand=Observations($orderby=phenomenonTime desc;$top=1)"


def _median_ms(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _fill(url: str, streams: int, per_stream: int) -> None:
    from zhongdu.storage._telemetry import BatchRows, write_batch

    start = datetime.now(UTC) - timedelta(seconds=per_stream * 10)
    with psycopg.connect(url, autocommit=True) as conn:
        for s in range(streams):
            device, metric = (
                f"dev-{s // 6:04d}",
                ("pm2_5", "pm10", "temperature", "humidity", "noise_laeq", "power")[s % 6],
            )
            rows = [
                (start + timedelta(seconds=10 * i), device, metric, float(i % 97), "x", None)
                for i in range(per_stream)
            ]
            write_batch(conn, BatchRows(readings=rows, new_devices=[(device, "air")] if s % 6 == 0 else []))
        conn.execute("ANALYZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=300, help="Datastreams (device x metric pairs)")
    parser.add_argument("--per-stream", type=int, default=3000, help="readings per Datastream")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient

    from zhongdu import storage
    from zhongdu.api import create_app
    from zhongdu.settings import Settings
    from zhongdu.storage import _telemetry

    name = f"bench_sta_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = BASE_URL.rsplit("/", 1)[0] + "/" + name
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn)
        print(f"filling {args.streams} Datastreams x {args.per_stream} readings ...", flush=True)
        _fill(url, args.streams, args.per_stream)

        app = create_app(
            Settings(database_url=url, admin_api_key="bench-admin-key-0123456789"), live_coverage=False
        )
        with TestClient(app) as client, psycopg.connect(url) as conn:
            body = client.get(LATEST).json()
            assert len(body["value"]) == args.streams
            served = _median_ms(lambda: client.get(LATEST), args.repeat)
            scan = _median_ms(
                lambda: conn.execute(
                    "SELECT DISTINCT ON (device_id, metric) device_id, metric, time, value FROM readings"
                    " ORDER BY device_id, metric, time DESC"
                ).fetchall(),
                max(3, args.repeat // 3),
            )
        readings = args.streams * args.per_stream
        print(f"latest Observation of {args.streams} Datastreams ({readings:,} readings):")
        print(f"  served from datastream_latest, whole HTTP answer: {served:8.2f} ms")
        print(f"  baseline, the SQL alone over the readings:        {scan:8.2f} ms  ({scan / served:.1f}x)")

        # the writer with and without the upkeep, alternating (A B A B ...) on fresh rows: 2,000
        # readings of 40 devices x 2 metrics (80 Datastreams), every row a new one
        original = _telemetry.latest_rows
        times: dict[bool, list[float]] = {True: [], False: []}
        with psycopg.connect(url, autocommit=True) as conn:
            for k in range(2 * args.repeat):
                t0 = datetime.now(UTC) + timedelta(days=1 + k)
                rows = [
                    (t0 + timedelta(seconds=i), f"dev-{i % 40:04d}", ("pm2_5", "pm10")[i % 2], 1.0, "x", None)
                    for i in range(2000)
                ]
                upkeep = k % 2 == 0
                _telemetry.latest_rows = original if upkeep else (lambda readings: [])
                try:
                    start = time.perf_counter()
                    _telemetry.write_batch(conn, _telemetry.BatchRows(readings=rows))
                    times[upkeep].append((time.perf_counter() - start) * 1000)
                finally:
                    _telemetry.latest_rows = original
        with_upkeep, without = statistics.median(times[True]), statistics.median(times[False])
        print("ingest writer, one 2,000-reading batch, encoding and the statement:")
        print(f"  with datastream_latest upkeep:    {with_upkeep:8.2f} ms")
        print(f"  baseline without it:              {without:8.2f} ms  (cost {with_upkeep / without:.2f}x)")
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
