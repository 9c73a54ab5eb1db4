"""What the operations page needs beyond the other routes: district boundaries, compact site
positions with live status, an events stream (SSE), the park's trends, the ingester's health and
the 4G indicator's series.

Large bodies (boundaries, 15,788 sites) are built once per process (sites: once per status read);
compression, ETags and 304s come from `_http.ConditionalGzipMiddleware` like every other route's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from zhongdu import storage
from zhongdu.api._deps import ApiState, ConnDep, CurrentRole, StateDep, live_ready
from zhongdu.api._http import GeoJSONResponse
from zhongdu.api._ingest_health import IngestHealth
from zhongdu.api._live import SITE_STATUSES, event_bus
from zhongdu.api._schemas import ErrorOut
from zhongdu.api._schemas_ops import (
    CoverageSeriesOut,
    DistrictCollectionOut,
    IngestHealthOut,
    ParkTrendsOut,
    SitesOut,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

COORD_DECIMALS = 6  # 0.1 m: finer than any position we know, far shorter than float noise
EVENT_INTERVAL_S = 1.0  # how often a stream looks for changes (the live coverage polls every 5 s)
KEEPALIVE_S = 15.0
STREAM_MAX_S = 600.0  # a stream ends after this; EventSource reconnects by itself (`retry` below)
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "live coverage is still being computed or failed to start"}
}


def _cached(state: ApiState, key: str, build: Any) -> bytes:
    """A body built once per process."""
    body: bytes | None = state.extras.get(key)
    if body is None:
        body = state.extras[key] = build()
    return body


def _respond(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get(
    "/map/districts",
    tags=["coverage"],
    response_model=DistrictCollectionOut,
    response_class=GeoJSONResponse,
    responses={503: {"model": ErrorOut, "description": "the boundary data is missing"}},
    summary="The 29 district boundaries as GeoJSON, simplified for drawing",
)
async def get_districts(state: StateDep, _caller: CurrentRole) -> Response:
    """Polygons simplified to ~30 m (topology kept), coordinates rounded to 1 m, with each district's
    official population; join live shares from `GET /v1/coverage` on `district`."""
    from zhongdu.api._boundaries import district_geojson
    from zhongdu.errors import ZhongduError

    try:
        body = await run_in_threadpool(_cached, state, "districts", district_geojson)
    except (ZhongduError, OSError) as exc:  # the data is missing here: the server's problem, not the caller's
        raise HTTPException(503, f"district boundaries unavailable: {exc}") from exc
    return _respond(body, GeoJSONResponse.media_type)


def _sites_body(state: ApiState) -> bytes:
    live = live_ready(state, need_sites=True)
    sites = live.sites()
    body = {
        "count": len(sites["ids"]),
        "ids": sites["ids"].tolist(),
        "lon": np.round(sites["lon"], COORD_DECIMALS).tolist(),
        "lat": np.round(sites["lat"], COORD_DECIMALS).tolist(),
        "sectors": sites["sectors"].tolist(),
        "statuses": list(SITE_STATUSES),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _sites_geojson(state: ApiState, status: Any, computed_at: str) -> bytes:
    """Every site as a GeoJSON Point with its status name: a layer GIS tools open as it is."""
    sites = live_ready(state, need_sites=True).sites()
    lon = np.round(sites["lon"], COORD_DECIMALS).tolist()
    lat = np.round(sites["lat"], COORD_DECIMALS).tolist()
    names = [SITE_STATUSES[c] for c in status.tolist()]
    features = [
        {
            "type": "Feature",
            "id": station,
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"station_id": station, "sectors": n, "status": name},
        }
        for station, x, y, n, name in zip(
            sites["ids"].tolist(), lon, lat, sites["sectors"].tolist(), names, strict=True
        )
    ]
    body = {"type": "FeatureCollection", "features": features, "computed_at": computed_at}
    return json.dumps(body, separators=(",", ":")).encode()


@router.get(
    "/map/sites",
    tags=["telemetry"],
    response_model=SitesOut,
    responses={
        **_NOT_READY,
        200: {
            "description": "columns (default) or, with `format=geojson`, a GeoJSON FeatureCollection",
            "content": {"application/geo+json": {"schema": {"type": "object"}}},
        },
    },
    summary="Every site of the live layout, as columns (compact) or as a GeoJSON layer",
)
async def get_sites(
    state: StateDep,
    _caller: CurrentRole,
    format: Annotated[
        Literal["columns", "geojson"],
        Query(description="columns: parallel arrays for the page; geojson: one Point feature per site"),
    ] = "columns",
) -> Response:
    """`columns`: parallel arrays `ids`, `lon`, `lat`, `sectors` and `status` (codes indexing
    `statuses`: unknown = never reported, silent = unheard past the silence timeout). `geojson`:
    Points with `station_id`, `sectors` and `status` by name (application/geo+json). Positions are
    cached; the statuses are the live coverage's latest read (it polls every few seconds)."""
    plain = await run_in_threadpool(_cached, state, "sites", lambda: _sites_body(state))
    live = live_ready(state, need_sites=True)
    status, snapshot = live.site_status, live.snapshot
    key = f"sites_status_{format}"
    cached = state.extras.get(key)
    if cached is None or cached[0] is not status or cached[1] is not snapshot:
        computed_at = snapshot.computed_at.isoformat()

        def build() -> bytes:
            if format == "geojson":
                return _sites_geojson(state, status, computed_at)
            tail = b',"status":' + json.dumps(status.tolist(), separators=(",", ":")).encode()
            since = live.site_since
            if since is not None and len(since) == len(status):
                seconds = [None if x != x else round(x, 1) for x in since.tolist()]  # NaN: never reported
                tail += b',"since":' + json.dumps(seconds, separators=(",", ":")).encode()
            return plain[:-1] + tail + b',"computed_at":' + json.dumps(computed_at).encode() + b"}"

        # one build per status read (every few seconds), however many screens ask
        cached = (status, snapshot, await run_in_threadpool(build))
        state.extras[key] = cached
    media_type = GeoJSONResponse.media_type if format == "geojson" else "application/json"
    return _respond(cached[2], media_type)


