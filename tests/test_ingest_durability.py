"""Crash safety (a worker killed with SIGKILL mid-stream) and the write path on TimescaleDB."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from zhongdu import services, storage
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

from ._ingest_fixtures import publish_all, publisher, scalar, senml_stream

Wait = Callable[..., bool]


def _worker(db: str, broker: str, client_id: str, group: str, log: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ZHONGDU_AUTO_REGISTER="true", ZHONGDU_INGEST_BATCH_INTERVAL_MS="20")
    return subprocess.Popen(
        [
            sys.executable, "-m", "zhongdu.cli", "ingest", "--database-url", db, "--mqtt-url", broker,
            "--client-id", client_id, "--group", group, "--mqtt-protocol", "5",
        ],
        env=env,
        stdout=log,  # type: ignore[arg-type]
        stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mqtt
def test_sigkill_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(
    pg_migrated: str, tuned_broker: services.Service, wait_until: Wait, tmp_path: object
) -> None:
    client_id, group = f"kill-{uuid.uuid4().hex[:6]}", f"k{uuid.uuid4().hex[:6]}"
    stream = senml_stream(40, 12_000, time.time() - 3600, prefix="kill")
    expected = 3 * len(stream)
    count = "SELECT count(*) FROM readings WHERE device_id LIKE 'kill-%%'"
    with open(os.path.join(str(tmp_path), "worker.log"), "ab") as log:
        worker = _worker(pg_migrated, tuned_broker.url, client_id, group, log)
        try:
            # the worker must have subscribed (its persistent session exists) before the stream starts
            probe = senml_stream(1, 1, time.time() - 7200, prefix="killprobe")
            probed = "SELECT count(*) FROM readings WHERE device_id = 'killprobe-0'"
            with publisher(tuned_broker.url, "pub-probe") as client:
                for _ in range(60):  # until the worker has subscribed and answers
                    publish_all(client, probe)
                    if wait_until(lambda: scalar(pg_migrated, probed) == 3, timeout=1):
                        break
            assert scalar(pg_migrated, probed) == 3, open(log.name, "rb").read()[-2000:]
            done = threading.Event()

            def publish() -> None:
                with publisher(tuned_broker.url, "pub-kill") as client:
                    publish_all(client, stream, rate=2500)
                done.set()

            thread = threading.Thread(target=publish)
            thread.start()
            # kill it while rows are flowing: some committed, more in flight and queued
            assert wait_until(lambda: scalar(pg_migrated, count) >= expected // 4, timeout=60)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            killed_at = scalar(pg_migrated, count)
            assert killed_at < expected  # the crash really was mid-stream
            thread.join(60)
            assert done.is_set()  # the broker acked every publish: the stream is in its hands
            worker = _worker(pg_migrated, tuned_broker.url, client_id, group, log)
            assert wait_until(lambda: scalar(pg_migrated, count) >= expected, timeout=120)
            time.sleep(1.0)  # any redelivered duplicate would have landed by now
            assert scalar(pg_migrated, count) == expected  # nothing lost, no row twice
            distinct = "SELECT count(DISTINCT (device_id, metric, time)) FROM readings WHERE device_id LIKE 'kill-%%'"
            assert scalar(pg_migrated, distinct) == expected
            assert scalar(pg_migrated, "SELECT count(*) FROM rejected_messages") == 0
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()


@pytest.mark.timescale
@pytest.mark.mqtt
def test_write_path_on_timescaledb(
    timescale_schema: tuple[str, str], tuned_broker: services.Service, wait_until: Wait
) -> None:
    url, schema = timescale_schema
    settings = Settings(
        database_url=url, mqtt_url=tuned_broker.url, auto_register=True, ingest_batch_interval_ms=50
    )
    ingester = Ingester(
        settings,
        schema=schema,
        client_id=f"ts-{uuid.uuid4().hex[:6]}",
        metrics=IngestMetrics(CollectorRegistry()),
    )
    ingester.start()  # migrates (one connection, closed), then the writer holds the only connection
    t0 = time.time() - 600
    stream = senml_stream(5, 200, t0, prefix="ts")
    report = {
        "time": t0,
        "status": "up",
        "sectors": [{"sector_id": "1", "prb_utilisation": 0.25, "active_users": 3}],
    }
    stream.append(("zhongdu/v1/bs/TS-1/telemetry", json.dumps(report).encode()))
    stream.append(("zhongdu/v1/park/ts-0/senml", b"not json"))
    try:
        assert ingester.wait_connected()
        with publisher(tuned_broker.url, "pub-ts") as client:
            publish_all(client, stream)
            publish_all(client, stream[:50])  # redelivery-like duplicates
        assert wait_until(lambda: ingester.stats.committed >= len(stream) + 50, timeout=120)
    finally:
        ingester.stop()
    with storage.connect(url, schema=schema) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (600,)
        assert conn.execute("SELECT count(*) FROM station_telemetry").fetchone() == (2,)
        assert conn.execute("SELECT reason, count(*) FROM rejected_messages GROUP BY 1").fetchall() == [
            ("bad_json", 1)
        ]
        hypertables = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = %s",
                (schema,),
            ).fetchall()
        }
        assert {"readings", "station_telemetry"} <= hypertables
        buckets = conn.execute(
            "SELECT sum(n) FROM readings_1m WHERE metric = 'pm2_5'"  # real-time continuous aggregate
        ).fetchone()
        assert buckets == (200,)
        status = conn.execute(
            "SELECT status FROM entity_status WHERE kind = 'bs' AND entity_id = 'TS-1'"
        ).fetchone()
        assert status == ("up",)
