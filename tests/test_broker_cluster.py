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

from zhongdu.broker._cluster import (
    ClusterConfig,
    read_cluster_users,
    user_entry,
    write_cluster_config,
    write_cluster_users,
)
from zhongdu.ingest._prometheus import IngestMetrics
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
WORKER_NODE, DEVICE_NODES = 1, (0, 2)


class Cluster:
    def __init__(self, config: ClusterConfig, workdir: Path, devices: dict[str, str]) -> None:
        self.config, self.workdir = config, workdir
        self.devices = devices  # device id -> password (username park-<id>)
        self.probe = ("", "")  # a device only for telling that the worker has subscribed
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
    prefix = f"cl{uuid.uuid4().hex[:5]}"
    devices = {f"{prefix}-{node}": f"pw-{uuid.uuid4().hex}" for node in DEVICE_NODES}
    users = read_cluster_users(work / "cluster")
    probe = (f"{prefix}-probe", f"pw-{uuid.uuid4().hex}")
    for device, password in [*devices.items(), probe]:
        users[f"park-{device}"] = user_entry(f"park-{device}", password, kind="park", entity_id=device)
    write_cluster_users(work / "cluster", users)
    running = Cluster(config, work, devices)
    running.probe = probe
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
    # zhongdu-ingest-1's credential, used on node 2 (any node accepts it)
    worker_url = (
        cluster.config.ingest_urls[0].rsplit(":", 1)[0] + f":{cluster.config.nodes[WORKER_NODE].mqtt_port}"
    )
    client_id = "zhongdu-ingest-1"
    thread_worker: Ingester | None = None
    process_worker: WorkerProcess | None = None
    if fault == "sigkill-worker":
        process_worker = WorkerProcess(pg_migrated, worker_url, client_id, cluster.workdir)
        # subscribed once a probe published to another node is stored
        probe_id, probe_password = cluster.probe
        probe = SteadyPublisher(
            urls[0], probe_id, rate=20, t0=time.time() - 7200, v5=False,
            username=f"park-{probe_id}", password=probe_password,
        )  # fmt: skip
        probe.start()
        stored = "SELECT count(*) FROM readings WHERE device_id = %s"
        try:
            assert wait_until(lambda: scalar(pg_migrated, stored, (probe.device,)) > 0, timeout=90), (
                process_worker.log.read_text()[-2000:] + cluster.logs()
            )
        except BaseException:
            process_worker.stop()  # never left running when the test fails here
            raise
        finally:
            probe.stop.set()
            probe.join(10)
            probe.close()
    else:
        settings = Settings(
            database_url=pg_migrated, mqtt_url=worker_url, auto_register=True,
            mqtt_share_group="", ingest_batch_interval_ms=20,
        )  # fmt: skip
        thread_worker = Ingester(
            settings, client_id=client_id, mqtt5=False, metrics=IngestMetrics(CollectorRegistry())
        )
        thread_worker.start()
        assert thread_worker.wait_connected(60), cluster.logs()
        assert thread_worker.protocol == "3.1.1"
    t0 = float(int(time.time()) - 3600)
    pubs = [
        SteadyPublisher(
            urls[node], device, rate=RATE, t0=t0, v5=False, username=f"park-{device}", password=password
        )
        for node, (device, password) in zip(DEVICE_NODES, cluster.devices.items(), strict=True)
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


def test_credentials_and_per_device_acls_hold_on_the_cluster(
    cluster: Cluster, pg_migrated: str, wait_until: Wait
) -> None:
    from ._broker_fixtures import try_connect

    urls = cluster.config.mqtt_urls
    (own, password), (other, _) = list(cluster.devices.items())
    for url in urls:  # every node
        assert try_connect(url, v5=False) == 135  # anonymous
        assert try_connect(url, f"park-{own}", "a guess", v5=False) == 135
        assert try_connect(url, f"park-{own}", password, v5=False) == 0
    settings = Settings(database_url=pg_migrated, mqtt_url=cluster.config.ingest_urls[0], auto_register=True,
                        mqtt_share_group="", ingest_batch_interval_ms=20)  # fmt: skip
    worker = Ingester(settings, mqtt5=False, metrics=IngestMetrics(CollectorRegistry()))
    worker.start()
    try:
        assert worker.wait_connected(60), cluster.logs()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"park-{own}", protocol=mqtt.MQTTv311)
        device.username_pw_set(f"park-{own}", password)
        subacks: list[int] = []
        device.on_subscribe = lambda _c, _u, _m, reasons, _p: subacks.extend(int(r.value) for r in reasons)
        device.connect("127.0.0.1", cluster.config.nodes[0].mqtt_port)
        device.loop_start()
        t = time.time() - 600
        import json

        from zhongdu.ingest import build_pack

        for target in (own, other):  # its own subtree, then another device's
            info = device.publish(
                f"zhongdu/v1/park/{target}/senml",
                json.dumps(build_pack(target, {"pm2_5": 1.0}, time_s=t)).encode(),
                qos=1,
            )
            info.wait_for_publish(10)
        device.subscribe("zhongdu/v1/#", qos=1)
        assert wait_until(lambda: subacks != [], timeout=10)
        device.disconnect()
        device.loop_stop()
        stored = "SELECT count(*) FROM readings WHERE device_id = %s"
        assert wait_until(lambda: scalar(pg_migrated, stored, (own,)) == 1, timeout=30)
        time.sleep(1.0)
        assert scalar(pg_migrated, stored, (other,)) == 0  # MQTT 3.1.1: acked, dropped, never stored
        assert subacks == [128]  # devices read nothing
    finally:
        worker.stop()
    print(
        "\ncluster ACLs: anonymous and wrong passwords refused on all 3 nodes; publish outside its subtree dropped; subscribe refused"
    )
