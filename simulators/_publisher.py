"""The publishing engine: thousands of simulated devices, one process, one network thread.

Two halves:
- `generate_messages(config)`: the deterministic part. Devices and stations report on their own
  intervals in simulated time (a heap ordered by due time), payloads are serialised, faults are
  injected. Same config (seed and start time) -> byte-identical message sequence, whatever the
  wall clock does.
- `Simulation.run()`: the paced part. It waits until the simulated clock (start + elapsed x speed)
  reaches each message's time, caps the rate (`rate` msgs/s), and publishes at QoS 1 through
  `_network.Network`; in fixed-count mode it publishes exactly N messages (pre-serialised, paced
  only by `rate`) and waits for every PUBACK before returning.

Status and last will: with per-device connections (the default up to `PER_DEVICE_LIMIT` entities)
each device has its own connection whose will is its retained `offline` status, exactly as the
contract says. Beyond that, or with `connections=K`, entities share K connections ("gateways"):
each entity's retained `online` is published on connect and `offline` on a clean stop, but a
connection's single will cannot speak for many devices, so after a crash their status stays
`online` until consumers notice the silence (the ingester's station silence timeout). That is the
price of fewer sockets; per-device connections cost one socket each (thousands are fine on Linux).
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import paho.mqtt.client as mqtt

from zhongdu.errors import ConfigError
from zhongdu.settings import Settings
from zhongdu.simulators._environment import Environment
from zhongdu.simulators._faults import FaultConfig, FaultInjector, Outgoing, skew_offsets
from zhongdu.simulators._network import BrokerError, Link, Network
from zhongdu.simulators._park import DeviceModel, ParkDevice, park_devices, senml_pack
from zhongdu.simulators._rawmqtt import RawNetwork
from zhongdu.simulators._stations import OutageSchedule, StationModel, StationSpec, load_layout, rfc3339

log = logging.getLogger(__name__)

PER_DEVICE_LIMIT = 2000  # above this many entities, share a pool of connections by default
DEFAULT_POOL = 4
TOPIC_ROOT = "zhongdu/v1"


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a run needs. Defaults: the park (60 devices) and the stations, live, no faults."""

    url: str = "mqtt://127.0.0.1:1883"
    park: bool = True
    stations: bool = True
    devices: int = 60
    stations_file: Path | None = None
    grid_path: Path | None = None  # for the generated layout (as the API: ZHONGDU_GRID_PATH)
    h3_resolution: int = 10  # ... else the shipped grid at this resolution (ZHONGDU_H3_RESOLUTION)
    max_stations: int | None = None
    station_interval_s: float = 60.0
    rate: float | None = None  # messages/s cap; None = no cap
    speed: float = 1.0  # simulated seconds per wall second
    seed: int = 2015
    count: int | None = None  # fixed-count mode: exactly this many telemetry messages
    duration_s: float | None = None  # stop after this many wall seconds
    start: datetime | None = None  # simulated start (UTC); None = now (or a day ago when speed > 1)
    faults: FaultConfig = field(default_factory=FaultConfig)
    outages: str = "auto"
    connections: int | None = None  # None: one per device up to PER_DEVICE_LIMIT, else a pool
    mqtt_version: str = "auto"  # "5", "3.1.1" or "auto" (5 unless the broker refuses it)
    id_prefix: str = ""  # prepended to device and station ids (test isolation)
    statuses: bool = True  # retained online/offline status topics and wills
    progress: TextIO | None = None  # where progress lines and the summary go (stderr in the CLI)
    progress_interval_s: float = 5.0
    qos: int = 1
    engine: str = "paho"  # "raw": the minimal batched publisher (no wills, no reconnects, no `drop`)
    # {username: password} per device/station (`zhongdu devices credential issue --json`), for a broker
    # that confines each device to its own topics; needs one connection per entity
    credentials: Mapping[str, str] | None = None
    cafile: str | None = None  # CA of an mqtts:// broker with a private certificate

    def __post_init__(self) -> None:
        if self.devices < 0:
            raise ConfigError(f"--devices must be >= 0, got {self.devices}")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ConfigError(f"--rate must be a positive number of messages/s, got {self.rate}")
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ConfigError(f"--speed must be positive, got {self.speed}")
        if self.count is not None and self.count < 0:
            raise ConfigError(f"--count must be >= 0, got {self.count}")
        if self.connections is not None and self.connections < 1:
            raise ConfigError(f"--connections must be >= 1, got {self.connections}")
        if self.mqtt_version not in ("auto", "5", "3.1.1"):
            raise ConfigError(f"--mqtt-version must be 5, 3.1.1 or auto, got {self.mqtt_version!r}")
        if self.station_interval_s <= 0:
            raise ConfigError("--station-interval must be positive")
        if self.start is not None and self.start.tzinfo is None:
            raise ConfigError("the start time needs a UTC offset, e.g. 2025-06-21T00:00:00Z")
        if self.engine not in ("paho", "raw"):
            raise ConfigError(f"--engine must be paho or raw, got {self.engine!r}")
        if self.engine == "raw" and "drop" in self.faults.kinds:
            raise ConfigError(
                "the raw engine cannot cut connections: leave `drop` out of --faults or use paho"
            )
        if self.credentials is not None and self.connections is not None:
            raise ConfigError("per-device credentials need one connection per device: drop --connections")
        if not (self.park or self.stations):
            raise ConfigError("nothing to simulate: enable the park, the stations, or both")


