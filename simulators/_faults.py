"""Faults on demand, so the ingester's guarantees can be exercised (and none when not asked).

`--fault-rate p` is the share of telemetry messages that get one fault, its kind drawn uniformly
among the kinds asked for:
- `drop`: the device's connection is cut abruptly before the message (no DISCONNECT, so the broker
  publishes its will); the client reconnects and the message goes out after, from paho's queue;
- `late`: the message is held back and published 5-15 reporting intervals later, with its
  original reading time;
- `out_of_order`: the message is held until the same device's next message has gone, so the
  device's readings arrive swapped;
- `duplicate`: the same payload is published twice;
- `malformed`: the payload is corrupted so the ingester must reject it (bad JSON, not UTF-8,
  wrong shape, unknown metric, value out of its physical range, bad unit);
- `skew` is a property of a device rather than of a message: a share p of the devices (at least
  one) have clocks off by 1-15 minutes either way (beyond 5 minutes ahead, the ingester rejects
  them as future readings).

Every faulted message carries its kind in `Outgoing.fault`, and the run's summary counts them.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from zhongdu.errors import ConfigError
from zhongdu.ingest import METRICS

FAULT_KINDS: tuple[str, ...] = ("drop", "late", "out_of_order", "duplicate", "malformed", "skew")
MESSAGE_FAULTS: tuple[str, ...] = ("drop", "late", "out_of_order", "duplicate", "malformed")


@dataclass(slots=True)
class Outgoing:
    """One thing for the publisher to do: publish `payload` on `topic`, or cut `source`'s link."""

    topic: str
    payload: bytes
    source: int  # index of the device or station that sends it
    sim_time: float  # the reading's true time (the schedule), in UTC epoch seconds
    interval_s: float = 60.0
    fault: str | None = None
    action: str = "publish"  # or "drop"


@dataclass(frozen=True)
class FaultConfig:
    """Which faults, and how often. `FaultConfig()` means none."""

    kinds: frozenset[str] = frozenset()
    rate: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted(self.kinds - set(FAULT_KINDS))
        if unknown:
            raise ConfigError(
                f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}"
            )
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.kinds and self.rate == 0.0:
            raise ConfigError("faults were asked for with --fault-rate 0; give a rate such as 0.05")

    @classmethod
    def parse(cls, text: str | None, rate: float | None) -> FaultConfig:
        """From the CLI's `--faults drop,late,...` and `--fault-rate p` (default 0.05 with faults)."""
        kinds = frozenset(k.strip() for k in (text or "").split(",") if k.strip())
        if "all" in kinds:
            kinds = frozenset(FAULT_KINDS)
        if not kinds:
            if rate:
                raise ConfigError("--fault-rate needs --faults (e.g. --faults duplicate,malformed)")
            return cls()
        return cls(kinds, 0.05 if rate is None else rate)

    @property
    def enabled(self) -> bool:
        return bool(self.kinds) and self.rate > 0.0


def skew_offsets(n_sources: int, config: FaultConfig, seed: int) -> list[float]:
    """Per-source clock offsets (seconds): zero unless `skew` is asked for."""
    offsets = [0.0] * n_sources
    if "skew" not in config.kinds or n_sources == 0:
        return offsets
    rng = random.Random(f"{seed}:skew")
    k = max(1, round(config.rate * n_sources))
    for index in rng.sample(range(n_sources), min(k, n_sources)):
        offsets[index] = rng.choice((-1.0, 1.0)) * rng.uniform(60.0, 900.0)
    return offsets


def corrupt(payload: bytes, rng: random.Random) -> bytes:
    """A variant of a valid payload that the ingester must reject (never a valid one)."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return b"\xff" + payload
    choice = rng.randrange(6)
    if choice == 0:  # cut in the middle: not JSON
        return payload[: max(1, len(payload) // 2)]
    if choice == 1:  # not UTF-8
        return b"\xfe\xff" + payload[:20]
    if choice == 2:  # valid JSON, wrong shape
        return json.dumps({"oops": obj} if isinstance(obj, list) else [obj]).encode()
    if isinstance(obj, list) and obj:  # SenML pack
        numeric = [i for i, r in enumerate(obj) if isinstance(r, dict) and "v" in r]
        if choice == 3 or not numeric:
            obj[0]["n"] = "not_a_metric_" + str(rng.randrange(1000))
        elif choice == 4:
            i = rng.choice(numeric)
            spec = METRICS.get(str(obj[i].get("n", "")))
            high = spec.max if spec is not None and spec.max is not None else 1e6
            obj[i]["v"] = abs(high) * 10.0 + 1.0  # outside the metric's physical range
        else:
            i = rng.choice(numeric)
            obj[i]["u"] = "furlong"  # a unit nobody registered
        return json.dumps(obj).encode()
    if isinstance(obj, dict):  # base-station telemetry
        if choice == 3:
            obj["status"] = "sideways"
        elif choice == 4 and obj.get("sectors"):
            obj["sectors"][0]["prb_utilisation"] = 1.0 + rng.uniform(0.1, 5.0)
        else:
            obj["time"] = "yesterday"
        return json.dumps(obj).encode()
    return b"\x00" + payload


@dataclass
class FaultInjector:
    """Turns a stream of well-formed messages into a faulty one (deterministic for a seed)."""

    config: FaultConfig
    seed: int
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:faults")

    def apply(self, stream: Iterable[Outgoing]) -> Iterator[Outgoing]:
        kinds = [k for k in MESSAGE_FAULTS if k in self.config.kinds]
        if not kinds:
            yield from stream
            return
        rng, rate = self._rng, self.config.rate
        late: list[tuple[float, int, Outgoing]] = []
        swapped: dict[int, Outgoing] = {}
        seq = 0
        for item in stream:
            while late and late[0][0] <= item.sim_time:
                yield heapq.heappop(late)[2]
            kind = rng.choice(kinds) if rng.random() < rate else None
            if kind == "out_of_order" and item.source in swapped:
                kind = None  # one swap at a time per device
            # a held reading is released only after a newer one of the same device has gone out
            held = swapped.pop(item.source, None) if kind != "late" else None
            if kind == "drop":
                yield Outgoing(item.topic, b"", item.source, item.sim_time, item.interval_s, "drop", "drop")
                yield item
            elif kind == "late":
                seq += 1
                release = item.sim_time + rng.uniform(5.0, 15.0) * item.interval_s
                heapq.heappush(late, (release, seq, replace(item, fault="late")))
            elif kind == "out_of_order":
                swapped[item.source] = replace(item, fault="out_of_order")
            elif kind == "duplicate":
                yield item
                yield replace(item, fault="duplicate")
            elif kind == "malformed":
                yield replace(item, payload=corrupt(item.payload, rng), fault="malformed")
            else:
                yield item
            if held is not None:
                yield held
        yield from swapped.values()
        while late:
            yield heapq.heappop(late)[2]
