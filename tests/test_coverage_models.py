"""The disk and hata models against values computed by hand with the math module (docs/coverage.md#models)."""

from __future__ import annotations

import math

import h3
import numpy as np
import pytest

from zhongdu.coverage import (
    Grid,
    Stations,
    compute_coverage,
    great_circle_m,
    hata_path_loss,
    max_reach_m,
    rsrp_dbm,
    sector_gain_db,
)

from ._coverage_fixtures import R, destination, hata_urban_by_hand

ENV_CODE = {"urban": 0, "suburban": 1, "rural": 2}


@pytest.mark.parametrize("env", ["urban", "suburban", "rural"])
@pytest.mark.parametrize("f", [700.0, 900.0, 1500.0, 1800.0, 2600.0])
@pytest.mark.parametrize("d_km", [0.005, 0.02, 0.35, 2.0, 12.0])
def test_hata_path_loss_matches_hand_formula(env: str, f: float, d_km: float) -> None:
    hb = 32.0
    assert hata_path_loss(d_km, f, hb, ENV_CODE[env]) == pytest.approx(
        hata_urban_by_hand(d_km, f, hb, env), abs=1e-9
    )


def test_hata_known_value() -> None:
    # urban, 1800 MHz, hb 30 m, 1 km: 46.3 + 33.9 log f - 13.82 log 30 - a(1.5) + 3 (worked out on paper)
    lf = math.log10(1800)
    a_hm = (1.1 * lf - 0.7) * 1.5 - (1.56 * lf - 0.8)
    expected = 46.3 + 33.9 * lf - 13.82 * math.log10(30) - a_hm + 3.0
    assert float(hata_path_loss(1.0, 1800, 30, 0)) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(139.2, abs=0.1)


def test_sector_gain() -> None:
    bw = 65.0
    assert sector_gain_db(0.0, bw) == 0.0
    assert sector_gain_db(32.5, bw) == pytest.approx(-3.0)  # 3 dB beamwidth
    assert sector_gain_db(-32.5, bw) == pytest.approx(-3.0)
    assert sector_gain_db(180.0, bw) == -25.0
    assert sector_gain_db(350.0, bw) == pytest.approx(-12 * (10 / 65) ** 2)  # folded to 10 degrees
    assert sector_gain_db(90.0, np.nan) == 0.0  # omni


@pytest.mark.parametrize("env", [0, 1, 2])
@pytest.mark.parametrize("f", [700.0, 1800.0])
def test_max_reach_inverts_the_model(env: int, f: float) -> None:
    kw = {"eirp_dbm": 58.0, "bandwidth_mhz": 10.0, "frequency_mhz": f, "height_m": 28.0}
    reach = float(max_reach_m(**kw, environment=env, threshold_dbm=-110.0))
    assert reach > 20.0
    at_edge = rsrp_dbm(reach / 1000.0, 0.0, beamwidth_deg=np.nan, environment=env, **kw)
    assert float(at_edge) == pytest.approx(-110.0, abs=1e-9)
    beyond = rsrp_dbm(reach * 1.001 / 1000.0, 0.0, beamwidth_deg=np.nan, environment=env, **kw)
    assert float(beyond) < -110.0


def test_max_reach_zero_when_nothing_reaches() -> None:
    reach = max_reach_m(
        eirp_dbm=0.0, bandwidth_mhz=20.0, frequency_mhz=2600, height_m=30, environment=0, threshold_dbm=-70.0
    )
    assert float(reach) == 0.0


def test_great_circle_matches_h3() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform([23.9, 120.4], [24.5, 121.4], (50, 2))
    b = rng.uniform([23.9, 120.4], [24.5, 121.4], (50, 2))
    ours = great_circle_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    ref = [h3.great_circle_distance(tuple(p), tuple(q), unit="rads") * R for p, q in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def _one_cell(env: str) -> Grid:
    cell = h3.str_to_int(h3.latlng_to_cell(24.15, 120.66, 10))
    return Grid.from_arrays(np.array([cell], dtype=np.uint64), [100.0], ["西屯區"], [env])


def _bearing(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lng2 - lng1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x))


@pytest.mark.parametrize("env", ["urban", "suburban", "rural"])
@pytest.mark.parametrize("f", [900.0, 1800.0])
@pytest.mark.parametrize("off_deg", [0.0, 20.0, -40.0, 150.0, None])  # None: omni
@pytest.mark.parametrize("d_m", [12.0, 850.0, 3100.0])
def test_engine_single_sector_by_hand(env: str, f: float, off_deg: float | None, d_m: float) -> None:
    """One sector, one cell: the engine's RSRP equals the formula evaluated with math, to 1e-6 dB."""
    grid = _one_cell(env)
    (clat,), (clng,) = grid.latlng_deg()
    slat, slng = destination(clat, clng, 200.0, d_m)  # sector 200 deg from the cell
    to_cell = _bearing(slat, slng, clat, clng)
    azimuth = np.nan if off_deg is None else (to_cell + off_deg) % 360.0
    st = Stations.from_columns(
        station_id=["A"],
        lon=[slng],
        lat=[slat],
        height_m=35.0,
        eirp_dbm=60.0,
        frequency_mhz=f,
        bandwidth_mhz=15.0,
        azimuth_deg=[azimuth],
        beamwidth_deg=[np.nan if off_deg is None else 65.0],
    )
    res = compute_coverage(grid, st, model="hata", threshold_dbm=-300.0, per_cell=True)
    gain = 0.0 if off_deg is None else -min(12 * (abs(off_deg) / 65.0) ** 2, 25.0)
    expected = 60.0 - 10 * math.log10(12 * 5 * 15.0) + gain - hata_urban_by_hand(d_m / 1000, f, 35.0, env)
    assert res.best_rsrp_dbm is not None
    assert float(res.best_rsrp_dbm[0]) == pytest.approx(expected, abs=1e-6)
    # the same sector against a threshold just above / below its RSRP
    above = compute_coverage(grid, st, model="hata", threshold_dbm=expected + 1e-4)
    below = compute_coverage(grid, st, model="hata", threshold_dbm=expected - 1e-4)
    assert above.share == 0.0
    assert below.share == 1.0