@dataclass
class SimulationStats:
    """What a run did (also printed as the summary)."""

    sent: int = 0  # telemetry messages handed to the client (faulty ones included)
    acked: int = 0  # ... acknowledged by the broker
    failed: int = 0  # ... refused by the broker (PUBACK with a failure code)
    status_messages: int = 0
    reconnects: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    devices: int = 0
    stations: int = 0
    connections: int = 0
    protocol: str = ""
    layout_source: str = ""
    prepare_s: float = 0.0  # building and (fixed-count mode) serialising the messages
    publish_s: float = 0.0  # from the first publish to the last acknowledgement
    first_time: float | None = None  # simulated time of the first and last reading
    last_time: float | None = None

    @property
    def rate(self) -> float:
        """Acknowledged telemetry messages per wall second while publishing."""
        return self.acked / self.publish_s if self.publish_s > 0 else 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        span = ""
        if self.first_time is not None and self.last_time is not None:
            span = f"; simulated {_iso(self.first_time)} .. {_iso(self.last_time)}"
        return (
            f"simulate: {self.sent} telemetry messages sent, {self.acked} acknowledged, "
            f"{self.failed} refused, "
            f"in {self.publish_s:.2f} s ({self.rate:,.0f} msg/s; prepared in {self.prepare_s:.2f} s); "
            f"{self.devices} park devices, {self.stations} stations over {self.connections} connections "
            f"(MQTT {self.protocol}); {self.status_messages} status messages, {self.reconnects} reconnects; "
            f"faults: {faults}{span}"
        )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class _Source:
    """A device or station: its topics, its interval and how it makes a payload."""

    __slots__ = ("entity_id", "interval_s", "kind", "model", "status_topic", "topic")

    def __init__(
        self, kind: str, entity_id: str, interval_s: float, model: DeviceModel | StationModel
    ) -> None:
        self.kind = kind
        self.entity_id = entity_id
        self.interval_s = interval_s
        self.model = model
        leaf = "senml" if kind == "park" else "telemetry"
        self.topic = f"{TOPIC_ROOT}/{kind}/{entity_id}/{leaf}"
        self.status_topic = f"{TOPIC_ROOT}/{kind}/{entity_id}/status"


@dataclass
class Plan:
    """The entities of a run and its simulated start."""

    sources: list[_Source]
    devices: list[ParkDevice]
    stations: list[StationSpec]
    outages: OutageSchedule
    start: float
    capped: bool  # the simulated clock never runs ahead of the wall clock
    layout_source: str


