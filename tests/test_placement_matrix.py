"""The placement's site matrix from block bounds: the same cells as the per-pair `coverage_matrix`,
a memory estimate that bounds it, and the same greedy picks as the per-cell problem."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import sparse

from zhongdu.coverage import Grid, Stations
from zhongdu.coverage._engine import coverage_matrix
from zhongdu.coverage._footprint import BASE_BYTES, placement_footprint
from zhongdu.coverage._mclp import solve_mclp
from zhongdu.coverage._placement import PlacementProblem, build_problem, greedy, site_matrix
from zhongdu.coverage._site_matrix import column_bound, site_coverage_matrix

from ._coverage_fixtures import random_stations, small_grid


def _banded(seed: int, resolution: int) -> Grid:
    """One res-6 cell at street level; environments in west-east bands, so most blocks have one
    environment and those on a band edge two; four districts at random."""
    grid = small_grid(seed, resolution=resolution, rings=0, envs=False)
    _, lng = grid.latlng_deg()
    env = np.digitize(lng, np.quantile(lng, [0.4, 0.7]))
    return Grid.from_arrays(grid.cells, grid.population, np.asarray(grid.districts)[grid.district_index], env)


GRID11 = _banded(11, 11)  # 16,807 cells
GRID9 = small_grid(9, resolution=9, rings=1)  # 2,401 cells, environments at random


def _sites(grid: Grid, seed: int, n_sites: int, *, radius: float | None = None) -> Stations:
    """Tri-sector sites (some sectors apart from their site's others) with reaches of a few hundred
    metres at street level: covered, uncovered and edge blocks all occur."""
    st = random_stations(grid, seed, 3 * n_sites)
    rng = np.random.default_rng(seed)
    lat = np.repeat(st.lat[::3], 3)
    lon = np.repeat(st.lon[::3], 3) + np.where(rng.random(3 * n_sites) < 0.1, 0.002, 0.0)
    return Stations.from_columns(
        station_id=np.repeat([f"C{i}" for i in range(n_sites)], 3),
        sector_id=np.tile(["1", "2", "3"], n_sites),
        lon=lon,
        lat=lat,
        height_m=st.height_m,
        eirp_dbm=st.eirp_dbm - 30.0,
        frequency_mhz=st.frequency_mhz,
        bandwidth_mhz=st.bandwidth_mhz,
        azimuth_deg=np.tile([0.0, 120.0, 240.0], n_sites) + np.repeat(rng.uniform(0, 120, n_sites), 3),
        beamwidth_deg=st.beamwidth_deg,
        up=st.up,
        radius_m=np.full(len(st), np.nan) if radius is None else st.radius_m * radius,
        extra={"cost": np.ones(3 * n_sites), "kind": np.full(3 * n_sites, "public_land")},
    )


def _per_pair(grid: Grid, cand: Stations, model: str, criterion: str, mask: np.ndarray) -> sparse.csr_array:
    sector = coverage_matrix(grid, cand, model=model, criterion=criterion)  # type: ignore[arg-type]
    _, _, sites = site_matrix(sector, cand.station_id)
    return sparse.csr_array(sites[:, np.flatnonzero(mask)])


@pytest.mark.parametrize(
    ("model", "criterion", "grid"),
    [("hata", "outdoor", GRID11), ("hata", "indoor", GRID11), ("disk", "outdoor", GRID11), ("hata", "outdoor", GRID9)],
)  # fmt: skip
def test_matrix_equals_the_per_pair_matrix(model: str, criterion: str, grid: Grid) -> None:
    cand = _sites(grid, 7, 40, radius=0.3 if model == "disk" else None)
    rng = np.random.default_rng(1)
    mask = (grid.population > 0) & (rng.random(len(grid)) < 0.7)
    m = site_coverage_matrix(grid, cand, model=model, criterion=criterion, cells=mask)
    n_cells = len(grid)
    assert m.sites.indices.dtype == np.int32 and m.sites.shape == (40, n_cells + m.groups.n)
    # the bounds decided: whole blocks as one column each, and edge cells evaluated one by one
    assert (m.sites.indices >= n_cells).sum() > 0 and (m.sites.indices < n_cells).sum() > 0
    got = m.cell_matrix()
    assert got.has_sorted_indices and got[:, np.flatnonzero(~mask)].nnz == 0
    want = _per_pair(grid, cand, model, criterion, mask)
    assert m.site_ids == tuple(f"C{i}" for i in range(40))
    assert 0 < want.nnz < want.shape[0] * want.shape[1]
    assert (sparse.csr_array(got[:, np.flatnonzero(mask)]) != want).nnz == 0


def test_matrix_without_cells_or_candidates_in_reach_is_empty() -> None:
    cand = _sites(GRID11, 8, 5)
    m = site_coverage_matrix(GRID11, cand, cells=np.zeros(len(GRID11), dtype=bool))
    assert m.sites.shape == (5, len(GRID11)) and m.sites.nnz == 0
    assert column_bound(GRID11, cand, cells=np.zeros(len(GRID11), dtype=bool)) == 0


@pytest.mark.parametrize(("model", "grid"), [("hata", GRID11), ("disk", GRID11), ("hata", GRID9)])
def test_memory_estimate_bounds_the_matrix_and_the_placement(model: str, grid: Grid) -> None:
    cand = _sites(grid, 9, 60, radius=0.3 if model == "disk" else None)
    existing = _sites(grid, 10, 6, radius=0.3 if model == "disk" else None)
    existing = Stations.from_columns(
        **{c: getattr(existing, c) for c in ("lon", "lat", "height_m", "eirp_dbm", "frequency_mhz",
                                             "bandwidth_mhz", "azimuth_deg", "beamwidth_deg", "radius_m")},
        station_id=np.char.add("E", existing.station_id), sector_id=existing.sector_id, up=True,
    )  # fmt: skip
    problem = build_problem(grid, existing, cand, model=model)  # type: ignore[arg-type]
    uncovered = ~problem.covered & (grid.population > 0)
    bound = column_bound(grid, cand, model=model, cells=uncovered)
    assert problem.sites.nnz <= bound
    footprint = placement_footprint(grid, cand, model=model, threshold_dbm=-110.0)
    assert bound <= footprint.pairs  # every populated cell counted: holds for any existing network
    # the placement's own allocations (NumPy reports them to tracemalloc) stay under the estimate
    tracemalloc.start()
    try:
        build_problem(grid, existing, cand, model=model)  # type: ignore[arg-type]
        greedy(problem, budget=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < peak <= footprint.bytes
    # on a grid this small the peak is the fixed part's (chunk arrays of the engine and the
    # matrix), which the estimate's BASE_BYTES must hold with room to spare
    assert peak <= BASE_BYTES / 4, f"traced peak {peak / 2**20:.1f} MB"


@pytest.mark.parametrize("model", ["hata", "disk"])
def test_greedy_picks_equal_the_per_cell_problem(model: str) -> None:
    cand = _sites(GRID11, 11, 50, radius=0.3 if model == "disk" else None)
    existing = _sites(GRID11, 12, 4, radius=0.3 if model == "disk" else None)
    existing = Stations.from_columns(
        **{c: getattr(existing, c) for c in ("lon", "lat", "height_m", "eirp_dbm", "frequency_mhz",
                                             "bandwidth_mhz", "azimuth_deg", "beamwidth_deg", "radius_m")},
        station_id=np.char.add("E", existing.station_id), sector_id=existing.sector_id, up=True,
    )  # fmt: skip
    blocks = build_problem(GRID11, existing, cand, model=model)  # type: ignore[arg-type]
    assert blocks.groups.n > 0 and (blocks.sites.indices >= blocks.n_cells).any()
    assert 0.02 < blocks.covered.mean() < 0.95
    sector = coverage_matrix(GRID11, cand, model=model)  # type: ignore[arg-type]
    ids, _, per_cell_sites = site_matrix(sector, cand.station_id)
    per_cell = PlacementProblem(
        site_ids=ids, sites=per_cell_sites, population=blocks.population, covered=blocks.covered,
        district_index=blocks.district_index, districts=blocks.districts, cost=blocks.cost, kind=blocks.kind,
    )  # fmt: skip
    np.testing.assert_array_equal(blocks.best_reachable(), per_cell.best_reachable())
    minima = {GRID11.districts[0]: 0.9}
    for kwargs in ({"budget": 25}, {"target": 0.999}, {"budget": 12, "district_min": minima}):
        want = greedy(per_cell, **kwargs)  # type: ignore[arg-type]
        assert len(want.picks) >= 3
        for lazy in (True, False):
            got = greedy(blocks, lazy=lazy, **kwargs)  # type: ignore[arg-type]
            assert [p.station_id for p in got.picks] == [p.station_id for p in want.picks]
            assert [p.phase for p in got.picks] == [p.phase for p in want.picks]
            np.testing.assert_allclose([p.gain for p in got.picks], [p.gain for p in want.picks], rtol=1e-12)
            assert got.share_after == pytest.approx(want.share_after, rel=1e-12)
            assert got.districts_after == pytest.approx(want.districts_after, rel=1e-12)
    exact_blocks, exact_cells = solve_mclp(blocks, 4), solve_mclp(per_cell, 4)
    assert exact_blocks.optimal and exact_cells.optimal
    assert exact_blocks.covered_population == pytest.approx(exact_cells.covered_population, rel=1e-12)
    sub = blocks.take(np.arange(10))
    assert sub.site_ids == blocks.site_ids[:10] and (sub.sites != blocks.sites[:10]).nnz == 0


def _pair_rsrp(grid: Grid, cand: Stations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sector, cell and float64 RSRP of every pair in reach, as the engine scores them."""
    from zhongdu.coverage._engine import _geometry, _score_explicit, _sectors

    geo = _geometry(grid)
    sec = _sectors(geo, cand, np.arange(len(cand), dtype=np.int64), "hata", -110.0)
    s = np.repeat(np.arange(len(cand), dtype=np.int64), len(grid))
    cell = np.tile(np.arange(len(grid), dtype=np.int64), len(cand))
    keep, rsrp = _score_explicit(geo, sec, "hata", -1e9, s, cell)
    return s[keep], cell[keep], np.asarray(rsrp)


@pytest.mark.parametrize("levels", [1, 2])
def test_float32_path_is_exact_at_the_threshold(levels: int) -> None:
    """Thresholds at the exact float64 RSRP of pairs: the float32 bounds and screen must leave
    those cells to the float64 evaluation, so the matrix is the per-pair one, and each pair at
    the threshold is covered (RSRP >= threshold)."""
    cand = _sites(GRID11, 13, 30)
    s, cell, rsrp = _pair_rsrp(GRID11, cand)
    mask = GRID11.population > 0
    for threshold in np.quantile(rsrp[rsrp > -125], [0.2, 0.5, 0.8], method="nearest").tolist():
        m = site_coverage_matrix(GRID11, cand, threshold_dbm=threshold, cells=mask, levels=levels)
        got = m.cell_matrix()
        sector = coverage_matrix(GRID11, cand, model="hata", threshold_dbm=threshold)
        _, _, sites = site_matrix(sector, cand.station_id)
        want = sparse.csr_array(sites[:, np.flatnonzero(mask)])
        assert 0 < want.nnz and (sparse.csr_array(got[:, np.flatnonzero(mask)]) != want).nnz == 0
        at = np.flatnonzero((rsrp == threshold) & mask[cell])
        assert len(at) > 0
        row = np.array([m.site_ids.index(i) for i in np.asarray(cand.station_id)[s[at]].tolist()])
        assert got[row, cell[at]].all()


def test_threads_give_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    from zhongdu.coverage import _site_matrix as sm

    cand = _sites(GRID11, 14, 40)
    mask = GRID11.population > 0
    monkeypatch.setattr(sm, "CHUNK_BLOCKS", 64)  # many chunks of sites, so the threads interleave
    monkeypatch.setattr(sm, "THREADS", 1)
    one = site_coverage_matrix(GRID11, cand, cells=mask)
    monkeypatch.setattr(sm, "THREADS", 2)
    two = site_coverage_matrix(GRID11, cand, cells=mask)
    assert len(list(sm._setup(GRID11, cand, "hata", -110.0, "outdoor", mask, 2).chunks())) > 4
    assert one.sites.nnz > 0 and (one.sites != two.sites).nnz == 0
    np.testing.assert_array_equal(one.sites.indptr, two.sites.indptr)


def test_keep_freed_memory_spares_the_page_faults() -> None:
    """A 40 MB temporary made and freed 30 times: fresh pages each time with glibc's defaults
    (above its largest dynamic mmap threshold, 32 MB), the same pages once `keep_freed_memory`
    raised the thresholds (in a child: the setting is the process's)."""
    import subprocess
    import sys

    code = (
        "import resource, sys, numpy as np\n"
        "from zhongdu.coverage._memory import keep_freed_memory\n"
        "ok = keep_freed_memory() if sys.argv[1] == '1' else True\n"
        "np.ones(5 << 20)\n"
        "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(30):\n"
        "    np.ones(5 << 20)\n"
        "print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)\n"
    )
    out = {}
    for flag in ("0", "1"):
        run = subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, check=True)
        ok, faults = run.stdout.split()
        assert ok == "True"
        out[flag] = int(faults)
    assert out["0"] > 30 * 250, out  # fresh pages every time (4 KiB, or 2 MiB huge pages)
    assert out["1"] * 10 < out["0"], out
