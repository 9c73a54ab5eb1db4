"""Coverage engine: best-server RSRP per H3 cell, whole-array NumPy, only reachable pairs evaluated.

How it stays fast (no Python loop over cells or cell-sector pairs):

1. Cell centres go once (per grid, cached) to 3-D coordinates in metres in a frame tangent to
   the grid's centre: X east, Y north, Z up. Chord lengths are exact; X, Y is an orthographic
   projection (a contraction: planar distance <= chord <= arc), so a disk of the arc reach in
   the X-Y plane contains every cell a sector can reach.
2. Cells are bucketed in square tiles (per environment, since the Hata corrections change the
   reach), sorted by tile, with a dense `tile_start` table.
3. Each sector's maximum reach comes from inverting the model at boresight (disk: `radius_m`).
   For each sector and environment, one query per tile row crossing its reach disk gives a
   contiguous range of sorted cells; ranges expand to candidate pairs with `np.repeat`.
4. Candidate pairs are evaluated in fixed-size chunks (bounded memory): exact chord filter, then
   RSRP with the sector pattern for the survivors; best server per cell with `np.maximum.at` and
   a deterministic tie-break (lowest (station_id, sector_id) rank).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from zhongdu.errors import ZhongduError

from ._models import (
    EARTH_RADIUS_M,
    MIN_DISTANCE_KM,
    great_circle_m,
    hata_terms,
    max_reach_m,
    reference_signal_dbm,
)
from ._types import ENVIRONMENTS, Grid, Stations, StationsError

__all__ = [
    "CoverageEngine",
    "CoverageError",
    "CoverageResult",
    "DistrictCoverage",
    "Model",
    "compute_coverage",
    "coverage_matrix",
]

Model = Literal["disk", "hata"]
MODELS: tuple[str, ...] = ("disk", "hata")
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_CHUNK_PAIRS = 1 << 18  # candidate pairs per evaluation chunk: arrays stay in cache, memory bounded
_R = EARTH_RADIUS_M
_LOG10_MIN_D = math.log10(MIN_DISTANCE_KM)
_RAD2DEG2 = (180.0 / math.pi) ** 2


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
        """Exactly the JSON object of `zhongdu coverage compute --json` (DESIGN.md section 5)."""
        return {
            "population_total": self.population_total,
            "population_covered": self.population_covered,
            "share": self.share,
            "districts": [
                {"district": d.district, "population": d.population, "covered": d.covered, "share": d.share}
                for d in self.districts
            ],
        }


def _summarise(grid: Grid, covered: NDArray[np.bool_]) -> tuple[float, float, float, list[DistrictCoverage]]:
    """Totals per district with `np.bincount`; one code path so engine and full compute agree bit for bit."""
    nd = len(grid.districts)
    pop_d = np.bincount(grid.district_index, weights=grid.population, minlength=nd)
    cov_d = np.bincount(grid.district_index, weights=np.where(covered, grid.population, 0.0), minlength=nd)
    total = float(pop_d.sum())
    cov = float(cov_d.sum())
    districts = [
        DistrictCoverage(name, float(p), float(c), float(c / p) if p > 0 else 0.0)
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
    """Cells of one grid sorted by (environment, tile row, tile column) for range queries."""

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
    lat: F64  # degrees, sorted order (exact haversine re-check at disk boundaries)
    lng: F64


@dataclass
class _Geometry:
    frame: _Frame
    x: F64
    y: F64
    z: F64
    env_present: tuple[int, ...]
    tiles: dict[float, _Tiles] = field(default_factory=dict)


def _geometry(grid: Grid) -> _Geometry:
    geo: _Geometry | None = grid._cache.get("geometry")
    if geo is None:
        lat, lng = grid.latlng_deg()
        frame = _Frame.at(float(np.mean(lat)), float(np.mean(lng)))
        x, y, z = frame.apply(*_unit_vectors(lat, lng), scale=_R)
        present = tuple(int(e) for e in np.unique(grid.environment))
        geo = _Geometry(frame, x, y, z, present)
        grid._cache["geometry"] = geo
    return geo


def _tiles(grid: Grid, geo: _Geometry, tile: float) -> _Tiles:
    t = geo.tiles.get(tile)
    if t is not None:
        return t
    x0 = float(geo.x.min()) - 1.0
    y0 = float(geo.y.min()) - 1.0
    ncols = int((geo.x.max() - x0) // tile) + 1
    nrows = int((geo.y.max() - y0) // tile) + 1
    col = ((geo.x - x0) // tile).astype(np.int64)
    row = ((geo.y - y0) // tile).astype(np.int64)
    env = grid.environment.astype(np.int64)
    tile_id = (env * nrows + row) * ncols + col
    order = np.argsort(tile_id, kind="stable").astype(np.int64)
    ntiles = len(ENVIRONMENTS) * nrows * ncols
    tile_start = np.searchsorted(tile_id[order], np.arange(ntiles + 1)).astype(np.int64)
    lat, lng = grid.latlng_deg()
    t = _Tiles(
        tile,
        x0,
        y0,
        nrows,
        ncols,
        order,
        geo.x[order],
        geo.y[order],
        geo.z[order],
        tile_start,
        lat[order],
        lng[order],
    )
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
    bore: F64  # (n, 3) boresight direction in the tangent frame (unit)
    side: F64  # (n, 3) perpendicular, to the right of the boresight
    kgain: F64  # 12 (180/pi)^2 / bw^2: A = -min(kgain * theta_rad^2, 25); 0 for omni
    slope: F64  # Hata B (dB per decade of km)
    margin: F64  # (n, n_env) P - K - threshold: covered iff margin - B log10 d + A >= 0
    offset: F64  # (n, n_env) P - K: RSRP = offset - B log10 d + A
    reach: F64  # (n, n_env) arc reach in metres (0 = covers nothing)
    lat: F64
    lng: F64
    radius: F64


def _sectors(geo: _Geometry, stations: Stations, rows: I64, model: str, threshold: float) -> _Sectors:
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
    bore = np.stack([sa * ex + ca * nx, sa * ey + ca * ny, sa * ez + ca * nz], axis=1)
    side = np.stack([ca * ex - sa * nx, ca * ey - sa * ny, ca * ez - sa * nz], axis=1)
    bw = stations.beamwidth_deg[rows]
    omni = np.isnan(bw) | np.isnan(stations.azimuth_deg[rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        kgain = np.where(omni, 0.0, 12.0 * _RAD2DEG2 / (bw * bw))
    n = len(rows)
    n_env = len(ENVIRONMENTS)
    radius = stations.radius_m[rows]
    if model == "hata":
        f = stations.frequency_mhz[rows][:, None]
        hb = stations.height_m[rows][:, None]
        envs = np.arange(n_env)[None, :]
        k, b = hata_terms(f, hb, envs)
        p = reference_signal_dbm(stations.eirp_dbm[rows], stations.bandwidth_mhz[rows])[:, None]
        offset = p - k
        margin = offset - threshold
        reach = max_reach_m(
            eirp_dbm=stations.eirp_dbm[rows][:, None],
            bandwidth_mhz=stations.bandwidth_mhz[rows][:, None],
            frequency_mhz=f,
            height_m=hb,
            environment=envs,
            threshold_dbm=threshold,
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
        reach = np.repeat(radius[:, None], n_env, axis=1)
        offset = margin = np.zeros((n, n_env))
        slope = np.zeros(n)
    else:
        raise CoverageError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    mask = np.zeros(n_env, dtype=bool)
    mask[list(geo.env_present)] = True
    reach = np.where(mask[None, :], reach, 0.0)
    return _Sectors(rows, x, y, z, bore, side, kgain, slope, margin, offset, reach, lat, lng, radius)


def _tile_size(grid: Grid, sec: _Sectors) -> float:
    """Tile side: about an eighth of the typical reach, at least two cell spacings (power of 2)."""
    import h3

    edge = float(h3.average_hexagon_edge_length(grid.resolution, unit="m"))
    positive = sec.reach[sec.reach > 0]
    typical = float(np.median(positive)) if len(positive) else edge
    tile = max(2.0 * edge, typical / 8.0)
    return float(2.0 ** round(math.log2(tile)))


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
    owner, off = _expand(nq)
    row = row_lo[owner] + off
    yq, rq, xq = ys[owner], r[owner], xs[owner]
    dy = np.maximum(np.maximum(row * t - yq, yq - (row + 1) * t), 0.0)
    w = np.sqrt(np.maximum(rq * rq - dy * dy, 0.0))
    col_lo = np.clip(np.floor((xq - w) / t), 0, tiles.ncols).astype(np.int64)
    col_hi = np.clip(np.floor((xq + w) / t), -1, tiles.ncols - 1).astype(np.int64)
    base = (e_idx[owner] * tiles.nrows + row) * tiles.ncols
    ok = col_hi >= col_lo
    lo = tiles.tile_start[base + np.minimum(col_lo, tiles.ncols - 1)]
    hi = tiles.tile_start[base + col_hi + 1]
    count = np.where(ok, hi - lo, 0)
    keep = count > 0
    return _Queries(s_idx[owner][keep], e_idx[owner][keep], lo[keep], count[keep])


def _covered_pairs(
    grid: Grid, stations: Stations, rows: I64, model: str, threshold: float
) -> Iterator[tuple[I64, I64, F64]]:
    """Yield chunks of (cell index, stations row, score) for every pair reaching the threshold.

    Score is the RSRP in dBm (`hata`) or minus the squared chord (`disk`: nearest serves best).
    Pairs come out sector-major, in the order of `rows`.
    """
    if len(rows) == 0:
        return
    geo = _geometry(grid)
    sec = _sectors(geo, stations, rows, model, threshold)
    tiles = _tiles(grid, geo, _tile_size(grid, sec))
    q = _queries(tiles, sec)
    n_env = len(ENVIRONMENTS)
    if len(q.count) == 0:
        return
    chord_reach = 2.0 * _R * np.sin(sec.reach / (2.0 * _R))  # chord of the arc reach
    c2_reach = (chord_reach * (1.0 + 1e-9) + 1e-6) ** 2
    c2_exact = chord_reach**2
    ends = np.cumsum(q.count)
    # chunk boundaries between queries, about _CHUNK_PAIRS candidates each
    cuts = np.searchsorted(ends, np.arange(_CHUNK_PAIRS, int(ends[-1]), _CHUNK_PAIRS), side="left") + 1
    bounds = [0, *np.unique(cuts).tolist()]
    if bounds[-1] != len(q.count):
        bounds.append(len(q.count))
    inv_24r2 = 1.0 / (24.0 * _R * _R)
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        qo, off = _expand(q.count[a:b])
        qi = qo + a
        pos = q.lo[qi] + off
        s = q.sector[qi]
        dx = tiles.x[pos] - sec.x[s]
        dy = tiles.y[pos] - sec.y[s]
        dz = tiles.z[pos] - sec.z[s]
        c2 = dx * dx + dy * dy + dz * dz
        se = s * n_env + q.env[qi]
        near = c2 <= c2_reach.ravel()[se]
        if model == "disk":
            c2t = c2_exact.ravel()[se]
            inside = c2 <= c2t
            # pairs within a hair of the edge: decide with the haversine formula itself
            edge = near & (np.abs(c2 - c2t) <= 1e-9 * c2t + 1e-9)
            if edge.any():
                ei = np.flatnonzero(edge)
                d = great_circle_m(sec.lat[s[ei]], sec.lng[s[ei]], tiles.lat[pos[ei]], tiles.lng[pos[ei]])
                inside[ei] = d <= sec.radius[s[ei]]
            keep = np.flatnonzero(inside)
            yield tiles.order[pos[keep]], sec.rows[s[keep]], -c2[keep]
            continue
        keep = np.flatnonzero(near)
        s, se, c2, dx, dy, dz = s[keep], se[keep], c2[keep], dx[keep], dy[keep], dz[keep]
        pos = pos[keep]
        # log10(arc km) from the chord: arc = c (1 + c^2 / 24 R^2) to 1e-12 below 40 km
        log_d = np.maximum(0.5 * np.log10(c2) + np.log10(1.0 + c2 * inv_24r2) - 3.0, _LOG10_MIN_D)
        base = sec.offset.ravel()[se] - sec.slope[s] * log_d
        kg = sec.kgain[s]
        cos_t = dx * sec.bore[s, 0] + dy * sec.bore[s, 1] + dz * sec.bore[s, 2]
        sin_t = dx * sec.side[s, 0] + dy * sec.side[s, 1] + dz * sec.side[s, 2]
        theta = np.arctan2(np.abs(sin_t), cos_t)
        rsrp = base - np.minimum(kg * theta * theta, 25.0)
        ok = np.flatnonzero(rsrp >= threshold)
        yield tiles.order[pos[ok]], sec.rows[s[ok]], rsrp[ok]


def _sector_rank(stations: Stations) -> I64:
    """Deterministic tie-break key per row: rank of (station_id, sector_id, row)."""
    order = np.lexsort((np.arange(len(stations)), stations.sector_id, stations.station_id))
    rank = np.empty(len(stations), dtype=np.int64)
    rank[order] = np.arange(len(stations))
    return rank


def _best_server(n_cells: int, cells: I64, rows: I64, score: F64, rank: I64) -> tuple[F64, I64]:
    """Best score per cell and its row (highest score, then lowest rank); -inf / -1 where none."""
    best = np.full(n_cells, -np.inf)
    np.maximum.at(best, cells, score)
    win = score == best[cells]
    big = np.iinfo(np.int64).max
    key = np.full(n_cells, big, dtype=np.int64)
    np.minimum.at(key, cells[win], rank[rows[win]])
    row_of_rank = np.argsort(rank)
    serving = np.where(key < big, row_of_rank[np.minimum(key, len(rank) - 1)], -1)
    return best, serving.astype(np.int64)


def _check_args(grid: Grid, stations: Stations, model: str, threshold_dbm: float) -> None:
    if model not in MODELS:
        raise CoverageError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    if not math.isfinite(threshold_dbm):
        raise CoverageError(f"threshold {threshold_dbm!r} dBm must be a finite number, e.g. -110")
    if not isinstance(grid, Grid) or not isinstance(stations, Stations):
        raise CoverageError(
            "compute_coverage needs a Grid and a Stations table (see load_grid, load_stations)"
        )


def _per_cell_arrays(
    grid: Grid, stations: Stations, model: str, cells: I64, rows: I64, score: F64, rank: I64
) -> tuple[F64, I64, NDArray[np.bool_]]:
    best, serving = _best_server(len(grid), cells, rows, score, rank)
    covered = serving >= 0
    rsrp = np.where(covered, best, np.nan) if model == "hata" else np.full(len(grid), np.nan)
    return rsrp, serving, covered


def compute_coverage(
    grid: Grid,
    stations: Stations,
    *,
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    per_cell: bool = False,
) -> CoverageResult:
    """Covered population, city-wide and per district, from every `up` sector (DESIGN.md section 4)."""
    _check_args(grid, stations, model, threshold_dbm)
    rows = np.flatnonzero(stations.up).astype(np.int64)
    covered = np.zeros(len(grid), dtype=bool)
    parts: list[tuple[I64, I64, F64]] = []
    for cells, srows, score in _covered_pairs(grid, stations, rows, model, threshold_dbm):
        covered[cells] = True
        if per_cell:
            parts.append((cells, srows, score))
    total, cov, share, districts = _summarise(grid, covered)
    ids, inverse = stations.station_index()
    result = CoverageResult(
        total,
        cov,
        share,
        districts,
        stations_serving=int(np.count_nonzero(np.bincount(inverse[rows], minlength=len(ids)))),
        sectors_serving=len(rows),
    )
    if per_cell:
        c, r, s = _concat(parts)
        result.best_rsrp_dbm, result.serving_row, result.covered = _per_cell_arrays(
            grid, stations, model, c, r, s, _sector_rank(stations)
        )
    return result


def _concat(parts: list[tuple[I64, I64, F64]]) -> tuple[I64, I64, F64]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _csr(
    n_rows: int, parts: list[tuple[I64, I64, F64]], row_base: int = 0
) -> tuple[I64, NDArray[np.int32], F64]:
    """(indptr, cells, score) per row from sector-major pairs; cells sorted within each row."""
    cells, rows, score = _concat(parts)
    order = np.lexsort((cells, rows))
    cells, rows, score = cells[order], rows[order], score[order]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows - row_base, minlength=n_rows), out=indptr[1:])
    return indptr, cells.astype(np.int32), score


def coverage_matrix(
    grid: Grid, stations: Stations, *, model: Model = "hata", threshold_dbm: float = -110.0
) -> Any:
    """Sparse bool (len(stations), len(grid)): row r covers cell c on its own, status ignored."""
    from scipy import sparse

    _check_args(grid, stations, model, threshold_dbm)
    rows = np.arange(len(stations), dtype=np.int64)
    indptr, cells, _ = _csr(len(stations), list(_covered_pairs(grid, stations, rows, model, threshold_dbm)))
    data = np.ones(len(cells), dtype=bool)
    return sparse.csr_array((data, cells, indptr), shape=(len(stations), len(grid)))


# ------------------------------------------------------------------------------ incremental engine


@dataclass
class _Block:
    """Per-sector sparse reach of a contiguous run of rows (CSR)."""

    start: int
    indptr: I64
    cells: NDArray[np.int32]
    score: F64


class CoverageEngine:
    """Incremental what-if: switching sectors or adding some updates only their cells.

    Keeps every sector's covered cells and scores (CSR, status ignored) and, per cell, the number
    of `up` sectors covering it. A toggle touches that sector's cells plus one `np.bincount` over
    the grid for the district totals. Best servers per cell are recomputed only when asked for.
    Thread-safe (one lock); methods return the new result.
    """

    def __init__(
        self, grid: Grid, stations: Stations, *, model: Model = "hata", threshold_dbm: float = -110.0
    ) -> None:
        _check_args(grid, stations, model, threshold_dbm)
        self.grid = grid
        self.model: Model = model
        self.threshold_dbm = float(threshold_dbm)
        self._lock = threading.RLock()
        self._stations = stations
        self._layout_up = stations.up.copy()
        self._up = np.zeros(len(stations), dtype=bool)
        self._blocks: list[_Block] = []
        self._count = np.zeros(len(grid), dtype=np.int32)
        self._per_cell: tuple[F64, I64, NDArray[np.bool_]] | None = None
        self._sid_cache: tuple[NDArray[np.str_], NDArray[np.intp]] | None = None
        self._append(stations)

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
        return self._layout_up.copy()

    def _append(self, stations: Stations) -> None:
        start = len(self._up) - len(stations)
        rows = np.arange(len(stations), dtype=np.int64)
        parts = list(_covered_pairs(self.grid, stations, rows, self.model, self.threshold_dbm))
        indptr, cells, score = _csr(len(stations), parts)
        self._blocks.append(_Block(start, indptr, cells, score))
        self._set_rows(np.arange(start, start + len(stations), dtype=np.int64), stations.up)

    def _segments(self, rows: I64) -> NDArray[np.int32]:
        """Covered cells of the given rows, concatenated (vectorised per block)."""
        out: list[NDArray[np.int32]] = []
        starts = [b.start for b in self._blocks]
        block_of = np.searchsorted(np.asarray(starts), rows, side="right") - 1
        for bi in np.unique(block_of).tolist():
            blk = self._blocks[bi]
            local = rows[block_of == bi] - blk.start
            lo, hi = blk.indptr[local], blk.indptr[local + 1]
            owner, off = _expand(hi - lo)
            out.append(blk.cells[lo[owner] + off])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)

    def _set_rows(self, rows: I64, up: NDArray[np.bool_]) -> None:
        change = self._up[rows] != up
        rows, up = rows[change], up[change]
        if len(rows) == 0:
            return
        on = self._segments(rows[up])
        off = self._segments(rows[~up])
        n = len(self._count)
        for cells, sign in ((on, 1), (off, -1)):
            if len(cells) == 0:
                continue
            if len(cells) * 8 < n:
                np.add.at(self._count, cells, sign)
            else:
                self._count += sign * np.bincount(cells, minlength=n).astype(np.int32)
        self._up[rows] = up
        self._per_cell = None

    # -- public operations
    def result(self, per_cell: bool = False) -> CoverageResult:
        """The current result (per-cell arrays recomputed only after a change)."""
        with self._lock:
            covered = self._count > 0
            total, cov, share, districts = _summarise(self.grid, covered)
            ids, inverse = self._station_ids
            up_rows = np.flatnonzero(self._up)
            res = CoverageResult(
                total,
                cov,
                share,
                districts,
                stations_serving=int(np.count_nonzero(np.bincount(inverse[up_rows], minlength=len(ids)))),
                sectors_serving=len(up_rows),
            )
            if per_cell:
                if self._per_cell is None:
                    self._per_cell = self._compute_per_cell()
                rsrp, serving, cov_cells = self._per_cell
                res.best_rsrp_dbm, res.serving_row, res.covered = (
                    rsrp.copy(),
                    serving.copy(),
                    cov_cells.copy(),
                )
            return res

    @property
    def _station_ids(self) -> tuple[NDArray[np.str_], NDArray[np.intp]]:
        cached = self._sid_cache
        if cached is None or len(cached[1]) != len(self._stations):
            cached = self._stations.station_index()
            self._sid_cache = cached
        return cached

    def _compute_per_cell(self) -> tuple[F64, I64, NDArray[np.bool_]]:
        parts: list[tuple[I64, I64, F64]] = []
        for blk in self._blocks:
            nrows = len(blk.indptr) - 1
            rows = np.repeat(np.arange(blk.start, blk.start + nrows, dtype=np.int64), np.diff(blk.indptr))
            keep = self._up[rows]
            parts.append((blk.cells[keep].astype(np.int64), rows[keep], blk.score[keep]))
        c, r, s = _concat(parts)
        return _per_cell_arrays(self.grid, self._stations, self.model, c, r, s, _sector_rank(self._stations))

    def set_sector_up(self, row: int, up: bool) -> CoverageResult:
        """Switch one sector (row of `stations`) on or off."""
        with self._lock:
            if not 0 <= row < len(self._up):
                raise CoverageError(f"row {row} is outside the {len(self._up)} sector rows")
            self._set_rows(np.array([row], dtype=np.int64), np.array([up]))
            return self.result()

    def set_rows_up(self, rows: NDArray[np.integer[Any]], up: NDArray[np.bool_]) -> CoverageResult:
        """Set many sectors at once (one pass): `up[i]` for `rows[i]`."""
        with self._lock:
            r = np.asarray(rows, dtype=np.int64)
            u = np.broadcast_to(np.asarray(up, dtype=bool), r.shape)
            if len(r) and (r.min() < 0 or r.max() >= len(self._up)):
                raise CoverageError(f"rows must be within 0..{len(self._up) - 1}")
            self._set_rows(r, u.copy())
            return self.result()

    def rows_of_station(self, station_id: str) -> I64:
        """Rows (sectors) of one station; CoverageError if unknown."""
        with self._lock:
            ids, inverse = self._station_ids
            i = int(np.searchsorted(ids, station_id))
            if i >= len(ids) or ids[i] != station_id:
                raise CoverageError(f"unknown station_id {station_id!r}")
            return np.flatnonzero(inverse == i).astype(np.int64)

    def set_station_up(self, station_id: str, up: bool) -> CoverageResult:
        """Switch all sectors of one station on or off."""
        with self._lock:
            rows = self.rows_of_station(station_id)
            self._set_rows(rows, np.full(len(rows), up))
            return self.result()

    def add_sectors(self, stations: Stations) -> CoverageResult:
        """Add rows (their `up` flags apply); only the new sectors' reach is computed."""
        with self._lock:
            if len(stations) == 0:
                return self.result()
            self._stations = Stations.concat([self._stations, stations])
            self._layout_up = np.concatenate([self._layout_up, stations.up])
            self._up = np.concatenate([self._up, np.zeros(len(stations), dtype=bool)])
            self._append(stations)
            return self.result()

    def sector_cells(self, row: int) -> NDArray[np.int32]:
        """Cells (grid indexes) the sector covers on its own, status ignored."""
        with self._lock:
            return self._segments(np.array([row], dtype=np.int64)).copy()

    def matrix(self) -> Any:
        """The coverage matrix of all rows so far (as `coverage_matrix`, without recomputing)."""
        from scipy import sparse

        with self._lock:
            indptr = [np.zeros(1, dtype=np.int64)]
            total = 0
            for blk in self._blocks:
                indptr.append(blk.indptr[1:] + total)
                total += int(blk.indptr[-1])
            cells = np.concatenate([b.cells for b in self._blocks])
            return sparse.csr_array(
                (np.ones(len(cells), dtype=bool), cells, np.concatenate(indptr)),
                shape=(len(self._up), len(self.grid)),
            )
