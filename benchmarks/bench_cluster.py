"""The clustered tier against single-node Mosquitto, and Mosquitto with TLS and per-device
credentials against plain, all in the same run: QoS 1 intake (PUBACKs/s the devices get) and the
ingest worker's publish-to-commit lag (p50, p99), with the same devices, worker and database.

Needs a PostgreSQL server (`--database-url`, default the machine's at 127.0.0.1:5432); a fresh
database is created per case and dropped after.
Example: `.venv/bin/python benchmarks/bench_cluster.py --seconds 10 --devices 4`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from psycopg import sql

from zhongdu import storage
from zhongdu.broker import DynsecAdmin
from zhongdu.broker._cluster import (
    read_cluster_users,
    user_entry,
    write_cluster_config,
    write_cluster_users,
)
from zhongdu.broker._config import write_broker_config
from zhongdu.ingest import build_pack
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import CommitInfo, Ingester
from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import Settings


@contextmanager
def _mosquitto(tls: bool) -> Iterator[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="zhongdu-bench-cl-"))
    os.chmod(work, 0o755)
    port, tls_port = free_port(), free_port()
    options: dict[str, Any] = {}
    ca = None
    if tls:
        ca, cert, key = _certs(work)
        options = {"cert": cert, "key": key, "tls_port": tls_port, "plain": True}
    config = write_broker_config(work / "b", port=port, **options)
    proc = subprocess.Popen(["mosquitto", "-c", str(config.conf_path)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        yield {"config": config, "port": tls_port if tls else port, "plain_port": port, "ca": ca, "v5": True}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def _certs(work: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, cert = (work / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem"))
    ext = work / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=bench-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    for path in (ca, cert, key):
        os.chmod(path, 0o644)
    return ca, cert, key


@contextmanager
def _cluster() -> Iterator[dict[str, Any]]:
    nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
    work = Path(tempfile.mkdtemp(prefix="zhongdu-bench-nats-"))
    config = write_cluster_config(
        work / "c", mqtt_ports=[free_port() for _ in range(3)],
        client_ports=[free_port() for _ in range(3)], route_ports=[free_port() for _ in range(3)],
    )  # fmt: skip
    users = read_cluster_users(work / "c")
    for k in range(16):
        name = f"park-bench-{k}"
        users[name] = user_entry(name, f"bench-pw-bench-{k}", kind="park", entity_id=f"bench-{k}")
    write_cluster_users(work / "c", users)
    procs = [
        subprocess.Popen([nats, "-c", str(n.conf_path)], stderr=subprocess.DEVNULL) for n in config.nodes
    ]
    try:
        for node in config.nodes:
            wait_for_port("127.0.0.1", node.mqtt_port)
        time.sleep(3.0)
        yield {"ports": [n.mqtt_port for n in config.nodes], "v5": False, "ingest_url": config.ingest_urls[0]}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def _publish(
    port: int, device: str, seconds: float, counts: list[int], *, v5: bool,
    creds: tuple[str, str] | None, ca: Path | None,
) -> None:  # fmt: skip
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=creds[0] if creds else f"{device}-{uuid.uuid4().hex[:4]}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )  # fmt: skip
    if creds:
        client.username_pw_set(*creds)
    if ca is not None:
        client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sent - acked[0] >= 100:
            time.sleep(0.0005)
            continue
        pack = build_pack(device, {"pm2_5": 12.5, "pm10": 20.0}, time_s=time.time())
        client.publish(f"zhongdu/v1/park/{device}/senml", json.dumps(pack).encode(), qos=1)
        sent += 1
    time.sleep(1.0)
    counts.append(acked[0])
    client.disconnect()
    client.loop_stop()


def case(name: str, broker: dict[str, Any], admin_db: str, args: argparse.Namespace) -> dict[str, float]:
    db_name = f"bench_cl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    db = admin_db.rsplit("/", 1)[0] + "/" + db_name
    devices = [f"bench-{k}" for k in range(args.devices)]
    creds: dict[str, tuple[str, str]] = {}
    if "config" in broker:
        with DynsecAdmin(broker["config"].admin_url) as admin:
            for device in devices:
                admin.put_entity_client("park", device, f"park-{device}", "bench-pw-" + device)
                creds[device] = (f"park-{device}", "bench-pw-" + device)
        worker_url = (
            broker["config"]
            .ingest_url.replace(str(broker["port"]), str(broker["plain_port"]))
            .replace("mqtts://", "mqtt://")
        )
        ports = [broker["port"]] * len(devices)
    else:
        ports = broker["ports"]
        worker_url = broker["ingest_url"].rsplit(":", 1)[0] + f":{ports[1]}"
        creds = {d: (f"park-{d}", f"bench-pw-{d}") for d in devices}
        ports = [ports[0] if k % 2 == 0 else ports[2] for k in range(len(devices))]
    lags: list[float] = []

    def on_commit(info: CommitInfo) -> None:
        lags.extend(info.committed_at - t.timestamp() for t in info.data_times)

    settings = Settings(
        database_url=db,
        mqtt_url=worker_url,
        auto_register=True,
        mqtt_share_group="",
        ingest_batch_interval_ms=20,
    )
    worker = Ingester(settings, client_id=f"bench-{uuid.uuid4().hex[:6]}", mqtt5=broker["v5"],
                      metrics=IngestMetrics(CollectorRegistry()), on_commit=on_commit)  # fmt: skip
    worker.start()
    assert worker.wait_connected(60)
    counts: list[int] = []
    threads = [
        threading.Thread(target=_publish, args=(ports[k], d, args.seconds, counts),
                         kwargs={"v5": broker["v5"], "creds": creds.get(d), "ca": broker.get("ca")})
        for k, d in enumerate(devices)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = sum(counts)
    deadline = time.monotonic() + 120
    while worker.stats.committed < acked and time.monotonic() < deadline:
        time.sleep(0.2)
    worker.stop()
    with psycopg.connect(admin_db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db_name)))
    p50, p99 = (float(np.percentile(lags, q)) if lags else float("nan") for q in (50, 99))
    result = {
        "msg_per_s": acked / args.seconds,
        "stored": worker.stats.committed,
        "acked": acked,
        "p50_s": p50,
        "p99_s": p99,
    }
    print(f"{name}: {result['msg_per_s']:,.0f} msg/s acked, {result['stored']:,} of {acked:,} stored, "
          f"lag p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms", flush=True)  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per case")
    parser.add_argument(
        "--devices", type=int, default=4, help="publishing devices (QoS 1, 100 in flight each)"
    )
    args = parser.parse_args()
    with storage.connect(args.database_url):
        pass
    print(
        f"{args.devices} devices x {args.seconds:.0f} s per case; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with _mosquitto(tls=False) as broker:
        plain = case("Mosquitto, per-device credentials, plain MQTT 5", broker, args.database_url, args)
    with _mosquitto(tls=True) as broker:
        tls = case("Mosquitto, per-device credentials, TLS", broker, args.database_url, args)
    with _cluster() as broker:
        cluster = case("NATS 3-node cluster (JetStream R3), MQTT 3.1.1", broker, args.database_url, args)
    base = plain["msg_per_s"]
    print(
        f"ratios against single Mosquitto: TLS x{tls['msg_per_s'] / base:.2f}, "
        f"cluster x{cluster['msg_per_s'] / base:.2f}; p99 lag single {plain['p99_s'] * 1000:.0f} ms, "
        f"cluster {cluster['p99_s'] * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
