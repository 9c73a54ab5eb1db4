"""Coverage routes: the live snapshot (served from memory), per-cell GeoJSON, stored snapshots."""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response
from numpy.typing import NDArray

from zhongdu import storage
from zhongdu.api._deps import ConnDep, CurrentRole, StateDep, live_ready
from zhongdu.api._http import GeoJSONResponse
from zhongdu.api._live import LiveCoverage, LiveSnapshot
from zhongdu.api._params import time_range, unprocessable
from zhongdu.api._schemas import CellCollectionOut, CellColumnsOut, CoverageOut, ErrorOut, SnapshotListOut

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])

MAX_CELLS = 20_000  # GeoJSON: one polygon feature per cell
DEFAULT_CELLS = 5000
MAX_H3_CELLS = 1_000_000  # format=h3: about 30 bytes a cell before gzip
MIN_RESOLUTION = 5  # coarser cells than this (~250 km²) would say nothing about a district
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "live coverage is still being computed or failed to start"}
}


def _live(state: StateDep) -> tuple[LiveCoverage, LiveSnapshot]:
    live = live_ready(state)
    assert live.snapshot is not None  # live_ready checked it
    return live, live.snapshot


@router.get(
    "",
    response_model=CoverageOut,
    responses={
        **_NOT_READY,
        422: {"model": ErrorOut, "description": "unknown operator or no operator column"},
    },
    summary="Live city and district coverage",
)
def get_coverage(
    state: StateDep,
    _caller: CurrentRole,
    criterion: Annotated[
        Literal["outdoor", "indoor", "capacity"],
        Query(
            description="outdoor (default, docs/coverage.md#criteria), indoor (3GPP O2I loss) "
            "or capacity (sector load)"
        ),
    ] = "outdoor",
    operator: Annotated[
        str,
        Query(
            pattern=r"^[A-Za-z]{2,5}$|^[\u4e00-\u9fff]{2,20}$|^every_major$",
            description="any (default), an operator (CHT, TWM, FET, APT, TSTAR), each "
            "(adds `by_operator` and `every_major`) or every_major (the shares, districts "
            "included, of the people all three major operators cover)",
        ),
    ] = "any",
) -> Response:
    """The live share of the population covered, city-wide and per district.

    The default (outdoor, any operator) is served from the in-memory snapshot, recomputed when
    the set of serving stations changes and stored on a schedule, never per request. Another
    criterion or operator is computed once per snapshot from the stations serving now (about
    0.5 s, `each` about 1.5 s at resolution 10) and kept until the next snapshot.
    """
    live, snapshot = _live(state)
    if criterion == "outdoor" and operator == "any":
        return Response(content=snapshot.body, media_type="application/json")
    from zhongdu.coverage import CoverageError

    try:
        body = live.summary_for(criterion, operator)
    except (CoverageError, ValueError) as exc:
        unprocessable(str(exc))
    return Response(content=body, media_type="application/json")


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        unprocessable(f"bbox must be min_lon,min_lat,max_lon,max_lat (4 numbers), got {text!r}")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        unprocessable(f"bbox must hold 4 numbers min_lon,min_lat,max_lon,max_lat, got {text!r}")
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        unprocessable("bbox values must be finite numbers")
    if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
        unprocessable(
            "bbox must satisfy -180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90, "
            f"got {text!r}"
        )
    return min_lon, min_lat, max_lon, max_lat


_OPERATOR = r"^[A-Za-z]{2,5}$|^[\u4e00-\u9fff]{2,20}$|^every_major$"


