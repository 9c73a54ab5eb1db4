"""Site x cell coverage matrix for placement, from block bounds, over the cells that can add people.

A candidate site's value is the population it adds, so only populated cells the existing network
misses matter (at -110 dBm on the 2014 layout, 41% of the resolution-11 cells): the matrix is built
over those cells alone. They are grouped into blocks, their H3 ancestor `BLOCK_LEVELS` levels up
split by environment and district, each with a centre and a radius holding its cells. A (sector,
block) pair whose worst case over the block's ball reaches the threshold covers all the block's
cells (the engine's `_block_covered`); one whose best case cannot reach it is dropped
(`_block_may_cover`); only the cells of the pairs left (blocks on a coverage edge, and not covered
whole by another sector of the same site) are evaluated one by one, exactly as `coverage_matrix`
evaluates them.

For hata (`FLOAT32`), three more levels keep the street-level work down (docs/placement.md):
groups of 7 blocks are bounded before their blocks' pairs are formed, an edge block's 7-cell
sub-blocks before its cells, and the bounds and the cells run in float32 with slack that exceeds
float32's error, the cells near the threshold going to the float64 evaluation, so the matrix is
the same.

A site covering a block whole holds one column for it (the greedy keeps each block's uncovered
population), so the matrix stays small at street level: `SiteMatrix.cell_matrix()` expands the
blocks and equals `coverage_matrix`'s union of each site's sector rows on the given cells.

Memory: sites are processed in chunks of at most `CHUNK_BLOCKS` candidate (sector, block) pairs,
their edge cells `CHUNK_CELLS` at a time, so the temporaries are bounded whatever the reach; the
result holds one 4-byte index per (site, column), and `placement_footprint` bounds their number
before anything is built.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from zhongdu.coverage._engine import (
    _ARRAYS,
    _LOG_ARC,
    _MIN_C2,
    CoverageError,
    _block_covered,
    _block_may_cover,
    _blocks,
    _check_args,
    _expand,
    _geometry,
    _queries,
    _score_explicit,
    _Sectors,
    _sectors,
    _take,
    _Tiles,
)
from zhongdu.coverage._placement import CellGroups, expand_groups, site_index
from zhongdu.coverage._types import ENVIRONMENTS

if TYPE_CHECKING:
    from zhongdu.coverage._types import Grid, Stations

__all__ = ["SiteMatrix", "column_bound", "site_coverage_matrix"]

I64 = NDArray[np.int64]
F32 = NDArray[np.float32]
CHUNK_BLOCKS = 1 << 15  # candidate (sector, block) pairs per chunk of sites: bounded temporaries
CHUNK_CELLS = 1 << 17  # edge (sector, cell) pairs evaluated at once
BLOCK_LEVELS = 2  # blocks are each cell's ancestor this many H3 levels up (49 cells a block)
# worker threads over chunks of sites: one, as two cost 0.7 s more CPU for no wall time at
# resolution 11 on the 2-vCPU machine (docs/performance.md); more may pay on more cores
THREADS = 1
FLOAT32 = True  # hata: float32 bounds and screen (False: the float64 path, for comparisons)
SLACK_M = 0.05  # float32 bounds: balls grown by this (float32 positions in the frame err < 1 cm)
BOUND_DB = 1e-3  # float32 bounds: RSRP slack (their rounding is below 1e-4 dB)
SCREEN_DB = 0.005  # float32 screen: RSRP slack beyond the position error's (arithmetic: < 1e-4 dB)
SCREEN_NEAR_M = 100.0  # ... and pairs nearer the sector (the angle's float32 error grows as 1/d)
_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT


@dataclass(frozen=True)
class SiteMatrix:
    """`sites[s]`: the given cells site s covers, as a bool CSR (int32 indices) over the grid's
    cells then the blocks (`groups`): a site covering a whole block holds the block's column."""

    site_ids: tuple[str, ...]
    site_of_row: I64  # site of each candidate row
    sites: sparse.csr_array
    groups: CellGroups

    def cell_matrix(self) -> sparse.csr_array:
        """(n_sites, n_cells), blocks expanded: `coverage_matrix`'s site unions on the given cells."""
        return expand_groups(self.sites, self.groups, self.sites.shape[1] - self.groups.n)