def make_plan(config: SimulationConfig, *, now: float | None = None) -> Plan:
    """Build the devices, stations and outage schedule, and fix the simulated start time."""
    env = Environment(config.seed)
    devices = park_devices(config.devices, seed=config.seed, prefix=config.id_prefix) if config.park else []
    stations: list[StationSpec] = []
    layout_source = ""
    if config.stations:
        stations, layout_source = load_layout(
            config.stations_file,
            limit=config.max_stations,
            seed=config.seed,
            prefix=config.id_prefix,
            grid_path=config.grid_path,
            resolution=config.h3_resolution,
        )
    try:
        outages = OutageSchedule.parse(config.outages, stations, seed=config.seed, prefix=config.id_prefix)
    except ValueError as exc:
        raise ConfigError(f"--outages: {exc}") from None
    sources = [_Source("park", d.device_id, d.interval_s, DeviceModel(d, env, config.seed)) for d in devices]
    sources += [
        _Source("bs", s.station_id, config.station_interval_s, StationModel(s, config.seed)) for s in stations
    ]
    if not sources:
        raise ConfigError("no devices or stations to simulate (--devices 0 and no stations)")
    now = time.time() if now is None else now
    capped = False
    if config.start is not None:
        start = config.start.timestamp()
    elif config.count is not None:
        # fixed-count runs lie wholly in the recent past, so no reading is "in the future"
        per_s = sum(1.0 / s.interval_s for s in sources)
        start = math.floor(now - config.count / per_s - 120.0)
    elif config.speed > 1.0:
        start, capped = math.floor(now - 86400.0), True  # replay the last day, then run live
    else:
        start, capped = math.floor(now), True
    return Plan(sources, devices, stations, outages, float(start), capped, layout_source)


def generate_messages(config: SimulationConfig, plan: Plan | None = None) -> Iterator[Outgoing]:
    """The run's messages in publishing order: deterministic for a seed and a start time.

    Infinite unless `config.count` is set (then exactly `count` publish items, plus any `drop`
    actions). Pure: no network, no wall clock (give `config.start` for repeatable times). A plan's
    device models keep state (energy registers), so pass a given `plan` to one stream only.
    """
    plan = plan or make_plan(config)
    stream = _schedule(config, plan)
    if config.faults.enabled:
        stream = FaultInjector(config.faults, config.seed).apply(stream)
    if config.count is None:
        yield from stream
        return
    published = 0
    for item in stream:
        if published >= config.count:
            return
        if item.action == "publish":
            published += 1
        yield item


def _schedule(config: SimulationConfig, plan: Plan) -> Iterator[Outgoing]:
    rng = random.Random(f"{config.seed}:phases")
    offsets = skew_offsets(len(plan.sources), config.faults, config.seed)
    heap: list[tuple[float, int]] = [
        (plan.start + rng.uniform(0.0, src.interval_s), i) for i, src in enumerate(plan.sources)
    ]
    heapq.heapify(heap)
    outages, start = plan.outages, plan.start
    while True:
        due, i = heapq.heappop(heap)
        src = plan.sources[i]
        clock = due + offsets[i]  # what the device's (possibly skewed) clock says
        model = src.model
        if isinstance(model, DeviceModel):
            payload = _dumps(senml_pack(src.entity_id, round(clock, 3), model.measure(due)))
        else:
            status = outages.status(src.entity_id, due - start)
            report = model.report(due, status)
            if clock != due:
                report["time"] = rfc3339(clock)
            payload = _dumps(report)
        item = Outgoing(src.topic, payload, i, due, src.interval_s, "skew" if offsets[i] else None)
        heapq.heappush(heap, (due + src.interval_s, i))
        yield item


