"""Synthetic 4G layouts: exactly the NCC counts per district, seeded, nested, density following people."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._coverage_data_fixtures import ncc_4g_counts, shared_data_dir
from zhongdu.coverage import (
    Grid,
    LayoutError,
    Stations,
    generate_layout,
    layout_counts,
    load_default_grid,
    load_stations,
    station_counts,
    write_stations,
)
from zhongdu.coverage._layout import (
    BANDS_MHZ,
    EIRP_DBM,
    HEIGHT_RANGE_M,
    RADIUS_M,
    count_dates,
    layout_from_counts,
    resolve_date,
    unlabelled_station_count,
)

DATES = ["2014-06-30", "2015-12-31", "2017-06-30", "2018-12-31", "2022-11-30"]


@pytest.fixture(scope="module")
def grid() -> Grid:
    return load_default_grid()


@pytest.fixture(scope="module")
def ncc() -> dict[str, dict[str, int]]:
    return ncc_4g_counts(shared_data_dir())


def _per_district(stations: Stations) -> dict[str, int]:
    _ids, first = np.unique(stations.station_id, return_index=True)
    names, counts = np.unique(stations.extra["district"][first], return_counts=True)
    return dict(zip(names.tolist(), counts.tolist(), strict=True))


def test_shipped_counts_match_the_ncc_file(ncc: dict[str, dict[str, int]]) -> None:
    assert len(count_dates()) == 72 == len(ncc)
    assert list(count_dates()) == sorted(ncc)
    for date, rows in ncc.items():
        counts = station_counts(date)
        assert len(counts) == 29
        for name, n in rows.items():
            if name == "(未標示區)":
                assert unlabelled_station_count(date) == n
            else:
                assert counts[name] == n
        assert sum(counts.values()) + unlabelled_station_count(date) == sum(rows.values())
    assert sum(station_counts("2022-11-30").values()) == 15_788
    assert station_counts() == station_counts("2022-11-30")


@pytest.mark.parametrize("date", DATES)
def test_layout_places_exactly_the_counted_stations(
    grid: Grid, date: str, ncc: dict[str, dict[str, int]]
) -> None:
    stations = generate_layout(grid, date=date)
    placed = _per_district(stations)
    wanted = layout_counts(grid, date)
    assert placed == {k: v for k, v in wanted.items() if v > 0}
    assert sum(placed.values()) == sum(ncc[date].values())  # the unlabelled ones are spread, not lost
    if unlabelled_station_count(date) == 0:
        assert placed == {k: v for k, v in ncc[date].items() if v > 0}
    for name, n in station_counts(date).items():
        assert placed.get(name, 0) >= n
    assert len(stations) == 3 * sum(placed.values())
    assert len(np.unique(stations.sector_id)) == len(stations)


def test_unlabelled_stations_go_to_populous_districts(grid: Grid) -> None:
    extra = {k: layout_counts(grid, "2017-06-30")[k] - v for k, v in station_counts("2017-06-30").items()}
    assert sum(extra.values()) == unlabelled_station_count("2017-06-30") == 28
    assert extra["北屯區"] >= extra["和平區"] and extra["和平區"] == 0


def test_layout_is_seeded_and_reproducible(grid: Grid) -> None:
    a = generate_layout(grid, date="2016-12-31", seed=7)
    b = generate_layout(grid, date="2016-12-31", seed=7)
    c = generate_layout(grid, date="2016-12-31", seed=8)
    for name in ("station_id", "sector_id", "lon", "lat", "height_m", "frequency_mhz", "azimuth_deg"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.station_id, c.station_id)  # ids depend on counts only
    assert not np.array_equal(a.lon, c.lon)


def test_layouts_are_nested_over_time(grid: Grid) -> None:
    early = generate_layout(grid, date="2015-12-31")
    late = generate_layout(grid, date="2022-11-30")
    pos = {(s, x, y) for s, x, y in zip(late.sector_id.tolist(), late.lon.tolist(), late.lat.tolist(), strict=True)}
    kept = [(s, x, y) in pos for s, x, y in zip(early.sector_id.tolist(), early.lon.tolist(), early.lat.tolist(), strict=True)]
    # every district grew between these dates, so every early site survives unchanged
    assert all(kept)


def test_station_density_follows_population(grid: Grid) -> None:
    """Stations per resolution-6 parent vs people there: strongly correlated (r > 0.9)."""
    stations = generate_layout(grid, date="2022-11-30")
    _, first = np.unique(stations.station_id, return_index=True)
    site_parent = np.array(
        [h3.api.basic_int.latlng_to_cell(a, b, 6) for a, b in zip(stations.lat[first], stations.lon[first], strict=True)],
        dtype=np.uint64,
    )
    grid_parent = (grid.cells & ~np.uint64(0xF << 52)) | np.uint64(6 << 52)
    grid_parent = grid_parent | np.uint64((1 << (3 * (15 - 6))) - 1)  # unused digits set to 7
    parents = np.union1d(site_parent, grid_parent)
    s = np.bincount(np.searchsorted(parents, site_parent), minlength=len(parents))
    p = np.bincount(np.searchsorted(parents, grid_parent), weights=grid.population, minlength=len(parents))
    assert np.corrcoef(s, p)[0, 1] > 0.9
    # and sites sit in populated cells: the cell of each site has people (or it is its district's only choice)
    lat, lng = stations.lat[first], stations.lon[first]
    cells = np.array([h3.api.basic_int.latlng_to_cell(a, b, grid.resolution) for a, b in zip(lat, lng, strict=True)], dtype=np.uint64)
    idx = np.searchsorted(grid.cells, cells)
    idx = np.minimum(idx, len(grid.cells) - 1)
    found = grid.cells[idx] == cells
    assert found.mean() > 0.99  # jitter stays inside the chosen cell (edge cases at district borders)
    assert (grid.population[idx[found]] > 0).mean() > 0.99


def test_antenna_parameters_follow_the_documented_tables(grid: Grid) -> None:
    s = generate_layout(grid, date="2022-11-30")
    assert set(np.unique(s.frequency_mhz).tolist()) == set(BANDS_MHZ)
    for band, eirp in EIRP_DBM.items():
        assert (s.eirp_dbm[s.frequency_mhz == band] == eirp).all()
    assert (s.beamwidth_deg == 65.0).all() and s.up.all()
    az = s.azimuth_deg.reshape(-1, 3)
    assert np.allclose(np.sort(az, axis=1)[:, 1:] - np.sort(az, axis=1)[:, :-1], 120.0, atol=0.02)
    for env, (lo, hi) in HEIGHT_RANGE_M.items():
        sel = s.extra["environment"] == env
        assert sel.any()
        assert (s.height_m[sel] >= lo).all() and (s.height_m[sel] <= hi).all()
        assert (s.radius_m[sel] == RADIUS_M[env]).all()
    assert s.station_id[0].startswith("TC-66000")


def test_date_resolution_and_errors(grid: Grid) -> None:
    assert resolve_date("2015-12") == "2015-12-31"
    assert resolve_date(None) == "2022-11-30"
    for bad in ("2013-01-01", "2015-13", "yesterday", "2023-01"):
        with pytest.raises(LayoutError, match="2014-06-30") as info:
            generate_layout(grid, date=bad)
        assert isinstance(info.value, ValueError)


@settings(max_examples=25, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from(["中區", "西屯區", "和平區", "大安區"]), st.integers(0, 60), min_size=1),
    more=st.integers(0, 40),
    seed=st.integers(0, 10_000),
)
def test_any_counts_are_placed_exactly_and_prefix_stable(
    grid: Grid, counts: dict[str, int], more: int, seed: int
) -> None:
    if sum(counts.values()) == 0:
        with pytest.raises(LayoutError):
            layout_from_counts(grid, counts, seed=seed)
        return
    small = layout_from_counts(grid, counts, seed=seed)
    assert _per_district(small) == {k: v for k, v in counts.items() if v > 0}
    bigger = layout_from_counts(grid, {k: v + more for k, v in counts.items()}, seed=seed)
    rows = np.searchsorted(bigger.sector_id, small.sector_id, sorter=np.argsort(bigger.sector_id))
    order = np.argsort(bigger.sector_id)[rows]
    assert np.array_equal(bigger.sector_id[order], small.sector_id)
    assert np.array_equal(bigger.lon[order], small.lon) and np.array_equal(bigger.frequency_mhz[order], small.frequency_mhz)


def test_csv_round_trip_and_cli(grid: Grid, tmp_path: Path) -> None:
    s = generate_layout(grid, date="2014-12-31")
    write_stations(s, tmp_path / "a.csv")
    back = load_stations(tmp_path / "a.csv")
    assert np.array_equal(back.lon, s.lon) and np.array_equal(back.sector_id, s.sector_id)
    proc = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "stations", "generate", "--date", "2014-12-31", "--seed", "2015",
         "--out", str(tmp_path / "b.csv")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    bad = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "stations", "generate", "--date", "1999-01-01", "--out", str(tmp_path / "c.csv")],
        capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and "no NCC 4G count" in bad.stderr
