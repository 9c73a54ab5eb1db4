"""The clustered broker tier: three nats-server nodes from `zhongdu broker config --cluster 3` on
loopback, devices publishing MQTT 3.1.1 at QoS 1 to two of them, one ingest worker reading from
the third. Faults: SIGKILL of the worker's node, SIGKILL of a devices' node, a rolling restart of
all three, the worker process SIGKILLed and started again. In each, every PUBACKed message is
stored exactly once; the counts are printed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from zhongdu.broker._cluster import ClusterConfig, write_cluster_config
from zhongdu.ingest._metrics import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import Settings

from ._fault_fixtures import SteadyPublisher, wait_acked, wait_stored
from ._ingest_fixtures import scalar

NATS = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)
pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]
Wait = Callable[..., bool]
RATE = 100.0  # per device; two devices


class Cluster:
    def __init__(self, config: ClusterConfig, workdir: Path) -> None:
        self.config, self.workdir = config, workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, k: int) -> None:
        node = self.config.nodes[k]
        assert NATS is not None
        with (self.workdir / f"{node.name}.log").open("ab") as log:
            self.procs[k] = subprocess.Popen([NATS, "-c", str(node.conf_path)], stdout=log, stderr=log)
        wait_for_port("127.0.0.1", node.mqtt_port, timeout=30)

    def kill(self, k: int) -> None:
        self.procs[k].send_signal(signal.SIGKILL)
        self.procs[k].wait(10)

    def stop(self, k: int) -> None:
        self.procs[k].terminate()
        self.procs[k].wait(30)

    def logs(self) -> str:
        return "\n".join((self.workdir / f"{n.name}.log").read_text()[-1500:] for n in self.config.nodes)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if NATS is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="zhongdu-cluster-"))
    config = write_cluster_config(
        work / "cluster",
        mqtt_ports=[free_port() for _ in range(3)],
        client_ports=[free_port() for _ in range(3)],
        route_ports=[free_port() for _ in range(3)],
    )
    running = Cluster(config, work)
    try:
        for k in range(3):
            running.start(k)
        time.sleep(3.0)  # the routes connect and JetStream elects its meta leader
        yield running
    finally:
        for proc in running.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


WORKER_NODE, DEVICE_NODES = 1, (0, 2)


class WorkerProcess:
    """`zhongdu ingest` as its own process (a SIGKILL must hit a real process, not a thread)."""

    def __init__(self, db: str, url: str, client_id: str, workdir: Path) -> None:
        self.args = [
            sys.executable, "-m", "zhongdu.cli", "ingest", "--database-url", db, "--mqtt-url", url,
            "--client-id", client_id, "--group", "", "--mqtt-protocol", "3.1.1",
        ]  # fmt: skip
        self.log = workdir / "worker.log"
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, ZHONGDU_AUTO_REGISTER="true", ZHONGDU_INGEST_BATCH_INTERVAL_MS="20")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self.proc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _fault(cluster: Cluster, fault: str, worker: WorkerProcess | None) -> None:
    if fault == "sigkill-worker":
        assert worker is not None
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        time.sleep(2.0)
        worker.start()  # the same client id: its session, kept by the cluster
    elif fault == "sigkill-worker-node":
        cluster.kill(WORKER_NODE)
        time.sleep(3.0)
        cluster.start(WORKER_NODE)
    elif fault == "sigkill-device-node":
        cluster.kill(DEVICE_NODES[0])
        time.sleep(3.0)
        cluster.start(DEVICE_NODES[0])
    elif fault == "rolling-restart":
        for k in range(3):
            cluster.stop(k)
            cluster.start(k)
            time.sleep(4.0)  # the node catches up before the next one goes
    else:
        raise AssertionError(fault)


@pytest.mark.parametrize(
    "fault", ["sigkill-worker-node", "sigkill-device-node", "rolling-restart", "sigkill-worker"]
)
def test_cluster_fault_loses_no_acknowledged_message(
    cluster: Cluster, pg_migrated: str, wait_until: Wait, fault: str
) -> None:
    urls = cluster.config.mqtt_urls
    client_id = f"zhongdu-ingest-{uuid.uuid4().hex[:6]}"
    thread_worker: Ingester | None = None
    process_worker: WorkerProcess | None = None
    if fault == "sigkill-worker":
        process_worker = WorkerProcess(pg_migrated, urls[WORKER_NODE], client_id, cluster.workdir)
        # subscribed once a probe published to another node is stored
        probe = SteadyPublisher(
            urls[0], f"probe-{uuid.uuid4().hex[:5]}", rate=20, t0=time.time() - 7200, v5=False
        )
        probe.start()
        stored = "SELECT count(*) FROM readings WHERE device_id = %s"
        try:
            assert wait_until(lambda: scalar(pg_migrated, stored, (probe.device,)) > 0, timeout=90), (
                process_worker.log.read_text()[-2000:]
            )
        finally:
            probe.stop.set()
            probe.join(10)
            probe.close()
    else:
        settings = Settings(
            database_url=pg_migrated, mqtt_url=urls[WORKER_NODE], auto_register=True,
            mqtt_share_group="", ingest_batch_interval_ms=20,
        )  # fmt: skip
        thread_worker = Ingester(
            settings, client_id=client_id, mqtt5=False, metrics=IngestMetrics(CollectorRegistry())
        )
        thread_worker.start()
        assert thread_worker.wait_connected(60), cluster.logs()
        assert thread_worker.protocol == "3.1.1"
    t0 = float(int(time.time()) - 3600)
    prefix = f"cl{uuid.uuid4().hex[:5]}"
    pubs = [
        SteadyPublisher(urls[node], f"{prefix}-{node}", rate=RATE, t0=t0, v5=False) for node in DEVICE_NODES
    ]
    try:
        for pub in pubs:
            pub.start()
        time.sleep(3.0)
        before = sum(len(p.acked()) for p in pubs)
        _fault(cluster, fault, process_worker)
        time.sleep(3.0)
        for pub in pubs:
            pub.stop.set()
            pub.join(10)
        wait_acked(pubs, timeout=90)
        result = wait_stored(pg_migrated, pubs, timeout=120)
    finally:
        for pub in pubs:
            pub.close()
        if thread_worker is not None:
            thread_worker.stop()
        if process_worker is not None:
            process_worker.stop()
    print(f"\ncluster, {fault}: {result.line('')[2:]} (acked before the fault: {before})")
    assert before > 0 and result.acked > before  # the fault was mid-stream
    assert result.acked == result.published
    assert result.lost == [], (len(result.lost), result.lost[:10], cluster.logs())
    assert result.rows == result.stored and result.rejected == 0
