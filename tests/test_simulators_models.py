"""The simulators' models without a broker: ranges, daily cycles, determinism, faults, layouts."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongdu.errors import ConfigError, ZhongduError
from zhongdu.ingest import DEVICE_KINDS, METRICS, Accepted, Rejected, parse_message
from zhongdu.simulators import (
    FAULT_KINDS,
    KIND_CYCLE,
    DeviceModel,
    Environment,
    FaultConfig,
    LayoutError,
    OutageSchedule,
    SimulationConfig,
    StationModel,
    generate_messages,
    inverter_power_w,
    load_layout,
    make_plan,
    park_devices,
    read_station_csv,
    senml_pack,
    solar_elevation_deg,
    synthetic_layout,
)
from zhongdu.simulators._environment import local_hour

# 2026 is inside the ingester's 400-day window for the whole test session.
T0 = datetime(2026, 6, 21, tzinfo=UTC).timestamp()
YEAR_2026 = st.floats(min_value=datetime(2026, 1, 1, tzinfo=UTC).timestamp(), max_value=T0 + 150 * 86400)


def _accepts(topic: str, payload: bytes, t: float) -> Accepted | Rejected:
    return parse_message(topic, payload, received_at=datetime.fromtimestamp(t + 1.0, UTC))


# -- sun ------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(t=YEAR_2026)
def test_solar_power_is_zero_whenever_the_sun_is_down(t: float) -> None:
    elevation = float(solar_elevation_deg(t))
    power = float(inverter_power_w(t, 100_000.0))
    assert 0.0 <= power <= 100_000.0
    if elevation <= 0.0:
        assert power == 0.0
    assert -90.0 <= elevation <= 90.0


def test_sun_over_taichung_rises_and_sets_at_the_right_times() -> None:
    # Taichung, 21 June 2026: sunrise ~05:05, sunset ~18:45 local; noon sun almost overhead
    day = datetime(2026, 6, 20, 16, 0, tzinfo=UTC).timestamp()  # local midnight
    minutes = np.arange(0, 1440, 1.0)
    elev = solar_elevation_deg(day + minutes * 60)
    up = minutes[elev > 0]
    assert 4 * 60 + 50 <= up[0] <= 5 * 60 + 20
    assert 18 * 60 + 30 <= up[-1] <= 19 * 60
    assert elev.max() > 88.0
    # winter solstice: noon elevation = 90 - 24.17 - 23.44 ≈ 42.4°
    winter = datetime(2026, 12, 21, 4, 0, tzinfo=UTC).timestamp()
    assert abs(float(np.max(solar_elevation_deg(winter + np.arange(-3600, 3600, 60)))) - 42.4) < 1.0


@settings(max_examples=40, deadline=None)
@given(t=YEAR_2026, seed=st.integers(0, 10_000))
def test_solar_devices_make_nothing_at_night(t: float, seed: int) -> None:
    env = Environment(seed)
    model = DeviceModel(next(d for d in park_devices(7, seed=seed) if d.kind == "solar"), env, seed)
    records = dict((m, v) for m, v, _ in model.measure(t))
    if float(solar_elevation_deg(math.floor(t / 10) * 10)) <= 0.0:
        assert records["power"] == 0.0
        assert records["irradiance"] == 0.0


# -- every kind, every value: within the catalogue, accepted by the parser -------------------------


@settings(max_examples=40, deadline=None)
@given(t=YEAR_2026, seed=st.integers(0, 2**31), step=st.sampled_from([10.0, 60.0, 900.0]))
def test_every_pack_is_within_the_catalogue_and_accepted(t: float, seed: int, step: float) -> None:
    env = Environment(seed)
    for device in park_devices(len(KIND_CYCLE), seed=seed):
        model = DeviceModel(device, env, seed)
        for k in range(3):
            when = t + k * step
            records = model.measure(when)
            names = [m for m, _, off in records if off == 0.0]
            assert names == list(DEVICE_KINDS[device.kind])
            for metric, value, _ in records:
                spec = METRICS[metric]
                if spec.min is not None and spec.max is not None:
                    assert spec.min <= float(value) <= spec.max, (metric, value)
            payload = json.dumps(senml_pack(device.device_id, when, records)).encode()
            result = _accepts(f"zhongdu/v1/park/{device.device_id}/senml", payload, when)
            assert isinstance(result, Accepted), (result, payload)


@settings(max_examples=30, deadline=None)
@given(t=YEAR_2026, seed=st.integers(0, 2**31), status=st.sampled_from(["up", "degraded", "down"]))
def test_station_reports_follow_the_contract(t: float, seed: int, status: str) -> None:
    for spec in synthetic_layout(5, seed=seed):
        report = StationModel(spec, seed).report(t, status)
        assert report["status"] == status
        assert str(report["time"]).endswith("Z")
        for sector in report["sectors"]:  # type: ignore[attr-defined]
            assert 0.0 <= sector["prb_utilisation"] <= 1.0
            assert isinstance(sector["active_users"], int) and sector["active_users"] >= 0
            if status == "down":
                assert sector["prb_utilisation"] == 0.0 and sector["active_users"] == 0
        result = _accepts(f"zhongdu/v1/bs/{spec.station_id}/telemetry", json.dumps(report).encode(), t)
        assert isinstance(result, Accepted), result


# -- realism: daily and seasonal cycles --------------------------------------------------------------


def _series(fn: object, start: float, days: int, step: float = 1800.0) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(start, start + days * 86400.0, step)
    return times, np.array([fn(float(t)) for t in times])  # type: ignore[operator]


def test_pm25_is_taiwan_typical_and_peaks_at_rush_hour() -> None:
    env = Environment(7)
    for month in (1, 7):
        start = datetime(2026, month, 5, tzinfo=UTC).timestamp()
        times, pm = _series(env.pm25, start, 14)
        assert 8.0 <= pm.mean() <= 38.0
        hours = np.array([local_hour(float(t)) for t in times])
        rush = pm[(np.abs(hours - 8.0) < 1.0) | (np.abs(hours - 18.0) < 1.0)].mean()
        small_hours = pm[np.abs(hours - 4.0) < 1.0].mean()
        assert rush > small_hours
    winter = _series(env.pm25, datetime(2026, 1, 5, tzinfo=UTC).timestamp(), 14)[1].mean()
    summer = _series(env.pm25, datetime(2026, 7, 5, tzinfo=UTC).timestamp(), 14)[1].mean()
    assert winter > summer * 1.5


def test_temperature_cycle_and_humidity_anticorrelated() -> None:
    env = Environment(3)
    start = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    times, temp = _series(env.temperature, start, 10, 900.0)
    _, rh = _series(env.humidity, start, 10, 900.0)
    assert 18.0 < temp.mean() < 28.0  # Taichung in April: ~23 °C
    hours = np.array([local_hour(float(t)) for t in times])
    assert temp[np.abs(hours - 14.0) < 1].mean() > temp[np.abs(hours - 5.5) < 1].mean() + 4.0
    assert np.corrcoef(temp, rh)[0, 1] < -0.5
    for month, lo, hi in ((1, 12.0, 21.0), (7, 25.0, 32.0)):
        mean = _series(env.temperature, datetime(2026, month, 1, tzinfo=UTC).timestamp(), 20)[1].mean()
        assert lo < mean < hi


def test_it_rains_sometimes_and_more_in_summer() -> None:
    env = Environment(11)

    def rainy_hours(month: int) -> int:
        return int(
            (
                _series(env.rain_rate, datetime(2026, month, 1, tzinfo=UTC).timestamp(), 28, 3600.0)[1] > 0
            ).sum()
        )

    assert rainy_hours(6) > rainy_hours(11)
    assert rainy_hours(6) > 0


def test_noise_meters_and_chargers_follow_the_day() -> None:
    seed = 5
    env = Environment(seed)
    devices = {d.kind: d for d in park_devices(7, seed=seed)}
    monday = datetime(2026, 6, 22, tzinfo=UTC).timestamp() - 8 * 3600  # local midnight, a Monday

    def mean_at(kind: str, metric: str, hour: float) -> float:
        values = []
        for day in range(5):
            model = DeviceModel(devices[kind], env, seed)
            t = monday + day * 86400 + hour * 3600
            values.append(float(dict((m, v) for m, v, o in model.measure(t) if o == 0.0)[metric]))
        return statistics.mean(values)

    assert mean_at("noise", "noise_laeq", 8.0) > mean_at("noise", "noise_laeq", 3.0) + 8.0
    assert mean_at("meter", "power_active", 11.0) > 1.8 * mean_at("meter", "power_active", 3.0)
    # EV chargers: sessions happen on weekdays, and energy only grows
    model = DeviceModel(devices["ev_charger"], env, seed)
    statuses, energy = Counter(), []
    for k in range(24 * 12 * 3):
        rec = dict((m, v) for m, v, _ in model.measure(monday + k * 300.0))
        statuses[rec["charger_status"]] += 1
        energy.append(rec["energy"])
    assert statuses["charging"] > 0 and statuses["available"] > 0
    assert all(b >= a for a, b in itertools.pairwise(energy))


def test_security_events_are_rare_and_time_stamped_within_the_interval() -> None:
    seed = 9
    env = Environment(seed)
    device = next(d for d in park_devices(7, seed=seed) if d.kind == "security")
    model = DeviceModel(device, env, seed)
    events = Counter()
    for k in range(7 * 24 * 60):  # a week of one-minute reports
        t = T0 + k * 60.0
        records = model.measure(t)
        for metric, value, offset in records:
            assert -60.0 <= offset <= 0.0
            if offset and value is True:
                events[metric] += 1
        payload = json.dumps(senml_pack(device.device_id, t, records)).encode()
        if k % 500 == 0:
            assert isinstance(_accepts(f"zhongdu/v1/park/{device.device_id}/senml", payload, t), Accepted)
    assert events["door_open"] > 20  # doors open every working day
    assert events["intrusion"] < 10  # alarms are rare


# -- determinism and fixed count ----------------------------------------------------------------------


def _config(**kw: object) -> SimulationConfig:
    base: dict[str, object] = {
        "devices": 21,
        "stations": True,
        "start": datetime.fromtimestamp(T0, UTC),
        "count": 600,
        "stations_file": None,
    }
    base.update(kw)
    return SimulationConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def three_stations(tmp_path: Path) -> Path:
    path = tmp_path / "stations.csv"
    rows = [
        "station_id,sector_id,lon,lat,height_m,eirp_dbm,frequency_mhz,bandwidth_mhz,azimuth_deg,beamwidth_deg,status"
    ]
    for s in range(3):
        for sector, az in enumerate((0, 120, 240), start=1):
            rows.append(f"TC-{s:04d},{sector},120.64{s},24.17{s},30,60,1800,20,{az},65,up")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_seeded_streams_repeat_exactly_and_differ_by_seed(three_stations: Path) -> None:
    a = [(m.topic, m.payload) for m in generate_messages(_config(stations_file=three_stations))]
    b = [(m.topic, m.payload) for m in generate_messages(_config(stations_file=three_stations))]
    c = [(m.topic, m.payload) for m in generate_messages(_config(stations_file=three_stations, seed=99))]
    assert a == b
    assert a != c
    assert len(a) == 600
    topics = {t.split("/")[2] for t, _ in a}
    assert topics == {"park", "bs"}


def test_fixed_count_yields_exactly_n_publishes_even_with_faults(three_stations: Path) -> None:
    faults = FaultConfig(frozenset(FAULT_KINDS), 0.2)
    items = list(generate_messages(_config(stations_file=three_stations, count=777, faults=faults)))
    assert sum(1 for m in items if m.action == "publish") == 777
    assert any(m.action == "drop" for m in items)


def test_without_faults_every_message_is_accepted_and_in_time_order(three_stations: Path) -> None:
    items = list(generate_messages(_config(stations_file=three_stations, count=2000)))
    assert all(m.fault is None for m in items)
    times = [m.sim_time for m in items]
    assert times == sorted(times)
    for m in items:
        result = _accepts(m.topic, m.payload, m.sim_time)
        assert isinstance(result, Accepted), (result, m.payload)


def test_every_fault_kind_appears_when_asked_and_is_what_it_says(three_stations: Path) -> None:
    faults = FaultConfig(frozenset(FAULT_KINDS), 0.15)
    items = list(generate_messages(_config(stations_file=three_stations, count=4000, faults=faults)))
    kinds = Counter(m.fault for m in items if m.fault)
    assert set(kinds) == set(FAULT_KINDS), kinds
    originals = {(m.topic, m.sim_time): m.payload for m in items if m.fault not in ("duplicate", "malformed")}
    latest: dict[int, float] = {}
    for m in items:
        if m.action == "drop":
            continue
        result = _accepts(m.topic, m.payload, max(latest.values(), default=m.sim_time))
        if m.fault == "malformed":
            assert isinstance(result, Rejected)
        elif m.fault == "duplicate":
            assert originals[(m.topic, m.sim_time)] == m.payload
        elif m.fault in ("late", "out_of_order"):
            assert m.sim_time < latest[m.source]  # arrives after a newer reading of the same device
        elif m.fault == "skew":
            body = json.loads(m.payload)
            stamped = (
                body[0]["bt"] if isinstance(body, list) else datetime.fromisoformat(body["time"]).timestamp()
            )
            assert 60.0 <= abs(stamped - m.sim_time) <= 900.0
        latest[m.source] = max(latest.get(m.source, -math.inf), m.sim_time)


def test_fault_config_validates() -> None:
    assert not FaultConfig.parse(None, None).enabled
    assert FaultConfig.parse("duplicate", None).rate == 0.05
    assert FaultConfig.parse("all", 0.1).kinds == frozenset(FAULT_KINDS)
    for text, rate in (("teleport", 0.1), ("duplicate", 1.5), ("duplicate", 0.0), (None, 0.1)):
        with pytest.raises(ConfigError):
            FaultConfig.parse(text, rate)


def test_config_rejects_nonsense() -> None:
    for kw in ({"rate": 0.0}, {"speed": -1.0}, {"count": -1}, {"devices": -3}, {"mqtt_version": "4"},
               {"start": datetime(2026, 1, 1)}, {"park": False, "stations": False}):  # fmt: skip
        with pytest.raises(ConfigError):
            SimulationConfig(**kw)  # type: ignore[arg-type]


# -- stations: layouts and outages ---------------------------------------------------------------------


def test_station_csv_reader(three_stations: Path, tmp_path: Path) -> None:
    stations = read_station_csv(three_stations)
    assert [s.station_id for s in stations] == ["TC-0000", "TC-0001", "TC-0002"]
    assert all(len(s.sectors) == 3 for s in stations)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lon,lat\nx,1,2\n")
    with pytest.raises(LayoutError, match="station_id"):
        read_station_csv(bad)
    with pytest.raises(LayoutError, match="cannot read"):
        read_station_csv(tmp_path / "missing.csv")
    nums = tmp_path / "nums.csv"
    nums.write_text("station_id,sector_id,eirp_dbm\nA,1,loud\n")
    with pytest.raises(LayoutError, match="eirp_dbm"):
        read_station_csv(nums)
    assert issubclass(LayoutError, ZhongduError) and issubclass(LayoutError, ValueError)


def test_layout_limit_keeps_the_sites_nearest_shuinan(three_stations: Path) -> None:
    stations, source = load_layout(three_stations, limit=2, prefix="x-")
    # TC-000k sits at (120.64k, 24.17k): TC-0002 and TC-0001 are nearest the park (120.6445, 24.179)
    assert [s.station_id for s in stations] == ["x-TC-0001", "x-TC-0002"]
    assert "2 sites nearest Shuinan" in source


def test_generated_layout_is_the_one_the_api_uses() -> None:
    from zhongdu import coverage

    stations, source = load_layout(None, seed=12345)  # the simulation seed must not change the layout
    expected = coverage.generate_layout(coverage.load_default_grid(10))
    assert [s.station_id for s in stations] == list(dict.fromkeys(str(i) for i in expected.station_id))
    assert sum(len(s.sectors) for s in stations) == len(expected)
    assert "generate_layout" in source


def test_auto_outages_take_clusters_down_and_bring_them_back() -> None:
    stations = synthetic_layout(40, seed=4)
    schedule = OutageSchedule.parse("auto", stations, seed=4)
    ids = [s.station_id for s in stations]
    assert all(schedule.status(i, 0.0) == "up" for i in ids)
    down_counts = []
    for minute in range(0, 120):
        statuses = Counter(schedule.status(i, minute * 60.0) for i in ids)
        down_counts.append(statuses["down"])
    assert max(down_counts) >= 3  # a cluster of sites
    assert down_counts[-1] < max(down_counts) or min(down_counts[60:]) == 0  # and they come back
    assert any(schedule.status(i, m * 60.0) == "degraded" for i in ids for m in range(120))


def test_explicit_outages(three_stations: Path) -> None:
    stations = read_station_csv(three_stations)
    schedule = OutageSchedule.parse("TC-0001@10m+5m,TC-0002@1h+30s:degraded", stations)
    assert schedule.status("TC-0001", 9 * 60) == "up"
    assert schedule.status("TC-0001", 12 * 60) == "down"
    assert schedule.status("TC-0001", 15 * 60) == "up"
    assert schedule.status("TC-0002", 3610) == "degraded"
    assert schedule.status("TC-0000", 12 * 60) == "up"
    with pytest.raises(ValueError, match="unknown station"):
        OutageSchedule.parse("NOPE@1m+1m", stations)
    with pytest.raises(ValueError, match="bad outage"):
        OutageSchedule.parse("TC-0001 at noon", stations)
    assert all(schedule.status(s.station_id, 0) == "up" for s in stations)


def test_default_start_keeps_fixed_count_runs_in_the_past() -> None:
    now = datetime.now(UTC).timestamp()
    plan = make_plan(SimulationConfig(devices=50, stations=False, count=5000), now=now)
    last = max(
        m.sim_time for m in generate_messages(SimulationConfig(devices=50, stations=False, count=5000), plan)
    )
    assert plan.start < now and last <= now
    live = make_plan(SimulationConfig(devices=5, stations=False), now=now)
    assert live.capped and abs(live.start - now) < 1.0
    replay = make_plan(SimulationConfig(devices=5, stations=False, speed=60.0), now=now)
    assert replay.capped and abs((now - replay.start) - timedelta(days=1).total_seconds()) < 1.0


def test_scripted_outage_shows_in_the_station_telemetry(three_stations: Path) -> None:
    config = _config(
        stations_file=three_stations, park=False, count=60, outages="TC-0001@5m+10m,TC-0002@5m+10m:degraded"
    )
    start = config.start.timestamp() if config.start else 0.0
    seen: dict[str, list[tuple[float, str]]] = {}
    for item in generate_messages(config):
        body = json.loads(item.payload)
        seen.setdefault(item.topic.split("/")[3], []).append((item.sim_time - start, body["status"]))
    for elapsed, status in seen["TC-0001"]:
        assert status == ("down" if 300 <= elapsed < 900 else "up")
    assert {s for e, s in seen["TC-0002"] if 300 <= e < 900} == {"degraded"}
    assert {s for _, s in seen["TC-0000"]} == {"up"}
    assert any(s == "down" for _, s in seen["TC-0001"]) and seen["TC-0001"][-1][1] == "up"
