"""Coverage engine: best-server RSRP per H3 cell, whole-array NumPy, only reachable pairs evaluated.

How it stays fast (no Python loop over cells or cell-sector pairs):

1. Cell centres go once (per grid, cached) to 3-D coordinates in metres in a frame tangent to
   the grid's centre: X east, Y north, Z up. Chord lengths are exact (arc = chord (1 + c²/24R²));
   X, Y is an orthographic projection (a contraction: planar distance <= chord <= arc), so a
   disk of the arc reach in the X-Y plane contains every cell a sector can reach. Bearings are
   the exact great-circle initial bearings (dot products with the sector's local east/north).
2. Each sector's maximum reach per environment comes from inverting the model at boresight
   (`max_reach_m`; disk: `radius_m`). Cells are bucketed in square tiles per environment, sorted
   by tile; one query per (sector, environment, tile row) crossing the reach gives a contiguous
   range of cells, and ranges expand to candidate pairs with `np.repeat`. Candidates are
   evaluated in fixed-size chunks (bounded memory): exact chord filter, then RSRP.
3. Coverage needs one covering sector per cell, not all of them (the 2022 layout has ~10^8 pairs
   in reach at resolution 10). `_witnesses` first evaluates the sectors of each cell's nearest
   site (k-d tree), which covers almost every covered cell, then searches exhaustively (step 2)
   only for the cells left, from the (sector, environment) pairs with one of them in reach.
   Exact: a cell without a witness has no covering sector.
4. Per-cell output (`per_cell=True`, `coverage_matrix`) evaluates every pair in reach (step 2);
   best server per cell with `np.maximum.at` and a deterministic tie-break (highest RSRP, then
   the lowest (station_id, sector_id)), so results do not depend on row order.
5. `CoverageEngine` keeps one witness per cell: switching a sector on evaluates it alone,
   switching it off re-searches witnesses only for the cells it was the witness of; district
   sums are redone only for the districts touched (each summed on its own, bit-equal to a full
   computation).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._capacity import CapacityParams, capacity_served
from zhongdu.coverage._indoor import CRITERIA, indoor_loss_db
from zhongdu.coverage._models import (
    EARTH_RADIUS_M,
    MIN_DISTANCE_KM,
    great_circle_m,
    hata_terms,
    max_reach_m,
    reference_signal_dbm,
)
from zhongdu.coverage._types import ENVIRONMENTS, Grid, Stations, StationsError
from zhongdu.errors import ZhongduError

__all__ = [
    "CoverageEngine",
    "CoverageError",
    "CoverageResult",
    "Criterion",
    "DistrictCoverage",
    "Model",
    "compute_coverage",
    "coverage_matrix",
    "result_from_covered",
    "result_from_fraction",
]

Model = Literal["disk", "hata"]
MODELS: tuple[str, ...] = ("disk", "hata")
Criterion = Literal["outdoor", "indoor", "capacity"]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_CHUNK_PAIRS = 1 << 18  # candidate pairs per evaluation chunk: arrays stay in cache, memory bounded
_CHUNK_CELLS = 1 << 16  # cells per chunk of the nearest-site witness search
_CHUNK_GEOMETRY = 1 << 20  # cells per chunk of the per-cell geometry (bounded temporaries)
_R = EARTH_RADIUS_M
_MIN_C2 = (MIN_DISTANCE_KM * 1000.0) ** 2  # Hata's distance clamp, as a squared chord in m^2
_RAD2DEG2 = (180.0 / math.pi) ** 2
_LOG_ARC = 1.0 / (24.0 * _R * _R * math.log(10.0))  # log10(1 + x) ~ x / ln 10 for x < 1e-5


class CoverageError(ZhongduError, ValueError):
    """Inputs the engine cannot compute with (unknown model, missing radius, mismatched rows)."""


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class DistrictCoverage:
    district: str
    population: float
    covered: float
    share: float


@dataclass
class CoverageResult:
    """City-wide and per-district covered population; per-cell arrays when asked for.

    Per cell (`per_cell=True`): `best_rsrp_dbm` is the best RSRP among sectors reaching the
    threshold (NaN where none does, and always NaN for `disk`), `serving_row` the row of the
    serving sector in the stations table (-1 none; for `disk` the nearest covering sector).
    `covered` (bool per cell) comes with every result of `compute_coverage` and
    `CoverageEngine.result`: it is cheap, unlike the best servers.
    """

    population_total: float
    population_covered: float
    share: float
    districts: list[DistrictCoverage]
    best_rsrp_dbm: F64 | None = None
    serving_row: I64 | None = None
    covered: NDArray[np.bool_] | None = None
    stations_serving: int | None = None
    sectors_serving: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON object of `zhongdu coverage compute --json` (docs/coverage.md#output)."""
        return {
            "population_total": self.population_total,
            "population_covered": self.population_covered,
            "share": self.share,
            "districts": [
                {"district": d.district, "population": d.population, "covered": d.covered, "share": d.share}
                for d in self.districts
            ],
        }


@dataclass
class _Districts:
    """Cells grouped by district (stable: row order within a district), for per-district work on
    a few districts (the incremental engine) without a pass over the whole grid."""

    order: NDArray[np.integer[Any]]
    bounds: I64  # district d's cells: order[bounds[d]:bounds[d + 1]]
    population: F64  # population in that order


def _districts(grid: Grid) -> _Districts:
    cached: _Districts | None = grid._cache.get("districts")
    if cached is None:
        # a stable sort of small codes is a radix sort (several times faster at 8 M cells)
        small = grid.district_index.astype(np.uint8) if len(grid.districts) <= 256 else grid.district_index
        order = np.argsort(small, kind="stable")
        bounds = np.zeros(len(grid.districts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(grid.district_index, minlength=len(grid.districts)), out=bounds[1:])
        cached = _Districts(order, bounds, grid.population[order])
        grid._cache["districts"] = cached
    return cached


def _district_totals(grid: Grid) -> F64:
    """Population per district (one pass; cached)."""
    totals: F64 | None = grid._cache.get("district_totals")
    if totals is None:
        totals = np.asarray(
            np.bincount(grid.district_index, weights=grid.population, minlength=len(grid.districts)),
            dtype=np.float64,
        )
        grid._cache["district_totals"] = totals
    return totals


def _covered_by_district(grid: Grid, covered: NDArray[np.bool_], which: I64 | None = None) -> F64:
    """Covered population of the given districts (all by default).

    A district's total less its uncovered population, that a sequential sum in row order (what
    `np.bincount` does) whether all districts are summed in one pass or a few on their own: the
    incremental engine redoes just the districts a change touched and agrees bit for bit with a
    full computation. Uncovered cells are the few, so the pass reads little.
    """
    totals = _district_totals(grid)
    if which is None:
        off = np.flatnonzero(~covered)
        lost = np.bincount(grid.district_index[off], weights=grid.population[off], minlength=len(totals))
        return np.maximum(totals - lost, 0.0)
    dd = _districts(grid)
    out = np.zeros(len(which))
    for j, d in enumerate(which.tolist()):
        lo, hi = int(dd.bounds[d]), int(dd.bounds[d + 1])
        w = dd.population[lo:hi][~covered[dd.order[lo:hi]]]
        lost = np.bincount(np.zeros(len(w), dtype=np.intp), weights=w, minlength=1)[0]
        out[j] = max(totals[d] - lost, 0.0)
    return out


def _summarise(grid: Grid, cov_d: F64) -> tuple[float, float, float, list[DistrictCoverage]]:
    """City and district totals from the covered population per district."""
    pop_d = _district_totals(grid)
    total = float(sum(pop_d.tolist()))
    cov = float(sum(cov_d.tolist()))
    districts = [
        DistrictCoverage(name, float(p), float(c), float(min(1.0, c / p)) if p > 0 else 0.0)
        for name, p, c in zip(grid.districts, pop_d.tolist(), cov_d.tolist(), strict=True)
    ]
    share = min(1.0, cov / total) if total > 0 else 0.0
    return total, cov, share, districts


# ----------------------------------------------------------------------------------------- geometry


def _unit_vectors(lat_deg: F64, lng_deg: F64) -> tuple[F64, F64, F64]:
    lat = np.radians(lat_deg)
    lng = np.radians(lng_deg)
    c = np.cos(lat)
    return c * np.cos(lng), c * np.sin(lng), np.sin(lat)


@dataclass
class _Frame:
    """Tangent frame at the grid centre: rotation from Earth-centred unit vectors to (X, Y, Z)."""

    rot: F64  # 3 x 3, rows e0, n0, u0

    @classmethod
    def at(cls, lat0: float, lng0: float) -> _Frame:
        p, lam = math.radians(lat0), math.radians(lng0)
        e0 = [-math.sin(lam), math.cos(lam), 0.0]
        n0 = [-math.sin(p) * math.cos(lam), -math.sin(p) * math.sin(lam), math.cos(p)]
        u0 = [math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p)]
        return cls(np.array([e0, n0, u0], dtype=np.float64))

    def apply(self, vx: F64, vy: F64, vz: F64, scale: float = 1.0) -> tuple[F64, F64, F64]:
        r = self.rot * scale
        return (
            r[0, 0] * vx + r[0, 1] * vy + r[0, 2] * vz,
            r[1, 0] * vx + r[1, 1] * vy + r[1, 2] * vz,
            r[2, 0] * vx + r[2, 1] * vy + r[2, 2] * vz,
        )


