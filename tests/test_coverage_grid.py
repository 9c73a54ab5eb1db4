"""Population grid from the real Taichung inputs: exact district sums, cells inside their districts."""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._coverage_data_fixtures import official_population, source_data_dir
from zhongdu.coverage import (
    ENVIRONMENT_BY_DISTRICT,
    ENVIRONMENTS,
    Grid,
    GridBuildError,
    build_grid,
    load_default_grid,
    load_grid,
)
from zhongdu.coverage._grid_build import check_resolution, read_source_geojson, source_file, spread_population


@pytest.fixture(scope="module")
def source() -> Path:
    return source_data_dir()


@pytest.fixture(scope="module")
def grid9(source: Path) -> Grid:
    return build_grid(9, source)


@pytest.fixture(scope="module")
def districts(source: Path) -> gpd.GeoDataFrame:
    return read_source_geojson(source, "taichung_districts.geojson")


def _district_sums(grid: Grid) -> dict[str, float]:
    sums = np.bincount(grid.district_index, weights=grid.population, minlength=len(grid.districts))
    return dict(zip(grid.districts, sums.tolist(), strict=True))


def test_district_sums_equal_official_figures(grid9: Grid, source: Path) -> None:
    official = official_population(source)
    sums = _district_sums(grid9)
    assert set(sums) == set(official) and len(sums) == 29
    for name, value in official.items():
        assert abs(sums[name] - value) <= 1e-6, (name, sums[name], value)
    assert grid9.resolution == 9
    assert (grid9.population >= 0).all()


def test_shipped_default_grid_matches_official_figures(source: Path, districts: gpd.GeoDataFrame) -> None:
    grid = load_default_grid()
    lat, lng = grid.latlng_deg()
    shapes = districts.set_index("name_zh").geometry
    for d, name in enumerate(grid.districts):  # per district, vectorised over its cells
        sel = grid.district_index == d
        assert shapely.intersects_xy(shapes[name], lng[sel], lat[sel]).all(), name
    assert grid.resolution == 10
    assert 160_000 < len(grid) < 175_000
    official = official_population(source)
    sums = _district_sums(grid)
    assert max(abs(sums[n] - official[n]) for n in official) <= 1e-6


def test_cell_centres_fall_inside_their_own_district(grid9: Grid, districts: gpd.GeoDataFrame) -> None:
    lat, lng = grid9.latlng_deg()
    shapes = districts.set_index("name_zh").geometry
    for d, name in enumerate(grid9.districts):  # per district, vectorised over its cells
        sel = grid9.district_index == d
        assert sel.any()
        assert shapely.intersects_xy(shapes[name], lng[sel], lat[sel]).all(), name
    # and no centre is inside a second district (except exactly on a shared border)
    others = np.zeros(len(grid9), dtype=int)
    for name in grid9.districts:
        others += shapely.contains_xy(shapes[name], lng, lat)
    assert others.max() == 1


def test_no_cell_in_two_districts_and_polygon_fill_is_complete(grid9: Grid, districts: gpd.GeoDataFrame) -> None:
    assert len(np.unique(grid9.cells)) == len(grid9.cells)
    # every cell that h3 fills for a district is in the grid, with that district
    name = "中區"
    geom = districts.set_index("name_zh").geometry[name]
    filled = np.asarray(h3.api.numpy_int.geo_to_cells(geom, 9), dtype=np.uint64)
    pos = np.searchsorted(grid9.cells, filled)
    assert (grid9.cells[pos] == filled).all()
    assert (np.asarray(grid9.districts)[grid9.district_index[pos]] == name).all()


