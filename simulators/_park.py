"""The Shuinan (水湳) smart park's devices, following the plan's four strands.

The park's plan (資訊交流、智慧電網、再生能源及園區保安) maps onto the ingester's device kinds:
- information exchange / environment monitoring: `air`, `weather`, `noise`;
- smart grid: `meter` (office buildings' supply points), `ev_charger`;
- renewable energy: `solar` inverters;
- park security: `security` nodes (door contact, intrusion detector, camera health).

Each device owns a seeded `random.Random` and a little state (energy registers, rain since the
last report); everything else comes from the shared `Environment`. Metric names, units and the
set of metrics per kind are imported from the ingester's catalogue, so a pack the simulator builds
is by construction one the ingester accepts: values are clipped into the catalogue's ranges.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from zhongdu.ingest import DEVICE_KINDS, METRICS, STRING_VALUES, URN_PREFIX, value_type
from zhongdu.simulators._environment import (
    Environment,
    bump,
    is_weekend,
    local_day,
    local_hour,
    traffic_index,
)
from zhongdu.simulators._solar import clear_sky_ghi_scalar

#: Centre of the Shuinan Economic and Trade Park (former Shuinan airport), Xitun District.
SHUINAN_LON = 120.6445
SHUINAN_LAT = 24.1790


#: Kinds in the order device numbers cycle through them: any 7 consecutive devices cover every kind,
#: and a larger park keeps roughly these proportions.
KIND_CYCLE: tuple[str, ...] = (
    "air", "weather", "noise", "meter", "solar", "ev_charger", "security",
    "meter", "air", "ev_charger", "security", "noise", "solar", "meter",
    "air", "security", "ev_charger", "meter", "noise", "security",
)  # fmt: skip

PERFORMANCE_RATIO = 0.8  # PV array to AC: inverter, wiring, soiling and heat losses

#: Default reporting interval per kind (simulated seconds).
INTERVAL_S: dict[str, float] = {
    "air": 60.0,
    "weather": 60.0,
    "noise": 30.0,
    "meter": 30.0,
    "solar": 60.0,
    "ev_charger": 30.0,
    "security": 60.0,
}

Value = float | bool | str
#: (metric, value, time offset in seconds relative to the pack's base time)
Record = tuple[str, Value, float]


@dataclass(frozen=True)
class ParkDevice:
    """A device's identity and fixed parameters (what a registry would hold)."""

    device_id: str
    kind: str
    name: str
    lon: float
    lat: float
    interval_s: float
    index: int


def park_devices(n: int, *, seed: int = 2015, prefix: str = "") -> list[ParkDevice]:
    """The park's first `n` devices: ids like `shuinan-air-001`, spread over the park (~1 km across)."""
    if n < 0:
        raise ValueError(f"device count must be >= 0, got {n}")
    rng = random.Random(f"{seed}:layout")
    counters: dict[str, int] = {}
    out = []
    for i in range(n):
        kind = KIND_CYCLE[i % len(KIND_CYCLE)]
        counters[kind] = counters.get(kind, 0) + 1
        number = counters[kind]
        device_id = f"{prefix}shuinan-{kind.replace('_', '-')}-{number:03d}"
        radius = 650.0 * math.sqrt(rng.random())
        angle = rng.uniform(0, 2 * math.pi)
        lat = SHUINAN_LAT + radius * math.cos(angle) / 111_320.0
        lon = SHUINAN_LON + radius * math.sin(angle) / (111_320.0 * math.cos(math.radians(SHUINAN_LAT)))
        name = f"Shuinan {kind.replace('_', ' ')} {number}"
        out.append(ParkDevice(device_id, kind, name, round(lon, 6), round(lat, 6), INTERVAL_S[kind], i))
    return out