@router.get(
    "/cells",
    response_model=CellCollectionOut | CellColumnsOut,
    response_class=GeoJSONResponse,
    responses={
        **_NOT_READY,
        200: {
            "description": "GeoJSON (default) or, with `format=h3`, columns of H3 ids",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CellColumnsOut"}}},
        },
        422: {
            "model": ErrorOut,
            "description": "no area given, unknown district or operator, too many cells",
        },
    },
    summary="Per-cell live coverage of a district or a box, as GeoJSON or H3 columns",
)
def get_cells(
    state: StateDep,
    _caller: CurrentRole,
    district: Annotated[
        str | None, Query(max_length=20, description="Chinese district name, e.g. 西屯區")
    ] = None,
    bbox: Annotated[
        str | None, Query(max_length=200, description="min_lon,min_lat,max_lon,max_lat (WGS84)")
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_H3_CELLS,
            description=f"refuse (422) when more cells match; default 5000 (at most {MAX_CELLS:,}) "
            f"for GeoJSON, {MAX_H3_CELLS:,} for `format=h3`",
        ),
    ] = None,
    resolution: Annotated[
        str | None,
        Query(
            pattern=r"^(auto|[0-9]{1,2})$",
            description="H3 resolution of the answer: the grid's (default), a coarser one (cells "
            "merged into their parents), or `auto`: the finest that fits in `limit`",
        ),
    ] = None,
    format: Annotated[
        Literal["geojson", "h3"],
        Query(
            description="geojson (default: polygons, for GIS clients) or h3: columns of H3 ids and "
            "covered flags for a client that draws the hexagons itself (a fraction of the bytes)"
        ),
    ] = "geojson",
    criterion: Annotated[
        Literal["outdoor", "indoor", "capacity"],
        Query(description="whose covered flags: outdoor (default), indoor or capacity, as `/v1/coverage`"),
    ] = "outdoor",
    operator: Annotated[
        str,
        Query(pattern=_OPERATOR, description="any (default), an operator or every_major, as `/v1/coverage`"),
    ] = "any",
    rsrp: Annotated[
        bool,
        Query(
            description="`format=h3` only: add each cell's best RSRP (hata; best servers of the "
            "district's cells, seconds the first time, then kept for the snapshot)"
        ),
    ] = False,
) -> Response:
    """Cells of a district or a bounding box: covered flag, population, best RSRP.

    The covered flags are the live engine's (outdoor, any operator: its kept state, nothing
    computed) or those of the criterion and operator asked for (computed once per snapshot, as
    `/v1/coverage?criterion=&operator=`). GeoJSON carries each cell's polygon and best RSRP (the
    outdoor best server at the grid's resolution); `format=h3` sends columns (`h3`, `covered` as a
    string of 0/1, `population`, `district`, and `best_rsrp_dbm` with `rsrp=true`) for clients that draw H3
    cells themselves, like the operations page. A large district is served whole at a coarser
    resolution with `resolution=auto`: each parent cell sums its children's population and
    counts them and the covered ones (`cells`, `covered_cells`; best RSRP is null).
    """
    live, snapshot = _live(state)
    if format == "geojson" and limit is not None and limit > MAX_CELLS:
        unprocessable(f"limit must be at most {MAX_CELLS} for GeoJSON (up to {MAX_H3_CELLS} with format=h3)")
    if rsrp and format != "h3":
        unprocessable("rsrp applies to format=h3 (GeoJSON cells at the grid's resolution always carry it)")
    wanted = limit if limit is not None else (MAX_H3_CELLS if format == "h3" else DEFAULT_CELLS)
    key = (snapshot.computed_at, district, bbox, wanted, resolution, format, criterion, operator, rsrp)
    with _CELLS_CACHE_LOCK:
        cached = _CELLS_CACHE.get(key)
    if cached is None:
        area = _area(live, district, bbox)
        try:
            covered_all = live.covered_for(criterion, operator)
        except ValueError as exc:  # CoverageError too: an unknown operator, a layout without one
            unprocessable(str(exc))
        body = _Cells(live, snapshot, area, wanted, resolution, covered_all[area])
        cached = body.h3(rsrp) if format == "h3" else body.geojson()
        with _CELLS_CACHE_LOCK:
            # one snapshot's answers: every wall and laptop asks the same few when a snapshot lands
            for old in [k for k in _CELLS_CACHE if k[0] != snapshot.computed_at]:
                del _CELLS_CACHE[old]
            while len(_CELLS_CACHE) >= _CELLS_CACHE_SIZE:
                del _CELLS_CACHE[next(iter(_CELLS_CACHE))]
            _CELLS_CACHE[key] = cached
    media = "application/json" if format == "h3" else GeoJSONResponse.media_type
    return Response(cached, media_type=media)