def test_population_follows_the_statistical_areas(grid9: Grid, source: Path) -> None:
    """Aggregated to resolution-6 parents, grid and 2017 areas agree closely (r > 0.97)."""
    areas = pd.read_csv(source_file(source, "taichung_statistical_areas_2017.csv"))
    area_parent = np.array(
        [h3.api.basic_int.latlng_to_cell(a, b, 6) for a, b in zip(areas["lat"], areas["lon"], strict=True)],
        dtype=np.uint64,
    )
    grid_parent = np.array([h3.api.basic_int.cell_to_parent(int(c), 6) for c in grid9.cells], dtype=np.uint64)
    parents = np.union1d(area_parent, grid_parent)
    a = np.bincount(np.searchsorted(parents, area_parent), weights=areas["population_2017_06"], minlength=len(parents))
    g = np.bincount(np.searchsorted(parents, grid_parent), weights=grid9.population, minlength=len(parents))
    r = np.corrcoef(a, g)[0, 1]
    assert r > 0.97, r
    # not uniform: the densest tenth of cells holds far more than a tenth of the people
    top = np.sort(grid9.population)[::-1][: len(grid9) // 10].sum()
    assert top / grid9.population.sum() > 0.5


def test_environment_table(grid9: Grid) -> None:
    assert set(ENVIRONMENT_BY_DISTRICT) == set(grid9.districts)
    env = np.asarray(ENVIRONMENTS)[grid9.environment]
    names = np.asarray(grid9.districts)[grid9.district_index]
    for name, expected in ENVIRONMENT_BY_DISTRICT.items():
        assert set(env[names == name]) == {expected}
    assert ENVIRONMENT_BY_DISTRICT["中區"] == "urban" and ENVIRONMENT_BY_DISTRICT["和平區"] == "rural"
    assert ENVIRONMENT_BY_DISTRICT["大甲區"] == "suburban"


@pytest.mark.parametrize("bad", [6, 13, 0, -1, 10.5, "10", True, None])
def test_resolution_validation(bad: object) -> None:
    with pytest.raises(GridBuildError, match="7") as info:
        check_resolution(bad)
    assert isinstance(info.value, ValueError)
    with pytest.raises(GridBuildError):
        build_grid(bad)  # type: ignore[arg-type]


def test_resolution_7_gives_tiny_districts_one_cell(source: Path) -> None:
    """中區 and 東區 hold no res-7 centre: each takes one cell; sums still exact, no duplicates."""
    grid = build_grid(7, source)
    official = official_population(source)
    counts = np.bincount(grid.district_index, minlength=29)
    assert counts.min() >= 1
    sums = _district_sums(grid)
    assert max(abs(sums[n] - official[n]) for n in official) <= 1e-6
    assert len(np.unique(grid.cells)) == len(grid)


def test_missing_source_dir_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(GridBuildError, match="ZHONGDU_SOURCE_DATA_DIR"):
        build_grid(8, tmp_path)


@pytest.mark.slow
def test_cli_grid_build_writes_the_designed_csv(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "grid.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "grid", "build", "--resolution", "8", "--out", str(out),
         "--source-dir", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "polygon fill" in proc.stderr  # progress lines
    with out.open(encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["h3", "district", "population", "environment"]
    grid = load_grid(out)
    assert grid.resolution == 8
    official = official_population(source)
    sums = _district_sums(grid)
    assert max(abs(sums[n] - official[n]) for n in official) <= 1e-6
    bad = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "grid", "build", "--resolution", "13", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "between 7 and 12" in bad.stderr


def test_shipped_grid_is_gzip_csv() -> None:
    from zhongdu.coverage._layout import DATA_DIR

    with gzip.open(DATA_DIR / "grid_res10.csv.gz", "rt", encoding="utf-8") as fh:
        assert fh.readline().strip() == "h3,district,population,environment"


@settings(max_examples=40, deadline=None)
@given(
    n_districts=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    n_cells=st.integers(5, 200),
)
def test_spread_population_sums_exactly(n_districts: int, seed: int, n_cells: int) -> None:
    rng = np.random.default_rng(seed)
    district_index = np.concatenate([np.arange(n_districts), rng.integers(0, n_districts, n_cells)]).astype(np.int32)
    weights = np.where(rng.random(len(district_index)) < 0.3, 0.0, rng.exponential(100.0, len(district_index)))
    met = rng.random(len(district_index)) < 0.8
    official = rng.integers(0, 400_000, n_districts).astype(np.float64)
    pop = spread_population(weights, met, district_index, official)
    assert (pop >= 0).all()
    sums = np.bincount(district_index, weights=pop, minlength=n_districts)
    assert np.abs(sums - official).max() <= 1e-6


def test_a_cell_claimed_by_two_districts_is_kept_once() -> None:
    """h3 can fill a border cell for both neighbours (seen once at resolution 11): the owner keeps it."""
    from shapely.geometry import box

    from zhongdu.coverage._grid_build import DistrictInfo, _resolve_shared_cells

    cell = h3.api.basic_int.latlng_to_cell(24.15, 120.65, 11)
    lat, lng = h3.api.basic_int.cell_to_latlng(cell)
    shapes = gpd.GeoDataFrame(
        {"name_zh": ["甲區", "乙區"]},
        geometry=[box(lng - 0.01, lat - 0.01, lng + 0.01, lat + 0.01), box(lng + 0.001, lat, lng + 0.02, lat + 0.01)],
    ).set_index("name_zh")
    infos = [DistrictInfo("乙區", "B", "2", 1, "urban"), DistrictInfo("甲區", "A", "1", 1, "urban")]
    other = h3.api.basic_int.latlng_to_cell(24.2, 120.7, 11)
    cells = np.array([cell, other, cell], dtype=np.uint64)
    index = np.array([0, 0, 1], dtype=np.int32)  # 乙區 claims it first, but only 甲區 covers the centre
    kept, kept_index = _resolve_shared_cells(cells, index, infos, shapes, 11)
    assert sorted(kept.tolist()) == sorted([cell, other])
    assert kept_index[kept == np.uint64(cell)].tolist() == [1]


def test_fast_fill_equals_h3_polygon_fill(districts: gpd.GeoDataFrame) -> None:
    """The fast path (coarse fill, children, shapely centre test) gives exactly h3's cells."""
    from zhongdu.coverage._grid_build import fill_district

    for geom in districts.geometry:
        h3_cells = fill_district(geom, 9, fast=False)
        assert np.array_equal(fill_district(geom, 9, fast=True), h3_cells)
    small = districts.set_index("name_zh").geometry
    for name in ("中區", "東區", "大安區"):
        assert np.array_equal(fill_district(small[name], 10, fast=True), fill_district(small[name], 10, fast=False))


@pytest.mark.parametrize("res", [0, 4, 9, 12])
def test_cell_children_arithmetic_equals_h3(res: int) -> None:
    """Children from the index bits, vectorised, are h3's, in h3's order, pentagons included."""
    from zhongdu.coverage._grid_build import cell_children

    h3i = h3.api.basic_int
    taichung = h3i.latlng_to_cell(24.15, 120.67, res)
    cells = sorted({taichung, *h3i.grid_disk(taichung, 2), *(h3i.get_pentagons(res))})
    arr = np.array(cells, dtype=np.uint64)
    for k in range(0, min(3, 15 - res) + 1):
        want = [c for cell in cells for c in h3i.cell_to_children(cell, res + k)]
        assert cell_children(arr, res + k).tolist() == want, (res, k)


def test_centres_in_areas_equals_a_spatial_join(districts: gpd.GeoDataFrame, source: Path) -> None:
    """Blocks taken whole or tested centre by centre: the same (cell, area) pairs as geopandas'
    `sjoin(within)` keeping the first area of each centre, on a district at resolution 11."""
    from zhongdu.coverage._grid_build import AREAS_FILE, cell_centres, centres_in_areas, fill_district

    areas = read_source_geojson(source, AREAS_FILE, ["codebase"])
    geom = districts.set_index("name_zh").geometry["西區"]
    cells = fill_district(geom.buffer(0.003), 11)  # past the district's edge: centres in no area too
    lat, lng = cell_centres(cells)
    got_cells, got_areas = centres_in_areas(cells, lat, lng, np.asarray(areas.geometry.array, dtype=object))
    points = gpd.GeoDataFrame({"row": np.arange(len(cells))}, geometry=gpd.points_from_xy(lng, lat), crs=areas.crs)
    joined = gpd.sjoin(points, areas[["geometry"]], how="inner", predicate="within")
    rows, area_rows = joined["row"].to_numpy(), joined["index_right"].to_numpy()
    order = np.lexsort((area_rows, rows))
    rows, area_rows = rows[order], area_rows[order]
    first = np.concatenate([[True], rows[1:] != rows[:-1]])
    assert 0 < len(got_cells) < len(cells)
    assert got_cells.tolist() == rows[first].tolist()
    assert got_areas.tolist() == area_rows[first].tolist()


def test_resolution_10_build_equals_the_shipped_grid(source: Path) -> None:
    """The builder (children arithmetic, block-wise areas) gives the shipped grid cell for cell."""
    built = build_grid(10, source)
    shipped = load_default_grid()
    assert np.array_equal(built.cells, shipped.cells)
    assert np.array_equal(built.district_index, shipped.district_index)
    assert np.array_equal(built.population, shipped.population)
