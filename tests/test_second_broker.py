"""The ingester and the simulators, unchanged, against a second broker implementation that runs
here: NATS server 2.9 in MQTT mode (Debian's `nats-server`, JetStream-backed sessions).

What NATS 2.9's MQTT supports, stated by this test: MQTT 3.1.1 only (a v5 CONNECT is refused, so
both sides fall back to 3.1.1 by themselves), QoS 0 and 1, retained messages, persistent sessions;
no shared subscriptions (MQTT 5 only), hence one ingest worker with a plain subscription there.
A clustered broker with MQTT 5 and `$share` (EMQX) is the documented path; see infra/deploy/emqx.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester, broker_accepts_mqtt5
from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import Settings

from ._ingest_fixtures import scalar

NATS = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)
pytestmark = [pytest.mark.postgres]
Wait = Callable[..., bool]


@pytest.fixture
def nats_mqtt_url() -> Iterator[str]:
    if NATS is None:  # a missing server fails, with the fix, as the other servers' fixtures do
        pytest.fail(
            "nats-server is not installed: `apt-get install nats-server` (make test does it as root)",
            pytrace=False,
        )
    work = Path(tempfile.mkdtemp(prefix="zhongdu-nats-"))
    port, mqtt_port = free_port(), free_port()
    (work / "nats.conf").write_text(
        f'server_name: "zhongdu-test"\nlisten: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{work / "js"}" }}\nmqtt {{ listen: "127.0.0.1:{mqtt_port}" }}\n'
    )
    with (work / "nats.log").open("ab") as log:
        proc = subprocess.Popen([NATS, "-c", str(work / "nats.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", mqtt_port)
        yield f"mqtt://127.0.0.1:{mqtt_port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def test_ingester_and_simulators_need_no_change_on_nats(
    nats_mqtt_url: str, pg_migrated: str, wait_until: Wait
) -> None:
    from zhongdu.simulators import SimulationConfig, run_simulation

    host, port = "127.0.0.1", int(nats_mqtt_url.rsplit(":", 1)[1])
    assert broker_accepts_mqtt5(host, port) is False  # NATS 2.9: MQTT 3.1.1 only
    settings = Settings(database_url=pg_migrated, mqtt_url=nats_mqtt_url, auto_register=True)
    ingester = Ingester(
        settings, client_id=f"nats-{uuid.uuid4().hex[:6]}", metrics=IngestMetrics(CollectorRegistry())
    )
    ingester.start()
    prefix = f"n{uuid.uuid4().hex[:5]}-"
    try:
        assert ingester.wait_connected(30)
        assert ingester.protocol == "3.1.1"
        config = SimulationConfig(
            url=nats_mqtt_url, devices=8, max_stations=4, count=300, seed=3, id_prefix=prefix, outages="none"
        )
        stats = run_simulation(config)
        assert stats.protocol == "3.1.1" and stats.acked == 300
        readings = "SELECT count(DISTINCT device_id) FROM readings WHERE device_id LIKE %s"
        telemetry = "SELECT count(DISTINCT station_id) FROM station_telemetry WHERE station_id LIKE %s"
        assert wait_until(lambda: scalar(pg_migrated, readings, (prefix + "%",)) == 8, timeout=60)
        assert wait_until(lambda: scalar(pg_migrated, telemetry, (prefix + "%",)) == 4, timeout=60)
        time.sleep(0.5)
        statuses = "SELECT count(*) FROM entity_status WHERE entity_id LIKE %s AND connection IS NOT NULL"
        assert wait_until(
            lambda: scalar(pg_migrated, statuses, (prefix + "%",)) == 12, timeout=30
        )  # status topics
    finally:
        ingester.stop()