_CELLS_CACHE_SIZE = 16
_CELLS_CACHE: dict[tuple[Any, ...], bytes] = {}
_CELLS_CACHE_LOCK = threading.Lock()


def _pick_resolution(cells: NDArray[np.uint64], grid_res: int, wanted: str | None, limit: int) -> int:
    """The answer's resolution: the grid's, the one asked for, or the finest fitting `limit`."""
    from zhongdu.coverage._candidates import cell_to_parent

    if wanted is None:
        return grid_res
    if wanted != "auto":
        res = int(wanted)
        if not MIN_RESOLUTION <= res <= grid_res:
            unprocessable(f"resolution must be between {MIN_RESOLUTION} and the grid's {grid_res}, got {res}")
        return res
    for res in range(grid_res, MIN_RESOLUTION - 1, -1):
        if res == grid_res and len(cells) <= limit:
            return res
        if len(np.unique(cell_to_parent(cells, res))) <= limit:
            return res
    return MIN_RESOLUTION


def _area(live: LiveCoverage, district: str | None, bbox: str | None) -> NDArray[np.intp]:
    """Grid rows of the district or the box (exactly one of them given)."""
    grid = live.grid
    assert grid is not None
    if (district is None) == (bbox is None):
        unprocessable(
            "give exactly one of `district` (e.g. 西屯區) or `bbox` (min_lon,min_lat,max_lon,max_lat)"
        )
    if district is not None:
        if district not in grid.districts:
            unprocessable(f"unknown district {district!r}; known: {', '.join(grid.districts)}")
        return np.flatnonzero(np.asarray(grid.district_index) == grid.districts.index(district))
    assert bbox is not None
    min_lon, min_lat, max_lon, max_lat = _parse_bbox(bbox)
    lat, lng = live.cell_centres()
    return np.flatnonzero((lat >= min_lat) & (lat <= max_lat) & (lng >= min_lon) & (lng <= max_lon))


