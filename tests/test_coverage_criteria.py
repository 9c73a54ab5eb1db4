"""Coverage criteria: indoor (3GPP TR 38.901 O2I loss), capacity (sector load), per operator."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhongdu.coverage import (
    CapacityParams,
    CoverageEngine,
    CoverageError,
    Grid,
    Stations,
    compute_coverage,
    generate_layout,
    indoor_loss_db,
    load_default_grid,
    write_grid,
    write_stations,
)
from zhongdu.coverage._by_operator import compute_by_operator
from zhongdu.coverage._layout import count_dates, layout_counts
from zhongdu.coverage._models import hata_terms
from zhongdu.coverage._operators import (
    MAJOR_OPERATORS,
    OPERATORS,
    operator_counts,
    operator_district_counts,
    resolve_operator,
)

from ._coverage_fixtures import brute_distance_bearing, random_stations, small_grid

ONE_ENV = small_grid(3, envs=False)  # every cell urban


def _one_band(st: Stations, f: float) -> Stations:
    return dataclasses.replace(st, frequency_mhz=np.full(len(st), f))


def _by_hand_loss(f_mhz: float, env: int) -> float:
    """TR 38.901 Table 7.4.3-2 written out with math, plus this project's per-environment mix."""
    f = f_mhz / 1000.0
    glass, irr, concrete = 2 + 0.2 * f, 23 + 0.3 * f, 5 + 4 * f
    low = 5 - 10 * math.log10(0.3 * 10 ** (-glass / 10) + 0.7 * 10 ** (-concrete / 10))
    high = 5 - 10 * math.log10(0.7 * 10 ** (-irr / 10) + 0.3 * 10 ** (-concrete / 10))
    share, depth = [(0.5, 12.5), (0.2, 12.5), (0.0, 5.0)][env]
    return share * high + (1 - share) * low + 0.5 * depth


def test_indoor_loss_follows_tr_38_901() -> None:
    for f in (700.0, 900.0, 1800.0, 2100.0, 2600.0):
        for env in range(3):
            assert float(indoor_loss_db(f, env)) == pytest.approx(_by_hand_loss(f, env), abs=1e-12)
    # loss grows with frequency, urban (more IRR glass) > suburban > rural
    loss = indoor_loss_db(np.array([700.0, 1800.0, 2600.0])[:, None], np.arange(3)[None, :])
    assert (np.diff(loss, axis=0) > 0).all() and (np.diff(loss, axis=1) < 0).all()
    assert 20.0 < float(indoor_loss_db(1800.0, 0)) < 25.0  # about 23 dB at 1800 MHz in the city


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("band", [700.0, 1800.0, 2600.0])
def test_indoor_at_t_equals_outdoor_at_t_plus_loss_exactly(seed: int, band: float) -> None:
    st = _one_band(random_stations(ONE_ENV, 300 + seed, 45), band)
    loss = float(indoor_loss_db(band, 0))
    shares = []
    for threshold in (-125.0, -110.0):
        indoor = compute_coverage(ONE_ENV, st, criterion="indoor", threshold_dbm=threshold)
        outdoor = compute_coverage(ONE_ENV, st, criterion="outdoor", threshold_dbm=threshold + loss)
        assert indoor.covered is not None and outdoor.covered is not None
        np.testing.assert_array_equal(indoor.covered, outdoor.covered)
        assert indoor.to_dict() == outdoor.to_dict()
        assert indoor.share < compute_coverage(ONE_ENV, st, threshold_dbm=threshold).share
        shares.append(indoor.share)
        cells_in = compute_coverage(ONE_ENV, st, criterion="indoor", threshold_dbm=threshold, per_cell=True)
        cells_out = compute_coverage(ONE_ENV, st, threshold_dbm=threshold + loss, per_cell=True)
        np.testing.assert_array_equal(cells_in.serving_row, cells_out.serving_row)
        assert cells_in.best_rsrp_dbm is not None and cells_out.best_rsrp_dbm is not None
        np.testing.assert_array_equal(cells_in.best_rsrp_dbm, cells_out.best_rsrp_dbm - loss)
    assert shares[0] > 0.0  # the case is not trivially empty


