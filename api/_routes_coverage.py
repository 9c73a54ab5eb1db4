"""Coverage routes: the live snapshot (served from memory), per-cell GeoJSON, stored snapshots."""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from zhongdu import storage
from zhongdu.api._deps import ConnDep, CurrentRole, StateDep
from zhongdu.api._live import LiveCoverage, LiveSnapshot
from zhongdu.api._models import CellCollectionOut, CoverageOut, ErrorOut, SnapshotListOut
from zhongdu.api._params import time_range, unprocessable

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])

MAX_CELLS = 20_000
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
        Query(description="outdoor (default, DESIGN.md), indoor (3GPP O2I loss) or capacity (sector load)"),
    ] = "outdoor",
    operator: Annotated[
        str,
        Query(
            pattern=r"^[A-Za-z]{2,5}$|^[\u4e00-\u9fff]{2,20}$",
            description="any (default), an operator (CHT, TWM, FET, APT, TSTAR) or each "
            "(adds `by_operator` and `every_major`)",
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
    responses={
        **_NOT_READY,
        422: {"model": ErrorOut, "description": "no area given, unknown district, too many cells"},
    },
    summary="Per-cell live coverage as GeoJSON",
)
def get_cells(
    request: Request,
    state: StateDep,
    _caller: CurrentRole,
    district: Annotated[
        str | None, Query(max_length=20, description="Chinese district name, e.g. 西屯區")
    ] = None,
    bbox: Annotated[
        str | None, Query(max_length=200, description="min_lon,min_lat,max_lon,max_lat (WGS84)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CELLS, description="refuse (422) when more cells match")] = 5000,
) -> Response:
    """H3 cell polygons of a district or a bounding box with population, best RSRP and covered flag."""
    import h3

    live, snapshot = _live(state)
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
    if len(rows) > limit:
        unprocessable(
            f"{len(rows)} cells match, more than limit={limit} (at most {MAX_CELLS}); "
            "narrow the bbox or raise `limit`"
        )
    covered, rsrp = live.cells_detail(rows)
    features: list[dict[str, Any]] = []
    for i, row in enumerate(rows.tolist()):
        cell = h3.int_to_str(int(grid.cells[row]))
        ring = [[lng_, lat_] for lat_, lng_ in h3.cell_to_boundary(cell)]
        ring.append(ring[0])
        best = None if rsrp is None else float(rsrp[i])
        features.append(
            {
                "type": "Feature",
                "id": cell,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "h3": cell,
                    "district": grid.districts[int(grid.district_index[row])],
                    "population": float(grid.population[row]),
                    "best_rsrp_dbm": best if best is not None and math.isfinite(best) else None,
                    "covered": bool(covered[i]),
                },
            }
        )
    body = {
        "type": "FeatureCollection",
        "features": features,
        "computed_at": snapshot.computed_at.isoformat(),
        "model": live.model,
        "cells": len(features),
    }
    data = json.dumps(body, ensure_ascii=False).encode()
    if "gzip" in request.headers.get("accept-encoding", "") and len(data) > 1024:
        # street-level districts are tens of thousands of polygons: about 8x smaller gzipped
        return Response(
            gzip.compress(data, compresslevel=5),
            media_type="application/geo+json",
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(data, media_type="application/geo+json", headers={"Vary": "Accept-Encoding"})


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
    items = storage.api.list_coverage_snapshots(conn, start=start, end=end, model=model, limit=limit)
    return {"items": items, "from": start, "to": end, "limit": limit}