def _event(name: str, data: Any) -> bytes:
    payload = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def _since_iso(since: Any, i: int) -> str | None:
    """When site `i` took its status (ISO 8601), None when unknown."""
    if since is None or i >= len(since) or not np.isfinite(since[i]):
        return None
    return datetime.fromtimestamp(float(since[i]), UTC).isoformat()


def _counts(codes: Any) -> dict[str, int]:
    counts = np.bincount(codes.astype(np.intp), minlength=len(SITE_STATUSES))
    return {name: int(n) for name, n in zip(SITE_STATUSES, counts, strict=True)}


async def _stream(request: Request, state: ApiState, max_s: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    snapshot = None
    codes = None
    bus = event_bus(state.extras)
    bus_seen = bus.last_seq  # events published before the stream opened are not replayed
    yield b"retry: 3000\n\n"
    while loop.time() - started < max_s and not state.closing.is_set():
        for seq, name, data in bus.since(bus_seen):
            yield _event(name, data)
            bus_seen = seq
            last_sent = loop.time()
        live = state.live
        current = live.snapshot if live is not None else None
        if current is not None and current is not snapshot:
            snapshot = current
            yield _event("coverage", current.body)
            last_sent = loop.time()
        now_codes = live.site_status if live is not None else None
        if now_codes is not None and now_codes is not codes:
            assert live is not None
            ids = live.sites()["ids"]
            if codes is None:
                changed = np.flatnonzero(now_codes != 0)
            else:
                changed = np.flatnonzero(now_codes != codes)
            if codes is None or len(changed):
                yield _event(
                    "stations",
                    {
                        "initial": codes is None,
                        "changes": [
                            {
                                "station_id": str(ids[i]),
                                "status": SITE_STATUSES[int(now_codes[i])],
                                "since": _since_iso(live.site_since, i),
                            }
                            for i in changed.tolist()
                        ],
                        "counts": _counts(now_codes),
                        "at": datetime.now(UTC).isoformat(),
                    },
                )
                last_sent = loop.time()
            codes = now_codes
        if loop.time() - last_sent >= KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = loop.time()
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_INTERVAL_S)