def test_indoor_disk_shrinks_the_radius_by_the_hata_slope() -> None:
    st = _one_band(random_stations(ONE_ENV, 7, 30), 1800.0)
    _, slope = hata_terms(1800.0, st.height_m, 0)
    shrunk = dataclasses.replace(st, radius_m=st.radius_m * 10.0 ** (-indoor_loss_db(1800.0, 0) / slope))
    indoor = compute_coverage(ONE_ENV, st, model="disk", criterion="indoor", per_cell=True)
    outdoor = compute_coverage(ONE_ENV, shrunk, model="disk", per_cell=True)
    np.testing.assert_array_equal(indoor.covered, outdoor.covered)
    assert indoor.share < compute_coverage(ONE_ENV, st, model="disk").share


def test_indoor_engine_matches_compute_and_mixed_environments_lose_more_in_town() -> None:
    grid = small_grid(5)
    st = random_stations(grid, 11, 60)
    full = compute_coverage(grid, st, criterion="indoor")
    engine = CoverageEngine(grid, st, criterion="indoor")
    assert engine.result().to_dict() == full.to_dict()
    engine.set_sector_up(int(np.flatnonzero(st.up)[0]), False)
    engine.set_sector_up(int(np.flatnonzero(st.up)[0]), True)
    assert engine.result().to_dict() == full.to_dict()
    assert full.share <= compute_coverage(grid, st).share
    with pytest.raises(CoverageError, match="criterion"):
        compute_coverage(grid, st, criterion="basement")  # type: ignore[arg-type]
    with pytest.raises(CoverageError, match="not incremental"):
        CoverageEngine(grid, st, criterion="capacity")


def _one_site(grid: Grid, bandwidth: float) -> Stations:
    lat, lng = grid.latlng_deg()
    c = int(np.argmin((lat - lat.mean()) ** 2 + (lng - lng.mean()) ** 2))
    return Stations.from_columns(
        station_id=["A"] * 3,
        sector_id=["1", "2", "3"],
        lon=lng[c],
        lat=lat[c],
        azimuth_deg=[0.0, 120.0, 240.0],
        beamwidth_deg=65.0,
        bandwidth_mhz=bandwidth,
        radius_m=2000.0,
    )


def test_capacity_serves_a_sector_only_below_its_load_limit() -> None:
    grid = small_grid(2, envs=False)
    st = _one_site(grid, 20.0)
    base = compute_coverage(grid, st, model="disk", per_cell=True)
    assert base.covered is not None
    # the serving sector is the one pointing closest to the cell (bearing vs azimuth, by brute force)
    _, bearing = brute_distance_bearing(grid, st)
    off = np.abs((bearing - st.azimuth_deg[None, :] + 180.0) % 360.0 - 180.0)
    aimed = np.argmin(off, axis=1)
    served_people = np.bincount(aimed[base.covered], weights=grid.population[base.covered], minlength=3)
    assert (served_people > 0).all()
    # capacity just above / below each sector's demand: activity 1, users_per_mhz = people / 20 MHz
    for s in range(3):
        need = served_people[s] / 20.0
        for factor, ok in ((1.0001, True), (0.9999, False)):
            params = CapacityParams(activity=1.0, users_per_mhz=need * factor)
            res = compute_coverage(
                grid, st, model="disk", criterion="capacity", capacity=params, per_cell=True
            )
            assert res.covered is not None
            assert bool(res.covered[base.covered & (aimed == s)].all()) is ok
            for other in range(3):
                load = served_people[other] / (20.0 * need * factor)
                assert bool(res.covered[base.covered & (aimed == other)].all()) is bool(load < 1.0)
    # the witness path (no per-cell output) serves through the sector pointing at the cell
    fast = compute_coverage(
        grid, st, model="disk", criterion="capacity", capacity=CapacityParams(activity=1e-6)
    )
    assert fast.share == base.share
    tight = CapacityParams(activity=1.0, users_per_mhz=served_people.min() / 20.0 * 0.5)
    assert compute_coverage(grid, st, model="disk", criterion="capacity", capacity=tight).share == 0.0
    with pytest.raises(ValueError, match="activity"):
        CapacityParams(activity=0.0)


