"""Build the H3 population grid of Taichung's 29 districts from the real inputs.

A district's cells are the H3 cells whose centres fall inside its polygon (h3's centre-containment
polygon fill, holes and MultiPolygons included). Its official 2026-09 population is spread over
them in proportion to the finest real surface found, the 17,218 smallest statistical areas
(最小統計區) with their 2017-06 populations, then rescaled so that the district sums equal the
official figures exactly. The inputs ship with the project, gzipped, in `coverage/data/source/`
(`ZHONGDU_SOURCE_DATA_DIR` overrides the folder); every reader finds a file through `source_file`,
so plain and gzipped copies read alike. Derived products: see `docs/coverage.md#shipped-data`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from numpy.typing import NDArray

from zhongdu.errors import ZhongduError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import geopandas as gpd

    from zhongdu.coverage._types import Grid

log = logging.getLogger(__name__)

MIN_RESOLUTION = 7
MAX_RESOLUTION = 12

DISTRICTS_FILE = "taichung_districts.geojson"
POPULATION_FILE = "taichung_district_population.csv"
AREAS_FILE = "taichung_statistical_areas_2017.geojson"
AREA_POINTS_FILE = "taichung_statistical_areas_2017.csv"
COUNTS_FILE = "taichung_base_station_counts.csv"
OPERATOR_SOURCE_FILE = "taichung_base_station_counts_by_operator.csv"
#: The shipped copy of the inputs (the default of `ZHONGDU_SOURCE_DATA_DIR`), each file gzipped.
SHIPPED_SOURCE_DIR = Path(__file__).resolve().parent / "data" / "source"
#: What `source_dir_or_default` insists on: the grid builder's and the layouts' inputs.
REQUIRED_FILES = (DISTRICTS_FILE, POPULATION_FILE, AREAS_FILE, AREA_POINTS_FILE, COUNTS_FILE)

ENVIRONMENT_CODES: dict[str, int] = {"urban": 0, "suburban": 1, "rural": 2}
ENVIRONMENT_NAMES: tuple[str, ...] = ("urban", "suburban", "rural")

# Environment of each district for the `hata` model (docs/coverage.md#models). Reasoning, with the
# 2026-09 population per GIS km² (taichung_districts.geojson):
# - urban: the old city core 中區 東區 西區 南區 北區 (11,000-19,000/km²) and the dense districts
#   grown into it, 西屯區 南屯區 北屯區 (5,200-6,200/km²) and 大里區 (7,200/km², continuous with
#   南區/東區). Rule: at least 5,000 people per km²; exactly these nine districts pass it.
# - rural: the mountain and foothill districts east of the 大甲溪 fan, 和平區 (10/km², Central
#   Range), 新社區 (270/km², river-terrace plateau), 東勢區 (430/km²) and 石岡區 (760/km²), where
#   settlements are scattered among orchards and slopes.
# - suburban: the remaining 16 districts of the plains and the coast (500-4,300/km²), among them
#   豐原區 (3,900/km², as dense as 潭子區) and 太平區 (its west is dense, its east is hills; by
#   district average 1,700/km²). 大安區 is flat open farmland; it stays suburban (the conservative
#   choice: Hata's open-area correction would lower its path loss by about 20 dB).
ENVIRONMENT_BY_DISTRICT: dict[str, str] = {
    "中區": "urban", "東區": "urban", "西區": "urban", "南區": "urban", "北區": "urban",
    "西屯區": "urban", "南屯區": "urban", "北屯區": "urban", "大里區": "urban",
    "和平區": "rural", "新社區": "rural", "東勢區": "rural", "石岡區": "rural",
    "豐原區": "suburban", "大甲區": "suburban", "清水區": "suburban", "沙鹿區": "suburban",
    "梧棲區": "suburban", "后里區": "suburban", "神岡區": "suburban", "潭子區": "suburban",
    "大雅區": "suburban", "外埔區": "suburban", "大安區": "suburban", "烏日區": "suburban",
    "大肚區": "suburban", "龍井區": "suburban", "霧峰區": "suburban", "太平區": "suburban",
}  # fmt: skip

Progress = Callable[[str], None]


class GridBuildError(ZhongduError, ValueError):
    """The grid cannot be built: bad resolution, or missing/inconsistent source data."""


@dataclass(frozen=True)
class DistrictInfo:
    """One district as the builder sees it (names sorted as in `Grid.districts`)."""

    name_zh: str
    name_en: str
    code: str
    population: int
    environment: str


def check_resolution(resolution: object) -> int:
    """The resolution as an int in 7..12, or a `GridBuildError` naming the allowed range."""
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
        raise GridBuildError(f"H3 resolution must be an integer 7-12, got {resolution!r}")
    value = int(resolution)
    if not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise GridBuildError(
            f"H3 resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION} "
            f"(res 10 has about 168,000 cells over Taichung), got {value}"
        )
    return value


def find_source_file(source_dir: Path | str, name: str) -> Path | None:
    """`source_dir/name` if it exists, else `source_dir/name.gz` if that does, else None."""
    path = Path(source_dir) / name
    if path.is_file():
        return path
    packed = path.with_name(path.name + ".gz")
    return packed if packed.is_file() else None


def source_file(source_dir: Path | str, name: str) -> Path:
    """The input `name` in `source_dir`, plain or gzipped (`name.gz`); fails naming both and the fix.

    Every reader of the Taichung inputs goes through this, so a folder of plain originals (an
    override) and the shipped gzipped copy read the same way. Open the result with
    `open_source_text` (CSV), `read_source_geojson`, or pandas (which infers gzip from `.gz`).
    """
    found = find_source_file(source_dir, name)
    if found is None:
        raise GridBuildError(
            f"source data directory {str(source_dir)!r} has neither {name} nor {name}.gz; unset "
            f"ZHONGDU_SOURCE_DATA_DIR to use the shipped copy ({SHIPPED_SOURCE_DIR}), or point it at "
            "a folder holding the real Taichung inputs"
        )
    return found


def open_source_text(source_dir: Path | str, name: str) -> TextIO:
    """The input `name` (plain or gzipped) opened as UTF-8 text for `csv` (newline='')."""
    path = source_file(source_dir, name)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_source_geojson(
    source_dir: Path | str, name: str, columns: list[str] | None = None
) -> gpd.GeoDataFrame:
    """The GeoJSON input `name` (plain or gzipped) as a GeoDataFrame, features in file order."""
    import geopandas as gpd

    path = source_file(source_dir, name)
    if path.suffix == ".gz":  # decompressed in memory: 0.40 s vs 0.36 s plain for the 17,218 areas
        return gpd.read_file(io.BytesIO(gzip.decompress(path.read_bytes())), columns=columns)
    return gpd.read_file(path, columns=columns)


def source_dir_or_default(source_dir: Path | str | None) -> Path:
    """`source_dir`, or `Settings().source_data_dir` (the shipped copy unless overridden).

    Fails clearly when an input the builders need is missing (plain or gzipped).
    """
    if source_dir is None:
        from zhongdu.settings import Settings

        source_dir = Settings().source_data_dir
    path = Path(source_dir)
    missing = [name for name in REQUIRED_FILES if find_source_file(path, name) is None]
    if missing:
        raise GridBuildError(
            f"source data directory {str(path)!r} lacks {', '.join(missing)} (plain or .gz); unset "
            f"ZHONGDU_SOURCE_DATA_DIR to use the shipped copy ({SHIPPED_SOURCE_DIR}), or point it at "
            "a folder holding the real Taichung inputs"
        )
    return path


def read_districts(source_dir: Path) -> list[DistrictInfo]:
    """The 29 districts with their official 2026-09 population, sorted by Chinese name."""
    with open_source_text(source_dir, POPULATION_FILE) as fh:
        rows = list(csv.DictReader(fh))
    districts = []
    for row in rows:
        name = row["name_zh"]
        if name not in ENVIRONMENT_BY_DISTRICT:
            raise GridBuildError(f"district {name!r} in {POPULATION_FILE} has no environment in the table")
        districts.append(
            DistrictInfo(
                name_zh=name,
                name_en=row["name_en"],
                code=row["district_code"],
                population=int(row["population"]),
                environment=ENVIRONMENT_BY_DISTRICT[name],
            )
        )
    if len(districts) != len(ENVIRONMENT_BY_DISTRICT):
        raise GridBuildError(f"{POPULATION_FILE} has {len(districts)} districts, expected 29")
    return sorted(districts, key=lambda d: d.name_zh)


def _centre_pairs(cells: NDArray[np.uint64]) -> NDArray[np.float64]:
    """(latitude, longitude) rows of each cell centre, in degrees: one call per cell into h3's C.

    h3-py has no array form of `cell_to_latlng`. Its compiled `h3._cy.cell_to_latlng` is what the
    public `h3.api.basic_int.cell_to_latlng` calls after a Python-level pass-through; calling it
    directly spares that frame (a sixth of the time per cell) and gives the very same numbers.
    """
    try:
        from h3._cy import cell_to_latlng
    except ImportError:  # a future h3-py layout: the public function, same C underneath
        from h3.api.basic_int import cell_to_latlng
    # map + chain iterate in C: a quarter less than a generator's frame per cell
    return np.fromiter(
        itertools.chain.from_iterable(map(cell_to_latlng, cells.tolist())),
        dtype=np.float64,
        count=2 * len(cells),
    ).reshape(-1, 2)


#: Below this many cells `cell_centres` does not hand half of them to the worker process.
_SPLIT_FROM = 50_000


def cell_centres(
    cells: NDArray[np.uint64], pool: Executor | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Latitude and longitude (degrees) of each cell centre, exactly h3's.

    With `pool` (one worker process, see `centre_pool`) the second half of the cells is computed
    there while this process computes the first: h3's per-cell calls are the largest single step
    of a resolution-12 build, and an idle second core can take half of them.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if pool is None or len(cells) < _SPLIT_FROM:
        flat = _centre_pairs(cells)
    else:
        half = len(cells) // 2
        later = pool.submit(_centre_pairs, cells[half:])
        flat = np.concatenate([_centre_pairs(cells[:half]), later.result()])
    return flat[:, 0].copy(), flat[:, 1].copy()


def centre_processes(processes: int | None = None) -> int:
    """How many processes compute cell centres: `processes`, else 1.

    Two pay only on an idle second core: on the shared development machine (load 3 to 5 on two
    cores) the split build took 13.1 s wall against 11.6 s alone, the halves travelling pickled
    (24 bytes a cell) and the worker competing for a busy core (docs/performance.md).
    """
    if processes is None:
        return 1
    if processes < 1:
        raise GridBuildError(f"processes must be at least 1, got {processes}")
    return processes


@contextlib.contextmanager
def centre_pool(processes: int | None = None) -> Iterator[Executor | None]:
    """One forked worker process for `cell_centres`, or None when only one process is wanted.

    Forked early (the builder's arrays are still small, so the fork copies little) and kept for
    the whole build; the cells go to it and their centres come back pickled (24 bytes a cell).
    """
    if centre_processes(processes) < 2:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def _local_xy(lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.float64]:
    """Equirectangular metres around Taichung (24.2° N); good enough for nearest-centre lookups."""
    k = np.pi / 180.0 * 6_371_008.8
    return np.column_stack((lon * k * np.cos(np.radians(24.2)), lat * k))


def _area_weights(
    cells: NDArray[np.uint64],
    district_index: NDArray[np.int32],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    districts: list[DistrictInfo],
    source_dir: Path,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per-cell weights from the 2017 statistical areas, and which cells met no area.

    Each area's population goes in equal parts to the cells whose centres fall inside it (same
    district only); an area holding no centre gives its population to the cell of its own district
    nearest to its representative point (the cell containing that point, up to H3's hexagon
    distortion).
    """
    import pandas as pd
    from scipy.spatial import cKDTree

    areas = read_source_geojson(source_dir, AREAS_FILE, ["codebase", "district_code", "population_2017_06"])
    points = pd.read_csv(source_file(source_dir, AREA_POINTS_FILE), usecols=["codebase", "lon", "lat"])
    points = points.set_index("codebase").reindex(areas["codebase"])
    if points["lon"].isna().any():
        raise GridBuildError(f"{AREA_POINTS_FILE} lacks representative points for some areas of {AREAS_FILE}")
    code_to_index = {d.code: i for i, d in enumerate(districts)}
    area_district = areas["district_code"].map(code_to_index)
    if area_district.isna().any():
        bad = sorted(set(areas.loc[area_district.isna(), "district_code"]))
        raise GridBuildError(f"statistical areas name unknown district codes {bad}")
    area_district_arr = area_district.to_numpy(dtype=np.int32)
    area_pop = areas["population_2017_06"].to_numpy(dtype=np.float64)

    cell_rows, area_rows = centres_in_areas(cells, lat, lon, np.asarray(areas.geometry.array, dtype=object))
    # an area of another district: ignore
    same = area_district_arr[area_rows] == district_index[cell_rows]
    cell_rows, area_rows = cell_rows[same], area_rows[same]

    cells_per_area = np.bincount(area_rows, minlength=len(area_pop))
    weights = np.zeros(len(cells), dtype=np.float64)
    weights[cell_rows] = area_pop[area_rows] / cells_per_area[area_rows]
    met_area = np.zeros(len(cells), dtype=np.bool_)
    met_area[cell_rows] = True

    orphan = (cells_per_area == 0) & (area_pop > 0)
    if orphan.any():
        xy_cells = _local_xy(lat, lon)
        orphan_idx = np.flatnonzero(orphan)
        orphan_xy = _local_xy(points["lat"].to_numpy()[orphan_idx], points["lon"].to_numpy()[orphan_idx])
        for d in np.unique(area_district_arr[orphan_idx]):  # per district, vectorised inside
            in_d = np.flatnonzero(district_index == d)
            if len(in_d) == 0:
                continue
            sel = area_district_arr[orphan_idx] == d
            _, nearest = cKDTree(xy_cells[in_d]).query(orphan_xy[sel])
            np.add.at(weights, in_d[nearest], area_pop[orphan_idx[sel]])
            met_area[in_d[nearest]] = True
        log.debug("%d statistical areas held no cell centre", len(orphan_idx))
    return weights, met_area


def centres_in_areas(
    cells: NDArray[np.uint64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    areas: NDArray[np.object_],
    *,
    levels: int = 2,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(cell row, area index) for every cell centre strictly inside an area: the first (lowest
    index) area when several hold it, as a spatial join with `within` keeps it.

    Cells (sorted) are grouped under their ancestors a few levels up into blocks; a block whose
    centres' bounding box lies strictly inside the one area it meets takes that area whole, and
    only the centres of blocks near area borders are tested one by one (shapely's `contains_xy`,
    vectorised over (centre, area) pairs). At resolution 12 that spares most of the 8.2 million
    point-in-polygon tests, and the point objects a spatial join would build.
    """
    import shapely

    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    res = int((int(cells[0]) >> 52) & 0xF)
    up = min(levels, res)  # 2: 49-cell blocks (about 130 m across at resolution 12)
    digits = np.uint64((1 << (3 * (15 - res + up))) - 1)
    block_key = cells | digits
    starts = np.flatnonzero(np.concatenate([[True], block_key[1:] != block_key[:-1]]))
    if len(starts) > 1 and not bool((block_key[1:] >= block_key[:-1]).all()):
        raise GridBuildError("cells must be sorted to be grouped into blocks")
    sizes = np.diff(np.append(starts, n))
    boxes = shapely.box(
        np.minimum.reduceat(lon, starts),
        np.minimum.reduceat(lat, starts),
        np.maximum.reduceat(lon, starts),
        np.maximum.reduceat(lat, starts),
    )
    shapely.prepare(areas)
    tree = shapely.STRtree(areas)
    b, a = tree.query(boxes, predicate="intersects")
    b, a = b.astype(np.int64), a.astype(np.int64)
    hits = np.bincount(b, minlength=len(starts))
    # one area meets the block and holds its box strictly inside: every centre is inside it
    single = hits[b] == 1
    whole = np.zeros(len(starts), dtype=bool)
    if single.any():
        inside = shapely.contains_properly(areas[a[single]], boxes[b[single]])
        whole[b[single][inside]] = True
    area_of_block = np.full(len(starts), -1, dtype=np.int64)
    area_of_block[b[single]] = a[single]
    none = np.iinfo(np.int64).max
    area = np.where(np.repeat(whole, sizes), np.repeat(area_of_block, sizes), none)
    # the other blocks: each centre against each area its block meets; the lowest area holding
    # a centre wins (`np.minimum.at`: no sort of the millions of pairs)
    test = ~whole[b]
    tb, ta = b[test], a[test]
    ends = np.cumsum(sizes[tb])
    # in slices of about a million (centre, area) pairs: small temporaries are reused by the
    # allocator instead of being mapped and faulted in anew (system time), and the peak stays low
    cuts = np.searchsorted(ends, np.arange(_PAIR_SLICE, int(ends[-1]) if len(ends) else 0, _PAIR_SLICE))
    for lo, hi in itertools.pairwise([0, *np.unique(cuts + 1).tolist(), len(tb)]):
        if hi <= lo:
            continue
        count = sizes[tb[lo:hi]]
        owner = np.repeat(np.arange(lo, hi, dtype=np.int64), count)
        offset = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        rows = starts[tb[owner]] + offset
        pair_area = ta[owner]
        ok = shapely.contains_xy(areas[pair_area], lon[rows], lat[rows])
        np.minimum.at(area, rows[ok], pair_area[ok])
    cell_rows = np.flatnonzero(area != none)
    return cell_rows.astype(np.int64), area[cell_rows]


def spread_population(
    weights: NDArray[np.float64],
    met_area: NDArray[np.bool_],
    district_index: NDArray[np.int32],
    official: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Scale per-cell weights so each district sums to its official population exactly.

    Cells that met no statistical area get the district's mean weight per cell (uniform there); a
    district whose weights are all zero is spread uniformly. A last correction puts the float
    residual of each district on its largest cell, so the sums match to rounding (< 1e-6).
    """
    n = len(official)
    counts = np.bincount(district_index, minlength=n).astype(np.float64)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0)
        raise GridBuildError(f"districts with no cell at this resolution: indexes {empty.tolist()}")
    w = weights.astype(np.float64, copy=True)
    mean_weight = np.bincount(district_index, weights=w, minlength=n) / counts
    w[~met_area] = mean_weight[district_index[~met_area]]
    total = np.bincount(district_index, weights=w, minlength=n)
    zero = total <= 0
    if zero.any():
        w[zero[district_index]] = 1.0
        total = np.bincount(district_index, weights=w, minlength=n)
    population = w * (official / total)[district_index]
    residual = official - np.bincount(district_index, weights=population, minlength=n)
    # each district's largest cell, the first row among equals (what a stable sort by district,
    # then population descending, puts first): two passes instead of sorting millions of rows
    largest = np.full(n, -np.inf)
    np.maximum.at(largest, district_index, population)
    rows = np.flatnonzero(population == largest[district_index])
    _, at = np.unique(district_index[rows], return_index=True)
    population[rows[at]] += residual
    return population


def _cell_for_tiny_district(geometry: object, res: int, claimed: set[int]) -> np.uint64:
    """The cell holding the district's representative point, or the nearest unclaimed neighbour."""
    import h3.api.basic_int as h3i

    point = geometry.representative_point()  # type: ignore[attr-defined]
    home = h3i.latlng_to_cell(point.y, point.x, res)
    ring = [
        home,
        *sorted(
            set(h3i.grid_disk(home, 1)) - {home},
            key=lambda c: h3i.great_circle_distance(h3i.cell_to_latlng(c), (point.y, point.x)),
        ),
    ]
    for cell in ring:
        if cell not in claimed:
            return np.uint64(cell)
    raise GridBuildError(f"no free cell near a tiny district at resolution {res}")


def _resolve_shared_cells(
    cells: NDArray[np.uint64],
    district_index: NDArray[np.int32],
    districts: list[DistrictInfo],
    shapes: Any,
    res: int,
) -> tuple[NDArray[np.uint64], NDArray[np.int32]]:
    """Keep each cell once: a centre exactly on a shared border can be filled by both districts.

    Measured: one cell at resolution 11 (coordinates are rounded to 1e-6°). The cell goes to the
    district whose polygon covers its centre (shapely), the first by name when both do.
    """
    order = np.argsort(cells, kind="stable")
    keep = _shared_cells_kept(cells, order, district_index, districts, shapes, res)
    return cells[keep], district_index[keep]


def _shared_cells_kept(
    cells: NDArray[np.uint64],
    order: NDArray[np.intp],
    district_index: NDArray[np.int32],
    districts: list[DistrictInfo],
    shapes: Any,
    res: int,
) -> NDArray[np.bool_]:
    """Which rows `_resolve_shared_cells` keeps, given the rows in cell order (`order`, stable):
    duplicates are neighbours there, so no second sort of millions of cells."""
    import h3.api.basic_int as h3i
    from shapely.geometry import Point

    ordered = cells[order]
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    keep = np.ones(len(cells), dtype=np.bool_)
    if len(dup) == 0:
        return keep
    shared = np.unique(ordered[dup])
    for u in shared.tolist():  # a handful of border cells, not a per-cell loop
        key = np.uint64(u)
        lo, hi = int(np.searchsorted(ordered, key, "left")), int(np.searchsorted(ordered, key, "right"))
        rows = np.sort(order[lo:hi])
        lat, lng = h3i.cell_to_latlng(int(u))
        owners = [
            r
            for r in rows.tolist()
            if shapes.geometry[districts[district_index[r]].name_zh].covers(Point(lng, lat))
        ]
        winner = min(owners or rows.tolist(), key=lambda r: districts[district_index[r]].name_zh)
        keep[rows[rows != winner]] = False
    log.info("%d cells on shared district borders at resolution %d kept once", len(shared), res)
    return keep


#: From this resolution on, `fill_district` tests centres itself (h3's fill costs cells x vertices:
#: 和平區, 6,940 vertices, takes 10 s at resolution 10 and over 8 minutes at 12; this path 1 s / 22 s).
FAST_FILL_FROM = 10
#: Children's centres lie within this many coarse edge lengths of their ancestor's centre three
#: levels up (measured: at most 0.97 around Taichung; the rest is margin, so no cell is missed).
_CHILD_REACH = 1.6


def fill_district(geometry: Any, res: int, *, fast: bool | None = None) -> NDArray[np.uint64]:
    """Cells whose centres fall inside `geometry` (a shapely Polygon/MultiPolygon), sorted.

    Below `FAST_FILL_FROM`, h3's own polygon fill. From it on, the same set computed faster:
    candidate cells are the children of a coarse h3 fill (3 levels up) of the polygon grown by two
    coarse edge lengths, and their centres are tested with shapely's vectorised `contains_xy`
    (holes and MultiPolygons included). The tests check both paths give identical cells.
    """
    return _fill(geometry, res, fast=fast)[0]


def _fill(
    geometry: Any, res: int, *, fast: bool | None = None, pool: Executor | None = None
) -> tuple[NDArray[np.uint64], NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """`fill_district`'s cells, with their centres when the fast path computed them (else None)."""
    import h3.api.numpy_int as h3n
    import shapely

    use_fast = res >= FAST_FILL_FROM if fast is None else fast
    if not use_fast:
        return np.sort(np.asarray(h3n.geo_to_cells(geometry, res), dtype=np.uint64)), None, None
    coarse_res = max(res - 3, 0)
    edge_deg = (
        float(h3n.average_hexagon_edge_length(coarse_res, unit="m")) / 111_000.0 / np.cos(np.radians(25.0))
    )
    grow = 2.0 * edge_deg
    outer = geometry.buffer(grow).simplify(grow / 4.0)  # still covers `geometry`: tolerance < growth
    coarse = np.asarray(h3n.geo_to_cells(outer, coarse_res), dtype=np.uint64)
    if len(coarse) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0), np.zeros(0)
    # every child centre lies within REACH coarse edges of its coarse cell's centre: coarse cells
    # farther outside the polygon have no child inside (no centres computed for them), and the
    # children of those deeper inside are all inside (no point-in-polygon test)
    c_lat, c_lng = cell_centres(coarse)
    reach = _CHILD_REACH * edge_deg
    boundary = geometry.boundary
    shapely.prepare(boundary)  # prepared `dwithin`: 20 times faster than distances
    near = shapely.dwithin(boundary, shapely.points(c_lng, c_lat), reach)
    c_in = shapely.contains_xy(geometry, c_lng, c_lat)
    keep = c_in | near
    coarse, deep = coarse[keep], (c_in & ~near)[keep]
    # in slices of coarse cells (about a million candidates each): the temporaries stay small
    # and are reused by the allocator instead of being faulted in anew
    step = max(1, _PAIR_SLICE // 7 ** (res - coarse_res))
    kept: list[tuple[NDArray[np.uint64], NDArray[np.float64], NDArray[np.float64]]] = []
    for a in range(0, len(coarse), step):
        part, sure_part = coarse[a : a + step], deep[a : a + step]
        candidates = cell_children(part, res)
        lat, lng = cell_centres(candidates, pool)
        per = len(candidates) // len(part)  # 7^3 each (a pentagon has fewer: test all)
        sure = (
            np.repeat(sure_part, per)
            if per * len(part) == len(candidates)
            else np.zeros(len(candidates), bool)
        )
        test = np.flatnonzero(~sure)
        hit = sure.copy()
        hit[test] = shapely.contains_xy(geometry, lng[test], lat[test])
        kept.append((candidates[hit], lat[hit], lng[hit]))
    cells = np.concatenate([k[0] for k in kept])
    order = np.argsort(cells, kind="stable")
    return (
        cells[order],
        np.concatenate([k[1] for k in kept])[order],
        np.concatenate([k[2] for k in kept])[order],
    )


#: (centre, area) pairs tested per slice in `centres_in_areas`.
_PAIR_SLICE = 1 << 20

#: H3's 12 pentagons are the cells whose digits are all 0 on these base cells.
_PENTAGON_BASE_CELLS = (4, 14, 24, 38, 49, 58, 63, 72, 83, 97, 107, 117)


def cell_children(cells: NDArray[np.uint64], res: int) -> NDArray[np.uint64]:
    """Vectorised `h3.cell_to_children` of cells of one resolution, in each parent's order.

    The children of a cell are its index with the resolution field set and the digits below
    its own resolution (7 = unused) set to every combination of 0..6, ascending; a pentagon
    has no child whose first non-zero digit below it is 1 (H3's deleted K-axis subsequence).
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0:
        return np.zeros(0, dtype=np.uint64)
    parent_res = int((int(cells[0]) >> 52) & 0xF)
    if res < parent_res:
        raise GridBuildError(f"children at resolution {res} of cells at the finer resolution {parent_res}")
    k = res - parent_res
    shift = 3 * (15 - res)
    # the k new digits as one number in base 8 whose digits are 0..6, ascending
    codes = np.zeros(1, dtype=np.uint64)
    for _ in range(k):
        codes = (codes[:, None] * np.uint64(8) + np.arange(7, dtype=np.uint64)[None, :]).ravel()
    cleared = (cells & ~np.uint64(((1 << (3 * k)) - 1) << shift) & ~np.uint64(0xF << 52)) | np.uint64(
        res << 52
    )
    out = (cleared[:, None] | (codes[None, :] << np.uint64(shift))).ravel()
    base = (cells >> np.uint64(45)) & np.uint64(0x7F)
    digits = (cells >> np.uint64(3 * (15 - parent_res))) & np.uint64((1 << (3 * parent_res)) - 1)
    pentagon = np.isin(base, np.array(_PENTAGON_BASE_CELLS, dtype=np.uint64)) & (digits == 0)
    if k and pentagon.any():
        # drop children whose first non-zero new digit is 1
        first = np.zeros(len(codes), dtype=np.uint64)
        for j in range(k):  # from the last new digit (j = 0) to the first: the first wins
            d = (codes >> np.uint64(3 * j)) & np.uint64(7)
            first = np.where(d != 0, d, first)
        keep = np.ones((len(cells), len(codes)), dtype=bool)
        keep[pentagon] = first != 1
        out = out[keep.ravel()]
    return out


def build_grid_arrays(
    resolution: int = 10,
    source_dir: Path | str | None = None,
    progress: Progress | None = None,
    processes: int | None = None,
) -> tuple[NDArray[np.uint64], NDArray[np.float64], NDArray[np.int32], list[DistrictInfo], NDArray[np.int8]]:
    """Cells (sorted), population, district index, districts and environment codes."""
    return _build_arrays(resolution, source_dir, progress, processes)[:5]


def _build_arrays(
    resolution: int, source_dir: Path | str | None, progress: Progress | None, processes: int | None = None
) -> tuple[
    NDArray[np.uint64],
    NDArray[np.float64],
    NDArray[np.int32],
    list[DistrictInfo],
    NDArray[np.int8],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """`build_grid_arrays` and the cell centres (latitude, longitude), computed once.

    The fast polygon fill already has each cell's centre; keeping them spares a second h3 call
    per cell (7 s at resolution 12), and `build_grid` hands them to the grid for the binary file.
    """
    res = check_resolution(resolution)
    src = source_dir_or_default(source_dir)
    wanted = centre_processes(processes)  # checked at every resolution
    # below the fast fill the centres are few: no worker process
    with centre_pool(wanted if res >= FAST_FILL_FROM else 1) as pool:
        return _build_arrays_with(res, src, progress, pool)


def _build_arrays_with(
    res: int, src: Path, progress: Progress | None, pool: Executor | None
) -> tuple[
    NDArray[np.uint64],
    NDArray[np.float64],
    NDArray[np.int32],
    list[DistrictInfo],
    NDArray[np.int8],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """`_build_arrays` once the inputs are found, cell centres computed with `pool`."""
    say = progress or (lambda _msg: None)
    districts = read_districts(src)
    shapes = read_source_geojson(src, DISTRICTS_FILE).set_index("name_zh")
    missing = [d.name_zh for d in districts if d.name_zh not in shapes.index]
    if missing:
        raise GridBuildError(f"{DISTRICTS_FILE} lacks polygons for {missing}")

    parts: list[NDArray[np.uint64]] = []
    part_lat: list[NDArray[np.float64] | None] = []
    part_lng: list[NDArray[np.float64] | None] = []
    for i, d in enumerate(districts):  # one polygon fill per district
        cells_i, lat_i, lng_i = _fill(shapes.geometry[d.name_zh], res, pool=pool)
        parts.append(cells_i)
        part_lat.append(lat_i)
        part_lng.append(lng_i)
        say(f"polygon fill {i + 1}/{len(districts)}: {d.name_zh} {len(parts[-1]):,} cells")
    claimed: set[int] = set()
    for i, d in enumerate(districts):
        if len(parts[i]) == 0:  # e.g. 中區 (0.94 km²) at resolution 7 (cells of 5.2 km²)
            taken = _cell_for_tiny_district(shapes.geometry[d.name_zh], res, claimed)
            claimed.add(int(taken))
            parts = [p[p != taken] for p in parts]
            parts[i] = np.array([taken], dtype=np.uint64)
            log.warning(
                "%s holds no cell centre at resolution %d: it takes the cell of its "
                "representative point from its neighbour",
                d.name_zh,
                res,
            )
    cells = np.concatenate(parts)
    known = not claimed and all(a is not None for a in part_lat)  # no tiny district moved a cell
    if known:
        all_lat = np.concatenate([a for a in part_lat if a is not None])
        all_lng = np.concatenate([a for a in part_lng if a is not None])
    district_index = np.repeat(np.arange(len(districts), dtype=np.int32), [len(p) for p in parts])
    # one sort: cells in order, a cell filled by two districts (a centre on their border) once
    order = np.argsort(cells, kind="stable")
    keep = _shared_cells_kept(cells, order, district_index, districts, shapes, res)
    order = order[keep[order]]
    cells, district_index = cells[order], district_index[order]

    if known:  # the fill's centres, in the same order (the rows are those of the fill)
        lat, lon = all_lat[order], all_lng[order]
    else:
        say(f"cell centres for {len(cells):,} cells")
        lat, lon = cell_centres(cells, pool)
    say("statistical areas: points in polygons")
    weights, met_area = _area_weights(cells, district_index, lat, lon, districts, src)
    official = np.array([d.population for d in districts], dtype=np.float64)
    population = spread_population(weights, met_area, district_index, official)
    env_lookup = np.array([ENVIRONMENT_CODES[d.environment] for d in districts], dtype=np.int8)
    environment = env_lookup[district_index]
    check_district_sums(population, district_index, official)
    return cells, population, district_index, districts, environment, lat, lon


def check_district_sums(
    population: NDArray[np.float64], district_index: NDArray[np.int32], official: NDArray[np.float64]
) -> None:
    """Raise unless every district's grid sum equals its official population to 1e-6."""
    sums = np.bincount(district_index, weights=population, minlength=len(official))
    worst = float(np.max(np.abs(sums - official)))
    if worst > 1e-6:
        raise GridBuildError(f"grid district sums differ from the official figures by up to {worst}")


def build_grid(
    resolution: int = 10,
    source_dir: Path | None = None,
    progress: Progress | None = None,
    processes: int | None = None,
) -> Grid:
    """The population grid at `resolution` from the real inputs (see module docstring).

    `processes`: how many processes compute cell centres (default 1; see `centre_processes`).
    """
    from zhongdu.coverage._types import Grid

    cells, population, district_index, districts, environment, lat, lon = _build_arrays(
        resolution, source_dir, progress, processes
    )
    grid = Grid(
        cells=cells,
        population=population,
        district_index=district_index,
        districts=tuple(d.name_zh for d in districts),
        environment=environment,
        resolution=check_resolution(resolution),
    )
    grid._cache["latlng"] = (lat, lon)  # h3's centres from the fill: no second call per cell
    return grid