@router.get(
    "/events",
    tags=["coverage"],
    summary="Server-sent events: coverage changes and station status changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an event stream"}},
)
async def get_events(
    request: Request,
    state: StateDep,
    _caller: CurrentRole,
    max_seconds: Annotated[
        float, Query(gt=0, le=STREAM_MAX_S, description="end the stream after this long (clients reconnect)")
    ] = STREAM_MAX_S,
) -> StreamingResponse:
    """`event: coverage` carries the body of `GET /v1/coverage` whenever a new live snapshot is
    published; `event: stations` the sites whose status changed (the first one lists every site that
    ever reported), with counts per status; `event: petition_hotspot` a cell that became a
    significant petition hotspot with an import (docs/petitions.md). Looked for every second; a
    comment every 15 s keeps proxies from closing an idle stream."""
    return StreamingResponse(
        _stream(request, state, max_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/ops/ingest", tags=["health"], response_model=IngestHealthOut, summary="The ingester's health")
async def get_ingest_health(state: StateDep, _caller: CurrentRole) -> dict[str, Any]:
    """Messages/s (between two reads of this route), totals, rejects by reason, lag and queue depth,
    from the ingester's Prometheus metrics (`ZHONGDU_INGEST_METRICS_URL`, else this process's)."""
    health = state.extras.get("ingest_health")
    if health is None:
        health = state.extras["ingest_health"] = IngestHealth(state.settings.ingest_metrics_url)
    result: dict[str, Any] = await run_in_threadpool(health.read)
    return result


@router.get(
    "/park/trends", tags=["telemetry"], response_model=ParkTrendsOut, summary="Park readings per device kind"
)
def get_park_trends(
    conn: ConnDep,
    _caller: CurrentRole,
    minutes: Annotated[int, Query(ge=5, le=1440, description="how far back")] = 60,
) -> dict[str, Any]:
    """Per device kind and metric, the mean over that kind's devices per minute for the last
    `minutes`, and the latest such mean: the page's small trend charts."""
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    bucket_s = 60 if minutes <= 180 else 600
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for row in storage.queries.park_trends(conn, start=start, bucket_s=bucket_s):
        key = (str(row["kind"]), str(row["metric"]))
        entry = series.setdefault(
            key, {"kind": key[0], "metric": key[1], "unit": row["unit"], "devices": 0, "points": []}
        )
        entry["devices"] = max(entry["devices"], int(row["devices"]))
        entry["points"].append([row["bucket"], float(row["avg"])])
    items = []
    for entry in series.values():
        entry["latest"] = entry["points"][-1][1]
        entry["latest_at"] = entry["points"][-1][0]
        items.append(entry)
    return {"from": start, "bucket_s": bucket_s, "items": items}


def _modelled_by_criterion(state: ApiState) -> dict[str, list[dict[str, Any]]]:
    """{criterion: [{date, share}]} for SERIES_CRITERIA, built once per process (shipped data)."""
    cached: dict[str, list[dict[str, Any]]] | None = state.extras.get("modelled_by_criterion")
    if cached is None:
        from zhongdu.coverage import SERIES_CRITERIA, modelled_indicator_series

        try:
            cached = {
                c: [{"date": p["date"], "share": p["share"]} for p in modelled_indicator_series(c)]
                for c in SERIES_CRITERIA
            }
        except Exception as exc:  # shipped data missing: say so in the log, serve without it
            log.warning("modelled 4G indicator series by criterion unavailable: %s", exc)
            cached = {}
        state.extras["modelled_by_criterion"] = cached
    return cached


@router.get(
    "/indicators/coverage-series",
    tags=["indicators"],
    response_model=CoverageSeriesOut,
    summary="The 4G indicator over time: modelled series, live snapshots, the plan's targets",
)
def get_coverage_series(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    days: Annotated[int, Query(ge=1, le=400, description="live snapshots of the last this many days")] = 30,
) -> dict[str, Any]:
    """The modelled share of the population covered (from the regulator's station counts, one
    point per release): `modelled` for the outdoor criterion (the API's default) and
    `modelled_by_criterion` for each of outdoor, indoor, capacity and indoor by every major
    operator; the stored live snapshots (at most 2,000, evenly thinned; outdoor) and the 4G
    indicator's target per year (70/80/90/95 % in the 104-107 plan)."""
    from zhongdu.api import _indicators as ind
    from zhongdu.api._routes_indicators import _modelled_series

    indicator = None
    for plan in storage.queries.list_plans(conn):
        for row in storage.queries.list_indicators(conn, str(plan["plan_id"])):
            if (row.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE:
                indicator = {
                    "plan_id": row["plan_id"],
                    "id": row["indicator_id"],
                    "name_zh": row["name_zh"],
                    "name_en": row["name_en"],
                    "targets": {str(k): float(v) for k, v in (row.get("targets") or {}).items()},
                }
    end = datetime.now(UTC) + timedelta(seconds=1)
    snaps = storage.queries.list_coverage_snapshots(
        conn, start=end - timedelta(days=days), end=end, model=None, limit=10_000
    )
    snaps.reverse()  # oldest first
    if len(snaps) > 2000:
        snaps = [snaps[i] for i in np.linspace(0, len(snaps) - 1, 2000).round().astype(int)]
    return {
        "indicator": indicator,
        "modelled": [
            {"date": p["date"], "share": p["share"], "stations": p.get("stations")}
            for p in _modelled_series(state)
        ],
        "modelled_by_criterion": _modelled_by_criterion(state),
        "live": [
            {"time": s["time"], "share": s["share"], "trigger": s["trigger"], "model": s["model"]}
            for s in snaps
        ],
    }