@dataclass
class _Tiles:
    """A set of cells sorted by (environment, tile row, tile column), for range queries."""

    tile: float
    x0: float
    y0: float
    nrows: int
    ncols: int
    order: I64  # sorted position -> cell index
    x: F64  # coordinates in sorted order (contiguous gathers)
    y: F64
    z: F64
    tile_start: I64  # (n_env * nrows * ncols + 1,) start of each tile in sorted order


@dataclass
class GridGeometry:
    """What the engine derives from the grid alone, whatever the stations: the tangent frame, cell
    centres in it, and the cells grouped into blocks. Binary grid files store it (`_grid_binary`),
    so a run on a street-level grid maps it instead of recomputing it (about 2 s at resolution 12).
    """

    lat0: float  # the frame's centre: mean cell centre, degrees
    lng0: float
    x: F64  # cell centres in the frame, metres
    y: F64
    z: F64
    block: NDArray[np.int32] | None  # per cell: its block (H3 ancestor, see _probes); None: one cell each
    blocks: _Blocks | None  # the blocks' centres, radii and environments


@dataclass
class _Geometry:
    frame: _Frame
    x: F64
    y: F64
    z: F64
    grid: Grid  # centres in degrees come from it on demand (few pairs need them)
    env: NDArray[np.int8]
    env_present: tuple[int, ...]
    probe: NDArray[np.integer[Any]]  # per cell: its H3 ancestor (see _probes), index into probe_x/probe_y
    probe_x: F64  # ancestor centres in the frame: the nearest-site search runs per ancestor
    probe_y: F64
    blocks: _Blocks | None = None  # the ancestors as blocks of cells (None: one cell per probe)
    tiles: dict[float, _Tiles] = field(default_factory=dict)

    def latlng(self, cell: I64) -> tuple[F64, F64]:
        """Centres in degrees of some cells (only the disk model's edge pairs need them)."""
        lat, lng = self.grid.latlng_deg()
        return lat[cell], lng[cell]


@dataclass
class _Blocks:
    """Each probe's cells as one block: a centre and a radius holding every cell centre (3-D, in
    the frame), and the block's environment (-1 when its cells differ). A sector that covers the
    worst point of the ball covers every cell of the block (`_block_covered`)."""

    x: F64
    y: F64
    z: F64
    radius: F64
    env: NDArray[np.int8]


def grid_geometry(grid: Grid) -> GridGeometry:
    """The grid-only geometry, computed (from the cell centres) or as stored in the grid file."""
    stored: GridGeometry | None = grid._cache.get("grid_geometry")
    if stored is not None:
        return stored
    lat, lng = grid.latlng_deg()
    lat0, lng0 = float(np.mean(lat)), float(np.mean(lng))
    frame = _Frame.at(lat0, lng0)
    x, y, z = np.empty(len(lat)), np.empty(len(lat)), np.empty(len(lat))
    for a in range(0, len(lat), _CHUNK_GEOMETRY):  # chunks: temporaries stay small (8 M cells)
        b = a + _CHUNK_GEOMETRY
        x[a:b], y[a:b], z[a:b] = frame.apply(*_unit_vectors(lat[a:b], lng[a:b]), scale=_R)
    block = _probes(grid)
    blocks = None
    if block is not None:
        nblocks = int(block.max()) + 1
        if nblocks < len(grid):
            blocks = _blocks(block, nblocks, x, y, z, grid.environment)
        else:  # one cell per ancestor: blocks would only repeat the cells
            block = None
    return GridGeometry(lat0, lng0, x, y, z, block, blocks)


def _geometry(grid: Grid) -> _Geometry:
    geo: _Geometry | None = grid._cache.get("geometry")
    if geo is None:
        gg = grid_geometry(grid)
        frame = _Frame.at(gg.lat0, gg.lng0)
        env = grid.environment
        present = tuple(np.flatnonzero(np.bincount(env, minlength=len(ENVIRONMENTS))).tolist())
        if gg.block is None or gg.blocks is None:
            probe: NDArray[np.integer[Any]] = np.arange(len(grid), dtype=np.int64)
            px, py = gg.x, gg.y
        else:
            # the probe is the mean of the ancestor's cells (near its centre; any point works, the
            # exhaustive step keeps the search exact): the block centre
            probe, px, py = gg.block, gg.blocks.x, gg.blocks.y
        geo = _Geometry(frame, gg.x, gg.y, gg.z, grid, env, present, probe, px, py, gg.blocks)
        grid._cache["geometry"] = geo
    return geo


def _probes(grid: Grid) -> NDArray[np.int32] | None:
    """Each cell's H3 ancestor at resolution 9 (at most two levels up; bit arithmetic on the
    index) as a block number in order of first appearance; None at resolution 9 and below.

    A nearest-site query per ancestor (7 or 49 cells) instead of per cell is several times
    cheaper and finds almost the same witnesses (the exhaustive step catches the rest).
    """
    # ancestors about the size of a resolution-9 cell (174 m edge), at most two levels up
    p = min(grid.resolution, max(9, grid.resolution - 2))
    if p == grid.resolution:
        return None
    digits = np.uint64((1 << (3 * (15 - p))) - 1)  # unused digits below resolution p are 7 (0b111)
    parent = ((grid.cells | digits) & ~np.uint64(0xF << 52)) | np.uint64(p << 52)
    step = parent[1:] != parent[:-1]
    if bool((parent[1:] >= parent[:-1]).all()):  # sorted cells (every built grid): one pass
        inverse = np.zeros(len(parent), dtype=np.int32)
        np.cumsum(step, out=inverse[1:])
        return inverse
    _, inv = np.unique(parent, return_inverse=True)
    numbered: NDArray[np.int32] = np.asarray(inv, dtype=np.int32).reshape(-1)
    return numbered


def _blocks(
    probe: NDArray[np.integer[Any]], n: int, x: F64, y: F64, z: F64, env: NDArray[np.integer[Any]]
) -> _Blocks:
    """Centre (mean of the cell centres), radius and environment of each probe's block."""
    count = np.bincount(probe, minlength=n).astype(np.float64)
    bx = np.bincount(probe, weights=x, minlength=n) / count
    by = np.bincount(probe, weights=y, minlength=n) / count
    bz = np.bincount(probe, weights=z, minlength=n) / count
    dist = np.empty(len(x))
    for a in range(0, len(x), _CHUNK_GEOMETRY):
        b, p = a + _CHUNK_GEOMETRY, probe[a : a + _CHUNK_GEOMETRY]
        dist[a:b] = np.sqrt((x[a:b] - bx[p]) ** 2 + (y[a:b] - by[p]) ** 2 + (z[a:b] - bz[p]) ** 2)
    if bool((probe[1:] >= probe[:-1]).all()):  # sorted cells: contiguous blocks, `reduceat`
        starts = np.searchsorted(probe, np.arange(n))
        radius = np.maximum.reduceat(dist, starts)
        lo, hi = np.minimum.reduceat(env, starts), np.maximum.reduceat(env, starts)
    else:
        radius = np.zeros(n)
        np.maximum.at(radius, probe, dist)
        lo = np.full(n, len(ENVIRONMENTS), dtype=env.dtype)
        hi = np.full(n, -1, dtype=env.dtype)
        np.minimum.at(lo, probe, env)
        np.maximum.at(hi, probe, env)
    # a hair larger than measured: rounding in the centre and distances cannot make it too small
    block_env = np.where(lo == hi, lo, -1).astype(np.int8)
    return _Blocks(bx, by, bz, radius * (1.0 + 1e-9) + 1e-6, block_env)


