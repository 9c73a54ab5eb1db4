"""Soak run: a steady QoS 1 load for a fixed number of minutes on loopback; does the ingester's
memory grow, does its lag drift, is anything lost?

A private tuned Mosquitto, a fresh database on the PostgreSQL server, one ingest worker as its own
process (`zhongdu ingest --metrics-port`), and a paced publisher in this process (packs of 3
datapoints stamped at publication). Every `--sample` seconds: the worker's and the broker's resident
memory, messages committed, and the lag (commit minus data time) of that interval from the worker's
`zhongdu_ingest_lag_seconds` histogram. The summary compares the last minute with the first (the
baseline of the same run) and counts rows against acknowledged messages.

Example: `.venv/bin/python benchmarks/bench_soak.py --minutes 5 --rate 2000`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from zhongdu import services, storage
from zhongdu.ingest import build_pack
from zhongdu.settings import parse_mqtt_url


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port: int) -> tuple[float, list[tuple[float, float]]]:
    """Messages committed so far and the lag histogram's cumulative buckets (upper bound, count)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    committed, buckets = 0.0, []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "zhongdu_ingest_messages_committed_total":
                committed = sample.value
            elif sample.name == "zhongdu_ingest_lag_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    return committed, sorted(buckets)


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of the observations between two scrapes (upper bucket bound: conservative)."""
    old = dict(before)
    delta = [(le, count - old.get(le, 0.0)) for le, count in after]
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return float("nan")
    for le, count in delta:
        if count >= q * total:
            return le
    return float("inf")


class Publisher(threading.Thread):
    def __init__(self, url: str, rate: float, devices: int, seconds: float) -> None:
        super().__init__(daemon=True)
        host, port, _, _ = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"soak-pub-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._acked
        self.client.connect(host, port)
        self.rate, self.devices, self.seconds = rate, devices, seconds
        self.sent = self.acked = 0
        self.times: set[tuple[int, float]] = set()

    def _acked(self, *_: object) -> None:
        self.acked += 1

    def run(self) -> None:
        self.client.loop_start()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < self.seconds:
            due = int(elapsed * self.rate) + 1
            while self.sent < due:
                device = f"soak-{self.sent % self.devices}"
                now = time.time() + (self.sent // self.devices) * 1e-6  # a distinct time per message
                pack = build_pack(device, {"pm2_5": 12.0, "pm10": 20.0, "temperature": 25.0}, time_s=now)
                self.client.publish(f"zhongdu/v1/park/{device}/senml", json.dumps(pack).encode(), qos=1)
                self.sent += 1
            time.sleep(0.002)

    def close(self) -> None:
        deadline = time.monotonic() + 60
        while self.acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the steady load (default 5)")
    parser.add_argument("--rate", type=float, default=2000.0, help="messages/s offered (default 2,000)")
    parser.add_argument("--devices", type=int, default=50, help="devices the messages spread over")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples (default 15)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ZHONGDU_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server on which a throwaway database is created",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="zhongdu-soak-"))
    broker = services.start_mosquitto(work / "mosquitto")
    broker_pid = int(broker.detail.split("pid ")[1].split(")")[0])
    dbname = f"zhongdu_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    db_url = psycopg.conninfo.make_conninfo(args.database_url, dbname=dbname)
    with storage.connect(db_url) as conn:
        storage.migrate(conn)
    metrics_port = services.free_port()
    env = dict(os.environ, ZHONGDU_AUTO_REGISTER="true")
    log = (work / "ingest.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "zhongdu.cli", "ingest", "--database-url", db_url, "--mqtt-url", broker.url,
         "--client-id", f"soak-{uuid.uuid4().hex[:6]}", "--metrics-port", str(metrics_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        services.wait_for_port("127.0.0.1", metrics_port, timeout=30)
        time.sleep(2.0)  # subscribed
        seconds = args.minutes * 60
        publisher = Publisher(broker.url, args.rate, args.devices, seconds)
        print(
            f"soak: {args.rate:,.0f} msg/s for {args.minutes:g} min, "
            f"worker pid {worker.pid}, broker pid {broker_pid}"
        )
        print(
            f"{'t (s)':>6} {'sent':>9} {'committed':>9} {'msg/s':>7} {'lag p50':>8} {'p99':>6} "
            f"{'worker MB':>9} {'broker MB':>9}"
        )
        publisher.start()
        samples = []
        last_committed, last_buckets, last_t = (
            scrape(metrics_port)[0],
            scrape(metrics_port)[1],
            time.monotonic(),
        )
        start = last_t
        while publisher.is_alive():
            publisher.join(args.sample)
            committed, buckets = scrape(metrics_port)
            now = time.monotonic()
            row = {
                "t": now - start,
                "rate": (committed - last_committed) / (now - last_t),
                "p50": quantile(last_buckets, buckets, 0.5),
                "p99": quantile(last_buckets, buckets, 0.99),
                "worker_mb": rss_mb(worker.pid),
                "broker_mb": rss_mb(broker_pid),
            }
            samples.append(row)
            print(
                f"{row['t']:6.0f} {publisher.sent:9,d} {committed:9,.0f} {row['rate']:7,.0f} "
                f"{row['p50']:8.2f} {row['p99']:6.2f} {row['worker_mb']:9.1f} {row['broker_mb']:9.1f}"
            )
            last_committed, last_buckets, last_t = committed, buckets, now
        publisher.close()
        deadline = time.monotonic() + 60
        while scrape(metrics_port)[0] < publisher.acked and time.monotonic() < deadline:
            time.sleep(0.5)
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT count(*) FROM readings").fetchone()
        stored = int(rows[0]) if rows else 0
        per_minute = max(1, int(60 / args.sample))
        first, last = samples[:per_minute], samples[-per_minute:]

        def mean(key: str, part: list[dict[str, float]]) -> float:
            return sum(s[key] for s in part) / len(part)

        w0, w1 = mean("worker_mb", first), mean("worker_mb", last)
        p99_0, p99_1 = max(s["p99"] for s in first), max(s["p99"] for s in last)
        print(
            f"summary: sent {publisher.sent:,}, acked {publisher.acked:,}, rows {stored:,} "
            f"(expected {3 * publisher.acked:,}, lost {3 * publisher.acked - stored:,} rows)\n"
            f"  worker memory first minute {w0:.1f} MB -> last minute {w1:.1f} MB "
            f"(growth {w1 - w0:+.1f} MB, x{w1 / w0:.3f}); "
            f"broker {mean('broker_mb', first):.1f} -> {mean('broker_mb', last):.1f} MB\n"
            f"  lag p99 first minute {p99_0:.2f} s, last minute {p99_1:.2f} s (histogram bucket bounds); "
            f"committed {mean('rate', last):,.0f} msg/s in the last minute"
        )
        return 0 if stored == 3 * publisher.acked else 1
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        broker.stop()
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(dbname)
                )
            )


if __name__ == "__main__":
    raise SystemExit(main())
