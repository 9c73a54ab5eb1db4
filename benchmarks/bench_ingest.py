"""Ingestion benchmark: sustained SenML through a tuned Mosquitto into PostgreSQL, vs row by row.

Everything runs on this machine, in one run: a private Mosquitto with the project's tuned config,
a fresh database, the ingester (in this process), and a paced load generator in another process
that feeds lines to `mosquitto_pub -l` (C publishers, QoS 1, one per simulated device) so that
Python publishing is not the bottleneck. Each pack carries `--records` datapoints stamped with the
time it was generated, so commit time minus data time is the publish-to-commit latency.

Run: `.venv/bin/python benchmarks/bench_ingest.py --rate 5000 --seconds 20 --workers 2` (`--help`).

Phases: (1) full load at `--rate` msg/s (6,000 by default, above the goal's 5,000) for
`--seconds`, then wait until every message is committed and check that the database holds exactly
messages x records rows (zero loss); (2) half load, for latency; (3) capacity: `--capacity-rate`
msg/s, more than the ingester can take, so the committed rate is its maximum (again with the
zero-loss check); (4) the naive baseline: a subscriber that inserts row by row and commits per
message, offered `--rate` (far above what it takes), throughput over that window. The ratio
compares the two maxima: capacity over naive. Each phase starts from an empty readings table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from prometheus_client import CollectorRegistry
from psycopg import sql

from zhongdu import services, storage
from zhongdu.errors import ServiceError
from zhongdu.ingest._metrics_catalogue import METRICS
from zhongdu.ingest._parse import parse_message
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._types import Accepted
from zhongdu.ingest._worker import CommitInfo, Ingester
from zhongdu.settings import Settings, parse_mqtt_url
from zhongdu.storage._telemetry import ReadingRow

BENCH_METRICS = (
    "pm1", "pm2_5", "pm10", "o3", "no2", "co", "co2", "temperature", "humidity", "pressure",
    "wind_speed", "battery",
)  # fmt: skip
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- load generator (runs in its own process: `python benchmarks/bench_ingest.py pace ...`) -------


def _value_pool(records: int, size: int = 997, seed: int = 8428) -> list[str]:
    """Pre-formatted record lists (all but bn/bt) with in-range, varying values."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(size):
        parts = []
        for metric in BENCH_METRICS[:records]:
            spec = METRICS[metric]
            assert spec.min is not None and spec.max is not None
            lo = max(spec.min, 0.0)
            hi = min(spec.max, lo + 1000.0)
            value = round(float(rng.uniform(lo, hi)), 2)
            parts.append(f'"n":"{metric}","u":"{spec.unit}","v":{value}}}')
        pool.append(",{".join(parts))
    return pool


def pace(argv: list[str]) -> int:
    """Feed `count` packs at `rate`/s round-robin to one `mosquitto_pub -l` per device."""
    p = argparse.ArgumentParser(prog="pace")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--prefix", required=True)
    args = p.parse_args(argv)
    pool = _value_pool(args.records)
    devices = [f"{args.prefix}-{i}" for i in range(args.devices)]
    procs = [
        subprocess.Popen(
            [
                "mosquitto_pub",
                "-h",
                args.host,
                "-p",
                str(args.port),
                "-q",
                "1",
                "-M",
                "1000",
                "-V",
                "5",
                "-i",
                f"{device}-pub",
                "-t",
                f"zhongdu/v1/park/{device}/senml",
                "-l",
            ],
            stdin=subprocess.PIPE,
        )
        for device in devices
    ]
    heads = [f'[{{"bn":"urn:dev:zhongdu:{d}:","bt":' for d in devices]
    last = [0] * len(devices)  # integer microseconds: formatted floats could collide
    started = time.time()
    sent = 0
    while sent < args.count:
        now = time.time()
        due = min(args.count, int((now - started) * args.rate) + 1)
        while sent < due:
            k = sent % len(devices)
            bt = max(int(now * 1e6), last[k] + 1)  # strictly increasing per device: unique natural keys
            last[k] = bt
            line = f"{heads[k]}{bt // 1_000_000}.{bt % 1_000_000:06d},{pool[sent % len(pool)]}]\n"
            stdin = procs[k].stdin
            assert stdin is not None
            stdin.write(line.encode())
            sent += 1
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.flush()
        time.sleep(0.002)
    finished = time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        proc.wait(120)
    print(json.dumps({"sent": sent, "started": started, "finished": finished}), flush=True)
    return 0


