"""Street-level grids (resolution 11 and 12): the block bounds of the witness search never change
which cells are covered, against the independent brute force and the per-cell evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from zhongdu.coverage import CoverageEngine, Grid, Stations, _engine, compute_coverage
from zhongdu.coverage._engine import _geometry

from ._coverage_fixtures import brute_distance_bearing, brute_rsrp, random_stations, small_grid


def _banded(seed: int, resolution: int) -> Grid:
    """One res-6 cell at street level, environments in west-east bands as districts give them:
    most blocks of one environment, those on a band edge mixed."""
    grid = small_grid(seed, resolution=resolution, rings=0, envs=False)
    _, lng = grid.latlng_deg()
    env = np.digitize(lng, np.quantile(lng, [0.4, 0.7]))
    return Grid.from_arrays(grid.cells, grid.population, np.asarray(grid.districts)[grid.district_index], env)


GRID11 = _banded(11, 11)  # 16,807 cells
GRID12 = _banded(12, 12)  # 117,649 cells


def _stations(grid: object, seed: int, m: int, *, radius: float | None = None) -> Stations:
    st = random_stations(grid, seed, m)  # type: ignore[arg-type]
    # weaker sectors than the fixture's: reaches of a few hundred metres, so a street-level grid
    # has covered, uncovered and edge cells (the bounds must decide all three right)
    return Stations.from_columns(
        station_id=st.station_id,
        sector_id=st.sector_id,
        lon=st.lon,
        lat=st.lat,
        height_m=st.height_m,
        eirp_dbm=st.eirp_dbm - 30.0,
        frequency_mhz=st.frequency_mhz,
        bandwidth_mhz=st.bandwidth_mhz,
        azimuth_deg=st.azimuth_deg,
        beamwidth_deg=st.beamwidth_deg,
        up=st.up,
        radius_m=np.full(len(st), np.nan) if radius is None else st.radius_m * radius,
    )


def test_street_level_grids_have_blocks_and_the_bounds_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grids below exercise both bounds: whole blocks covered, whole blocks ruled out."""
    for grid in (GRID11, GRID12):
        geo = _geometry(grid)
        assert geo.blocks is not None and len(geo.blocks.x) * 49 == len(grid)
        assert (geo.blocks.env == -1).any() and (geo.blocks.env >= 0).any()  # mixed and uniform
    seen: dict[str, list[int]] = {"covered": [], "may_cover": []}
    for name in seen:
        real = getattr(_engine, f"_block_{name}")

        def spy(*args: object, _real: object = real, _name: str = name) -> np.ndarray:
            out = _real(*args)  # type: ignore[operator]
            seen[_name] += [int(out.sum()), int((~out).sum())]
            return out  # type: ignore[no-any-return]

        monkeypatch.setattr(_engine, f"_block_{name}", spy)
    compute_coverage(GRID12, _stations(GRID12, 500, 40), model="hata")
    assert seen["covered"][0] > 0 and seen["covered"][1] > 0
    assert sum(seen["may_cover"][0::2]) > 0 and sum(seen["may_cover"][1::2]) > 0


@pytest.mark.parametrize("seed", range(3))
def test_hata_witnesses_equal_brute_force_at_resolution_11(seed: int) -> None:
    st = _stations(GRID11, 300 + seed, 30)
    rsrp = np.where(st.up[None, :], brute_rsrp(GRID11, st), -np.inf)
    covered = rsrp.max(axis=1) >= -110.0
    assert 0.05 < covered.mean() < 0.95  # partly covered: the check can fail both ways
    res = compute_coverage(GRID11, st, model="hata")
    assert res.covered is not None
    np.testing.assert_array_equal(res.covered, covered)
    assert res.population_covered == pytest.approx(float(GRID11.population[covered].sum()), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_disk_witnesses_equal_brute_force_at_resolution_11(seed: int) -> None:
    st = _stations(GRID11, 400 + seed, 30, radius=0.4)
    d, _ = brute_distance_bearing(GRID11, st)
    covered = ((d <= st.radius_m[None, :]) & st.up[None, :]).any(axis=1)
    assert 0.05 < covered.mean() < 0.95
    res = compute_coverage(GRID11, st, model="disk")
    assert res.covered is not None
    np.testing.assert_array_equal(res.covered, covered)


@pytest.mark.parametrize("criterion", ["outdoor", "indoor"])
@pytest.mark.parametrize("model", ["hata", "disk"])
def test_witnesses_equal_per_cell_at_resolution_12(model: str, criterion: str) -> None:
    st = _stations(GRID12, 500, 40, radius=0.4 if model == "disk" else None)
    fast = compute_coverage(GRID12, st, model=model, criterion=criterion)  # type: ignore[arg-type]
    full = compute_coverage(GRID12, st, model=model, criterion=criterion, per_cell=True)  # type: ignore[arg-type]
    assert fast.covered is not None and full.covered is not None
    assert 0.01 < full.covered.mean() < 0.95
    np.testing.assert_array_equal(fast.covered, full.covered)
    assert fast.to_dict() == full.to_dict()


def test_incremental_engine_at_resolution_12_equals_full_recompute() -> None:
    rng = np.random.default_rng(12)
    st = _stations(GRID12, 600, 40)
    engine = CoverageEngine(GRID12, st, model="hata")
    up = st.up.copy()
    for _ in range(12):
        row = int(rng.integers(len(st)))
        up[row] = not up[row]
        got = engine.set_sector_up(row, bool(up[row]))
        rows = st.take(np.arange(len(st)))
        object.__setattr__(rows, "up", up.copy())
        want = compute_coverage(GRID12, rows, model="hata")
        assert got.to_dict() == want.to_dict()
        assert got.covered is not None and want.covered is not None
        np.testing.assert_array_equal(got.covered, want.covered)