@dataclass
class DeviceModel:
    """A device's behaviour: `measure(t)` returns the records of its report at UTC time `t`."""

    device: ParkDevice
    env: Environment
    seed: int
    rng: random.Random = field(init=False)
    last_t: float | None = field(default=None, init=False)
    energy_wh: float = field(default=0.0, init=False)
    params: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:device:{self.device.device_id}")
        self._measure: Callable[[float, float], list[Record]] = getattr(self, f"_{self.device.kind}")
        r = self.rng
        self.params = {
            "offset": r.gauss(0.0, 1.0),  # sensor's own bias (in its own scale)
            "scale": r.uniform(0.85, 1.2),
            "peak_w": r.choice((60e3, 120e3, 250e3, 400e3)),
            "capacity_w": r.choice((30e3, 50e3, 99e3, 200e3)),
            "rated_w": r.choice((7.4e3, 7.4e3, 22e3, 50e3)),
            "battery": r.uniform(55.0, 100.0),
            "intrusions": float(r.randint(0, 40)),
        }
        self.energy_wh = round(r.uniform(1e5, 5e7), 1)

    def measure(self, t: float) -> list[Record]:
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        records = self._measure(t, dt)
        self.last_t = t
        return records

    # -- environment monitoring --------------------------------------------------------------------
    def _air(self, t: float, dt: float) -> list[Record]:
        env, r, p = self.env, self.rng, self.params
        pm25 = env.pm25(t) * p["scale"] + 0.8 * p["offset"] + r.gauss(0, 1.2)
        pm25 = max(1.0, pm25)
        pm10 = pm25 * (1.65 + 0.1 * env.smooth(t, "coarse")) + r.gauss(0, 2.0)
        pm1 = pm25 * 0.72 + r.gauss(0, 0.6)
        no2 = env.no2_ppb(t) * 1.88 * p["scale"] + r.gauss(0, 2.0)  # ppb -> ug/m3 at 25 °C
        o3 = env.o3_ppb(t) * 1.96 + r.gauss(0, 3.0)
        co = 0.25 + 0.45 * env.no2_ppb(t) / 30.0 + r.gauss(0, 0.03)
        co2 = 425.0 + 30.0 * env.no2_ppb(t) / 30.0 + 12.0 * bump(local_hour(t), 4.0, 3.0) + r.gauss(0, 4.0)
        return self._records(
            t,
            pm1=round(max(0.5, pm1), 1),
            pm2_5=round(pm25, 1),
            pm10=round(max(pm25, pm10), 1),
            o3=round(max(0.0, o3), 1),
            no2=round(max(0.0, no2), 1),
            co=round(max(0.05, co), 2),
            co2=round(co2, 0),
            temperature=round(env.temperature(t) + 0.3 * p["offset"] + r.gauss(0, 0.15), 2),
            humidity=round(env.humidity(t) + r.gauss(0, 1.0), 1),
        )

    def _weather(self, t: float, dt: float) -> list[Record]:
        env, r = self.env, self.rng
        speed = env.wind_speed(t) * self.params["scale"]
        ghi = clear_sky_ghi_scalar(env.sun_elevation(t)) * env.cloud_factor(t)
        return self._records(
            t,
            temperature=round(env.temperature(t) + r.gauss(0, 0.1), 2),
            humidity=round(env.humidity(t) + r.gauss(0, 0.8), 1),
            pressure=round(env.pressure(t) + r.gauss(0, 0.1), 1),
            wind_speed=round(speed + abs(r.gauss(0, 0.3)), 1),
            wind_gust=round(speed * r.uniform(1.3, 1.9) + 0.5, 1),
            wind_direction=round((env.wind_direction(t) + r.gauss(0, 8.0)) % 360.0, 0),
            rain=round(env.rain_between(t - dt, t), 2),
            rain_rate=round(env.rain_rate(t), 1),
            irradiance=round(ghi * (1.0 + r.gauss(0, 0.01)), 0),
        )

    def _noise(self, t: float, dt: float) -> list[Record]:
        r, p = self.rng, self.params
        traffic = traffic_index(t)
        laeq = (
            44.0 + 22.0 * traffic + 2.0 * p["offset"] + r.gauss(0, 1.5) + 1.5 * self.env.rain_rate(t) ** 0.3
        )
        lmax = laeq + r.uniform(5.0, 18.0)
        return self._records(t, noise_laeq=round(laeq, 1), noise_lmax=round(lmax, 1))

    # -- smart grid --------------------------------------------------------------------------------
    def _meter(self, t: float, dt: float) -> list[Record]:
        env, r, p = self.env, self.rng, self.params
        load = _office_load(t) + 0.02 * max(0.0, env.temperature(t) - 24.0) + r.gauss(0, 0.02)
        power = p["peak_w"] * min(1.0, max(0.08, load))
        pf = min(0.99, max(0.75, 0.93 - 0.08 * (1.0 - load) + r.gauss(0, 0.01)))
        voltage = 220.0 + 2.5 * env.smooth(t, "grid-v") - 3.0 * load + r.gauss(0, 0.4)
        current = power / (3.0 * voltage * pf)  # per phase, three-phase supply at 220 V phase voltage
        reactive = power * math.tan(math.acos(pf))
        self.energy_wh += power * dt / 3600.0
        return self._records(
            t,
            power_active=round(power, 0),
            power_reactive=round(reactive, 0),
            energy=round(self.energy_wh, 1),
            voltage=round(voltage, 1),
            current=round(current, 1),
            power_factor=round(pf, 3),
            frequency=round(60.0 + 0.02 * self.env.smooth(t, "grid-f") + r.gauss(0, 0.005), 3),
        )

    def _ev_charger(self, t: float, dt: float) -> list[Record]:
        rated = self.params["rated_w"]
        session = self._ev_session(t)
        if session is None:
            status, plugged, power = "available", False, 0.0
        else:
            start, end = session
            progress = (t - start) / (end - start)
            if progress > 0.93:
                status, power = "finishing", 0.0
            else:
                taper = 1.0 if progress < 0.75 else 1.0 - 2.2 * (progress - 0.75)
                status, power = "charging", rated * taper * (1.0 + self.rng.gauss(0, 0.01))
            plugged = True
        if 3 * 3600.0 < (t + 8 * 3600) % 86400.0 < 3 * 3600.0 + 120.0 and self.rng.random() < 0.02:
            status = "unavailable"  # nightly firmware check now and then
        self.energy_wh += power * dt / 3600.0
        return self._records(
            t,
            power=round(max(0.0, power), 0),
            energy=round(self.energy_wh, 1),
            charger_status=status,
            plugged=plugged,
        )

    def _ev_session(self, t: float) -> tuple[float, float] | None:
        """The charging session covering `t`, if any (per-day seeded schedule, commuter peaks)."""
        for day in (local_day(t) - 1, local_day(t)):
            for start, end in self._ev_day(day):
                if start <= t < end:
                    return start, end
        return None

    def _ev_day(self, day: int) -> list[tuple[float, float]]:
        cache: dict[int, list[tuple[float, float]]] = self.__dict__.setdefault("_ev_cache", {})
        if day in cache:
            return cache[day]
        r = random.Random(f"{self.seed}:ev:{self.device.device_id}:{day}")
        midnight = day * 86400.0 - 8 * 3600.0
        fast = self.params["rated_w"] >= 50e3
        weekend = is_weekend(midnight + 43200.0)
        n = r.randint(1, 3) if weekend else r.randint(3, 7 if fast else 4)
        peaks = (8.7, 9.2, 12.5, 17.8, 19.5) if not weekend else (10.5, 14.0, 16.5)
        arrivals = sorted(midnight + (r.choice(peaks) + r.gauss(0, 1.0)) % 24.0 * 3600.0 for _ in range(n))
        sessions: list[tuple[float, float]] = []
        for arrival in arrivals:  # a driver who finds the charger busy goes elsewhere
            if sessions and arrival < sessions[-1][1] + 300.0:
                continue
            minutes = r.uniform(20, 55) if fast else r.uniform(60, 240)
            sessions.append((arrival, arrival + minutes * 60.0))
        cache[day] = sessions
        return sessions

    # -- renewable energy --------------------------------------------------------------------------
    def _solar(self, t: float, dt: float) -> list[Record]:
        env, r, p = self.env, self.rng, self.params
        cloud = env.cloud_factor(t) * (1.0 + r.gauss(0, 0.02))
        ghi = clear_sky_ghi_scalar(env.sun_elevation(t)) * max(0.0, min(1.0, cloud))
        power = min(p["capacity_w"], p["capacity_w"] * ghi / 1000.0 * PERFORMANCE_RATIO)
        module_t = env.temperature(t) + 0.03 * ghi + r.gauss(0, 0.3)  # NOCT-style heating
        self.energy_wh += power * dt / 3600.0
        return self._records(
            t,
            power=round(power, 0),
            energy=round(self.energy_wh, 1),
            irradiance=round(ghi, 0),
            module_temperature=round(module_t, 1),
        )

    # -- park security -----------------------------------------------------------------------------
    def _security(self, t: float, dt: float) -> list[Record]:
        r, p = self.rng, self.params
        h = local_hour(t)
        working = 0.0 if is_weekend(t) else bump(h, 9.0, 1.5) + bump(h, 13.0, 1.0) + bump(h, 18.0, 1.5)
        records: list[Record] = []
        # door openings since the last report: Poisson, busy at shift changes, rare at night
        opens = _poisson(r, dt / 3600.0 * (0.3 + 12.0 * working))
        for _ in range(opens):
            at = -r.uniform(0.0, dt)
            records.append(("door_open", True, round(at, 1)))
            records.append(("door_open", False, round(min(0.0, at + r.uniform(4.0, 40.0)), 1)))
        # intrusion alarms: rare (about one a week per node), mostly at night
        night = 1.0 - bump(h, 13.0, 5.0)
        intruded = _poisson(r, dt / 86400.0 * 0.15 * (0.3 + night)) > 0
        if intruded:
            p["intrusions"] += 1
            records.append(("intrusion", True, round(-r.uniform(0.0, dt), 1)))
        # camera health: an outage now and then (about one a day), lasting minutes
        camera_ok = not self._camera_down(t)
        p["battery"] = p["battery"] - dt / 86400.0 * 0.4
        if p["battery"] < 15.0:
            p["battery"] = 100.0  # maintenance swapped it
        records.sort(key=lambda rec: rec[2])
        events = [(m, v, o) for m, v, o in records if o != 0.0]
        return events + self._records(
            t,
            door_open=any(v for m, v, o in records if m == "door_open" and o == 0.0),
            intrusion=intruded,
            intrusion_count=p["intrusions"],
            camera_online=camera_ok,
            battery=round(p["battery"], 1),
        )

    def _camera_down(self, t: float) -> bool:
        day = local_day(t)
        r = random.Random(f"{self.seed}:camera:{self.device.device_id}:{day}")
        if r.random() < 0.6:
            start = day * 86400.0 - 8 * 3600.0 + r.uniform(0, 86400.0)
            return start <= t < start + r.uniform(120.0, 1800.0)
        return False

    # -- helpers -----------------------------------------------------------------------------------
    def _records(self, t: float, **values: Value) -> list[Record]:
        out: list[Record] = []
        for metric, numeric, lo, hi in _kind_table(self.device.kind):
            value = values[metric]
            if numeric:
                value = min(hi, max(lo, float(value)))
            out.append((metric, value, 0.0))
        return out