def _parents(cells: NDArray[np.uint64], resolution: int, levels: int) -> NDArray[np.uint64]:
    """Each cell's H3 ancestor `levels` up (bit arithmetic: resolution field, finer digits 7)."""
    p = max(resolution - levels, 0)
    unused = np.uint64((1 << (3 * (15 - p))) - 1)
    out = ((cells | unused) & ~_RES_MASK) | (np.uint64(p) << _RES_SHIFT)
    return np.asarray(out, dtype=np.uint64)


@dataclass
class _Items:
    """The given cells grouped by (block, environment, district): each group's cells and ball."""

    cells: I64  # grid indexes, grouped by item
    start: I64  # item i's cells: cells[start[i]:start[i + 1]]
    tiles: _Tiles  # items tiled by (environment, row, column) for range queries
    balls: Any  # engine `_Blocks` of the items: centre, radius, environment
    grow: float  # largest item radius
    fast: _Fast32 | None = None  # float32 copies for the hata bounds and the edge-cell screen


def _runs(key: I64) -> tuple[I64, I64]:
    """For a sorted key: the run index of each element and each run's start (plus the end)."""
    step = np.ones(len(key), dtype=bool)
    step[1:] = key[1:] != key[:-1]
    return np.cumsum(step) - 1, np.append(np.flatnonzero(step), len(key)).astype(np.int64)


