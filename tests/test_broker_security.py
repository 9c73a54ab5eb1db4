"""Who may publish what: a Mosquitto started from `zhongdu broker config`, credentials from the registry.

Every attack is tried against the real broker and the real ingester: anonymous clients, a device
publishing as another, a device reading the whole tree, a revoked or rotated password, TLS without
the CA. What was refused must never reach the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from zhongdu import storage
from zhongdu.broker import DynsecAdmin, issue, revoke
from zhongdu.ingest import build_pack
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings
from zhongdu.storage import _credentials as store

from ._broker_fixtures import SecuredBroker, make_ca_and_server_cert, secured_broker, try_connect
from ._ingest_fixtures import scalar

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]
Wait = Callable[..., bool]
NOT_AUTHORIZED = 135  # MQTT v5 reason code


@pytest.fixture(scope="module")
def broker() -> Iterator[SecuredBroker]:
    with secured_broker() as running:
        yield running


@pytest.fixture(scope="module")
def ingester(broker: SecuredBroker, pg_migrated: str) -> Iterator[Ingester]:
    settings = Settings(
        database_url=pg_migrated,
        mqtt_url=broker.config.ingest_url,
        auto_register=False,
        ingest_batch_interval_ms=20,
    )
    worker = Ingester(
        settings, client_id=f"sec-{uuid.uuid4().hex[:6]}", metrics=IngestMetrics(CollectorRegistry())
    )
    worker.start()
    assert worker.wait_connected(), broker.log()
    yield worker
    worker.stop()


def _register(url: str, *devices: str, stations: tuple[str, ...] = ()) -> None:
    with psycopg.connect(url) as conn:
        for device in devices:
            storage.queries.insert_device(
                conn, device_id=device, kind="air", name=None, lon=None, lat=None, metadata={}
            )
        for station in stations:
            store.add_station(conn, station)


def _issue(url: str, broker: SecuredBroker, entity_id: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn, DynsecAdmin(broker.config.admin_url) as admin:
        cred = issue(conn, admin, entity_id)
    return cred.username, cred.password


class Device:
    """A connected QoS 1 client that records PUBACK and SUBACK reason codes."""

    def __init__(
        self, url: str, username: str, password: str, *, v5: bool = True, client_id: str | None = None,
        clean_start: bool = True,
    ) -> None:  # fmt: skip
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or username,  # a credential's bound id
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            **({} if v5 else {"clean_session": clean_start}),
        )  # fmt: skip
        self.client.username_pw_set(username, password)
        self.pubacks: dict[int, int] = {}
        self.subacks: list[int] = []
        self.connack: list[int] = []
        self.disconnected: list[int] = []
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.append(int(reason.value))
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.pubacks.__setitem__(
            mid, int(reason.value)
        )
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self.subacks.extend(
            int(r.value) for r in reasons
        )
        self.client.on_disconnect = lambda _c, _u, _f, reason, _p: self.disconnected.append(int(reason.value))
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        self.client.reconnect_delay_set(60, 60)
        self.client.connect(host, port, **({"clean_start": clean_start} if v5 else {}))
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        deadline = time.monotonic() + 5
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _pack(device: str, t: float) -> bytes:
    return json.dumps(build_pack(device, {"pm2_5": 12.5}, time_s=t)).encode()


def test_anonymous_clients_are_refused(broker: SecuredBroker) -> None:
    assert try_connect(broker.url) == NOT_AUTHORIZED
    assert try_connect(broker.url, v5=False) == NOT_AUTHORIZED  # paho maps 3.1.1 code 5 to 135
    assert try_connect(broker.url, "zhongdu-admin", "guessed") == NOT_AUTHORIZED
    assert try_connect(broker.config.admin_url) == 0  # the generated admin does log in


def test_a_device_publishes_only_under_its_own_id(
    broker: SecuredBroker, pg_migrated: str, ingester: Ingester, wait_until: Wait
) -> None:
    a, b = f"sec-a-{uuid.uuid4().hex[:6]}", f"sec-b-{uuid.uuid4().hex[:6]}"
    _register(pg_migrated, a, b)  # B is registered: were the broker to let A through, it would be stored
    user_a, pass_a = _issue(pg_migrated, broker, a)
    device = Device(broker.url, user_a, pass_a)
    try:
        t0 = time.time() - 60
        assert device.publish(f"zhongdu/v1/park/{a}/senml", _pack(a, t0)) == 0
        assert device.publish(f"zhongdu/v1/park/{b}/senml", _pack(b, t0)) == NOT_AUTHORIZED
        assert device.publish(f"zhongdu/v1/bs/{a}/telemetry", b'{"status":"up"}') == NOT_AUTHORIZED
        assert device.publish(f"zhongdu/v1/park/{b}/status", b"offline") == NOT_AUTHORIZED
        device.client.subscribe("zhongdu/v1/#", qos=1)
        device.client.subscribe(f"$share/x/zhongdu/v1/park/{b}/#", qos=1)
        assert wait_until(lambda: len(device.subacks) == 2, timeout=5)
        assert device.subacks == [NOT_AUTHORIZED, NOT_AUTHORIZED]
        assert wait_until(
            lambda: scalar(pg_migrated, "SELECT count(*) FROM readings WHERE device_id = %s", (a,)) == 1
        )
        time.sleep(0.5)  # the refused ones had every chance to arrive
        assert scalar(pg_migrated, "SELECT count(*) FROM readings WHERE device_id = %s", (b,)) == 0
        assert (
            scalar(pg_migrated, "SELECT count(*) FROM rejected_messages WHERE topic LIKE %s", (f"%{b}%",))
            == 0
        )
    finally:
        device.close()
    # MQTT 3.1.1 has no negative PUBACK: the broker acks and drops, and still nothing is stored
    legacy = Device(broker.url, user_a, pass_a, v5=False)
    try:
        assert legacy.publish(f"zhongdu/v1/park/{b}/senml", _pack(b, time.time() - 30)) == 0
        time.sleep(0.5)
        assert scalar(pg_migrated, "SELECT count(*) FROM readings WHERE device_id = %s", (b,)) == 0
    finally:
        legacy.close()


def test_stations_are_confined_too_and_ingest_publishes_nothing(
    broker: SecuredBroker, pg_migrated: str, ingester: Ingester
) -> None:
    station = f"SEC-{uuid.uuid4().hex[:6]}"
    _register(pg_migrated, stations=(station,))
    user, password = _issue(pg_migrated, broker, station)
    assert user == f"bs-{station}"
    client = Device(broker.url, user, password)
    try:
        assert client.publish(f"zhongdu/v1/bs/{station}/telemetry", b'{"status": "up"}') == 0
        assert client.publish("zhongdu/v1/bs/OTHER/telemetry", b'{"status": "down"}') == NOT_AUTHORIZED
    finally:
        client.close()
    worker = Device(broker.url, *_userpass(broker.config.ingest_url))
    try:
        assert worker.publish("zhongdu/v1/park/x/senml", b"[]") == NOT_AUTHORIZED
        assert worker.publish("$CONTROL/dynamic-security/v1", b'{"commands": []}') == NOT_AUTHORIZED
    finally:
        worker.close()


def _userpass(url: str) -> tuple[str, str]:
    from zhongdu.settings import parse_mqtt_url

    _, _, user, password = parse_mqtt_url(url)
    assert user and password
    return user, password


def test_rotation_and_revocation_take_effect_without_a_restart(
    broker: SecuredBroker, pg_migrated: str, wait_until: Wait
) -> None:
    device_id = f"sec-r-{uuid.uuid4().hex[:6]}"
    _register(pg_migrated, device_id)
    user, first = _issue(pg_migrated, broker, device_id)
    assert try_connect(broker.url, user, first) == 0
    old_session = Device(broker.url, user, first)
    assert wait_until(lambda: old_session.connack == [0], timeout=5)
    _, second = _issue(pg_migrated, broker, device_id)  # rotate
    try:
        assert wait_until(
            lambda: old_session.disconnected != [], timeout=5
        )  # the old password's session is cut
    finally:
        old_session.close()
    assert try_connect(broker.url, user, first) == NOT_AUTHORIZED
    assert try_connect(broker.url, user, second) == 0
    with psycopg.connect(pg_migrated) as conn:
        row = store.get_credential(conn, user)
    assert row is not None and row["rotations"] == 1
    assert row["secret_hash"] == "sha256$" + hashlib.sha256(second.encode()).hexdigest()
    live = Device(broker.url, user, second)
    assert wait_until(lambda: live.connack == [0], timeout=5)
    pid = broker.proc.pid if broker.proc else None
    with psycopg.connect(pg_migrated) as conn, DynsecAdmin(broker.config.admin_url) as admin:
        assert revoke(conn, admin, device_id)
    try:
        assert wait_until(lambda: live.disconnected != [], timeout=5)  # the live session is cut
    finally:
        live.close()
    assert try_connect(broker.url, user, second) == NOT_AUTHORIZED
    assert broker.proc is not None and broker.proc.pid == pid and broker.proc.poll() is None  # no restart
    with psycopg.connect(pg_migrated) as conn:
        row = store.get_credential(conn, user)
    assert row is not None and row["revoked_at"] is not None and row["secret_hash"] is None


def test_tls_needs_the_ca() -> None:
    certs = Path(tempfile.mkdtemp(prefix="zhongdu-certs-"))
    os.chmod(certs, 0o755)
    ca, cert, key = make_ca_and_server_cert(certs)
    with secured_broker(cert=cert, key=key, cafile=ca) as broker:
        assert broker.tls_port is not None
        url = f"mqtts://127.0.0.1:{broker.tls_port}"
        user, password = _userpass(broker.config.admin_url)
        assert try_connect(url, user, password, context=ssl.create_default_context(cafile=str(ca))) == 0
        # without the CA the handshake fails (checked with the ssl module: paho leaks the socket then)
        with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        assert try_connect(broker.url, user, password) == 0  # the plain listener stays for loopback
        conf = broker.config.conf_path.read_text()
        assert f"listener {broker.tls_port} 127.0.0.1" in conf and f"certfile {cert}" in conf
    shutil.rmtree(certs, ignore_errors=True)


def test_cli_issues_credentials_shown_once_and_stored_hashed(broker: SecuredBroker, pg_migrated: str) -> None:
    device_id = f"sec-cli-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, ZHONGDU_DATABASE_URL=pg_migrated, ZHONGDU_BROKER_ADMIN_URL=broker.config.admin_url)

    def zhongdu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zhongdu.cli", *args], env=env, capture_output=True, text=True, timeout=60
        )

    added = zhongdu("devices", "add", device_id, "--kind", "air")
    assert added.returncode == 0, added.stderr
    issued = zhongdu("devices", "credential", "issue", device_id)
    assert issued.returncode == 0, issued.stderr
    username, password = issued.stdout.split()
    assert username == f"park-{device_id}" and len(password) >= 40
    assert try_connect(broker.url, username, password) == 0
    listed = zhongdu("devices", "credential", "list")
    assert username in listed.stdout and password not in listed.stdout
    with psycopg.connect(pg_migrated) as conn:
        dump = conn.execute("SELECT row_to_json(c)::text FROM mqtt_credentials c").fetchall()
    assert not any(password in row[0] for row in dump)
    revoked = zhongdu("devices", "credential", "revoke", device_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert try_connect(broker.url, username, password) == NOT_AUTHORIZED
    unknown = zhongdu("devices", "credential", "issue", "nobody-registered")
    assert unknown.returncode == 2 and "add it first" in unknown.stderr
    bad_kind = zhongdu("devices", "add", "x1", "--kind", "toaster")
    assert bad_kind.returncode == 2 and "unknown kind" in bad_kind.stderr


def test_simulators_publish_with_per_device_credentials(
    broker: SecuredBroker, pg_migrated: str, ingester: Ingester, wait_until: Wait
) -> None:
    from zhongdu.simulators import SimulationConfig, make_plan, run_simulation

    prefix = f"s{uuid.uuid4().hex[:5]}-"
    base = dict(
        url=broker.url, devices=6, max_stations=3, count=120, seed=5, id_prefix=prefix, outages="none"
    )
    plan = make_plan(SimulationConfig(**base))  # type: ignore[arg-type]
    devices = [s.entity_id for s in plan.sources if s.kind == "park"]
    stations = tuple(s.entity_id for s in plan.sources if s.kind == "bs")
    _register(pg_migrated, *devices, stations=stations)
    with psycopg.connect(pg_migrated) as conn, DynsecAdmin(broker.config.admin_url) as admin:
        credentials = {c.username: c.password for c in (issue(conn, admin, e) for e in [*devices, *stations])}
    # without credentials the simulator is refused, and says so
    with pytest.raises(Exception, match=r"(?i)not authori[sz]ed|refused"):
        run_simulation(SimulationConfig(**base))  # type: ignore[arg-type]
    stats = run_simulation(SimulationConfig(**base, credentials=credentials))  # type: ignore[arg-type]
    assert stats.acked == 120 and stats.failed == 0
    stored = "SELECT count(DISTINCT device_id) FROM readings WHERE device_id LIKE %s"
    assert wait_until(lambda: scalar(pg_migrated, stored, (prefix + "%",)) == len(devices), timeout=30)
    telemetry = "SELECT count(DISTINCT station_id) FROM station_telemetry WHERE station_id LIKE %s"
    assert wait_until(lambda: scalar(pg_migrated, telemetry, (prefix + "%",)) == len(stations), timeout=30)


def test_a_credential_cannot_take_over_another_clients_id(
    broker: SecuredBroker, pg_migrated: str, ingester: Ingester, wait_until: Wait
) -> None:
    """The attack: a device connects with its own valid credential but the ingest worker's (or another
    device's) client id and clean_start off, to kick that client and reset its session. Each id is
    bound to one credential, so the broker refuses the CONNECT and the victim never notices."""
    from ._fault_fixtures import SteadyPublisher, wait_acked, wait_stored

    attacker_id, victim_id = f"sec-x-{uuid.uuid4().hex[:6]}", f"sec-v-{uuid.uuid4().hex[:6]}"
    _register(pg_migrated, attacker_id, victim_id)
    attacker_user, attacker_pass = _issue(pg_migrated, broker, attacker_id)
    victim_user, victim_pass = _issue(pg_migrated, broker, victim_id)
    assert ingester.client_id == "zhongdu-ingest-1"  # the URL's username, its bound id
    connects_before = ingester.stats.connects
    victim = SteadyPublisher(
        broker.url, victim_id, rate=300, t0=float(int(time.time()) - 7200),
        username=victim_user, password=victim_pass,
    )  # fmt: skip
    victim.start()
    refused: list[int] = []
    try:
        time.sleep(0.5)
        for _hold in range(5):  # five holds of 1 s, as the attack was first tried
            for target in (ingester.client_id, victim_user):
                attack = Device(broker.url, attacker_user, attacker_pass, client_id=target, clean_start=False)
                assert wait_until(lambda a=attack: a.connack != [], timeout=5)  # type: ignore[misc]
                time.sleep(0.5)
                refused += attack.connack
                attack.close()
        # its own id still works: the binding refuses only other ids
        own = Device(broker.url, attacker_user, attacker_pass)
        assert wait_until(lambda: own.connack == [0], timeout=5)
        own.close()
        # and the worker's credential cannot borrow a device's id either
        worker_user, worker_pass = _userpass(broker.config.ingest_url)
        assert try_connect_as(broker.url, worker_user, worker_pass, victim_user) == NOT_AUTHORIZED
    finally:
        victim.stop.set()
        victim.join(10)
    wait_acked([victim])
    result = wait_stored(pg_migrated, [victim])
    victim.close()
    print(f"\nclient-id takeover x10: refused {refused.count(NOT_AUTHORIZED)}; {result.line('victim stream')}")
    assert refused == [NOT_AUTHORIZED] * 10
    assert ingester.stats.connects == connects_before  # never kicked
    assert result.acked == result.published > 1000
    assert result.lost == [] and result.rows == result.stored


def try_connect_as(url: str, username: str, password: str, client_id: str) -> int:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    result: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(int(reason.value))
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]), keepalive=10)
    deadline = time.monotonic() + 10
    while not result and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return result[0] if result else -1


def test_credentials_issued_before_ids_were_bound_are_bound_in_place(
    broker: SecuredBroker, pg_migrated: str
) -> None:
    """An older credential (created without `clientid`) could use any id until `zhongdu broker
    bind-ids` binds it, password unchanged."""
    old_user, old_pass = f"park-old-{uuid.uuid4().hex[:6]}", "an-old-password"
    with DynsecAdmin(broker.config.admin_url) as admin:
        admin.run([{"command": "createClient", "username": old_user, "password": old_pass}])
    assert try_connect_as(broker.url, old_user, old_pass, f"someone-else-{uuid.uuid4().hex[:4]}") == 0
    env = dict(os.environ, ZHONGDU_BROKER_ADMIN_URL=broker.config.admin_url)
    done = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "broker", "bind-ids"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "bound" in done.stdout, done.stderr
    assert try_connect_as(broker.url, old_user, old_pass, "someone-else") == NOT_AUTHORIZED
    assert try_connect_as(broker.url, old_user, old_pass, old_user) == 0  # its own id, same password
    assert try_connect(broker.config.admin_url) == 0  # the admin is left unbound