class _Cells:
    """The answer's cells: the area's grid cells, or their parents at a coarser resolution."""

    def __init__(
        self,
        live: LiveCoverage,
        snapshot: LiveSnapshot,
        rows: NDArray[np.intp],
        limit: int,
        wanted: str | None,
        covered: NDArray[np.bool_],
    ) -> None:
        from zhongdu.coverage._candidates import cell_to_parent

        grid = live.grid
        assert grid is not None
        self.live, self.snapshot, self.grid, self.rows, self.covered = live, snapshot, grid, rows, covered
        fine = np.asarray(grid.cells[rows], dtype=np.uint64)
        self.res = _pick_resolution(fine, grid.resolution, wanted, limit)
        self.merged = self.res < grid.resolution
        if self.merged:
            parents, first, inverse = np.unique(
                cell_to_parent(fine, self.res), return_index=True, return_inverse=True
            )
            self.inverse = inverse.ravel()
        else:  # grid cells are unique: no sort (rows come in grid order, cells sorted when built)
            parents, first, self.inverse = fine, np.arange(len(fine)), np.arange(len(fine))
        if len(parents) > limit:
            most = MAX_CELLS if limit <= MAX_CELLS else MAX_H3_CELLS
            unprocessable(
                f"{len(parents)} cells match, more than limit={limit} (at most {most}); "
                "narrow the bbox, raise `limit` or ask for `resolution=auto`"
            )
        self.parents, self.first = parents, first
        n = len(parents)
        if self.merged:
            self.population = np.bincount(self.inverse, weights=grid.population[rows], minlength=n)
            self.counts = np.bincount(self.inverse, minlength=n)
            self.covered_counts = np.bincount(self.inverse, weights=covered, minlength=n).astype(np.int64)
        else:
            self.population = np.asarray(grid.population[rows], dtype=np.float64)
            self.counts = np.ones(n, dtype=np.int64)
            self.covered_counts = covered.astype(np.int64)
        # a merged cell counts as covered when at least half its children are
        self.flags = 2 * self.covered_counts >= self.counts

    def _head(self) -> dict[str, Any]:
        return {
            "computed_at": self.snapshot.computed_at.isoformat(),
            "model": self.live.model,
            "cells": len(self.parents),
            "resolution": self.res,
            "grid_resolution": self.grid.resolution,
            "source_cells": len(self.rows),
            "covered_cells": int(np.count_nonzero(self.covered)),
        }

    def _best_rsrp(self) -> NDArray[np.float64] | None:
        """Best RSRP per answer cell (None when merged or disk): best servers of the area's cells."""
        if self.merged or self.live.model == "disk":
            return None
        _, rsrp = self.live.cells_detail(self.rows)
        return rsrp

    def h3(self, rsrp: bool) -> bytes:
        body = {"format": "h3", **self._head()}
        body["h3"] = [format(c, "x") for c in self.parents.tolist()]
        body["covered"] = self.flags.astype(np.uint8).tobytes().translate(_DIGITS).decode()
        body["population"] = np.round(self.population, 2).tolist()
        # each cell's district as an index into `districts` (the names present, sorted)
        present, index = np.unique(self.grid.district_index[self.rows][self.first], return_inverse=True)
        body["districts"] = [self.grid.districts[int(d)] for d in present.tolist()]
        body["district"] = index.ravel().tolist()
        if self.merged:
            body["cell_counts"] = self.counts.tolist()
            body["covered_counts"] = self.covered_counts.tolist()
        if rsrp:
            best = self._best_rsrp()
            body["best_rsrp_dbm"] = (
                None
                if best is None
                else [None if not math.isfinite(v) else round(v, 1) for v in best.tolist()]
            )
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def geojson(self) -> bytes:
        import h3

        grid = self.grid
        best_rsrp = self._best_rsrp()
        district_of = grid.district_index[self.rows][self.first]
        features: list[dict[str, Any]] = []
        for i, parent in enumerate(self.parents.tolist()):
            cell = h3.int_to_str(int(parent))
            ring = [[round(lng_, 6), round(lat_, 6)] for lat_, lng_ in h3.cell_to_boundary(cell)]
            ring.append(ring[0])
            best = None if best_rsrp is None else float(best_rsrp[i])
            features.append(
                {
                    "type": "Feature",
                    "id": cell,
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "h3": cell,
                        "district": grid.districts[int(district_of[i])],
                        "population": float(self.population[i]),
                        "best_rsrp_dbm": best if best is not None and math.isfinite(best) else None,
                        "covered": bool(self.flags[i]),
                        "cells": int(self.counts[i]),
                        "covered_cells": int(self.covered_counts[i]),
                    },
                }
            )
        body = {"type": "FeatureCollection", "features": features, **self._head()}
        return json.dumps(body, ensure_ascii=False).encode()


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


@router.get("/history", response_model=SnapshotListOut, summary="Stored coverage snapshots")
def get_history(
    conn: ConnDep,
    _caller: CurrentRole,
    from_: Annotated[datetime | None, Query(alias="from", description="default: `to` minus 1 day")] = None,
    to: Annotated[datetime | None, Query(description="default: now")] = None,
    model: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Snapshots taken on a schedule and on station status changes, newest first (range ≤ 400 days)."""
    start, end = time_range(from_, to, default_span=timedelta(days=1), max_span=timedelta(days=400))
    items = storage.queries.list_coverage_snapshots(conn, start=start, end=end, model=model, limit=limit)
    return {"items": items, "from": start, "to": end, "limit": limit}