def _items(grid: Grid, cells: I64, reach: NDArray[np.float64], levels: int) -> _Items:
    """Blocks `levels` up, split by environment and by district (a group lies in one district)."""
    geo = _geometry(grid)
    n_env = len(ENVIRONMENTS)
    h3 = grid.cells[cells]
    _, block = np.unique(_parents(h3, grid.resolution, levels), return_inverse=True)
    n_dist = max(len(grid.districts), 1)
    key = (block.reshape(-1).astype(np.int64) * n_env + geo.env[cells]) * n_dist + grid.district_index[cells]
    order = np.argsort(key, kind="stable")
    cells, key = cells[order], key[order]
    item, start = _runs(key)
    n_items = len(start) - 1
    balls = _blocks(item, n_items, geo.x[cells], geo.y[cells], geo.z[cells], geo.env[cells])
    grow = float(balls.radius.max()) if n_items else 0.0
    positive = reach[reach > 0]
    typical = float(np.median(positive)) if len(positive) else 1.0
    tile = float(2.0 ** round(math.log2(max(typical / 8.0, 4.0 * grow, 1.0))))
    x0, y0 = float(balls.x.min()) - 1.0, float(balls.y.min()) - 1.0
    ncols = int((balls.x.max() - x0) // tile) + 1
    nrows = int((balls.y.max() - y0) // tile) + 1
    tile_id = (balls.env * nrows + ((balls.y - y0) // tile).astype(np.int64)) * ncols + (
        (balls.x - x0) // tile
    ).astype(np.int64)
    o = np.argsort(tile_id, kind="stable").astype(np.int64)
    tile_start = np.searchsorted(tile_id[o], np.arange(n_env * nrows * ncols + 1)).astype(np.int64)
    tiles = _Tiles(tile, x0, y0, nrows, ncols, o, balls.x[o], balls.y[o], balls.z[o], tile_start)
    return _Items(cells, start, tiles, balls, grow)


@dataclass
class _Fast32:
    """float32 copies of what the hata bounds and the edge-cell screen read (half the bytes
    gathered, transcendental functions 2-3x cheaper). Balls are grown by `SLACK_M`, which
    exceeds any float32 rounding of a position in the frame (4 mm at 60 km), so the bounds over
    them still hold; the screen decides only pairs clear of the threshold by more than the error
    a 2 cm position error can make (plus `SCREEN_DB`)."""

    bx: F32  # items' ball centres and radii (radius + SLACK_M)
    by: F32
    bz: F32
    br: F32
    cx: F32  # the items' cells, in items order (contiguous gathers)
    cy: F32
    cz: F32
    sx: F32  # per sector: position, boresight, side, slope, gain constant
    sy: F32
    sz: F32
    ux: F32
    uy: F32
    uz: F32
    vx: F32
    vy: F32
    vz: F32
    slope: F32
    kgain: F32
    offset: F32  # per (sector, environment), raveled
    c2near: F32
    need: F32  # threshold plus the building loss (indoor), per (sector, environment)
    c2in: F32  # (sqrt(c2near) -/+ SLACK_M)^2: a screened pair is surely in / out of the reach
    c2out: F32
    tol_m: F32  # per sector, dB of RSRP per metre of distance at 1 m: the screen's tolerance at d m is
    # SCREEN_DB + 0.02 tol_m / d (float32 positions err < 2 cm; < 1.1 cm in fact)
    # sub-blocks: each item's cells by their H3 ancestor one level below the blocks' (7 cells), so
    # an edge block's cells are bounded again by sevens before any is evaluated alone
    sub_first: I64 | None = None  # item i's sub-blocks: sub_first[i]:sub_first[i + 1]
    sub_start: I64 | None = None  # sub-block j's cells: items.cells[sub_start[j]:sub_start[j + 1]]
    sub_ball: tuple[F32, F32, F32, F32] | None = None  # centre and radius + SLACK_M, float32
    # groups: runs of items under one H3 ancestor a level above the blocks' (7 blocks), bounded
    # first with each sector's most favourable environment, so most block pairs are never formed
    group_first: I64 | None = None  # group g's items: group_first[g]:group_first[g + 1]
    group_ball: tuple[F32, F32, F32, F32] | None = None
    group_tiles: _Tiles | None = None  # the groups tiled (one environment layer) for range queries
    group_grow: float = 0.0  # largest group radius
    best: tuple[F32, F32, F32] | None = None  # per sector: largest offset and c2near, smallest need


def _sub_blocks(grid: Grid, geo: Any, items: _Items, levels: int) -> tuple[I64, I64, Any] | None:
    """Each item's cells split by their H3 ancestor `levels - 1` up: first sub-block of each item,
    start of each sub-block in the items' cells, and their balls (None when they are the cells)."""
    if levels < 2:
        return None
    n_items = len(items.start) - 1
    item = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(items.start))
    parent = _parents(grid.cells[items.cells], grid.resolution, levels - 1)
    step = np.ones(len(parent), dtype=bool)
    step[1:] = (parent[1:] != parent[:-1]) | (item[1:] != item[:-1])
    sub = np.cumsum(step) - 1
    sub_start = np.append(np.flatnonzero(step), len(parent)).astype(np.int64)
    sub_first = np.append(sub[items.start[:-1]], len(sub_start) - 1).astype(np.int64)
    c = items.cells
    balls = _blocks(sub, len(sub_start) - 1, geo.x[c], geo.y[c], geo.z[c], geo.env[c])
    return sub_first, sub_start, balls


def _groups(grid: Grid, geo: Any, items: _Items, levels: int, reach: NDArray[np.float64]) -> tuple[Any, ...]:
    """Items grouped by their cells' H3 ancestor `levels + 1` up (contiguous: items are sorted by
    block): first item of each group, the groups' balls, their tiles (one layer) and largest radius."""
    first_cell = items.cells[items.start[:-1]]
    parent = _parents(grid.cells[first_cell], grid.resolution, levels + 1).astype(np.int64)
    _, group_first = _runs(parent)
    n_groups = len(group_first) - 1
    sizes = np.diff(items.start)
    group_of_item = np.repeat(np.arange(n_groups, dtype=np.int64), np.diff(group_first))
    c = items.cells
    zero = np.zeros(len(c), dtype=np.int8)
    balls = _blocks(np.repeat(group_of_item, sizes), n_groups, geo.x[c], geo.y[c], geo.z[c], zero)
    grow = float(balls.radius.max())
    positive = reach[reach > 0]
    typical = float(np.median(positive)) if len(positive) else 1.0
    tile = float(2.0 ** round(math.log2(max(typical / 8.0, 2.0 * grow, 1.0))))
    x0, y0 = float(balls.x.min()) - 1.0, float(balls.y.min()) - 1.0
    ncols = int((balls.x.max() - x0) // tile) + 1
    nrows = int((balls.y.max() - y0) // tile) + 1
    tile_id = ((balls.y - y0) // tile).astype(np.int64) * ncols + ((balls.x - x0) // tile).astype(np.int64)
    o = np.argsort(tile_id, kind="stable").astype(np.int64)
    n_env = len(ENVIRONMENTS)
    tile_start = np.searchsorted(tile_id[o], np.arange(n_env * nrows * ncols + 1)).astype(np.int64)
    tiles = _Tiles(tile, x0, y0, nrows, ncols, o, balls.x[o], balls.y[o], balls.z[o], tile_start)
    return group_first.astype(np.int64), _ball32(balls), tiles, grow


def _fast32(geo: Any, items: _Items, sec: _Sectors, threshold: float, subs: Any) -> _Fast32:
    f = np.float32
    b = items.balls
    c2near = sec.c2near.ravel()
    bx, by, bz, br = _ball32(b)
    cx, cy, cz = (v[items.cells].astype(f) for v in (geo.x, geo.y, geo.z))
    sx, sy, sz, ux, uy, uz, vx, vy, vz = (
        v.astype(f) for v in (sec.x, sec.y, sec.z, sec.bx, sec.by, sec.bz, sec.sx, sec.sy, sec.sz)
    )
    return _Fast32(
        bx=bx,
        by=by,
        bz=bz,
        br=br,
        cx=cx,
        cy=cy,
        cz=cz,
        sx=sx,
        sy=sy,
        sz=sz,
        ux=ux,
        uy=uy,
        uz=uz,
        vx=vx,
        vy=vy,
        vz=vz,
        slope=sec.slope.astype(f),
        kgain=sec.kgain.astype(f),
        offset=sec.offset.ravel().astype(f),
        c2near=c2near.astype(f),
        need=(threshold + (sec.margin.ravel() if sec.indoor else np.zeros(len(c2near)))).astype(f),
        c2in=(np.maximum(np.sqrt(c2near) - SLACK_M, 0.0) ** 2).astype(f),
        c2out=((np.sqrt(c2near) + SLACK_M) ** 2).astype(f),
        # a position error e at distance d moves the angle by < e / d, and d(kgain theta^2)/d theta
        # <= 2 sqrt(25 kgain) below the 25 dB cap; it moves slope log10(d) by < slope e / (d ln 10)
        tol_m=(10.0 * np.sqrt(sec.kgain) + sec.slope / math.log(10.0)).astype(f),
        sub_first=None if subs is None else subs[0],
        sub_start=None if subs is None else subs[1],
        sub_ball=None if subs is None else _ball32(subs[2]),
        best=(
            sec.offset.max(axis=1).astype(f),
            sec.c2near.max(axis=1).astype(f),
            (threshold + (sec.margin.min(axis=1) if sec.indoor else np.zeros(len(sec.rows)))).astype(f),
        ),
    )


def _ball32(b: Any) -> tuple[F32, F32, F32, F32]:
    f = np.float32
    return b.x.astype(f), b.y.astype(f), b.z.astype(f), (b.radius + SLACK_M).astype(f)


def _log_km(c2: F32) -> F32:
    """log10 of the arc in km from a squared chord, as `_score` (the 20 m clamp), in float32."""
    c2c = np.maximum(c2, np.float32(_MIN_C2))
    return np.asarray(0.5 * np.log10(c2c) + c2c * _LOG_ARC - 3.0, dtype=np.float32)  # no copy


def _angle(f: _Fast32, s: I64, dx: F32, dy: F32, dz: F32, planar: bool) -> tuple[F32, F32 | None]:
    """Angle off the boresight (as `_score` measures it) and the distance projected on its plane."""
    cos_t = dx * f.ux.take(s) + dy * f.uy.take(s) + dz * f.uz.take(s)
    sin_t = np.abs(dx * f.vx.take(s) + dy * f.vy.take(s) + dz * f.vz.take(s))
    theta = np.arctan2(sin_t, cos_t)
    return theta, np.sqrt(cos_t * cos_t + sin_t * sin_t) if planar else None


def _bounds32(
    f: _Fast32,
    ball: tuple[F32, F32, F32, F32],
    it: I64,
    s: I64,
    se: I64,
    cons: tuple[F32, F32, F32] | None = None,
) -> tuple[I64, NDArray[np.bool_]]:
    """The engine's `_block_may_cover` and `_block_covered` (hata) in float32 on the grown balls,
    `BOUND_DB` of slack on the RSRP: the pairs that may cover a cell of their block (indices),
    and of those whether they cover it whole. Exact: a bound over a larger ball still holds."""
    dx, dy, dz = (
        ball[0].take(it) - f.sx.take(s),
        ball[1].take(it) - f.sy.take(s),
        ball[2].take(it) - f.sz.take(s),
    )
    r = ball[3].take(it)
    d = np.sqrt(dx * dx + dy * dy + dz * dz)
    theta, planar = _angle(f, s, dx, dy, dz, True)
    assert planar is not None
    ratio = r / np.maximum(planar, np.float32(1e-30))
    # the arcsine's argument inflated: its rounding can only widen the angular spread
    spread: F32 = np.where(ratio < 1.0, np.arcsin(np.minimum(ratio * (1.0 + 1e-5), 1.0)) + 1e-5, np.pi)
    lo = np.maximum(d - r, 0.0)
    least = np.maximum(theta - spread, 0.0)
    offset, c2near, need_of = cons or (f.offset, f.c2near, f.need)
    slope, kgain, need = f.slope.take(s), f.kgain.take(s), need_of.take(se)
    best = offset.take(se) - slope * _log_km(lo * lo) - np.minimum(kgain * (least * least), 25.0)
    may = np.flatnonzero((lo * lo <= c2near.take(se) * (1.0 + 1e-5)) & (best >= need - BOUND_DB))
    if cons is not None:  # groups: only whether they may cover
        return may, np.zeros(0, dtype=bool)
    hi = d[may] + r[may]
    worst = np.minimum(theta[may] + spread[may], np.pi)
    sem = se[may]
    low = f.offset.take(sem) - slope[may] * _log_km(hi * hi) - np.minimum(kgain[may] * (worst * worst), 25.0)
    whole: NDArray[np.bool_] = (hi * hi <= f.c2near.take(sem) * (1.0 - 1e-5)) & (low >= need[may] + BOUND_DB)
    return may, whole


def _screen32(st: _Setup, pos: I64, s: I64, se: I64, cell: I64) -> I64:
    """Indices of the (sector s, cell) pairs that reach the threshold, as `_score` decides them:
    in float32, then in float64 (`_score_explicit`) for the pairs within the tolerance of the
    threshold or of the reach, or nearer the sector than `SCREEN_NEAR_M`."""
    items = st.items
    assert items is not None and items.fast is not None
    f = items.fast
    dx, dy, dz = f.cx.take(pos) - f.sx.take(s), f.cy.take(pos) - f.sy.take(s), f.cz.take(pos) - f.sz.take(s)
    c2 = dx * dx + dy * dy + dz * dz
    theta, _ = _angle(f, s, dx, dy, dz, False)
    rsrp = (
        f.offset.take(se)
        - f.slope.take(s) * _log_km(c2)
        - np.minimum(f.kgain.take(s) * (theta * theta), 25.0)
    )
    margin = rsrp - f.need.take(se)
    tol = SCREEN_DB + 0.02 * f.tol_m.take(s) / np.sqrt(np.maximum(c2, np.float32(1.0)))
    sure_in = (c2 <= f.c2in.take(se)) & (margin >= tol)
    sure_out = (c2 > f.c2out.take(se)) | (margin < -tol)
    doubt = np.flatnonzero(~(sure_in | sure_out) | (c2 < SCREEN_NEAR_M * SCREEN_NEAR_M))
    keep = sure_in
    if len(doubt):
        keep[doubt] = False
        exact, _ = _score_explicit(st.geo, st.sec, st.model, st.threshold, s[doubt], cell[doubt])
        keep[doubt[exact]] = True
    return np.flatnonzero(keep)


@dataclass
class _Setup:
    """What both the matrix and its bound need: sectors grouped by site, blocks, block queries."""

    geo: Any
    site_ids: tuple[str, ...]
    site_of_row: I64
    sec: _Sectors
    per_env: _Sectors  # one sector per (sector, environment): each environment's own best case
    best: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]
    sec_site: I64
    items: _Items | None
    q: Any
    q_site: I64
    bounds: list[int]  # chunks of sites
    model: str
    threshold: float

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Query ranges of the chunks of sites (at most `CHUNK_BLOCKS` block pairs each, or one site)."""
        for a, b in itertools.pairwise(self.bounds):
            qa, qb = np.searchsorted(self.q_site, [a, b])
            if qb > qa:
                yield int(qa), int(qb)


def _setup(
    grid: Grid,
    candidates: Stations,
    model: str,
    threshold_dbm: float,
    criterion: str,
    cells: NDArray[np.bool_] | None,
    levels: int,
) -> _Setup:
    _check_args(grid, candidates, model, threshold_dbm, criterion)
    if criterion == "capacity":
        raise CoverageError("the capacity criterion depends on the whole layout; use compute_coverage")
    site_ids, site_of_row = site_index(candidates.station_id)
    n_sites, n_cells = len(site_ids), len(grid)
    mask = np.ones(n_cells, dtype=bool) if cells is None else np.asarray(cells, dtype=bool)
    if mask.shape != (n_cells,):
        raise CoverageError(f"the cell mask has {mask.shape} entries for {n_cells} cells")
    kept = np.flatnonzero(mask).astype(np.int64)
    geo = _geometry(grid)
    threshold = float(threshold_dbm)
    by_site = np.argsort(site_of_row, kind="stable").astype(np.int64)  # sectors grouped by site
    sec = _sectors(geo, candidates, by_site, model, threshold, criterion == "indoor")
    sec_site = site_of_row[by_site]
    n_env = len(ENVIRONMENTS)
    per_env = _take(sec, np.repeat(np.arange(len(sec.rows), dtype=np.int64), n_env))
    best = (sec.offset.ravel(), sec.c2near.ravel(), sec.c2edge.ravel(), sec.margin.ravel())
    none = np.zeros(0, dtype=np.int64)
    if len(kept) == 0 or n_sites == 0:
        return _Setup(
            geo, site_ids, site_of_row, sec, per_env, best, sec_site, None, None, none, [], model, threshold
        )
    items = _items(grid, kept, sec.reach, levels)
    chunk = CHUNK_BLOCKS
    if model == "hata" and FLOAT32:
        f = items.fast = _fast32(geo, items, sec, threshold, _sub_blocks(grid, geo, items, levels))
        f.group_first, f.group_ball, f.group_tiles, f.group_grow = _groups(
            grid, geo, items, levels, sec.reach
        )
        # one layer: each sector's longest reach over the environments, grown by the largest group
        reach = np.zeros_like(sec.reach)
        top = sec.reach.max(axis=1)
        reach[:, 0] = np.where(top > 0, top + f.group_grow, 0.0)
        q = _queries(f.group_tiles, _Sectors(**{**{n: getattr(sec, n) for n in _ARRAYS}, "reach": reach}))
        chunk = max(CHUNK_BLOCKS // 4, 1)  # a group pair stands for up to 7 block pairs
    else:
        reach = np.where(sec.reach > 0, sec.reach + items.grow, 0.0)
        q = _queries(items.tiles, _Sectors(**{**{n: getattr(sec, n) for n in _ARRAYS}, "reach": reach}))
    q_site = sec_site[q.sector]
    per_site = np.cumsum(np.bincount(q_site, weights=q.count, minlength=n_sites))
    cuts = np.searchsorted(per_site, np.arange(chunk, per_site[-1], chunk))
    bounds = np.unique(np.concatenate([[0], cuts + 1, [n_sites]]).clip(0, n_sites)).tolist()
    return _Setup(
        geo, site_ids, site_of_row, sec, per_env, best, sec_site, items, q, q_site, bounds, model, threshold
    )


def site_coverage_matrix(
    grid: Grid,
    candidates: Stations,
    *,
    model: str = "hata",
    threshold_dbm: float = -110.0,
    criterion: str = "outdoor",
    cells: NDArray[np.bool_] | None = None,
    levels: int = BLOCK_LEVELS,
) -> SiteMatrix:
    """The cells among `cells` (a mask; all by default) each candidate site covers, status ignored.

    `.cell_matrix()` equals the union of each site's rows of `coverage_matrix`, other columns
    emptied. `levels`: blocks are the cells' H3 ancestors that many levels up.
    """
    st = _setup(grid, candidates, model, threshold_dbm, criterion, cells, levels)
    n_sites, n_cells = len(st.site_ids), len(grid)
    indptr = np.zeros(n_sites + 1, dtype=np.int64)
    items = st.items
    if items is None:
        empty = sparse.csr_array(
            (np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int32), indptr.astype(np.int32)),
            shape=(n_sites, n_cells),
        )
        return SiteMatrix(st.site_ids, st.site_of_row, empty, CellGroups())
    n_cols = n_cells + len(items.start) - 1
    # int32 index arrays below 2**31 (scipy would otherwise widen the indices to indptr's int64)
    index_type = np.int32 if n_cols < 2**31 else np.int64
    parts: list[NDArray[np.integer[Any]]] = []
    counts = np.zeros(n_sites, dtype=np.int64)

    def chunk(qa_qb: tuple[int, int]) -> tuple[I64, NDArray[np.integer[Any]]]:
        done, e_it, e_s = _block_pass(st, *qa_qb)
        site, col = _columns(st, done, e_it, e_s)
        return np.bincount(site, minlength=n_sites), col.astype(index_type)

    # chunks are independent and NumPy releases the GIL in their array work: threads use the
    # second core; `map` keeps the chunks' order (the rows are grouped by site)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        done = pool.map(chunk, st.chunks()) if THREADS > 1 else map(chunk, st.chunks())
        for count, col in done:
            counts += count
            parts.append(col)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=index_type)
    if len(indices) >= 2**31:
        indices = indices.astype(np.int64)
    ptr = indptr.astype(indices.dtype)
    matrix = sparse.csr_array((np.ones(len(indices), dtype=bool), indices, ptr), shape=(n_sites, n_cols))
    return SiteMatrix(st.site_ids, st.site_of_row, matrix, CellGroups(items.start, items.cells))


def column_bound(
    grid: Grid,
    candidates: Stations,
    *,
    model: str = "hata",
    threshold_dbm: float = -110.0,
    criterion: str = "outdoor",
    cells: NDArray[np.bool_] | None = None,
    levels: int = BLOCK_LEVELS,
) -> int:
    """An upper bound of `site_coverage_matrix(...).sites.nnz` from the block tests alone: every
    cell of an edge block counted (in a tenth to a third of the matrix's time)."""
    st = _setup(grid, candidates, model, threshold_dbm, criterion, cells, levels)
    if st.items is None:
        return 0
    items = st.items
    n_items = np.int64(len(items.start) - 1)
    total = 0
    for qa, qb in st.chunks():
        done, e_it, e_s = _block_pass(st, qa, qb)
        edge = _unique(st.sec_site[e_s] * n_items + e_it) % n_items
        total += len(done) + int((items.start[edge + 1] - items.start[edge]).sum())
    return total


def _block_pass(st: _Setup, qa: int, qb: int) -> tuple[I64, I64, I64]:
    """The block pairs of queries qa..qb: sorted keys site * n_blocks + block of the blocks a site
    covers whole, and the (block, sector) edge pairs whose block the site does not cover whole."""
    items, q, sec = st.items, st.q, st.sec
    assert items is not None
    n_env = len(ENVIRONMENTS)
    qo, off = _expand(q.count[qa:qb])
    qi = qo + qa
    s = q.sector[qi]
    f = items.fast
    if f is not None and f.group_tiles is not None and f.group_ball is not None and f.best is not None:
        assert f.group_first is not None
        g = f.group_tiles.order[q.lo[qi] + off]
        may, _ = _bounds32(f, f.group_ball, g, s, s, f.best)
        g, s = g[may], s[may]
        owner, k = _expand(f.group_first[g + 1] - f.group_first[g])
        it, s = f.group_first[g[owner]] + k, s[owner]
        se = s * n_env + items.balls.env[it]
        may, whole = _bounds32(f, (f.bx, f.by, f.bz, f.br), it, s, se)
        it, s = it[may], s[may]
    else:
        it = items.tiles.order[q.lo[qi] + off]
        ok = _block_may_cover(
            items.balls, st.per_env, st.model, st.threshold, it, s * n_env + q.env[qi], st.best
        )
        it, s = it[ok], s[ok]
        whole = _block_covered(items.balls, sec, st.model, st.threshold, it, s)
    n_items = np.int64(len(items.start) - 1)
    site = st.sec_site[s]
    done = _unique(site[whole] * n_items + it[whole])
    # edge pairs whose block another sector of the same site covers whole add nothing
    edge = np.flatnonzero(~whole)
    key = site[edge] * n_items + it[edge]
    if len(done):
        at = np.minimum(np.searchsorted(done, key), len(done) - 1)
        edge = edge[done[at] != key]
    return done, it[edge], s[edge]


def _columns(st: _Setup, done: I64, e_it: I64, e_s: I64) -> tuple[I64, I64]:
    """(site, column) pairs grouped by site: the whole blocks, then the edge cells covered."""
    items = st.items
    assert items is not None
    n_cells = np.int64(len(st.geo.x))
    n_items = np.int64(len(items.start) - 1)
    n_env = len(ENVIRONMENTS)
    f = items.fast
    # the units whose cells are taken or evaluated: the edge blocks, or their sub-blocks the bounds
    # leave (those covered whole are taken without evaluating a cell)
    start, unit, sector_of = items.start, e_it, e_s
    env = items.balls.env[e_it]
    whole = np.zeros(len(e_it), dtype=bool)
    if f is not None and f.sub_first is not None and f.sub_start is not None and f.sub_ball is not None:
        owner, k = _expand(f.sub_first[e_it + 1] - f.sub_first[e_it])
        sub, sector_of, env = f.sub_first[e_it[owner]] + k, e_s[owner], env[owner]
        may, whole = _bounds32(f, f.sub_ball, sub, sector_of, sector_of * n_env + env)
        start, unit, sector_of, env = f.sub_start, sub[may], sector_of[may], env[may]
    size = start[unit + 1] - start[unit]
    ends = np.cumsum(size)
    cuts = np.searchsorted(ends, np.arange(CHUNK_CELLS, int(ends[-1]) if len(ends) else 0, CHUNK_CELLS)) + 1
    found: list[I64] = []
    for a, b in itertools.pairwise([0, *np.unique(np.minimum(cuts, len(unit))).tolist(), len(unit)]):
        if b <= a:
            continue
        owner, k = _expand(size[a:b])
        pos = start[unit[a:b][owner]] + k
        cell = items.cells[pos]
        sector = sector_of[a:b][owner]
        if f is not None:  # a unit's cells share one environment
            taken = whole[a:b][owner]
            found.append(st.sec_site[sector[taken]] * n_cells + cell[taken])
            test = np.flatnonzero(~taken)
            se = (sector_of[a:b] * n_env + env[a:b])[owner[test]]
            keep = test[_screen32(st, pos[test], sector[test], se, cell[test])]
        else:
            keep, _ = _score_explicit(st.geo, st.sec, st.model, st.threshold, sector, cell)
        found.append(st.sec_site[sector[keep]] * n_cells + cell[keep])
    # a cell on the edge of two sectors of one site counts once
    e_key = _unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    # a block covered whole is one column after the cells' (n_cells + block)
    return _group(done // n_items, n_cells + done % n_items, e_key // n_cells, e_key % n_cells)


def _unique(a: I64) -> I64:
    """Sorted distinct values (a sort and a mask: faster than `np.unique` on millions)."""
    a = np.sort(a)
    first = np.ones(len(a), dtype=bool)
    first[1:] = a[1:] != a[:-1]
    return a[first]


def _group(w_site: I64, w_cell: I64, e_site: I64, e_cell: I64) -> tuple[I64, I64]:
    """Merge two site-sorted (site, cell) lists into one grouped by site: O(n), no sort."""
    lo = int(min(w_site.min(initial=np.iinfo(np.int64).max), e_site.min(initial=np.iinfo(np.int64).max)))
    if len(w_site) + len(e_site) == 0:
        return w_site, w_cell
    hi = int(max(w_site.max(initial=-1), e_site.max(initial=-1))) + 1
    w_count = np.bincount(w_site - lo, minlength=hi - lo)
    e_count = np.bincount(e_site - lo, minlength=hi - lo)
    start = np.zeros(hi - lo, dtype=np.int64)
    np.cumsum((w_count + e_count)[:-1], out=start[1:])
    w_first = np.cumsum(w_count) - w_count
    e_first = np.cumsum(e_count) - e_count
    cell = np.empty(len(w_cell) + len(e_cell), dtype=np.int64)
    w_rel = w_site - lo
    cell[start[w_rel] + np.arange(len(w_site)) - w_first[w_rel]] = w_cell
    e_rel = e_site - lo
    cell[start[e_rel] + w_count[e_rel] + np.arange(len(e_site)) - e_first[e_rel]] = e_cell
    site = np.repeat(np.arange(lo, hi, dtype=np.int64), w_count + e_count)
    return site, cell
