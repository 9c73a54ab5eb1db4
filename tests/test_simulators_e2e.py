"""End to end: simulators -> Mosquitto -> the real ingester -> PostgreSQL, with nothing rejected.

The strongest check of the contract: every pack and report the simulators publish is stored by
the ingester, rows and all, and the faults they inject are rejected or absorbed as designed.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from zhongdu import services
from zhongdu.ingest import DEVICE_KINDS
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings
from zhongdu.simulators import FaultConfig, SimulationConfig, generate_messages, run_simulation

from ._simulators_fixtures import write_stations_csv

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def stations_csv(tmp_path: Path) -> Path:
    return write_stations_csv(tmp_path / "stations.csv", "E2E-")


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


def _expected_rows(config: SimulationConfig) -> tuple[int, int]:
    """(readings rows, station_telemetry rows) the stream should produce."""
    readings = telemetry = 0
    for item in generate_messages(config):
        body = json.loads(item.payload)
        if isinstance(body, list):
            readings += len(body)
        else:
            telemetry += 1 + len(body["sectors"])
    return readings, telemetry


def _ingest(pg_url: str, broker: services.Service) -> Ingester:
    settings = Settings(auto_register=True, database_url=pg_url, mqtt_url=broker.url)
    ingester = Ingester(settings, client_id=f"t-sim-e2e-{uuid.uuid4().hex[:6]}", migrate=False)
    ingester.start()
    assert ingester.wait_connected(15)
    return ingester


def test_everything_published_is_stored(
    pg_migrated: str, tuned_broker: services.Service, stations_csv: Path
) -> None:
    start = datetime.fromtimestamp((time.time() // 3600 - 2) * 3600, UTC)
    config = SimulationConfig(
        url=tuned_broker.url, devices=21, stations_file=stations_csv, count=1200, seed=11, start=start
    )
    readings, telemetry = _expected_rows(config)
    ingester = _ingest(pg_migrated, tuned_broker)
    try:
        stats = run_simulation(config)
        assert stats.acked == 1200
        deadline = time.monotonic() + 60
        while ingester.stats.committed < 1200 + stats.status_messages and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        ingester.stop()
    assert ingester.stats.rejected == {}
    assert _count(pg_migrated, "SELECT count(*) FROM rejected_messages WHERE topic NOT LIKE '%/f-%'") == 0
    assert _count(pg_migrated, "SELECT count(*) FROM readings WHERE device_id LIKE 'shuinan-%'") == readings
    assert (
        _count(pg_migrated, "SELECT count(*) FROM station_telemetry WHERE station_id LIKE 'E2E-%'")
        == telemetry
    )
    assert _count(pg_migrated, "SELECT count(*) FROM devices WHERE device_id LIKE 'shuinan-%'") == 21
    with psycopg.connect(pg_migrated) as conn:
        kinds = {r[0] for r in conn.execute("SELECT kind FROM devices WHERE device_id LIKE 'shuinan-%'")}
    # a device first heard on its status topic (the simulators publish it on connect, before any
    # reading) is registered as "unknown" and gets its kind from its first readings
    assert kinds <= set(DEVICE_KINDS), kinds


def test_faults_are_rejected_or_absorbed(
    pg_migrated: str, tuned_broker: services.Service, stations_csv: Path
) -> None:
    pg_url = pg_migrated
    faults = FaultConfig(frozenset({"duplicate", "malformed", "late", "out_of_order"}), 0.2)
    start = datetime.fromtimestamp((time.time() // 3600 - 2) * 3600, UTC)
    config = SimulationConfig(
        url=tuned_broker.url,
        devices=14,
        stations_file=stations_csv,
        count=800,
        seed=12,
        start=start,
        faults=faults,
        id_prefix="f-",
    )
    items = list(generate_messages(config))
    malformed = sum(1 for m in items if m.fault == "malformed")
    duplicates = sum(1 for m in items if m.fault == "duplicate")
    assert malformed and duplicates
    ingester = _ingest(pg_url, tuned_broker)
    try:
        stats = run_simulation(config)
        deadline = time.monotonic() + 60
        while ingester.stats.committed < 800 + stats.status_messages and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        ingester.stop()
    assert sum(ingester.stats.rejected.values()) == malformed
    assert _count(pg_url, "SELECT count(*) FROM rejected_messages WHERE topic LIKE '%/f-%'") == malformed
    # duplicates, late and out-of-order readings are stored once each
    good = [m for m in items if m.fault not in ("malformed", "duplicate")]
    readings = sum(len(json.loads(m.payload)) for m in good if "/park/" in m.topic)
    assert _count(pg_url, "SELECT count(*) FROM readings WHERE device_id LIKE 'f-%'") == readings
