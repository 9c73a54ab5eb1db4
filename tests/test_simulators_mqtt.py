"""The simulators against real brokers: the contract on the wire, exact counts, repeatability, faults.

The machine's Mosquitto is shared with other tests, so runs there use a unique id prefix and the
subscriber keeps only its own entities; speed-sensitive tests start a private tuned broker.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from zhongdu import services
from zhongdu.errors import ConfigError
from zhongdu.ingest import Accepted, Rejected, parse_message
from zhongdu.settings import parse_mqtt_url
from zhongdu.simulators import (
    FAULT_KINDS,
    BrokerError,
    FaultConfig,
    SimulationConfig,
    demo_config,
    generate_messages,
    run_simulation,
)

from ._simulators_fixtures import write_stations_csv

pytestmark = pytest.mark.mqtt


@dataclass
class Collector:
    """A QoS 1 subscriber to `zhongdu/v1/#` that keeps messages of entities starting with `prefix`."""

    url: str
    prefix: str
    protocol: int = mqtt.MQTTv5
    messages: list[tuple[str, bytes, bool, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        host, port, _, _ = parse_mqtt_url(self.url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-sim-sub-{uuid.uuid4().hex[:8]}", protocol=self.protocol
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe("zhongdu/v1/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) == 5 and parts[3].startswith(self.prefix):
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    def telemetry(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p, _, _ in self.messages if not t.endswith("/status")]

    def statuses(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [(t, p, r) for t, p, r, _ in self.messages if t.endswith("/status")]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def close(self, clear_retained: bool = True) -> None:
        """Stop, and remove the retained status messages our entities left on the broker."""
        if clear_retained:
            infos = [
                self.client.publish(t, b"", qos=1, retain=True) for t in {t for t, _, _ in self.statuses()}
            ]
            for info in infos:
                info.wait_for_publish(10)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}-"


@pytest.fixture
def stations_csv(tmp_path: Path) -> Path:
    return write_stations_csv(tmp_path / "stations.csv", "TC-")


def _wait(condition: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(condition())  # type: ignore[operator]


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()


def test_contract_on_the_machine_broker(
    mqtt_url: str, prefix: str, stations_csv: Path, collectors: list[Collector]
) -> None:
    sub = Collector(mqtt_url, prefix)
    collectors.append(sub)
    config = SimulationConfig(
        url=mqtt_url, devices=14, stations_file=stations_csv, count=120, id_prefix=prefix, seed=1
    )
    stats = run_simulation(config)
    assert stats.sent == stats.acked == 120
    assert stats.protocol == "5"
    assert _wait(lambda: len(sub.telemetry()) >= 120)
    now = datetime.now(UTC)
    kinds = Counter()
    for topic, payload in sub.telemetry():
        root, version, kind, entity, leaf = topic.split("/")
        assert entity.startswith(prefix)
        assert (root, version) == ("zhongdu", "v1")
        assert (kind, leaf) in (("park", "senml"), ("bs", "telemetry"))
        result = parse_message(topic, payload, received_at=now)
        assert isinstance(result, Accepted), (result, payload)
        kinds[kind] += 1
    assert kinds["park"] > 0 and kinds["bs"] > 0
    # every entity announced itself online (retained) and said offline when the run ended
    assert _wait(lambda: len(sub.statuses()) >= 2 * 18)
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload, _ in sub.statuses():
        by_topic[topic].append(payload)
    assert len(by_topic) == 14 + 4
    assert all(seq[0] == b"online" and seq[-1] == b"offline" for seq in by_topic.values()), by_topic
    # a late subscriber gets the retained status
    late = Collector(mqtt_url, prefix)
    try:
        assert _wait(lambda: len(late.statuses()) == 18, 10)
        assert all(r and p == b"offline" for _, p, r in late.statuses())
    finally:
        late.close(clear_retained=False)


def test_fixed_count_publishes_exactly_n(tuned_broker: services.Service, collectors: list[Collector]) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    stats = run_simulation(SimulationConfig(url=tuned_broker.url, devices=300, stations=False, count=3000))
    assert (stats.sent, stats.acked, stats.failed) == (3000, 3000, 0)
    assert stats.connections == 300  # one per device, each with its will
    assert _wait(lambda: len(sub.telemetry()) >= 3000)
    time.sleep(0.5)  # nothing more arrives
    assert len(sub.telemetry()) == 3000
    assert stats.rate > 0


def test_seeded_runs_repeat_exactly(
    tuned_broker: services.Service, stations_csv: Path, collectors: list[Collector]
) -> None:
    start = datetime.fromtimestamp((time.time() // 3600 - 3) * 3600, UTC)
    config = SimulationConfig(
        url=tuned_broker.url, devices=21, stations_file=stations_csv, count=800, seed=42, start=start
    )
    runs = []
    for _ in range(2):
        sub = Collector(tuned_broker.url, "")
        collectors.append(sub)
        run_simulation(config)
        assert _wait(lambda: len(sub.telemetry()) >= 800)  # noqa: B023
        per_topic: dict[str, list[bytes]] = defaultdict(list)
        for topic, payload in sub.telemetry():
            per_topic[topic].append(payload)
        runs.append(per_topic)
        sub.close()
        collectors.remove(sub)
    assert runs[0] == runs[1]
    expected: dict[str, list[bytes]] = defaultdict(list)
    for item in generate_messages(config):
        expected[item.topic].append(item.payload)
    assert runs[0] == expected  # what arrived is exactly the generated stream, in order per device


def test_every_fault_kind_reaches_the_broker(
    tuned_broker: services.Service, stations_csv: Path, collectors: list[Collector]
) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    config = SimulationConfig(
        url=tuned_broker.url,
        devices=14,
        stations_file=stations_csv,
        count=1500,
        seed=3,
        start=datetime.fromtimestamp((time.time() // 3600 - 3) * 3600, UTC),
        faults=FaultConfig(frozenset(FAULT_KINDS), 0.15),
    )
    stats = run_simulation(config)
    assert set(stats.faults) == set(FAULT_KINDS), stats.faults
    assert stats.reconnects >= 1
    assert _wait(lambda: len(sub.telemetry()) >= 1500)
    received = Counter(sub.telemetry())
    items = [m for m in generate_messages(config) if m.action == "publish"]
    expected = Counter((m.topic, m.payload) for m in items)
    assert set(received) == set(expected)  # a cut link may make paho resend, never lose
    assert all(received[k] >= n for k, n in expected.items())
    now = datetime.now(UTC)
    reasons = Counter()
    times: dict[str, list[float]] = defaultdict(list)
    for topic, payload in sub.telemetry():
        result = parse_message(topic, payload, received_at=now)
        if isinstance(result, Rejected):
            reasons[result.reason] += 1
        else:
            assert result.data_time is not None
            times[topic].append(result.data_time.timestamp())
    assert sum(n for r, n in reasons.items() if r != "future_timestamp") >= stats.faults["malformed"]
    assert any(
        t < max(seq[:i]) for seq in times.values() for i, t in enumerate(seq) if i
    )  # late/out of order
    assert max(received.values()) >= 2  # duplicates
    # a dropped connection made the broker publish the device's will, then it came back online
    offline_then_online = False
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload, _ in sub.statuses():
        by_topic[topic].append(payload)
    for seq in by_topic.values():
        joined = b",".join(seq)
        if b"online,offline,online" in joined:
            offline_then_online = True
    assert offline_then_online, by_topic


def test_no_faults_when_none_asked(tuned_broker: services.Service, collectors: list[Collector]) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    stats = run_simulation(
        SimulationConfig(url=tuned_broker.url, devices=30, stations=False, count=600, seed=8)
    )
    assert not stats.faults and stats.reconnects == 0
    assert _wait(lambda: len(sub.telemetry()) >= 600)
    now = datetime.now(UTC)
    received = sub.telemetry()
    assert len(set(received)) == len(received) == 600
    assert all(isinstance(parse_message(t, p, received_at=now), Accepted) for t, p in received)
    assert all(p in (b"online", b"offline") for _, p, _ in sub.statuses())


def test_live_mode_in_a_thread_stops_on_request(
    tuned_broker: services.Service, collectors: list[Collector]
) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    stop = threading.Event()
    config = SimulationConfig(
        url=tuned_broker.url, devices=10, stations=False, speed=600.0, rate=200.0, seed=2
    )
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(run_simulation(config, stop)), daemon=True)
    thread.start()
    assert _wait(lambda: len(sub.telemetry()) >= 30, 30)
    stop.set()
    thread.join(15)
    assert not thread.is_alive()
    now = datetime.now(UTC)
    for topic, payload in sub.telemetry():
        assert isinstance(parse_message(topic, payload, received_at=now), Accepted)


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_raw_engine_publishes_exactly_n(
    tuned_broker: services.Service, collectors: list[Collector], version: str
) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    config = SimulationConfig(
        url=tuned_broker.url, devices=200, stations=False, count=5000, engine="raw", mqtt_version=version,
        start=datetime.fromtimestamp((time.time() // 3600 - 3) * 3600, UTC), seed=5,
    )  # fmt: skip
    stats = run_simulation(config)
    assert (stats.sent, stats.acked, stats.failed, stats.protocol) == (5000, 5000, 0, version)
    assert _wait(lambda: len(sub.telemetry()) >= 5000 and len(sub.statuses()) >= 400)
    time.sleep(0.3)
    assert len(sub.telemetry()) == 5000
    per_topic: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in sub.telemetry():
        per_topic[topic].append(payload)
    expected: dict[str, list[bytes]] = defaultdict(list)
    for item in generate_messages(config):
        expected[item.topic].append(item.payload)
    assert per_topic == expected


def test_raw_engine_respects_the_machine_brokers_limits(
    mqtt_url: str, prefix: str, collectors: list[Collector]
) -> None:
    sub = Collector(mqtt_url, prefix)
    collectors.append(sub)
    config = SimulationConfig(
        url=mqtt_url, devices=20, stations=False, count=400, engine="raw", id_prefix=prefix
    )
    stats = run_simulation(config)
    assert stats.acked == 400
    assert _wait(lambda: len(sub.telemetry()) >= 400 and len(sub.statuses()) >= 40)


def test_raw_engine_refuses_drop_faults() -> None:
    with pytest.raises(ConfigError, match="raw engine"):
        SimulationConfig(engine="raw", faults=FaultConfig(frozenset({"drop"}), 0.1))


def test_rate_paces_a_fixed_count_run(tuned_broker: services.Service) -> None:
    stats = run_simulation(
        SimulationConfig(url=tuned_broker.url, devices=20, stations=False, count=300, rate=500.0)
    )
    assert stats.acked == 300
    assert 0.5 <= stats.publish_s < 5.0  # 300 messages at 500/s take at least 0.6 s
    assert stats.rate <= 550.0


def test_pool_of_connections(tuned_broker: services.Service, collectors: list[Collector]) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    stats = run_simulation(
        SimulationConfig(url=tuned_broker.url, devices=50, stations=False, count=500, connections=2)
    )
    assert stats.connections == 2 and stats.acked == 500
    assert _wait(lambda: len(sub.telemetry()) >= 500 and len(sub.statuses()) >= 100)
    assert len({t for t, _, _ in sub.statuses()}) == 50  # each device still has its retained status


def test_cli_fixed_count(tuned_broker: services.Service, collectors: list[Collector]) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    zhongdu = Path(sys.executable).parent / "zhongdu"
    proc = subprocess.run(
        [
            str(zhongdu),
            "simulate",
            "park",
            "--devices",
            "10",
            "--count",
            "100",
            "--url",
            tuned_broker.url,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "100 telemetry messages sent, 100 acknowledged" in proc.stderr
    assert _wait(lambda: len(sub.telemetry()) >= 100)


def test_unreachable_broker_is_a_clear_error() -> None:
    url = f"mqtt://127.0.0.1:{services.free_port()}"
    with pytest.raises(BrokerError, match="cannot connect to the MQTT broker"):
        run_simulation(SimulationConfig(url=url, devices=3, stations=False, count=5))


@pytest.mark.slow
def test_falls_back_to_mqtt_311_on_amqtt(collectors: list[Collector]) -> None:
    broker = services.start_amqtt()
    try:
        sub = Collector(broker.url, "", protocol=mqtt.MQTTv311)
        collectors.append(sub)
        stats = run_simulation(SimulationConfig(url=broker.url, devices=7, stations=False, count=50))
        assert stats.protocol == "3.1.1" and stats.acked == 50
        assert _wait(lambda: len(sub.telemetry()) >= 50, 30)
        sub.close()
        collectors.remove(sub)
    finally:
        broker.stop()


def test_demo_config_shows_data_within_seconds(
    tuned_broker: services.Service, collectors: list[Collector]
) -> None:
    sub = Collector(tuned_broker.url, "")
    collectors.append(sub)
    stop = threading.Event()
    config = demo_config(tuned_broker.url, devices=14, max_stations=20)
    thread = threading.Thread(target=run_simulation, args=(config, stop), daemon=True)
    t0 = time.monotonic()
    thread.start()
    try:
        assert _wait(lambda: any("/park/" in t for t, _ in sub.telemetry()), 30)
        assert _wait(lambda: any("/bs/" in t for t, _ in sub.telemetry()), 30)
        assert time.monotonic() - t0 < 15  # layout loading included
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
