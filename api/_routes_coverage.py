"""Coverage routes: the live snapshot (served from memory), per-cell GeoJSON, stored snapshots."""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from numpy.typing import NDArray

from zhongdu import storage
from zhongdu.api._deps import ConnDep, CurrentRole, StateDep
from zhongdu.api._http import GeoJSONResponse
from zhongdu.api._live import LiveCoverage, LiveSnapshot
from zhongdu.api._params import time_range, unprocessable
from zhongdu.api._schemas import CellCollectionOut, CoverageOut, ErrorOut, SnapshotListOut

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])

MAX_CELLS = 20_000
MIN_RESOLUTION = 5  # coarser cells than this (~250 km²) would say nothing about a district
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "live coverage is still being computed or failed to start"}
}


def _live(state: StateDep) -> tuple[LiveCoverage, LiveSnapshot]:
    live = state.live
    if live is None:
        raise HTTPException(503, "live coverage is disabled in this API process")
    snapshot = live.snapshot
    if snapshot is None:
        raise HTTPException(
            503, live.error or "live coverage is still being computed; retry in a few seconds"
        )
    return live, snapshot


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


@router.get(
    "/cells",
    response_model=CellCollectionOut,
    response_class=GeoJSONResponse,
    responses={
        **_NOT_READY,
        422: {"model": ErrorOut, "description": "no area given, unknown district, too many cells"},
    },
    summary="Per-cell live coverage as GeoJSON",
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
    limit: Annotated[int, Query(ge=1, le=MAX_CELLS, description="refuse (422) when more cells match")] = 5000,
    resolution: Annotated[
        str | None,
        Query(
            pattern=r"^(auto|[0-9]{1,2})$",
            description="H3 resolution of the answer: the grid's (default), a coarser one (cells "
            "merged into their parents), or `auto`: the finest that fits in `limit`",
        ),
    ] = None,
) -> Response:
    """H3 cell polygons of a district or a bounding box with population, best RSRP and covered flag.

    A large district (和平區 has 75,629 cells at resolution 10) is served whole at a coarser
    resolution: each parent cell sums its children's population and counts them and the covered
    ones (`cells`, `covered_cells`; best RSRP is null), so the page shows every district.
    """
    live, snapshot = _live(state)
    key = (snapshot.computed_at, district, bbox, limit, resolution)
    with _CELLS_CACHE_LOCK:
        cached = _CELLS_CACHE.get(key)
    if cached is None:
        cached = _cells_body(live, snapshot, district, bbox, limit, resolution)
        with _CELLS_CACHE_LOCK:
            # one snapshot's answers: every wall and laptop asks the same few when a snapshot lands
            for old in [k for k in _CELLS_CACHE if k[0] != snapshot.computed_at]:
                del _CELLS_CACHE[old]
            while len(_CELLS_CACHE) >= _CELLS_CACHE_SIZE:
                del _CELLS_CACHE[next(iter(_CELLS_CACHE))]
            _CELLS_CACHE[key] = cached
    return Response(cached, media_type=GeoJSONResponse.media_type)


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


def _cells_body(
    live: LiveCoverage,
    snapshot: LiveSnapshot,
    district: str | None,
    bbox: str | None,
    limit: int,
    wanted: str | None,
) -> bytes:
    import h3

    from zhongdu.coverage._candidates import cell_to_parent

    grid = live.grid
    assert grid is not None
    if (district is None) == (bbox is None):
        unprocessable(
            "give exactly one of `district` (e.g. 西屯區) or `bbox` (min_lon,min_lat,max_lon,max_lat)"
        )
    if district is not None:
        if district not in grid.districts:
            unprocessable(f"unknown district {district!r}; known: {', '.join(grid.districts)}")
        mask = np.asarray(grid.district_index) == grid.districts.index(district)
    else:
        assert bbox is not None
        min_lon, min_lat, max_lon, max_lat = _parse_bbox(bbox)
        lat, lng = live.cell_centres()
        mask = (lat >= min_lat) & (lat <= max_lat) & (lng >= min_lon) & (lng <= max_lon)
    rows = np.flatnonzero(mask)
    res = _pick_resolution(grid.cells[rows], grid.resolution, wanted, limit)
    fine = np.asarray(grid.cells[rows], dtype=np.uint64)
    parents, first, inverse = np.unique(
        fine if res == grid.resolution else cell_to_parent(fine, res), return_index=True, return_inverse=True
    )
    inverse = inverse.ravel()
    if len(parents) > limit:
        unprocessable(
            f"{len(parents)} cells match, more than limit={limit} (at most {MAX_CELLS}); "
            "narrow the bbox, raise `limit` or ask for `resolution=auto`"
        )
    if res < grid.resolution:
        # merged cells: the engine's covered flags (instant for 和平區's 75,629 cells, where
        # best servers per cell take tens of seconds); a merged cell has no single best RSRP
        covered, rsrp = live.covered_now()[rows], None
    else:
        covered, rsrp = live.cells_detail(rows)
    n = len(parents)
    population = np.bincount(inverse, weights=grid.population[rows], minlength=n)
    counts = np.bincount(inverse, minlength=n)
    covered_counts = np.bincount(inverse, weights=covered.astype(np.float64), minlength=n).astype(np.int64)
    best_rsrp: NDArray[np.float64] | None = None
    if rsrp is not None:
        best_rsrp = np.full(n, -np.inf)
        np.maximum.at(best_rsrp, inverse, np.where(np.isfinite(rsrp), rsrp, -np.inf))
    district_of = grid.district_index[rows][first]
    features: list[dict[str, Any]] = []
    for i, parent in enumerate(parents.tolist()):
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
                    "population": float(population[i]),
                    "best_rsrp_dbm": best if best is not None and math.isfinite(best) else None,
                    # a merged cell counts as covered when at least half its children are
                    "covered": bool(2 * covered_counts[i] >= counts[i]),
                    "cells": int(counts[i]),
                    "covered_cells": int(covered_counts[i]),
                },
            }
        )
    body = {
        "type": "FeatureCollection",
        "features": features,
        "computed_at": snapshot.computed_at.isoformat(),
        "model": live.model,
        "cells": len(features),
        "resolution": res,
        "grid_resolution": grid.resolution,
        "source_cells": len(rows),
        "covered_cells": int(np.count_nonzero(covered)),
    }
    return json.dumps(body, ensure_ascii=False).encode()


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