def test_capacity_on_the_city_layout_stays_below_outdoor_and_falls_with_activity() -> None:
    grid = load_default_grid()
    st = generate_layout(grid, date="2015-12-31")
    outdoor = compute_coverage(grid, st).share
    shares = [
        compute_coverage(grid, st, criterion="capacity", capacity=CapacityParams(activity=a)).share
        for a in (0.02, 0.05, 0.1, 0.2)
    ]
    assert outdoor >= shares[0] and all(b <= a for a, b in itertools.pairwise(shares))
    assert shares[-1] < shares[0]


# ----------------------------------------------------------------------------------- operators


def test_operator_split_keeps_both_margins_at_every_date() -> None:
    grid = load_default_grid()
    for date in count_dates():
        districts = layout_counts(grid, date)
        ops = operator_counts(date)
        split = operator_district_counts(districts, ops)
        assert {d: sum(v.values()) for d, v in split.items()} == districts
        for op, n in ops.items():
            assert sum(v[op] for v in split.values()) == n
        for d, per in split.items():  # proportional: within one unit of the quota
            for op, n in per.items():
                quota = districts[d] * ops[op] / sum(ops.values())
                assert abs(n - quota) < 2.0


def test_layout_gives_each_operator_its_count_and_stays_nested() -> None:
    grid = load_default_grid()
    early, late = generate_layout(grid, date="2018-12-31"), generate_layout(grid, date="2022-11-30")
    for date, st in (("2018-12-31", early), ("2022-11-30", late)):
        _, first = np.unique(st.station_id, return_index=True)
        codes, n = np.unique(st.extra["operator"][first], return_counts=True)
        assert dict(zip(codes.tolist(), n.tolist(), strict=True)) == {
            k: v for k, v in operator_counts(date).items() if v
        }
    split_early = operator_district_counts(layout_counts(grid, "2018-12-31"), operator_counts("2018-12-31"))
    split_late = operator_district_counts(layout_counts(grid, "2022-11-30"), operator_counts("2022-11-30"))
    late_rows = {
        (s, x, y, o)
        for s, x, y, o in zip(late.sector_id.tolist(), late.lon.tolist(), late.lat.tolist(),
                              late.extra["operator"].tolist(), strict=True)
    }  # fmt: skip
    for i in range(0, len(early), 3):
        d, o = str(early.extra["district"][i]), str(early.extra["operator"][i])
        if split_late[d][o] >= split_early[d][o]:  # the (district, operator) grew: its sites survive
            key = (early.sector_id[i], early.lon[i], early.lat[i], o)
            assert key in late_rows


def test_resolve_operator_names() -> None:
    assert resolve_operator("cht") == "CHT"
    assert resolve_operator("中華電信股份有限公司") == "CHT"
    assert resolve_operator("遠傳") == "FET"
    with pytest.raises(ValueError, match="unknown operator"):
        resolve_operator("Chunghwa Mobile")


def test_each_operator_any_and_every_major() -> None:
    grid = load_default_grid()
    st = generate_layout(grid, date="2015-12-31")
    out = compute_by_operator(grid, st, operator="each", criterion="indoor")
    assert set(out) == {"any", "every_major", *OPERATORS}
    assert out["any"].to_dict() == compute_coverage(grid, st, criterion="indoor").to_dict()
    every = np.logical_and.reduce([out[c].covered for c in MAJOR_OPERATORS])
    assert out["every_major"].population_covered == pytest.approx(
        float(grid.population[every].sum()), rel=1e-9
    )
    assert out["every_major"].share <= min(out[c].share for c in MAJOR_OPERATORS)
    assert all(out[c].share <= out["any"].share for c in OPERATORS)
    one = compute_by_operator(grid, st, operator="TWM", criterion="indoor")
    assert one["TWM"].to_dict() == out["TWM"].to_dict()
    mask = st.extra["operator"] == "TWM"
    assert one["TWM"].to_dict() == compute_coverage(grid, st.take(mask), criterion="indoor").to_dict()
    plain = dataclasses.replace(st, extra={})
    with pytest.raises(CoverageError, match="operator"):
        compute_by_operator(grid, plain, operator="each")


