"""The operations wall's outage routes: what each outage costs under the chosen criterion, the
timeline of the city share and of sites down, and the incident history with durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from zhongdu import storage
from zhongdu.api._deps import ApiState, ConnDep, CurrentRole, StateDep, live_ready
from zhongdu.api._live import SITE_STATUSES
from zhongdu.api._params import unprocessable
from zhongdu.api._schemas import ErrorOut
from zhongdu.api._schemas_ops_history import IncidentsOut, OutagesOut, TimelineOut

router = APIRouter(prefix="/v1/ops", tags=["coverage"])

MAX_HOURS = 24 * 7
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "live coverage is still being computed or failed to start"}
}
Criterion = Annotated[
    Literal["outdoor", "indoor", "capacity"],
    Query(
        description="the map's criterion: outdoor (default), indoor or capacity (docs/coverage.md#criteria)"
    ),
]
Operator = Annotated[
    str,
    Query(
        pattern=r"^[A-Za-z]{2,5}$|^[\u4e00-\u9fff]{2,20}$|^every_major$",
        description="any (default), one operator (CHT, TWM, FET, …) or every_major (the people all "
        "three major operators cover)",
    ),
]


@router.get(
    "/outages",
    response_model=OutagesOut,
    responses={
        **_NOT_READY,
        422: {"model": ErrorOut, "description": "unknown operator or no operator column"},
    },
    summary="The sites out now and the people and cells each leaves uncovered under a criterion",
)
async def get_outages(
    state: StateDep, _caller: CurrentRole, criterion: Criterion = "outdoor", operator: Operator = "any"
) -> dict[str, Any]:
    """Every site down or silent, with the people and cells that would be covered again if it alone
    came back (`people`, `cells`, `share_pp`: percentage points of the city share), and the same
    for all of them at once (top level; overlapping outages make it more than the sum). Computed
    from the live engine's state once per snapshot and status read; outdoor by any operator
    rarely moves (neighbours cover almost everyone), indoor or every_major shows what matters."""
    from zhongdu.coverage import CoverageError

    live = live_ready(state, need_sites=True)
    try:
        ids, effect = await run_in_threadpool(live.outage_effect, criterion, operator)
    except (CoverageError, ValueError) as exc:
        unprocessable(str(exc))
    sites = live.sites()
    codes, since = live.site_status, live.site_since
    index = {sid: i for i, sid in enumerate(ids)}
    pos = (
        np.searchsorted(sites["ids"], np.asarray(ids, dtype=sites["ids"].dtype)) if ids else np.zeros(0, int)
    )
    total = effect.population_total or 1.0
    rows = []
    for sid, i in zip(ids, pos.tolist(), strict=True):
        e = effect.sites[index[sid]]
        began = since[i] if since is not None and i < len(since) else float("nan")
        rows.append({
            "station_id": sid,
            "status": SITE_STATUSES[int(codes[i])],
            "since": datetime.fromtimestamp(float(began), UTC) if np.isfinite(began) else None,
            "lon": float(sites["lon"][i]),
            "lat": float(sites["lat"][i]),
            "people": None if e is None else e.people,
            "cells": None if e is None else e.cells,
            "share_pp": None if e is None else 100.0 * e.people / total,
        })  # fmt: skip
    rows.sort(key=lambda r: -(r["people"] or 0.0))
    return {"computed_at": live.snapshot.computed_at, **effect.to_dict(), "outages": rows}


def _positions(state: ApiState) -> tuple[Any, Any, Any] | None:
    live = state.live
    if live is None or live.snapshot is None:
        return None
    sites = live.sites()
    return sites["ids"], sites["lon"], sites["lat"]


def _incident(row: dict[str, Any], now: datetime, where: tuple[Any, Any, Any] | None) -> dict[str, Any]:
    end = row["ended_at"]
    lon = lat = None
    if where is not None:
        ids, lons, lats = where
        i = int(np.searchsorted(ids, row["station_id"]))
        if i < len(ids) and ids[i] == row["station_id"]:
            lon, lat = float(lons[i]), float(lats[i])
    return {
        **row,
        "duration_s": max(0.0, ((end or now) - row["started_at"]).total_seconds()),
        "ongoing": end is None,
        "lon": lon,
        "lat": lat,
    }


@router.get(
    "/incidents",
    response_model=IncidentsOut,
    responses={422: {"model": ErrorOut, "description": "since in the future or malformed"}},
    summary="Outage incidents with their durations, the ongoing ones included",
)
def get_incidents(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    since: Annotated[
        datetime | None, Query(description="incidents open at or after this time (default: 24 h ago)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, newest start first")] = 200,
) -> dict[str, Any]:
    """One row per outage of a site (down or silent) as the API's live loop saw it: start, end
    (null while ongoing), duration, and the most people and cells it left uncovered under
    `criterion`/`operator` (indoor by every major operator when the layout has them). Starts are
    stored when an outage begins, so they survive an API restart."""
    now = datetime.now(UTC)
    start = since if since is not None else now - timedelta(hours=24)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start > now:
        unprocessable(f"since {start.isoformat()} is in the future")
    where = _positions(state)
    rows = storage.ops_history.incidents(conn, since=start, limit=limit)
    return {"since": start, "now": now, "items": [_incident(r, now, where) for r in rows]}


@router.get(
    "/timeline",
    response_model=TimelineOut,
    summary="The last hours: the city share per criterion, sites down, and the outages as bars",
)
def get_timeline(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    hours: Annotated[float, Query(gt=0, le=MAX_HOURS, description="how far back (at most a week)")] = 6,
) -> dict[str, Any]:
    """The share of outdoor, indoor and indoor-by-every-major-operator coverage at each snapshot
    the live loop stored (plus the last one before the window, so each line starts at its level),
    with the number of sites down then, and the incidents overlapping the window (the replay's
    state at a time t: the incidents with start <= t < end)."""
    now = datetime.now(UTC)
    start = now - timedelta(hours=hours)
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in storage.ops_history.shares(conn, start=start):
        series.setdefault((r["criterion"], r["operator"]), []).append(
            {k: r[k] for k in ("time", "share", "population_covered", "sites_down")}
        )
    where = _positions(state)
    incidents = storage.ops_history.incidents(conn, since=start, limit=1000)
    return {
        "from": start,
        "to": now,
        "series": [{"criterion": c, "operator": o, "points": p} for (c, o), p in sorted(series.items())],
        "incidents": [_incident(r, now, where) for r in incidents],
    }