class Simulation:
    """One run against a broker. `run(stop_event)` blocks until done, stopped, or out of time."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.stats = SimulationStats()
        self._plan: Plan | None = None
        self._token = f"{os.getpid():x}{random.getrandbits(16):04x}"

    def _links(self, plan: Plan) -> tuple[list[Link], list[int]]:
        """The connections and, per source, the index of the connection that carries it."""
        n = len(plan.sources)
        pool = self.config.connections
        if pool is None:
            pool = n if n <= PER_DEVICE_LIMIT and self.config.engine == "paho" else DEFAULT_POOL
        pool = min(pool, n)
        if self.config.credentials is not None:
            if pool != n:
                raise ConfigError(
                    f"per-device credentials need one connection per device; {n} entities are more than "
                    f"{PER_DEVICE_LIMIT} (paho engine): simulate fewer with --devices/--max-stations"
                )
            return [self._own_link(src) for src in plan.sources], list(range(n))
        if pool == n:
            links = [
                Link(f"{src.entity_id}-{self._token}"[-64:], src.status_topic, [src.status_topic])
                for src in plan.sources
            ]
            return links, list(range(n))
        links = [Link(f"zhongdu-sim-{self._token}-{k}", None, []) for k in range(pool)]
        owner = [i % pool for i in range(n)]
        for i, src in enumerate(plan.sources):
            links[owner[i]].status_topics.append(src.status_topic)
        return links, owner

    def _own_link(self, src: _Source) -> Link:
        """One entity's connection with its own credential (a device may publish only its topics)."""
        assert self.config.credentials is not None
        username = f"{src.kind}-{src.entity_id}"
        password = self.config.credentials.get(username)
        if password is None:
            raise ConfigError(f"no credential for {username} in the credentials file")
        # A secured broker binds each credential to one client id: its username.
        link = Link(username, src.status_topic, [src.status_topic])
        link.username, link.password = username, password
        return link

    def _network(self, links: list[Link], plan: Plan) -> Network | RawNetwork:
        per_device = len(links) == len(plan.sources)
        inflight = 20 if per_device else 1000
        versions = {"5": [mqtt.MQTTv5], "3.1.1": [mqtt.MQTTv311], "auto": [mqtt.MQTTv5, mqtt.MQTTv311]}
        last_error: BrokerError | None = None
        for protocol in versions[self.config.mqtt_version]:
            # the probe closes before the links connect, so it may borrow the first one's bound id
            probe_id = links[0].username or f"zhongdu-sim-probe-{self._token}"
            probe_link = [Link(probe_id, None, [])]
            probe_link[0].username, probe_link[0].password = links[0].username, links[0].password
            probe: Network | RawNetwork
            if self.config.engine == "raw":
                probe = RawNetwork(self.config.url, probe_link, protocol=int(protocol), statuses=False)
            else:
                probe = Network(self.config.url, probe_link, protocol=protocol, cafile=self.config.cafile)
            try:
                probe.connect_all(timeout=5.0)
            except BrokerError as exc:
                last_error = exc
                probe.close(timeout=1.0)
                if "cannot connect" in str(exc):
                    raise
                continue
            probe.close(timeout=2.0)
            self.stats.protocol = "5" if protocol == mqtt.MQTTv5 else "3.1.1"
            if self.config.engine == "raw":
                return RawNetwork(
                    self.config.url, links, protocol=int(protocol), statuses=self.config.statuses
                )
            return Network(
                self.config.url,
                links,
                protocol=protocol,
                max_inflight=inflight,
                statuses=self.config.statuses,
                cafile=self.config.cafile,
            )
        assert last_error is not None
        raise last_error

    def run(self, stop_event: threading.Event | None = None) -> SimulationStats:
        cfg, stats = self.config, self.stats
        stop = stop_event or threading.Event()
        t0 = time.monotonic()
        plan = self._plan = make_plan(cfg)
        stats.devices, stats.stations, stats.layout_source = (
            len(plan.devices),
            len(plan.stations),
            plan.layout_source,
        )
        messages: Iterator[Outgoing]
        if cfg.count is not None:  # fast path: everything serialised before the clock starts
            messages = iter(list(generate_messages(cfg, plan)))
        else:
            messages = generate_messages(cfg, plan)
        links, owner = self._links(plan)
        network = self._network(links, plan)
        stats.connections = len(links)
        try:
            network.connect_all(timeout=max(30.0, len(links) / 200.0))
            stats.prepare_s = time.monotonic() - t0
            self._publish(messages, network, links, owner, plan, stop)
        finally:
            network.close()
            stats.acked, stats.failed = network.acked, network.failed
            stats.status_messages, stats.reconnects = network.status_sent, network.reconnects
            if cfg.progress is not None:
                print(stats.summary(), file=cfg.progress, flush=True)
        return stats

    def _publish(
        self,
        messages: Iterator[Outgoing],
        network: Network | RawNetwork,
        links: list[Link],
        owner: list[int],
        plan: Plan,
        stop: threading.Event,
    ) -> None:
        cfg, stats = self.config, self.stats
        fixed = cfg.count is not None
        mono0 = time.monotonic()
        wall0 = time.time()
        sim0 = plan.start
        interval = 1.0 / cfg.rate if cfg.rate else 0.0
        next_slot = mono0
        max_pending = 20_000
        last_report = mono0
        deadline = mono0 + cfg.duration_s if cfg.duration_s is not None else math.inf
        for n, item in enumerate(messages):
            if stop.is_set():
                break
            due = next_slot
            if not fixed:  # wait for the simulated clock to reach the reading's time
                sim_due = mono0 + (item.sim_time - sim0) / cfg.speed
                if plan.capped:
                    sim_due = max(sim_due, mono0 + (item.sim_time - wall0))
                due = max(due, sim_due)
            while True:
                now = time.monotonic()
                if now >= due or stop.is_set() or now >= deadline:
                    break
                network.poll(min(due - now, 0.05))
                if cfg.progress is not None and now - last_report >= cfg.progress_interval_s:
                    last_report = now
                    self._progress(network, now - mono0)
            if stop.is_set() or time.monotonic() >= deadline:
                break
            if interval:
                next_slot = max(next_slot + interval, time.monotonic() - 1.0)
            while network.pending(stats.sent) > max_pending:
                network.poll(0.01)
            link = links[owner[item.source]]
            if item.fault is not None:
                stats.faults[item.fault] += 1
            if item.action == "drop":
                network.drop(link)
                continue
            network.publish(link, item.topic, item.payload, cfg.qos)
            stats.sent += 1
            if stats.first_time is None:
                stats.first_time = item.sim_time
            stats.last_time = item.sim_time
            if n % 32 == 0:
                network.poll(0.0)
                now = time.monotonic()
                if cfg.progress is not None and now - last_report >= cfg.progress_interval_s:
                    last_report = now
                    self._progress(network, now - mono0)
        if not network.flush(stats.sent, timeout=60.0 if not stop.is_set() else 5.0):
            log.warning("%d messages still unacknowledged at the end", network.pending(stats.sent))
        stats.publish_s = time.monotonic() - mono0

    def _progress(self, network: Network | RawNetwork, elapsed: float) -> None:
        stats = self.stats
        sim = f", simulated time {_iso(stats.last_time)}" if stats.last_time is not None else ""
        if self.config.count is None and stats.last_time is not None and self._plan is not None:
            target = self._plan.start + elapsed * self.config.speed
            if self._plan.capped:
                target = min(target, time.time())
            if target - stats.last_time > 60.0:  # the rate cap (or the machine) cannot keep up
                sim += f" ({target - stats.last_time:,.0f} s behind; raise --rate or lower --speed)"
        faults = sum(stats.faults.values())
        assert self.config.progress is not None
        print(
            f"simulate: {stats.sent} sent, {network.acked} acknowledged, "
            f"{network.acked / elapsed if elapsed > 0 else 0.0:,.0f} msg/s{sim}"
            + (f", {faults} faults" if faults else ""),
            file=self.config.progress,
            flush=True,
        )