def test_capacity_with_operators_serves_each_subscriber_share_on_its_own_network() -> None:
    grid = load_default_grid()
    st = generate_layout(grid, date="2015-12-31")
    out = compute_by_operator(grid, st, operator="each", criterion="capacity")
    _, first = np.unique(st.station_id, return_index=True)
    codes, sites = np.unique(st.extra["operator"][first], return_counts=True)
    share = dict(zip(codes.tolist(), (sites / sites.sum()).tolist(), strict=True))
    expected = sum(share[c] * out[c].population_covered for c in share)
    assert out["any"].population_covered == pytest.approx(expected, rel=1e-9)
    assert compute_by_operator(grid, st, criterion="capacity")["any"].share == out["any"].share
    # each operator's own load uses its subscriber share: CHT alone serves its share better than all
    # people on CHT would be
    pooled_cht = compute_coverage(grid, st.take(st.extra["operator"] == "CHT"), criterion="capacity").share
    assert out["CHT"].share >= pooled_cht


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "coverage", "compute", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_criterion_and_operator(tmp_path: Path) -> None:
    grid = small_grid(4)
    st = random_stations(grid, 21, 30)
    ops = np.array(["CHT", "TWM", "FET"])[np.arange(len(st)) // 3 % 3]
    st = dataclasses.replace(st, extra={"operator": ops})
    write_grid(grid, tmp_path / "g.csv")
    write_stations(st, tmp_path / "s.csv")
    common = ["--grid", str(tmp_path / "g.csv"), "--stations", str(tmp_path / "s.csv"), "--json"]
    plain = _run(*common)
    assert plain.returncode == 0, plain.stderr
    assert set(json.loads(plain.stdout)) == {"population_total", "population_covered", "share", "districts"}
    indoor = _run(*common, "--criterion", "indoor")
    doc = json.loads(indoor.stdout)
    assert doc["criterion"] == "indoor"
    assert doc["share"] == compute_coverage(grid, st, criterion="indoor").share
    each = json.loads(_run(*common, "--criterion", "indoor", "--operator", "each").stdout)
    assert each["major_operators"] == ["CHT", "TWM", "FET"]
    assert each["any"]["share"] == doc["share"]
    assert each["every_major"]["share"] <= min(each[c]["share"] for c in ("CHT", "TWM", "FET"))
    one = json.loads(_run(*common, "--operator", "twm").stdout)
    assert one["operator"] == "TWM" and one["share"] == each_share(grid, st, "TWM")
    cap = json.loads(
        _run(*common, "--criterion", "capacity", "--activity", "0.5", "--users-per-mhz", "1").stdout
    )
    params = CapacityParams(activity=0.5, users_per_mhz=1.0)
    assert cap["share"] == compute_by_operator(grid, st, criterion="capacity", capacity=params)["any"].share
    bad = _run(*common, "--operator", "NOPE")
    assert bad.returncode != 0 and "unknown operator" in bad.stderr
    bad = _run(*common, "--criterion", "capacity", "--activity", "3")
    assert bad.returncode != 0 and "fractions" in bad.stderr


def each_share(grid: Grid, st: Stations, code: str) -> float:
    return compute_coverage(grid, st.take(st.extra["operator"] == code)).share


def test_plan_for_indoor_coverage() -> None:
    from zhongdu.coverage._placement import PlacementError, plan

    grid = small_grid(6)
    existing = random_stations(grid, 40, 12)
    candidates = dataclasses.replace(
        random_stations(grid, 41, 24, p_up=1.0),
        station_id=np.char.add("C", (np.arange(24) // 3).astype(str)),
    )
    outdoor = plan(grid, existing, candidates, budget=3)
    indoor = plan(grid, existing, candidates, budget=3, criterion="indoor")
    assert indoor.share_before == pytest.approx(compute_coverage(grid, existing, criterion="indoor").share)
    assert indoor.share_before <= outdoor.share_before
    picked = candidates.take(np.isin(candidates.station_id, [p.station_id for p in indoor.picks]))
    both = Stations.concat([existing, picked])
    assert indoor.share_after == pytest.approx(compute_coverage(grid, both, criterion="indoor").share)
    with pytest.raises(PlacementError, match="capacity"):
        plan(grid, existing, candidates, budget=3, criterion="capacity")