@functools.cache
def _kind_table(kind: str) -> tuple[tuple[str, bool, float, float], ...]:
    """(metric, numeric, min, max) for each metric of a device kind, from the ingester's catalogue."""
    rows: list[tuple[str, bool, float, float]] = []
    for metric in DEVICE_KINDS[kind]:
        spec = METRICS[metric]
        numeric = value_type(metric) == "v"
        lo = float(spec.min) if numeric and spec.min is not None else 0.0
        hi = float(spec.max) if numeric and spec.max is not None else 0.0
        rows.append((metric, numeric, lo, hi))
    return tuple(rows)


@functools.cache
def _pack_layout(metrics: tuple[str, ...]) -> tuple[str | None, tuple[tuple[str | None, str], ...]]:
    """For a sequence of metrics: the base unit (when every record has a unit and one repeats), and per
    record the unit to write (None when the base unit covers it) and the SenML value label."""
    units = [METRICS[m].unit for m in metrics]
    base_unit: str | None = None
    if units and all(u is not None for u in units):
        counts: dict[str, int] = {}
        for u in units:
            assert u is not None
            counts[u] = counts.get(u, 0) + 1
        best = max(counts, key=lambda u: counts[u])
        base_unit = best if counts[best] > 1 else None
    per_record = tuple(
        (u if u != base_unit else None, value_type(m)) for m, u in zip(metrics, units, strict=True)
    )
    return base_unit, per_record


