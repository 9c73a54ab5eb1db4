"""API benchmark: `GET /v1/coverage` under load from a separate process on loopback.

    .venv/bin/python benchmarks/bench_api.py [--rate 500] [--duration 20] [--layout city|small]

1. A database: `--database-url` / ZHONGDU_DATABASE_URL, else a temporary database on the local
   PostgreSQL (127.0.0.1:5432), migrated, dropped at the end.
2. The API in its own process (uvicorn, one worker) with live coverage of Taichung: the shipped
   resolution-10 grid (~168,000 cells) and the generated layout (~47,000 sectors), hata model
   (`--layout small` uses a synthetic 29-district grid instead).
3. This process is the load generator (asyncio, HTTP/1.1 keep-alive, `--connections` sockets):
   - open loop: requests scheduled at a constant `--rate` for `--duration` s; latency is measured
     from each request's scheduled time (queueing included, no coordinated omission);
   - closed loop: every connection back to back for 5 s, the saturation throughput.
4. Baseline in the same run: what answering by recomputation would cost, measured here on the same
   layout: the live recomputation after one station's status changes (incremental engine) and a
   from-scratch `compute_coverage`; printed as ratios to the served p50.

The goal: p99 < 50 ms at 500 requests/s. Times are wall clock on a shared 2-core machine
where client and server compete for the cores: noisy; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REQUEST = b"GET /v1/coverage HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"


# --- the server process ----------------------------------------------------------------------


def _small_layout() -> Any:
    import h3
    import numpy as np

    from zhongdu.coverage import Grid, Stations

    rng = np.random.default_rng(29)
    centre = h3.latlng_to_cell(24.17, 120.64, 9)
    cells = sorted(h3.grid_disk(centre, 40))
    latlng = np.array([h3.cell_to_latlng(c) for c in cells])
    angle = np.arctan2(latlng[:, 0] - 24.17, latlng[:, 1] - 120.64)
    district = np.array([f"區{int(k):02d}" for k in ((angle + np.pi) / (2 * np.pi) * 29).astype(int) % 29])
    grid = Grid.from_arrays([h3.str_to_int(c) for c in cells], rng.uniform(10, 800, len(cells)), district)
    n = 300
    stations = Stations.from_columns(
        station_id=[f"bs-{i:04d}" for i in range(n)],
        lon=120.64 + rng.uniform(-0.1, 0.1, n),
        lat=24.17 + rng.uniform(-0.1, 0.1, n),
        radius_m=rng.uniform(300, 900, n),
    )
    return grid, stations


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from zhongdu.api import create_app
    from zhongdu.settings import Settings

    model = "disk" if args.layout == "small" else "hata"
    settings = Settings(database_url=args.database_url, coverage_model=model, api_pool_size=4)
    app = create_app(settings, layout=_small_layout if args.layout == "small" else None)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# --- the load generator ----------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return status


async def _open_loop(port: int, rate: float, duration: float, connections: int) -> dict[str, Any]:
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (scheduled := await queue.get()) is not None:
            writer.write(REQUEST)
            await writer.drain()
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - scheduled)
            errors += status != 200
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    total = int(rate * duration)
    start = time.perf_counter() + 0.05
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(target)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "achieved_rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p90_ms": 1000 * latencies[int(len(latencies) * 0.90)],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


async def _closed_loop(port: int, duration: float, connections: int) -> dict[str, Any]:
    count = 0
    stop = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            writer.write(REQUEST)
            await writer.drain()
            await _read_response(reader)
            count += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return {"requests": count, "rps": count / (time.perf_counter() - start)}


def _baseline(layout: str) -> dict[str, float]:
    """Cost of answering by recomputation, on the layout the server uses."""
    from datetime import UTC, datetime

    from zhongdu.coverage import CoverageEngine, StationStatus, compute_coverage, live_coverage

    if layout == "small":
        grid, stations = _small_layout()
        model = "disk"
    else:
        from zhongdu.coverage import generate_layout, load_default_grid

        grid = load_default_grid()
        stations = generate_layout(grid)
        model = "hata"
    t = time.perf_counter()
    compute_coverage(grid, stations, model=model)  # type: ignore[arg-type]
    scratch = time.perf_counter() - t
    engine = CoverageEngine(grid, stations, model=model)  # type: ignore[arg-type]
    engine.result()
    ids = sorted({str(s) for s in stations.station_id})
    now = datetime.now(UTC)
    times = []
    for i, sid in enumerate(ids[:20]):
        t = time.perf_counter()
        live_coverage(engine, {sid: StationStatus("down" if i % 2 == 0 else "up", now)}, now=now)
        times.append(time.perf_counter() - t)
    return {"scratch_s": scratch, "incremental_s": statistics.median(times)}


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of open-loop load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--layout", choices=["city", "small"], default="city")
    parser.add_argument("--database-url", default=os.environ.get("ZHONGDU_DATABASE_URL"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the recomputation baseline")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args)
        return 0

    import psycopg
    from psycopg import sql

    from zhongdu import services, storage

    admin_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    temp_db = None
    url = args.database_url
    if not url:
        temp_db = f"zhongdu_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(temp_db)))
        url = admin_url.rsplit("/", 1)[0] + f"/{temp_db}"
    server = None
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn)
        port = args.port or services.free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "serve",
                "--port",
                str(port),
                "--layout",
                args.layout,
                "--database-url",
                url,
            ],
        )
        started = time.perf_counter()
        while True:
            try:
                live = _get_json(f"http://127.0.0.1:{port}/v1/coverage")
                break
            except Exception:
                if server.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("the API server did not come up") from None
                time.sleep(0.5)
        print(
            f"server up in {time.perf_counter() - started:.1f} s: layout {args.layout}, "
            f"model {live['model']}, {live['stations_total']} stations, {len(live['districts'])} districts, "
            f"share {live['share']:.4f}"
        )
        asyncio.run(_open_loop(port, 200, 2, args.connections))  # warm-up
        r = asyncio.run(_open_loop(port, args.rate, args.duration, args.connections))
        verdict = "met" if r["p99_ms"] < 50 else "NOT met"
        print(
            f"open loop {args.rate:.0f} req/s for {args.duration:.0f} s ({args.connections} connections): "
            f"{r['requests']} requests, {r['errors']} non-200, achieved {r['achieved_rps']:.0f} req/s; "
            f"latency p50 {r['p50_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"max {r['max_ms']:.1f} ms -> goal p99 < 50 ms: {verdict}"
        )
        closed = asyncio.run(_closed_loop(port, 5.0, args.connections))
        print(f"closed loop ({args.connections} connections, 5 s): {closed['rps']:.0f} req/s saturation")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if not args.no_baseline:
            base = _baseline(args.layout)
            p50_s = r["p50_ms"] / 1000
            print(
                "baseline, answering by recomputation on the same layout: "
                f"from scratch {base['scratch_s']:.2f} s ({base['scratch_s'] / p50_s:,.0f}x the served p50), "
                f"incremental after one status change {1000 * base['incremental_s']:.1f} ms "
                f"({base['incremental_s'] / p50_s:,.1f}x the served p50)"
            )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        if temp_db:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(temp_db))
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