def run_simulation(config: SimulationConfig, stop_event: threading.Event | None = None) -> SimulationStats:
    """Run a simulation until `stop_event` is set, `duration_s` passes or `count` messages are sent.

    The demo runs this in a thread at a gentle rate::

        stop = threading.Event()
        cfg = SimulationConfig(url=broker_url, devices=40, max_stations=300, rate=50.0)
        threading.Thread(target=run_simulation, args=(cfg, stop), daemon=True).start()
    """
    return Simulation(config).run(stop_event)


def demo_config(
    url: str,
    *,
    mqtt5: bool = True,
    devices: int = 42,
    max_stations: int = 400,
    settings: Settings | None = None,
) -> SimulationConfig:
    """The gentle load `zhongdu demo` runs: the park and the sites nearest it, live, with outages.

    About 1 park message and 7 station messages a second (capped at 50/s); the first readings
    arrive within a second or two, and a cluster of sites goes down two minutes in. With
    `settings`, the stations come from the same layout as the API's (ZHONGDU_STATIONS_PATH, else
    generated on ZHONGDU_GRID_PATH or the shipped grid at ZHONGDU_H3_RESOLUTION).
    """
    return SimulationConfig(
        url=url,
        stations_file=settings.stations_path if settings else None,
        grid_path=settings.grid_path if settings else None,
        h3_resolution=settings.h3_resolution if settings else 10,
        devices=devices,
        max_stations=max_stations,
        rate=50.0,
        outages="auto",
        mqtt_version="5" if mqtt5 else "3.1.1",
    )
