"""Planted bugs on the paths where a message could be lost, each pinned directly.

A SIGKILL test notices an early acknowledgement only if the kill lands in the window; these tests
put the fault exactly where it matters instead: the writer blocks or fails (no PUBACK may leave),
the parser raises (the message is kept as `internal_error` and acknowledged), the database refuses
one row of a batch (the others are stored, the culprit kept with its reason). Real broker, real
PostgreSQL; the faults are planted by wrapping the real functions.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import services
from zhongdu.ingest import _parse, _worker, build_pack
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.ingest._writer import Writer
from zhongdu.settings import Settings

from ._ingest_fixtures import publish_all, publisher, scalar

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]
Wait = Callable[..., bool]


class AckLedger:
    """Counts messages committed (Writer.write returned) and PUBACKs the worker sent, and records
    any moment when more were acknowledged than committed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.committed = 0
        self.acked = 0
        self.early: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        real_write, real_acks = Writer.write, _worker.send_acks

        def write(writer: Writer, items: Any) -> Any:
            result = real_write(writer, items)
            if result is not None:
                with self._lock:
                    self.committed += sum(1 for it in items if it.qos)
            return result

        def send_acks(client: Any, mids: list[int]) -> None:
            with self._lock:
                self.acked += len(mids)
                if self.acked > self.committed:
                    self.early.append((self.acked, self.committed))
            real_acks(client, mids)

        monkeypatch.setattr(Writer, "write", write)
        monkeypatch.setattr(_worker, "send_acks", send_acks)


@pytest.fixture
def db(pg_migrated: str) -> Iterator[str]:
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE readings, station_telemetry, entity_status, rejected_messages, devices CASCADE")
    yield pg_migrated


def _ingester(db: str, broker: str, *, batch_ms: int = 20) -> Ingester:
    settings = Settings(
        database_url=db,
        mqtt_url=broker,
        auto_register=True,
        mqtt_share_group=f"g{uuid.uuid4().hex[:8]}",
        ingest_batch_interval_ms=batch_ms,
    )
    worker = Ingester(
        settings, client_id=f"loss-{uuid.uuid4().hex[:8]}", metrics=IngestMetrics(CollectorRegistry())
    )
    worker.start()
    assert worker.wait_connected()
    return worker


def _packs(device: str, count: int, t0: float, value: Callable[[int], float] = float) -> list[tuple[str, bytes]]:
    return [
        (f"zhongdu/v1/park/{device}/senml",
         json.dumps(build_pack(device, {"pm2_5": value(i)}, time_s=t0 + i * 0.001)).encode())
        for i in range(count)
    ]  # fmt: skip


def test_no_puback_leaves_while_the_writer_blocks_or_fails(
    db: str, tuned_broker: services.Service, wait_until: Wait, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = AckLedger(monkeypatch)
    gate, failing = threading.Event(), threading.Event()
    failures = [0]
    real_rows = Writer._write_rows

    def write_rows(writer: Writer, conn: psycopg.Connection, rows: Any) -> Any:
        gate.wait()  # planted: the database hangs
        if failing.is_set():  # planted: then the statement fails as an unreachable server's would
            failures[0] += 1
            raise psycopg.OperationalError("planted: server closed the connection unexpectedly")
        return real_rows(writer, conn, rows)

    monkeypatch.setattr(Writer, "_write_rows", write_rows)
    worker = _ingester(db, tuned_broker.url)
    device = f"blk-{uuid.uuid4().hex[:6]}"
    try:
        with publisher(tuned_broker.url, "loss-pub") as client:
            publish_all(client, _packs(device, 300, time.time() - 600))
        assert wait_until(lambda: worker.stats.received == 300, timeout=20)
        time.sleep(1.0)  # every chance for an early PUBACK to leave
        assert ledger.acked == 0 and worker.stats.committed == 0, "acked while the writer was blocked"
        failing.set()
        gate.set()
        assert wait_until(lambda: failures[0] >= 3, timeout=20)  # retried, backing off
        assert ledger.acked == 0, "acked a batch whose write failed"
        assert scalar(db, "SELECT count(*) FROM readings WHERE device_id = %s", (device,)) == 0
        failing.clear()
        assert wait_until(lambda: ledger.acked == 300, timeout=30)
    finally:
        gate.set()
        worker.stop()
    print(f"\nwriter blocked then failing {failures[0]} times: acked {ledger.acked}, committed {ledger.committed}")
    assert ledger.early == []
    assert scalar(db, "SELECT count(*) FROM readings WHERE device_id = %s", (device,)) == 300


def test_a_parser_exception_is_kept_as_internal_error_and_acknowledged(
    db: str, tuned_broker: services.Service, wait_until: Wait, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = AckLedger(monkeypatch)
    real_parse = _parse._parse

    def buggy(topic: str, payload: bytes, *args: Any) -> Any:
        if b"555.5" in payload:  # planted: a value the parser chokes on
            raise RuntimeError("planted parser bug")
        return real_parse(topic, payload, *args)

    monkeypatch.setattr(_parse, "_parse", buggy)
    worker = _ingester(db, tuned_broker.url)
    device = f"prs-{uuid.uuid4().hex[:6]}"
    packs = _packs(device, 40, time.time() - 600, value=lambda i: 555.5 if i == 17 else float(i))
    try:
        with publisher(tuned_broker.url, "loss-pub") as client:
            publish_all(client, packs)
        assert wait_until(lambda: ledger.acked == 40, timeout=20)
    finally:
        worker.stop()
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT reason, detail, payload FROM rejected_messages WHERE topic = %s", (packs[0][0],)
        ).fetchall()
    assert rows == [("internal_error", "RuntimeError: planted parser bug", packs[17][1])]
    assert scalar(db, "SELECT count(*) FROM readings WHERE device_id = %s", (device,)) == 39
    assert ledger.early == []


def test_a_batch_with_one_row_the_database_refuses_stores_the_rest_and_keeps_the_culprit(
    db: str,
    tuned_broker: services.Service,
    wait_until: Wait,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = AckLedger(monkeypatch)
    with psycopg.connect(db, autocommit=True) as conn:  # planted: a rule the parser does not know
        conn.execute("ALTER TABLE readings ADD CONSTRAINT planted_refusal CHECK (value <> 666)")
    caplog.set_level("ERROR", logger="zhongdu.ingest._writer")
    device = f"ref-{uuid.uuid4().hex[:6]}"
    packs = _packs(device, 200, time.time() - 600, value=lambda i: 666.0 if i == 123 else float(i % 500))
    worker = _ingester(db, tuned_broker.url, batch_ms=1000)  # one batch holds them all
    try:
        with publisher(tuned_broker.url, "loss-pub") as client:
            publish_all(client, packs)
        assert wait_until(lambda: ledger.acked == 200, timeout=30)
    finally:
        worker.stop()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("ALTER TABLE readings DROP CONSTRAINT planted_refusal")
    refused = [r.getMessage() for r in caplog.records if "database refused a batch" in r.getMessage()]
    assert refused and int(refused[0].split(" of ")[1].split()[0]) > 1  # the culprit was in company
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT reason, detail, payload FROM rejected_messages WHERE topic = %s", (packs[0][0],)
        ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "internal_error" and rows[0][2] == packs[123][1]
    assert "planted_refusal" in rows[0][1]
    assert scalar(db, "SELECT count(*) FROM readings WHERE device_id = %s", (device,)) == 199
    assert ledger.early == []