def _build_tiles(geo: _Geometry, cells: I64 | None, tile: float) -> _Tiles:
    """Tiles over all cells (cached per tile size) or over a subset (not cached)."""
    if cells is None and tile in geo.tiles:
        return geo.tiles[tile]
    idx = np.arange(len(geo.x), dtype=np.int64) if cells is None else cells
    xs, ys = geo.x[idx], geo.y[idx]
    x0 = float(xs.min()) - 1.0
    y0 = float(ys.min()) - 1.0
    ncols = int((xs.max() - x0) // tile) + 1
    nrows = int((ys.max() - y0) // tile) + 1
    tile_id = (geo.env[idx].astype(np.int64) * nrows + ((ys - y0) // tile).astype(np.int64)) * ncols + (
        (xs - x0) // tile
    ).astype(np.int64)
    o = np.argsort(tile_id, kind="stable")
    ntiles = len(ENVIRONMENTS) * nrows * ncols
    tile_start = np.searchsorted(tile_id[o], np.arange(ntiles + 1)).astype(np.int64)
    order = idx[o]
    t = _Tiles(tile, x0, y0, nrows, ncols, order, geo.x[order], geo.y[order], geo.z[order], tile_start)
    if cells is None:
        geo.tiles[tile] = t
    return t


# -------------------------------------------------------------------------------------- sector data


@dataclass
class _Sectors:
    """Per-sector constants of the chosen model, in the grid's tangent frame."""

    rows: I64  # rows of the stations table these constants belong to
    x: F64
    y: F64
    z: F64
    bx: F64  # boresight direction in the tangent frame (unit vector)
    by: F64
    bz: F64
    sx: F64  # perpendicular to the boresight (unit vector)
    sy: F64
    sz: F64
    kgain: F64  # 12 (180/pi)^2 / bw^2: A = -min(kgain * theta_rad^2, 25); 0 for omni
    slope: F64  # Hata B (dB per decade of km)
    c2edge: F64  # (n, n_env) squared chord of the reach (disk: covered iff chord^2 <= this)
    c2near: F64  # (n, n_env) the same with a safety margin (hata: candidates)
    offset: F64  # (n, n_env) P - K: RSRP = offset - B log10 d + A
    reach: F64  # (n, n_env) arc reach in metres (0 = covers nothing)
    lat: F64
    lng: F64
    radius: F64  # (n, n_env) disk radius for the criterion (indoor: shrunk by the building loss)
    margin: F64  # (n, n_env) building loss in dB (indoor criterion; 0 outdoors)
    indoor: bool = False


def _sectors(
    geo: _Geometry, stations: Stations, rows: I64, model: str, threshold: float, indoor: bool = False
) -> _Sectors:
    lat = stations.lat[rows]
    lng = stations.lon[rows]
    vx, vy, vz = _unit_vectors(lat, lng)
    x, y, z = geo.frame.apply(vx, vy, vz, scale=_R)
    # local east and north at the sector, then rotated to the frame
    latr, lngr = np.radians(lat), np.radians(lng)
    ex, ey, ez = geo.frame.apply(-np.sin(lngr), np.cos(lngr), np.zeros_like(latr))
    nx, ny, nz = geo.frame.apply(-np.sin(latr) * np.cos(lngr), -np.sin(latr) * np.sin(lngr), np.cos(latr))
    az = np.radians(np.nan_to_num(stations.azimuth_deg[rows], nan=0.0))
    sa, ca = np.sin(az), np.cos(az)
    bore = (sa * ex + ca * nx, sa * ey + ca * ny, sa * ez + ca * nz)
    side = (ca * ex - sa * nx, ca * ey - sa * ny, ca * ez - sa * nz)
    bw = stations.beamwidth_deg[rows]
    omni = np.isnan(bw) | np.isnan(stations.azimuth_deg[rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        kgain = np.where(omni, 0.0, 12.0 * _RAD2DEG2 / (bw * bw))
    n = len(rows)
    n_env = len(ENVIRONMENTS)
    radius = stations.radius_m[rows]
    f = stations.frequency_mhz[rows][:, None]
    hb = stations.height_m[rows][:, None]
    envs = np.arange(n_env)[None, :]
    # indoors: RSRP - loss >= T, i.e. RSRP >= T + loss (the loss per band and cell environment)
    margin = indoor_loss_db(f, envs) if indoor else np.zeros((n, n_env))
    if model == "hata":
        k, b = hata_terms(f, hb, envs)
        p = reference_signal_dbm(stations.eirp_dbm[rows], stations.bandwidth_mhz[rows])[:, None]
        offset = p - k
        reach = max_reach_m(
            eirp_dbm=stations.eirp_dbm[rows][:, None],
            bandwidth_mhz=stations.bandwidth_mhz[rows][:, None],
            frequency_mhz=f,
            height_m=hb,
            environment=envs,
            threshold_dbm=threshold + margin,
        )
        if (b[:, 0] <= 0).any():
            i = int(rows[np.flatnonzero(b[:, 0] <= 0)[0]])
            raise CoverageError(
                f"row {i + 1}: antenna height {stations.height_m[i]} m is outside the Hata model"
            )
        slope = b[:, 0].copy()
    elif model == "disk":
        missing = np.isnan(radius)
        if missing.any():
            i = int(rows[np.flatnonzero(missing)[0]])
            raise StationsError(
                f"row {i + 1} (station {stations.station_id[i]}, sector {stations.sector_id[i]}) "
                "has no radius_m; the disk model needs a radius_m column with a value for every sector"
            )
        # indoors the disk shrinks as Hata's distance slope B says the loss shortens the reach:
        # radius x 10^(-loss / B) (B for the sector's antenna height; outdoors the factor is 1)
        shrink = 10.0 ** (-margin / hata_terms(f, hb, envs)[1]) if indoor else np.ones((n, n_env))
        reach = radius[:, None] * shrink
        offset = np.zeros((n, n_env))
        slope = np.zeros(n)
    else:
        raise CoverageError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    edge_radius = reach.copy() if model == "disk" else np.repeat(radius[:, None], n_env, axis=1)
    mask = np.zeros(n_env, dtype=bool)
    mask[list(geo.env_present)] = True
    # no reach beyond the antipode (keeps the chord of the reach monotone: c = 2R sin(reach / 2R))
    reach = np.where(mask[None, :], np.minimum(reach, math.pi * _R), 0.0)
    chord = 2.0 * _R * np.sin(reach / (2.0 * _R))
    c2edge = chord * chord
    c2near = (chord * (1.0 + 1e-9) + 1e-6) ** 2
    return _Sectors(
        rows=rows,
        x=x,
        y=y,
        z=z,
        bx=bore[0],
        by=bore[1],
        bz=bore[2],
        sx=side[0],
        sy=side[1],
        sz=side[2],
        kgain=kgain,
        slope=slope,
        c2edge=c2edge,
        c2near=c2near,
        offset=offset,
        reach=reach,
        lat=lat,
        lng=lng,
        radius=edge_radius,
        margin=margin,
        indoor=indoor,
    )


_ARRAYS = tuple(f.name for f in fields(_Sectors) if f.name != "indoor")


def _take(sec: _Sectors, idx: I64) -> _Sectors:
    """Constants of a subset of sectors."""
    return _Sectors(**{name: getattr(sec, name)[idx] for name in _ARRAYS}, indoor=sec.indoor)


def _join(a: _Sectors, b: _Sectors) -> _Sectors:
    return _Sectors(
        **{name: np.concatenate([getattr(a, name), getattr(b, name)]) for name in _ARRAYS}, indoor=a.indoor
    )


# ------------------------------------------------------------------------------ candidate expansion


def _expand(counts: I64) -> tuple[I64, I64]:
    """For ranges of given lengths: owner index of each element and its offset inside its range."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    offset = np.arange(total, dtype=np.int64) - starts[owner]
    return owner, offset


@dataclass
class _Queries:
    """One query per (sector, environment, tile row): a contiguous range of sorted cells."""

    sector: I64  # index into _Sectors
    env: I64
    lo: I64
    count: I64


def _queries(tiles: _Tiles, sec: _Sectors) -> _Queries:
    """The queries of every (sector, environment) pair with a reach, sector-major.

    Built in slices of pairs of about _CHUNK_PAIRS tile rows each: the per-row temporaries (a
    dozen arrays) stay bounded, which at resolution 12 is hundreds of MB less peak memory.
    """
    n_env = sec.reach.shape[1]
    se = np.flatnonzero(sec.reach.ravel() > 0)  # sector-major (sector, env) pairs
    s_idx, e_idx = se // n_env, se % n_env
    r = sec.reach.ravel()[se] * (1.0 + 1e-9) + 1e-6  # planar distance <= arc distance
    ys = sec.y[s_idx] - tiles.y0
    xs = sec.x[s_idx] - tiles.x0
    t = tiles.tile
    row_lo = np.clip(np.floor((ys - r) / t), 0, tiles.nrows - 1).astype(np.int64)
    row_hi = np.clip(np.floor((ys + r) / t), -1, tiles.nrows - 1).astype(np.int64)
    inside = (ys + r >= 0) & (ys - r < tiles.nrows * t)
    nq = np.where(inside, np.maximum(row_hi - row_lo + 1, 0), 0)
    ends = np.cumsum(nq)
    cuts = np.searchsorted(ends, np.arange(_CHUNK_PAIRS, int(ends[-1]) if len(ends) else 0, _CHUNK_PAIRS))
    parts = []
    for lo_pair, hi_pair in itertools.pairwise([0, *np.unique(cuts).tolist(), len(nq)]):
        if hi_pair > lo_pair:
            parts.append(_query_rows(tiles, sec, s_idx, e_idx, r, ys, xs, row_lo, nq, lo_pair, hi_pair))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Queries(empty, empty, empty, empty)
    return _Queries(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("sector", "env", "lo", "count"))
    )


def _query_rows(
    tiles: _Tiles,
    sec: _Sectors,
    s_idx: I64,
    e_idx: I64,
    r: F64,
    ys: F64,
    xs: F64,
    row_lo: I64,
    nq: I64,
    a: int,
    b: int,
) -> _Queries:
    """The non-empty queries of pairs a..b-1: one per tile row, the columns the reach crosses."""
    owner, off = _expand(nq[a:b])
    owner += a
    row = row_lo[owner] + off
    t = tiles.tile
    yq, rq, xq = ys[owner], r[owner], xs[owner]
    dy = np.maximum(np.maximum(row * t - yq, yq - (row + 1) * t), 0.0)
    w = np.sqrt(np.maximum(rq * rq - dy * dy, 0.0))
    col_lo = np.clip(np.floor((xq - w) / t), 0, tiles.ncols).astype(np.int64)
    col_hi = np.clip(np.floor((xq + w) / t), -1, tiles.ncols - 1).astype(np.int64)
    base = (e_idx[owner] * tiles.nrows + row) * tiles.ncols
    ok = col_hi >= col_lo
    lo = tiles.tile_start[base + np.minimum(col_lo, tiles.ncols - 1)]
    hi = tiles.tile_start[base + np.maximum(col_hi, 0) + 1]
    count = np.where(ok, hi - lo, 0)
    keep = count > 0
    return _Queries(s_idx[owner][keep], e_idx[owner][keep], lo[keep], count[keep])


def _score(
    geo: _Geometry,
    sec: _Sectors,
    model: str,
    threshold: float,
    s: I64,
    cell: I64,
    dx: F64,
    dy: F64,
    dz: F64,
) -> tuple[I64, F64]:
    """Indices of the pairs (sector s, cell) that reach the threshold, and their scores.

    Score: RSRP in dBm (`hata`), minus the squared chord (`disk`: the nearest sector serves).
    """
    c2 = dx * dx + dy * dy + dz * dz
    se = s * len(ENVIRONMENTS) + geo.env[cell]
    if model == "disk":
        c2t = sec.c2edge.ravel()[se]
        inside = c2 <= c2t
        # pairs within a hair of the edge: decide with the haversine formula itself
        edge = np.flatnonzero(np.abs(c2 - c2t) <= 1e-9 * c2t + 1e-9)
        if len(edge):
            clat, clng = geo.latlng(cell[edge])
            d = great_circle_m(sec.lat[s[edge]], sec.lng[s[edge]], clat, clng)
            inside[edge] = d <= sec.radius.ravel()[se[edge]]
        keep = np.flatnonzero(inside)
        return keep, -c2[keep]
    near = c2 <= sec.c2near.ravel()[se]
    # log10(arc in km) from the chord: arc = c (1 + c^2 / 24 R^2) (exact to 1e-12 below 40 km);
    # chords under 20 m get the 20 m loss
    c2c = np.maximum(c2, _MIN_C2)
    log_d = 0.5 * np.log10(c2c) + c2c * _LOG_ARC - 3.0
    cos_t = dx * sec.bx[s] + dy * sec.by[s] + dz * sec.bz[s]
    sin_t = dx * sec.sx[s] + dy * sec.sy[s] + dz * sec.sz[s]
    theta = np.arctan2(np.abs(sin_t), cos_t)
    rsrp = sec.offset.ravel()[se] - sec.slope[s] * log_d - np.minimum(sec.kgain[s] * (theta * theta), 25.0)
    if sec.indoor:  # the indoor RSRP reaches T where the outdoor one reaches T + loss
        loss = sec.margin.ravel()[se]
        keep = np.flatnonzero(near & (rsrp >= threshold + loss))
        return keep, rsrp[keep] - loss[keep]
    keep = np.flatnonzero(near & (rsrp >= threshold))
    return keep, rsrp[keep]


def _pairs(
    geo: _Geometry, tiles: _Tiles, sec: _Sectors, model: str, threshold: float
) -> Iterator[tuple[I64, I64, F64]]:
    """Chunks of (cell index, sector index into `sec`, score) for every pair reaching the threshold.

    Candidates are the cells of `tiles` in each sector's reach; they are evaluated in chunks of
    about _CHUNK_PAIRS (bounded memory), sector-major in the order of `sec`.
    """
    if len(sec.rows) == 0 or len(tiles.order) == 0:
        return
    q = _queries(tiles, sec)
    if len(q.count) == 0:
        return
    ends = np.cumsum(q.count)
    cuts = np.searchsorted(ends, np.arange(_CHUNK_PAIRS, int(ends[-1]), _CHUNK_PAIRS), side="left") + 1
    bounds = [0, *np.unique(cuts).tolist()]
    if bounds[-1] != len(q.count):
        bounds.append(len(q.count))
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        qo, off = _expand(q.count[a:b])
        qi = qo + a
        pos = q.lo[qi] + off
        s = q.sector[qi]
        cell = tiles.order[pos]
        keep, score = _score(
            geo,
            sec,
            model,
            threshold,
            s,
            cell,
            tiles.x[pos] - sec.x[s],
            tiles.y[pos] - sec.y[s],
            tiles.z[pos] - sec.z[s],
        )
        yield cell[keep], s[keep], score


def _score_explicit(
    geo: _Geometry, sec: _Sectors, model: str, threshold: float, s: I64, cell: I64
) -> tuple[I64, F64]:
    """Evaluate given (sector, cell) pairs: indices of those reaching the threshold, their scores."""
    return _score(
        geo,
        sec,
        model,
        threshold,
        s,
        cell,
        geo.x[cell] - sec.x[s],
        geo.y[cell] - sec.y[s],
        geo.z[cell] - sec.z[s],
    )


# ------------------------------------------------------------------------------ witness search


@dataclass
class _Sites:
    """Sector positions grouped into sites, with a k-d tree on their tangent-plane coordinates."""

    tree: Any  # scipy.spatial.cKDTree
    start: I64  # site -> range in `members`
    members: I64  # sector indices grouped by site
    indexed: int  # sectors 0..indexed-1 are in the tree; later ones (added) are searched directly


def _kdtree_class() -> Any:
    """SciPy's cKDTree without importing all of `scipy.spatial` (qhull, distance, transforms).

    `zhongdu coverage compute` is a short process: `import scipy.spatial` costs 0.2 s of it, the
    k-d tree's own extension module half of that. Loaded from its file under its own name, so a
    later `import scipy.spatial` reuses it; any surprise falls back to the plain import.
    """
    import sys

    loaded = sys.modules.get("scipy.spatial")
    if loaded is not None:
        return loaded.cKDTree
    try:
        import importlib.machinery
        import importlib.util
        from pathlib import Path

        import scipy

        name = "scipy.spatial._ckdtree"
        module = sys.modules.get(name)
        if module is None:
            folder = Path(scipy.__file__).parent / "spatial"
            path = next(
                folder / f"_ckdtree{suffix}"
                for suffix in importlib.machinery.EXTENSION_SUFFIXES
                if (folder / f"_ckdtree{suffix}").is_file()
            )
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        return module.cKDTree
    except Exception:  # an unusual SciPy install: the documented import
        from scipy.spatial import cKDTree

        return cKDTree


def _sites(sec: _Sectors) -> _Sites:
    cKDTree = _kdtree_class()

    o = np.lexsort((sec.y, sec.x)).astype(np.int64)
    xs, ys = sec.x[o], sec.y[o]
    new = np.ones(len(o), dtype=bool)
    new[1:] = (np.diff(xs) != 0) | (np.diff(ys) != 0)
    start = np.append(np.flatnonzero(new), len(o)).astype(np.int64)
    tree = cKDTree(np.column_stack([xs[new], ys[new]]) if len(o) else np.zeros((0, 2)))
    return _Sites(tree, start, o, len(o))


def _site_pairs(sites: _Sites, cell_local: I64, site: I64) -> tuple[I64, I64]:
    """Expand (cell, site) pairs to (cell, sector) pairs."""
    cnt = sites.start[site + 1] - sites.start[site]
    owner, off = _expand(cnt)
    return cell_local[owner], sites.members[sites.start[site[owner]] + off]


def _witnesses(
    geo: _Geometry,
    sec: _Sectors,
    sites: _Sites,
    model: str,
    threshold: float,
    cells: I64,
    active: NDArray[np.bool_],
    *,
    k: int | None = None,
    few: int = 64,
) -> I64:
    """For each cell, one active sector (index into `sec`) reaching the threshold there, or -1.

    Exact, and cheap where coverage is dense: first the sectors of the `k` nearest sites, which
    cover almost every covered cell (default: 1 for disk; 2 for hata, whose sectors point away
    from half their site's cells: at resolution 12 the second site leaves 2.3 times fewer cells to
    the exhaustive search, which halves the whole computation); then an exhaustive search for
    the cells still without one: cell-centric with the site k-d tree when they are `few`, else
    sector-centric over tiles of just those cells, from the sectors whose reach touches one of them.
    """
    n = len(cells)
    wit = np.full(n, -1, dtype=np.int64)
    nsites = len(sites.start) - 1
    if n == 0 or nsites == 0 or not active.any():
        return wit
    kk = min(k if k is not None else (2 if model == "hata" else 1), nsites)
    # nearest sites of each cell's ancestor centre (one query per ancestor)
    whole = n == len(geo.x) and int(cells[0]) == 0 and int(cells[-1]) == n - 1  # all cells, in order
    if whole:  # every ancestor has cells: no renumbering (8 M-cell gathers saved)
        which = np.arange(len(geo.probe_x), dtype=np.int64)
        slot_probe = geo.probe
    else:
        probe = geo.probe[cells]
        used = np.zeros(len(geo.probe_x), dtype=bool)
        used[probe] = True
        which = np.flatnonzero(used)
        slot = np.zeros(len(used), dtype=np.int64)
        slot[which] = np.arange(len(which))
        slot_probe = slot[probe]
    _, nn = sites.tree.query(np.column_stack([geo.probe_x[which], geo.probe_y[which]]), k=kk)
    nn = np.asarray(nn, dtype=np.int64).reshape(len(which), kk)
    if geo.blocks is not None:
        # whole blocks first: a nearest-site sector covering a block's worst point covers its cells
        bj, bs = _site_pairs(sites, np.repeat(np.arange(len(which), dtype=np.int64), kk), nn.ravel())
        on = active[bs]
        bj, bs = bj[on], bs[on]
        ok = _block_covered(geo.blocks, sec, model, threshold, which[bj], bs)
        block_wit = np.full(len(which), -1, dtype=np.int64)
        block_wit[bj[ok][::-1]] = bs[ok][::-1]  # the first covering sector of each block
        wit = block_wit[slot_probe]
    todo = np.flatnonzero(wit < 0)
    near = nn[slot_probe[todo]]
    for a in range(0, len(todo), _CHUNK_CELLS):  # chunks of cells: arrays stay in cache (3x faster)
        b = min(a + _CHUNK_CELLS, len(todo))
        cl, s = _site_pairs(sites, np.repeat(todo[a:b], kk), near[a:b].ravel())
        on = active[s]
        _record_witness(geo, sec, model, threshold, wit, cells, cl[on], s[on])
    rest = np.flatnonzero(wit < 0)
    if len(rest) == 0:
        return wit
    act = np.flatnonzero(active).astype(np.int64)
    reach = sec.reach[act] * (1.0 + 1e-9) + 1e-6  # planar distance <= arc distance
    if len(rest) <= few:
        # cell-centric: every site within the largest reach for the cell's environment
        radius = reach.max(axis=0)[geo.env[cells[rest]]]
        pts = np.column_stack([geo.x[cells[rest]], geo.y[cells[rest]]])
        hits = sites.tree.query_ball_point(pts, radius, return_sorted=False)
        lens = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
        flat = np.fromiter((x for h in hits for x in h), dtype=np.int64, count=int(lens.sum()))
        cl, s = _site_pairs(sites, np.repeat(rest, lens), flat)
        added = np.arange(sites.indexed, len(active), dtype=np.int64)  # sectors added since the tree
        if len(added):
            cl = np.concatenate([cl, np.repeat(rest, len(added))])
            s = np.concatenate([s, np.tile(added, len(rest))])
        on = active[s]
        _record_witness(geo, sec, model, threshold, wit, cells, cl[on], s[on])
        return wit
    if geo.blocks is not None:
        _block_search(geo, sec, model, threshold, wit, cells, rest, act)
        return wit
    cKDTree = _kdtree_class()

    # sector-centric: only (sector, environment) pairs with one of these cells in reach count
    touch = np.zeros(reach.shape, dtype=bool)
    env_rest = geo.env[cells[rest]]
    sector_pts = np.column_stack([sec.x[act], sec.y[act]])
    for e in np.unique(env_rest).tolist():
        pick = cells[rest[env_rest == e]]
        tree = cKDTree(np.column_stack([geo.x[pick], geo.y[pick]]))
        touch[:, e] = (
            np.asarray(tree.query_ball_point(sector_pts, reach[:, e], return_length=True, workers=-1)) > 0
        )
    keep = touch.any(axis=1)
    if not keep.any():
        return wit
    act = act[keep]
    sub = _take(sec, act)
    sub.reach[~touch[keep]] = 0.0  # no query where none of these cells is in reach
    tiles = _build_tiles(geo, cells[rest], _tile_size(geo, sub))
    local = np.full(len(geo.x), -1, dtype=np.int64)
    local[cells[rest]] = rest
    for cell, si, _ in _pairs(geo, tiles, sub, model, threshold):
        wit[local[cell]] = act[si]
    return wit


def _block_search(
    geo: _Geometry, sec: _Sectors, model: str, threshold: float, wit: I64, cells: I64, rest: I64, act: I64
) -> None:
    """The exhaustive step over blocks: witnesses for `cells[rest]` from the active sectors `act`.

    Candidates are (block, sector) pairs with the block's ball in the sector's reach (tiles over
    the blocks' centres); an upper bound on the RSRP over the ball (`_block_may_cover`) drops
    the pairs that cannot cover any of its cells, and only the cells of the pairs left are
    evaluated exactly. Exact: a cell is left without a witness only when no sector covers it.
    """
    blocks = geo.blocks
    assert blocks is not None
    order = rest[np.argsort(geo.probe[cells[rest]], kind="stable")]
    probe = geo.probe[cells[order]]
    used, start = np.unique(probe, return_index=True)
    start = np.append(start, len(order)).astype(np.int64)
    n_env = len(ENVIRONMENTS)
    sub = _take(sec, act)
    grow = float(blocks.radius[used].max())
    reach = np.where(sub.reach > 0, sub.reach + grow, 0.0)
    positive = reach[reach > 0]
    if len(positive) == 0:
        return
    # items: a block of one environment once, a block of mixed environments once per environment
    env = blocks.env[used]
    mixed = np.flatnonzero(env < 0)
    item = np.concatenate([np.flatnonzero(env >= 0), np.repeat(mixed, n_env)]).astype(np.int64)
    item_env = np.concatenate([env[env >= 0], np.tile(np.arange(n_env), len(mixed))]).astype(np.int64)
    tile = float(2.0 ** round(math.log2(max(float(np.median(positive)) / 8.0, 4.0 * grow, 1.0))))
    bx, by, bz = blocks.x[used[item]], blocks.y[used[item]], blocks.z[used[item]]
    x0, y0 = float(bx.min()) - 1.0, float(by.min()) - 1.0
    ncols = int((bx.max() - x0) // tile) + 1
    nrows = int((by.max() - y0) // tile) + 1
    tile_id = (item_env * nrows + ((by - y0) // tile).astype(np.int64)) * ncols + ((bx - x0) // tile).astype(
        np.int64
    )
    o = np.argsort(tile_id, kind="stable").astype(np.int64)
    tile_start = np.searchsorted(tile_id[o], np.arange(n_env * nrows * ncols + 1)).astype(np.int64)
    tiles = _Tiles(tile, x0, y0, nrows, ncols, item[o], bx[o], by[o], bz[o], tile_start)
    # per sector, its most favourable environment (upper bounds hold whatever a block's cells are)
    best = (sub.offset.max(axis=1), sub.c2near.max(axis=1), sub.c2edge.max(axis=1), sub.margin.min(axis=1))
    q = _queries(tiles, _Sectors(**{**{n: getattr(sub, n) for n in _ARRAYS}, "reach": reach}))
    if len(q.count) == 0:
        return
    ends = np.cumsum(q.count)
    step = _CHUNK_PAIRS // 16  # each block pair stands for up to 49 cell pairs
    cuts = np.searchsorted(ends, np.arange(step, int(ends[-1]), step), side="left") + 1
    bounds = [0, *np.unique(cuts).tolist(), len(q.count)]
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        qo, off = _expand(q.count[a:b])
        qi = qo + a
        local = tiles.order[q.lo[qi] + off]  # index into `used`
        si = q.sector[qi]
        ok = _block_may_cover(blocks, sub, model, threshold, used[local], si, best)
        local, si = local[ok], si[ok]
        owner, k = _expand(start[local + 1] - start[local])
        cl = order[start[local[owner]] + k]
        s_act = act[si[owner]]
        free = wit[cl] < 0
        cl, s_act = cl[free], s_act[free]
        keep, _ = _score_explicit(geo, sec, model, threshold, s_act, cells[cl])
        wit[cl[keep][::-1]] = s_act[keep][::-1]  # the first covering sector in this chunk


def _block_may_cover(
    blocks: _Blocks,
    sec: _Sectors,
    model: str,
    threshold: float,
    b: I64,
    s: I64,
    best: tuple[F64, F64, F64, F64],
) -> NDArray[np.bool_]:
    """False where sector s covers no cell of block b, from an upper bound on its RSRP there.

    The bound takes the nearest point of the block's ball (chord c - radius), the smallest angle
    off the boresight (the centre's less asin(radius / projected distance)) and the most
    favourable environment; a hair below the threshold, so rounding cannot drop a covering pair.
    """
    dx, dy, dz = blocks.x[b] - sec.x[s], blocks.y[b] - sec.y[s], blocks.z[b] - sec.z[s]
    r = blocks.radius[b]
    c = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz) - r, 0.0)
    c2 = c * c
    if model == "disk":
        inside: NDArray[np.bool_] = c2 <= best[2][s] * (1.0 + 1e-9) + 1e-6
        return inside
    c2c = np.maximum(c2, _MIN_C2)
    log_d = 0.5 * np.log10(c2c) + c2c * _LOG_ARC - 3.0
    cos_t = dx * sec.bx[s] + dy * sec.by[s] + dz * sec.bz[s]
    sin_t = dx * sec.sx[s] + dy * sec.sy[s] + dz * sec.sz[s]
    theta = np.arctan2(np.abs(sin_t), cos_t)
    planar = np.hypot(cos_t, sin_t)
    spread = np.where(planar > r, np.arcsin(np.minimum(r / np.maximum(planar, 1e-300), 1.0)), math.pi)
    least = np.maximum(theta - spread, 0.0)
    rsrp = best[0][s] - sec.slope[s] * log_d - np.minimum(sec.kgain[s] * (least * least), 25.0)
    need = threshold + (best[3][s] if sec.indoor else 0.0) - 1e-6
    ok: NDArray[np.bool_] = (c2 <= best[1][s]) & (rsrp >= need)
    return ok


def _block_covered(
    blocks: _Blocks, sec: _Sectors, model: str, threshold: float, b: I64, s: I64
) -> NDArray[np.bool_]:
    """Whether sector s covers every cell of block b, from a bound on its worst cell.

    Every cell centre lies within `radius` of the block centre, so its chord to the sector is at
    most c + radius, and its angle off the boresight (in the plane `_score` measures it in) at
    most the centre's angle plus asin(radius / projected distance). RSRP falls with both, so the
    bound at that worst point, a hair above the threshold, proves the cells covered. Blocks of
    mixed environment, or whose bound fails, go to the per-cell evaluation.
    """
    env = blocks.env[b]
    se = s * len(ENVIRONMENTS) + np.maximum(env, 0)
    dx, dy, dz = blocks.x[b] - sec.x[s], blocks.y[b] - sec.y[s], blocks.z[b] - sec.z[s]
    r = blocks.radius[b]
    c = np.sqrt(dx * dx + dy * dy + dz * dz) + r
    c2 = c * c
    if model == "disk":
        return (env >= 0) & (c2 <= sec.c2edge.ravel()[se] * (1.0 - 1e-9) - 1e-6)
    c2c = np.maximum(c2, _MIN_C2)
    log_d = 0.5 * np.log10(c2c) + c2c * _LOG_ARC - 3.0
    cos_t = dx * sec.bx[s] + dy * sec.by[s] + dz * sec.bz[s]
    sin_t = dx * sec.sx[s] + dy * sec.sy[s] + dz * sec.sz[s]
    theta = np.arctan2(np.abs(sin_t), cos_t)
    planar = np.hypot(cos_t, sin_t)
    spread = np.where(planar > r, np.arcsin(np.minimum(r / np.maximum(planar, 1e-300), 1.0)), math.pi)
    worst = np.minimum(theta + spread, math.pi)
    rsrp = sec.offset.ravel()[se] - sec.slope[s] * log_d - np.minimum(sec.kgain[s] * (worst * worst), 25.0)
    need = threshold + (sec.margin.ravel()[se] if sec.indoor else 0.0) + 1e-6
    ok: NDArray[np.bool_] = (env >= 0) & (c2 <= sec.c2near.ravel()[se]) & (rsrp >= need)
    return ok


def _record_witness(
    geo: _Geometry,
    sec: _Sectors,
    model: str,
    threshold: float,
    wit: I64,
    cells: I64,
    cl: I64,
    s: I64,
) -> None:
    """Give cells without a witness a covering sector among the pairs (cl, s), if there is one."""
    keep, _ = _score_explicit(geo, sec, model, threshold, s, cells[cl])
    cl, s = cl[keep], s[keep]
    free = wit[cl] < 0
    wit[cl[free]] = s[free]


def _aimed(geo: _Geometry, sec: _Sectors, sites: _Sites, model: str, threshold: float, wit: I64) -> I64:
    """Per covered cell (all grid cells), the covering sector of its witness's site that points
    closest to it: the serving sector of the capacity criterion (a witness may be a back lobe)."""
    cov = np.flatnonzero(wit >= 0)
    if len(cov) == 0:
        return wit
    site_of = np.empty(len(sites.members), dtype=np.int64)
    site_of[sites.members] = np.repeat(np.arange(len(sites.start) - 1, dtype=np.int64), np.diff(sites.start))
    cl, s = _site_pairs(sites, cov, site_of[wit[cov]])
    keep, _ = _score_explicit(geo, sec, model, threshold, s, cl)
    cl, s = cl[keep], s[keep]
    dx, dy, dz = geo.x[cl] - sec.x[s], geo.y[cl] - sec.y[s], geo.z[cl] - sec.z[s]
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    cos = np.where(
        (norm > 0) & (sec.kgain[s] > 0),
        (dx * sec.bx[s] + dy * sec.by[s] + dz * sec.bz[s]) / np.maximum(norm, 1e-300),
        1.0,
    )
    o = np.lexsort((s, -cos, cl))
    first = np.ones(len(o), dtype=bool)
    first[1:] = cl[o][1:] != cl[o][:-1]
    out = wit.copy()
    out[cl[o][first]] = s[o][first]
    return out


def _tile_size(geo: _Geometry, sec: _Sectors) -> float:
    positive = sec.reach[sec.reach > 0]
    spacing = float(np.sqrt((np.ptp(geo.x) * np.ptp(geo.y) + 1.0) / max(len(geo.x), 1)))
    typical = float(np.median(positive)) if len(positive) else spacing
    tile = max(2.0 * spacing, typical / 8.0, 1.0)
    return float(2.0 ** round(math.log2(tile)))


# ------------------------------------------------------------------------------------ full compute


def _sector_rank(stations: Stations) -> I64:
    """Deterministic tie-break key per row: rank of (station_id, sector_id, row)."""
    order = np.lexsort((np.arange(len(stations)), stations.sector_id, stations.station_id))
    rank = np.empty(len(stations), dtype=np.int64)
    rank[order] = np.arange(len(stations))
    return rank


def _check_args(
    grid: Grid, stations: Stations, model: str, threshold_dbm: float, criterion: str = "outdoor"
) -> None:
    if model not in MODELS:
        raise CoverageError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    if criterion not in CRITERIA:
        raise CoverageError(f"unknown criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    if not math.isfinite(threshold_dbm):
        raise CoverageError(f"threshold {threshold_dbm!r} dBm must be a finite number, e.g. -110")
    if not isinstance(grid, Grid) or not isinstance(stations, Stations):
        raise CoverageError("needs a Grid and a Stations table (see load_grid, load_stations)")


def _pair_chunks(
    grid: Grid, stations: Stations, rows: I64, model: str, threshold: float, indoor: bool = False
) -> Iterator[tuple[I64, I64, F64]]:
    """Chunks of (cell, row, score) for every pair reaching the threshold from `rows`, sector-major."""
    if len(rows) == 0:
        return
    geo = _geometry(grid)
    sec = _sectors(geo, stations, rows, model, threshold, indoor)
    tiles = _build_tiles(geo, None, _tile_size(geo, sec))
    for c, s, sc in _pairs(geo, tiles, sec, model, threshold):
        yield c, sec.rows[s], sc


def _per_cell(
    grid: Grid, stations: Stations, rows: I64, model: str, threshold: float, indoor: bool = False
) -> tuple[F64, I64, NDArray[np.bool_]]:
    """Best server per cell over the given rows: (best RSRP or NaN, serving row or -1, covered).

    Streams the pairs chunk by chunk with O(cells) state: the best score per cell and the lowest
    rank among the sectors reaching it (reset where a chunk raises the best).
    """
    n = len(grid)
    rank = _sector_rank(stations)
    big = np.iinfo(np.int64).max
    best = np.full(n, -np.inf)
    key = np.full(n, big, dtype=np.int64)
    for cells, srows, score in _pair_chunks(grid, stations, rows, model, threshold, indoor):
        old = best[cells]
        np.maximum.at(best, cells, score)
        new = best[cells]
        key[cells[new > old]] = big
        win = score == new
        np.minimum.at(key, cells[win], rank[srows[win]])
    row_of_rank = np.append(np.argsort(rank), -1)  # the sentinel serves cells without a sector
    serving = row_of_rank[np.minimum(key, len(rank))].astype(np.int64)
    covered = serving >= 0
    rsrp = np.where(covered, best, np.nan) if model == "hata" else np.full(n, np.nan)
    return rsrp, serving, covered


def result_from_covered(grid: Grid, covered: NDArray[np.bool_]) -> CoverageResult:
    """City and district totals of a covered mask (e.g. cells covered by several operators)."""
    total, cov, share, districts = _summarise(grid, _covered_by_district(grid, covered))
    return CoverageResult(total, cov, share, districts, covered=covered)


def result_from_fraction(grid: Grid, fraction: F64) -> CoverageResult:
    """Totals when a fraction of each cell's people is covered (e.g. each operator's subscribers
    served by their own network); `covered` marks the cells with any covered share."""
    n = len(grid.districts)
    weighted = fraction * grid.population
    cov_d = np.asarray(np.bincount(grid.district_index, weights=weighted, minlength=n), dtype=np.float64)
    total, cov, share, districts = _summarise(grid, cov_d)
    return CoverageResult(total, cov, share, districts, covered=fraction > 0)


def _serving_counts(stations: Stations, up: NDArray[np.bool_]) -> tuple[int, int]:
    ids, inverse = stations.station_index()
    return int(np.count_nonzero(np.bincount(inverse[up], minlength=len(ids)))), int(up.sum())


def compute_coverage(
    grid: Grid,
    stations: Stations,
    *,
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    per_cell: bool = False,
    criterion: Criterion = "outdoor",
    capacity: CapacityParams | None = None,
) -> CoverageResult:
    """Covered population, city-wide and per district, from every `up` sector (docs/coverage.md#models).

    Without `per_cell` the engine only needs one covering sector per cell (a witness: first the
    nearest sites, then an exhaustive search for the rest); with it, every pair in reach is
    evaluated for the best server. `criterion`: `outdoor` (docs/coverage.md#models), `indoor` (building loss
    of `_indoor` added), `capacity` (outdoor, and the serving sector under its load limit,
    `_capacity`; the serving sector: of the nearest site covering the cell, the covering sector
    pointing closest to it).
    """
    _check_args(grid, stations, model, threshold_dbm, criterion)
    indoor = criterion == "indoor"
    rows = np.flatnonzero(stations.up).astype(np.int64)
    stations_serving, sectors_serving = _serving_counts(stations, stations.up)
    if per_cell:
        rsrp, serving, covered = _per_cell(grid, stations, rows, model, threshold_dbm, indoor)
    if not per_cell or criterion == "capacity":
        geo = _geometry(grid)
        sec = _sectors(geo, stations, rows, model, threshold_dbm, indoor)
        sites = _sites(sec)
        wit = _witnesses(
            geo,
            sec,
            sites,
            model,
            threshold_dbm,
            np.arange(len(grid), dtype=np.int64),
            np.ones(len(rows), dtype=bool),
        )
        covered = wit >= 0
    if criterion == "capacity":
        # served by the covering sector of the nearest covering site that points closest to the cell
        wit = _aimed(geo, sec, sites, model, threshold_dbm, wit)
        load_server = np.where(wit >= 0, rows[np.maximum(wit, 0)], -1)
        covered = capacity_served(grid, stations, load_server, capacity or CapacityParams())
        if per_cell:
            rsrp = np.where(covered, rsrp, np.nan)
            serving = np.where(covered, serving, -1)
    total, cov, share, districts = _summarise(grid, _covered_by_district(grid, covered))
    result = CoverageResult(
        total,
        cov,
        share,
        districts,
        covered=covered,
        stations_serving=stations_serving,
        sectors_serving=sectors_serving,
    )
    if per_cell:
        result.best_rsrp_dbm, result.serving_row = rsrp, serving
    return result


def coverage_matrix(
    grid: Grid,
    stations: Stations,
    *,
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    criterion: Criterion = "outdoor",
) -> Any:
    """Sparse bool (len(stations), len(grid)): row r covers cell c on its own, status ignored.

    `criterion` `indoor` counts the building loss; `capacity` depends on the whole layout, so it
    has no per-sector matrix (CoverageError).
    """
    from scipy import sparse

    _check_args(grid, stations, model, threshold_dbm, criterion)
    if criterion == "capacity":
        raise CoverageError("the capacity criterion depends on the whole layout; use compute_coverage")
    parts = [
        (c.astype(np.int32), r.astype(np.int32))
        for c, r, _ in _pair_chunks(
            grid,
            stations,
            np.arange(len(stations), dtype=np.int64),
            model,
            threshold_dbm,
            criterion == "indoor",
        )
    ]
    cells = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
    rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
    order = np.lexsort((cells, rows))
    indptr = np.zeros(len(stations) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(stations)), out=indptr[1:])
    data = np.ones(len(cells), dtype=bool)
    return sparse.csr_array((data, cells[order].astype(np.int32), indptr), shape=(len(stations), len(grid)))


# ------------------------------------------------------------------------------ incremental engine


class CoverageEngine:
    """Incremental what-if: switching sectors or adding some recomputes only the cells they touch.

    Keeps, per cell, one `up` sector covering it (its witness) or -1. Switching a sector on
    evaluates that sector alone and gives it the uncovered cells it reaches; switching it off
    re-searches a witness only for the cells it was the witness of (nearest sites first, then an
    exhaustive search for the few left). District totals: one `np.bincount`. Best servers per
    cell (`result(per_cell=True)`) are recomputed only when asked for after a change.
    Thread-safe (one lock); every operation returns the new result.
    """

    def __init__(
        self,
        grid: Grid,
        stations: Stations,
        *,
        model: Model = "hata",
        threshold_dbm: float = -110.0,
        criterion: Criterion = "outdoor",
    ) -> None:
        _check_args(grid, stations, model, threshold_dbm, criterion)
        if criterion == "capacity":
            raise CoverageError(
                "the capacity criterion is not incremental (a sector's load depends on its "
                "neighbours); use compute_coverage(..., criterion='capacity')"
            )
        self.grid = grid
        self.model: Model = model
        self.criterion: Criterion = criterion
        self._indoor = criterion == "indoor"
        self.threshold_dbm = float(threshold_dbm)
        self._lock = threading.RLock()
        self._geo = _geometry(grid)
        self._stations = stations
        self._layout_up = stations.up.copy()
        self._up = stations.up.copy()
        self._sec = _sectors(
            self._geo, stations, np.arange(len(stations), dtype=np.int64), model, threshold_dbm, self._indoor
        )
        self._site_cache: _Sites | None = None
        self._tiles = _build_tiles(self._geo, None, _tile_size(self._geo, self._sec))
        self._per_cell_cache: tuple[F64, I64, NDArray[np.bool_]] | None = None
        self._station_code: dict[str, int] = {}
        self._codes = self._encode(stations.station_id)
        self._wit = _witnesses(
            self._geo,
            self._sec,
            self._sites,
            model,
            self.threshold_dbm,
            np.arange(len(grid), dtype=np.int64),
            self._up,
        )
        self._cov_d = _covered_by_district(grid, self._wit >= 0)

    # -- state
    @property
    def stations(self) -> Stations:
        """The stations table (with rows added by `add_sectors`); `up` as loaded, not as toggled."""
        return self._stations

    @property
    def up(self) -> NDArray[np.bool_]:
        """Current serving flag per row (a copy)."""
        with self._lock:
            return self._up.copy()

    @property
    def layout_up(self) -> NDArray[np.bool_]:
        """Each row's `up` flag as given by its stations table (what live coverage falls back to)."""
        with self._lock:
            return self._layout_up.copy()

    @property
    def _sites(self) -> _Sites:
        if self._site_cache is None:
            self._site_cache = _sites(self._sec)
        return self._site_cache

    def _encode(self, ids: NDArray[np.str_]) -> I64:
        """Integer code per row's station (new stations get new codes): O(rows added)."""
        code = self._station_code
        return np.fromiter(
            (code.setdefault(x, len(code)) for x in ids.tolist()), dtype=np.int64, count=len(ids)
        )

    def _set_rows(self, rows: I64, up: NDArray[np.bool_]) -> None:
        change = self._up[rows] != up
        rows, up = rows[change], up[change]
        if len(rows) == 0:
            return
        self._per_cell_cache = None
        off, on = rows[~up], rows[up]
        touched: list[I64] = []
        if len(off):
            self._up[off] = False
            hit = self._wit == off[0] if len(off) == 1 else np.isin(self._wit, off)
            lost = np.flatnonzero(hit)
            if len(lost):
                self._wit[lost] = _witnesses(
                    self._geo, self._sec, self._sites, self.model, self.threshold_dbm, lost, self._up
                )
                touched.append(lost[self._wit[lost] < 0])
        if len(on):
            self._up[on] = True
            sub = _take(self._sec, on)
            for cell, s, _ in _pairs(self._geo, self._tiles, sub, self.model, self.threshold_dbm):
                free = self._wit[cell] < 0
                self._wit[cell[free]] = on[s[free]]
                touched.append(cell[free])
        changed = np.concatenate(touched) if touched else np.zeros(0, dtype=np.int64)
        if len(changed):
            which = np.unique(self.grid.district_index[changed]).astype(np.int64)
            self._cov_d[which] = _covered_by_district(self.grid, self._wit >= 0, which)

    # -- public operations
    def result(self, per_cell: bool = False) -> CoverageResult:
        """The current result (per-cell best servers recomputed only after a change)."""
        with self._lock:
            total, cov, share, districts = _summarise(self.grid, self._cov_d)
            up_rows = np.flatnonzero(self._up)
            serving = np.bincount(self._codes[up_rows], minlength=len(self._station_code))
            res = CoverageResult(
                total,
                cov,
                share,
                districts,
                stations_serving=int(np.count_nonzero(serving)),
                sectors_serving=len(up_rows),
            )
            res.covered = self._wit >= 0
            if per_cell:
                if self._per_cell_cache is None:
                    self._per_cell_cache = _per_cell(
                        self.grid,
                        self._stations,
                        up_rows.astype(np.int64),
                        self.model,
                        self.threshold_dbm,
                        self._indoor,
                    )
                rsrp, serving, cells = self._per_cell_cache
                res.best_rsrp_dbm, res.serving_row, res.covered = rsrp.copy(), serving.copy(), cells.copy()
            return res

    def set_sector_up(self, row: int, up: bool) -> CoverageResult:
        """Switch one sector (row of `stations`) on or off."""
        with self._lock:
            if not 0 <= row < len(self._up):
                raise CoverageError(f"row {row} is outside the {len(self._up)} sector rows")
            self._set_rows(np.array([row], dtype=np.int64), np.array([bool(up)]))
            return self.result()

    def set_rows_up(self, rows: NDArray[np.integer[Any]], up: NDArray[np.bool_] | bool) -> CoverageResult:
        """Set many sectors at once: `up[i]` (or one flag for all) for `rows[i]`."""
        with self._lock:
            r = np.asarray(rows, dtype=np.int64).reshape(-1)
            u = np.broadcast_to(np.asarray(up, dtype=bool), r.shape).copy()
            if len(r) and (r.min() < 0 or r.max() >= len(self._up)):
                raise CoverageError(f"rows must be within 0..{len(self._up) - 1}")
            if len(np.unique(r)) != len(r):
                raise CoverageError("rows must not repeat")
            self._set_rows(r, u)
            return self.result()

    def rows_of_station(self, station_id: str) -> I64:
        """Rows (sectors) of one station; CoverageError if unknown."""
        with self._lock:
            code = self._station_code.get(station_id)
            if code is None:
                raise CoverageError(f"unknown station_id {station_id!r}")
            return np.flatnonzero(self._codes == code).astype(np.int64)

    def set_station_up(self, station_id: str, up: bool) -> CoverageResult:
        """Switch all sectors of one station on or off."""
        with self._lock:
            rows = self.rows_of_station(station_id)
            self._set_rows(rows, np.full(len(rows), bool(up)))
            return self.result()

    def add_sectors(self, stations: Stations) -> CoverageResult:
        """Add rows (their `up` flags apply); only the new sectors are evaluated."""
        with self._lock:
            if len(stations) == 0:
                return self.result()
            start = len(self._up)
            new = _sectors(
                self._geo,
                stations,
                np.arange(len(stations), dtype=np.int64),
                self.model,
                self.threshold_dbm,
                self._indoor,
            )
            new.rows = new.rows + start
            self._sec = _join(self._sec, new)
            self._codes = np.concatenate([self._codes, self._encode(stations.station_id)])
            if self._site_cache is not None and len(self._sec.rows) > 1.1 * self._site_cache.indexed + 64:
                self._site_cache = None  # many sectors added: re-index the sites
            self._stations = Stations.concat([self._stations, stations])
            self._layout_up = np.concatenate([self._layout_up, stations.up])
            self._up = np.concatenate([self._up, np.zeros(len(stations), dtype=bool)])
            rows = np.arange(start, start + len(stations), dtype=np.int64)
            self._set_rows(rows[stations.up], np.ones(int(stations.up.sum()), dtype=bool))
            return self.result()

    def sector_cells(self, row: int) -> I64:
        """Cells (grid indexes, sorted) the sector covers on its own, status ignored."""
        with self._lock:
            sub = _take(self._sec, np.array([row], dtype=np.int64))
            parts = [c for c, _, _ in _pairs(self._geo, self._tiles, sub, self.model, self.threshold_dbm)]
            return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