def _start_pacer(
    broker: str, rate: float, count: int, records: int, devices: int, prefix: str
) -> subprocess.Popen[str]:
    host, port, _, _ = parse_mqtt_url(broker)
    return subprocess.Popen(
        [
            sys.executable, str(Path(__file__).resolve()), "pace", "--host", host, "--port", str(port),
            "--rate", str(rate), "--count", str(count), "--records", str(records),
            "--devices", str(devices), "--prefix", prefix,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _pacer_result(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise ServiceError(f"the load generator failed (exit {proc.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- measurement -------------------------------------------------------------------------------------


@dataclass
class _Collector:
    lags: list[float] = field(default_factory=list)
    committed: int = 0
    datapoints: int = 0
    last_commit: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, info: CommitInfo) -> None:
        lags = [info.committed_at - t.timestamp() for t in info.data_times]
        with self.lock:
            self.lags.extend(lags)
            self.committed += info.messages
            self.datapoints += info.datapoints
            self.last_commit = info.committed_at

    def reset(self) -> None:
        with self.lock:
            self.lags.clear()
            self.committed = self.datapoints = 0


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    return float(p50), float(p99)


class _ExtraWorkers:
    """Further ingest workers as `zhongdu ingest` processes in the same shared-subscription group."""

    def __init__(self, count: int, db: str, broker: str, group: str, batch_size: int, writers: int) -> None:
        self.ports = [services.free_port() for _ in range(count)]
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "zhongdu.cli",
                    "ingest",
                    "--database-url",
                    db,
                    "--mqtt-url",
                    broker,
                    "--client-id",
                    f"bench-ingest-{group}-{k + 2}",
                    "--group",
                    group,
                    "--mqtt-protocol",
                    "5",
                    "--metrics-port",
                    str(port),
                    "--auto-register",
                    "--batch-size",
                    str(batch_size),
                    "--writers",
                    str(writers),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for k, port in enumerate(self.ports)
        ]

    def committed(self) -> int:
        """Messages committed by the extra workers, scraped from their Prometheus endpoints."""
        total = 0
        for port in self.ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("zhongdu_ingest_messages_committed_total "):
                    total += int(float(line.split()[1]))
        return total

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        if b"zhongdu_ingest_broker_connected 1.0" in r.read():
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            else:
                raise ServiceError("an extra ingest worker did not connect")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ingester_phase(
    ingester: Ingester, collector: _Collector, broker: str, db: str, *,
    rate: float, seconds: float, records: int, devices: int, prefix: str, extra: _ExtraWorkers | None,
) -> dict[str, Any]:  # fmt: skip
    count = int(rate * seconds)
    collector.reset()
    _empty_readings(db)

    def committed_now() -> int:
        return ingester.stats.committed + (extra.committed() if extra else 0)

    base = committed_now()
    base_own = ingester.stats.committed
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    load_before = os.getloadavg()[0]
    pacer = _start_pacer(broker, rate, count, records, devices, prefix)
    result = _pacer_result(pacer)
    deadline = time.monotonic() + 180
    last_commit = time.time()
    while (done := committed_now() - base) < result["sent"] and time.monotonic() < deadline:
        time.sleep(0.02 if extra is None else 0.1)
    last_commit = collector.last_commit if extra is None else time.time()
    committed = done
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    with collector.lock:
        lags = list(collector.lags)
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE device_id LIKE %s", (f"{prefix}-%",)
        ).fetchone()
        rejected = conn.execute("SELECT count(*) FROM rejected_messages").fetchone()
    rows = int(row[0]) if row else -1
    elapsed = last_commit - result["started"]
    p50, p99 = _percentiles(lags)
    expected = int(result["sent"]) * records
    return {
        "offered_msgs_per_s": rate,
        "messages": int(result["sent"]),
        "committed_messages": committed,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(committed / elapsed, 1) if elapsed > 0 else 0.0,
        "datapoints_per_s": round(rows / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_p50_s": round(p50, 4),
        "latency_p99_s": round(p99, 4),
        "latency_sample": len(lags),
        # CPU of this process (the in-process worker) per message, and the machine's load meanwhile
        "worker_cpu_us_per_msg": round(cpu / max(1, ingester.stats.committed - base_own) * 1e6, 1),
        "load_average": round(max(load_before, os.getloadavg()[0]), 2),
        "rows_expected": expected,
        "rows_in_database": rows,
        "rejected": int(rejected[0]) if rejected else -1,
        "lost": expected - rows,
    }


def _kept_up(phase: dict[str, Any]) -> bool:
    """Every offered message committed, none lost, p99 under 1 s: no backlog grew."""
    return bool(
        phase["committed_messages"] == phase["messages"]
        and phase["lost"] == 0
        and phase["latency_p99_s"] < 1.0
    )


def _empty_readings(db: str) -> None:
    """Every phase starts from an empty readings table, so the phases' order does not favour one.

    Index depth and cache misses grow with the table: run after the others on 1.5 million rows,
    the capacity phase measured ~7 % slower than on an empty table.
    """
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("TRUNCATE readings")
        conn.execute("CHECKPOINT")


def _write_rows_naive(conn: psycopg.Connection, readings: Sequence[ReadingRow]) -> int:
    """Row by row, one INSERT per row, then commit: the baseline the batched writer is measured against."""
    inserted = 0
    for row in readings:
        cur = conn.execute(
            "INSERT INTO readings (time, device_id, metric, value, unit, value_text)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            row,
        )
        inserted += cur.rowcount
    conn.commit()
    return inserted


def _naive_phase(
    broker: str, db: str, *, rate: float, seconds: float, records: int, devices: int
) -> dict[str, Any]:
    """A subscriber that inserts row by row and commits per message (paho acks after the callback)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, _, _ = parse_mqtt_url(broker)
    _empty_readings(db)
    conn = psycopg.connect(db)
    done = {"messages": 0, "rows": 0}
    times: list[float] = []

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        result = parse_message(message.topic, bytes(message.payload), received_at=datetime.now(UTC))
        if isinstance(result, Accepted):
            done["rows"] += _write_rows_naive(conn, result.readings)
        done["messages"] += 1
        times.append(time.time())

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"naive-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe("zhongdu/v1/park/+/senml", qos=1)
    client.loop_start()
    time.sleep(0.5)
    pacer = _start_pacer(broker, rate, int(rate * seconds), records, devices, f"naive{uuid.uuid4().hex[:4]}")
    # The clock starts at the first delivery: the load generator is a Python process whose start-up
    # took several seconds on a loaded machine, longer than a short run's whole window.
    deadline = time.time() + 60.0
    while not times and time.time() < deadline and pacer.poll() is None:
        time.sleep(0.01)
    started = times[0] if times else time.time()
    time.sleep(seconds)
    window_end = time.time()
    pacer.kill()
    pacer.communicate()  # reaps it and closes its stdout pipe
    client.disconnect()
    client.loop_stop()
    conn.close()
    warm = started + 1.0
    in_window = sum(1 for t in times if warm <= t <= window_end)
    msgs_per_s = in_window / (window_end - warm) if window_end > warm else 0.0
    return {
        "offered_msgs_per_s": rate,
        "msgs_per_s": round(msgs_per_s, 1),
        "datapoints_per_s": round(msgs_per_s * records, 1),
    }


def _fresh_database(server: str) -> str:
    name = f"zhongdu_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    with storage.connect(url) as conn:
        storage.migrate(conn, timescale=False)
    return url


def _drop_database(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


def run(
    *, server: str, rate: float, seconds: float, records: int, half_seconds: float,
    naive_seconds: float, publishers: int, workers: int = 1, batch_size: int = 2000, writers: int = 1,
    capacity_rate: float = 0.0, capacity_seconds: float = 20.0, log: Any = print,
) -> dict[str, Any]:  # fmt: skip
    """All four phases (capacity only with `capacity_rate` > 0); returns the results as a dict."""
    if shutil.which("mosquitto_pub") is None:
        raise ServiceError("the benchmark needs mosquitto_pub (the mosquitto-clients package)")
    if not 1 <= records <= len(BENCH_METRICS):
        raise ServiceError(f"--records must be 1..{len(BENCH_METRICS)}")
    workdir = Path(tempfile.mkdtemp(prefix="zhongdu-bench-"))
    broker = services.start_mosquitto(workdir / "mosquitto")
    db = _fresh_database(server)
    results: dict[str, Any] = {
        "records_per_message": records, "publishers": publishers, "workers": workers, "writers": writers,
    }  # fmt: skip
    extra: _ExtraWorkers | None = None
    try:
        group = f"bench{uuid.uuid4().hex[:6]}"
        settings = Settings(
            database_url=db, mqtt_url=broker.url, auto_register=True, mqtt_share_group=group,
            ingest_batch_size=batch_size,
        )  # fmt: skip
        collector = _Collector()
        ingester = Ingester(
            settings, client_id=f"bench-ingest-{group}", mqtt5=True, migrate=False,
            metrics=IngestMetrics(CollectorRegistry()), on_commit=collector, writers=writers,
        )  # fmt: skip
        ingester.start()
        if not ingester.wait_connected():
            raise ServiceError("the ingester did not connect to the benchmark broker")
        if workers > 1:
            extra = _ExtraWorkers(workers - 1, db, broker.url, group, batch_size, writers)
            extra.wait_ready()
        time.sleep(0.5)
        phases = [("full", "full load", rate, seconds), ("half", "half load", rate / 2, half_seconds)]
        if capacity_rate > 0:
            phases.append(
                ("capacity", "capacity (offered more than it takes)", capacity_rate, capacity_seconds)
            )
        for key, label, phase_rate, phase_seconds in phases:
            log(f"{label}: {phase_rate:.0f} msg/s x {records} datapoints for {phase_seconds:.0f} s ...")
            results[key] = _ingester_phase(
                ingester, collector, broker.url, db, rate=phase_rate, seconds=phase_seconds,
                records=records, devices=publishers, prefix=key, extra=extra,
            )  # fmt: skip
            log(f"  {results[key]}")
        ingester.stop()
        if extra is not None:
            extra.stop()
            extra = None
        log(
            f"naive baseline (row by row, commit per message): {rate:.0f} msg/s for {naive_seconds:.0f} s ..."
        )
        results["naive"] = _naive_phase(
            broker.url, db, rate=rate, seconds=naive_seconds, records=records, devices=publishers
        )
        log(f"  {results['naive']}")
    finally:
        if extra is not None:
            extra.stop()
        broker.stop()
        _drop_database(server, db)
        shutil.rmtree(workdir, ignore_errors=True)
    full, naive = results["full"], results["naive"]
    best = results.get("capacity", full)
    if "capacity" in results:
        best["saturated"] = not _kept_up(best)  # else it was not a maximum: offer more
    results["ratio_vs_naive"] = (
        round(best["msgs_per_s"] / naive["msgs_per_s"], 1) if naive["msgs_per_s"] else None
    )
    results["zero_loss"] = all(results[k]["lost"] == 0 for k in ("full", "half", "capacity") if k in results)
    results["sustained"] = _kept_up(full)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (`--help`)."""
    parser = argparse.ArgumentParser(
        prog="bench_ingest.py",
        description=(
            "Starts a private tuned Mosquitto and fresh databases, runs the ingester and a paced C "
            "publisher (mosquitto_pub -l) at full load, half load and above capacity, then the same stream "
            "through a naive row-by-row subscriber; prints messages/s, datapoints/s, publish-to-commit "
            "latency, the capacity-to-naive ratio and zero-loss and sustained checks."
        ),
    )
    parser.add_argument(
        "--database-url", dest="bench_database_url", help="server for the benchmark databases"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=6000.0,
        help="msg/s offered at full load (default 6000; the goal is 5000)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the full-load stream")
    parser.add_argument("--records", type=int, default=10, help="datapoints per SenML pack")
    parser.add_argument(
        "--half-seconds", type=float, default=10.0, help="length of the half-load latency run"
    )
    parser.add_argument("--naive-seconds", type=float, default=10.0, help="length of the naive baseline run")
    parser.add_argument(
        "--capacity-rate",
        type=float,
        default=20_000.0,
        help="messages/s offered in the capacity phase, above what the ingester takes (0 skips it)",
    )
    parser.add_argument("--capacity-seconds", type=float, default=20.0, help="length of the capacity stream")
    parser.add_argument(
        "--workers", type=int, default=2, help="ingest workers in one shared-subscription group (default 2)"
    )
    parser.add_argument("--publishers", type=int, default=2, help="mosquitto_pub processes (one device each)")
    parser.add_argument("--batch-size", type=int, default=2000, help="rows per ingest batch")
    parser.add_argument(
        "--writers", dest="bench_writers", type=int, default=1, help="writer connections per worker"
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every phase and print the table (or `--json`)."""
    args = parse_args(argv)
    server = args.bench_database_url or Settings().database_url or DEFAULT_SERVER
    quiet = bool(args.json)
    results = run(
        server=server, rate=args.rate, seconds=args.seconds, records=args.records,
        half_seconds=args.half_seconds, naive_seconds=args.naive_seconds, publishers=args.publishers,
        workers=args.workers, batch_size=args.batch_size, writers=args.bench_writers,
        capacity_rate=args.capacity_rate, capacity_seconds=args.capacity_seconds,
        log=(lambda *_: None) if quiet else print,
    )  # fmt: skip
    if quiet:
        print(json.dumps(results))
        return 0
    print()
    head = (
        ("offered", 9),
        ("msgs/s", 9),
        ("points/s", 10),
        ("p50 s", 8),
        ("p99 s", 8),
        ("lost", 6),
        ("cpu us/msg", 11),
        ("load", 6),
    )
    print(" " * 22 + "".join(f"{name:>{width}}" for name, width in head))
    for key, label in (
        ("full", "ingester, full load"),
        ("half", "ingester, half load"),
        ("capacity", "ingester, capacity"),
    ):
        if key not in results:
            continue
        r = results[key]
        print(
            f"{label:22}{r['offered_msgs_per_s']:>9.0f}{r['msgs_per_s']:>9.0f}{r['datapoints_per_s']:>10.0f}"
            f"{r['latency_p50_s']:>8.3f}{r['latency_p99_s']:>8.3f}{r['lost']:>6}"
            f"{r['worker_cpu_us_per_msg']:>11.0f}{r['load_average']:>6.1f}"
        )
    naive = results["naive"]
    print(
        f"{'naive row-by-row':22}{naive['offered_msgs_per_s']:>9.0f}{naive['msgs_per_s']:>9.0f}"
        f"{naive['datapoints_per_s']:>10.0f}"
    )
    capacity = results.get("capacity")
    basis = "capacity" if capacity else "full load"
    note = (
        ""
        if not capacity or capacity["saturated"]
        else " (capacity phase not saturated: raise --capacity-rate)"
    )
    print(
        f"ratio vs naive ({basis} / naive): {results['ratio_vs_naive']}x{note}   "
        f"sustained at full load: {results['sustained']}   zero loss: {results['zero_loss']}"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "pace":
        raise SystemExit(pace(sys.argv[2:]))
    raise SystemExit(main())