def _office_load(t: float) -> float:
    """Share of an office building's peak demand: base load at night, 08-18 plateau, lunch dip."""
    h = local_hour(t)
    if is_weekend(t):
        return 0.28 + 0.1 * bump(h, 14.0, 3.0)
    day = 1.0 / (1.0 + math.exp(-(h - 8.0) * 2.2)) - 1.0 / (1.0 + math.exp(-(h - 18.5) * 1.6))
    return 0.3 + 0.62 * day - 0.1 * bump(h, 12.5, 0.5)


def _poisson(r: random.Random, lam: float) -> int:
    """A Poisson draw by inversion (lam is small here)."""
    if lam <= 0.0:
        return 0
    n, p = 0, math.exp(-lam)
    cum, u = p, r.random()
    while u > cum and n < 50:
        n += 1
        p *= lam / n
        cum += p
    return n


def senml_pack(device_id: str, t: float, records: list[Record]) -> list[dict[str, object]]:
    """An RFC 8428 pack: base name, base time and, when every record has one unit, a base unit.

    >>> senml_pack("air-001", 1767225600.0, [("pm2_5", 12.5, 0.0), ("pm10", 20.1, 0.0)])[0]
    {'bn': 'urn:dev:zhongdu:air-001:', 'bt': 1767225600.0, 'bu': 'ug/m3', 'n': 'pm2_5', 'v': 12.5}
    """
    base_unit, layout = _pack_layout(tuple(m for m, _, _ in records))
    pack: list[dict[str, object]] = []
    for i, ((metric, value, offset), (unit, label)) in enumerate(zip(records, layout, strict=True)):
        rec: dict[str, object] = {}
        if i == 0:
            rec["bn"] = f"{URN_PREFIX}{device_id}:"
            rec["bt"] = round(t, 3)
            if base_unit is not None:
                rec["bu"] = base_unit
        rec["n"] = metric
        if unit is not None:
            rec["u"] = unit
        if offset:
            rec["t"] = offset
        if label == "vb":
            rec["vb"] = bool(value)
        elif label == "vs":
            assert isinstance(value, str) and value in STRING_VALUES.get(metric, {value})
            rec["vs"] = value
        else:
            rec["v"] = value
        pack.append(rec)
    return pack
