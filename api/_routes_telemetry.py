"""Stations and park devices: registry with latest status and readings, bucketed history, registration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from zhongdu import storage
from zhongdu.api._deps import ConnDep, CurrentRole, OperatorDep
from zhongdu.api._params import Limit, Offset, time_range, unprocessable
from zhongdu.api._schemas import (
    DeviceCreatedOut,
    DeviceDetailOut,
    DeviceHistoryOut,
    DeviceIn,
    DeviceListOut,
    ErrorOut,
    StationDetailOut,
    StationHistoryOut,
    StationListOut,
)

router = APIRouter(prefix="/v1", tags=["telemetry"])

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
BucketParam = Annotated[
    Literal["1m", "1h"], Query(description="bucket width: 1m (range ≤ 2 days) or 1h (≤ 400 days)")
]
From = Annotated[
    datetime | None,
    Query(alias="from", description="start (inclusive); default: `to` minus 6 h (1m) or 7 days (1h)"),
]
To = Annotated[datetime | None, Query(description="end (exclusive); default: now")]

_SPANS = {"1m": (timedelta(hours=6), timedelta(days=2)), "1h": (timedelta(days=7), timedelta(days=400))}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no such id"}}


@router.get("/stations", response_model=StationListOut, summary="Base stations with their latest status")
def list_stations(
    conn: ConnDep, _caller: CurrentRole, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    return {
        "items": storage.queries.list_stations(conn, limit=limit, offset=offset),
        "total": storage.queries.count_stations(conn),
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/stations/{station_id}",
    response_model=StationDetailOut,
    responses=_NOT_FOUND,
    summary="One station: status, sectors, latest load per sector",
)
def get_station(
    conn: ConnDep, _caller: CurrentRole, station_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> dict[str, Any]:
    station = storage.queries.get_station(conn, station_id)
    if station is None:
        raise HTTPException(404, f"no station {station_id!r}")
    return station


@router.get(
    "/stations/{station_id}/history",
    response_model=StationHistoryOut,
    responses=_NOT_FOUND,
    summary="PRB utilisation and active users, min/avg/max per bucket and sector",
)
def station_history(
    conn: ConnDep,
    _caller: CurrentRole,
    station_id: Annotated[str, Path(pattern=ID_PATTERN)],
    from_: From = None,
    to: To = None,
    bucket: BucketParam = "1h",
    sector_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = None,
) -> dict[str, Any]:
    default_span, max_span = _SPANS[bucket]
    start, end = time_range(from_, to, default_span=default_span, max_span=max_span)
    if storage.queries.get_station(conn, station_id) is None:
        raise HTTPException(404, f"no station {station_id!r}")
    items = storage.queries.station_history(
        conn, station_id, start=start, end=end, bucket=bucket, sector_id=sector_id
    )
    return {"station_id": station_id, "bucket": bucket, "from": start, "to": end, "items": items}


@router.get("/devices", response_model=DeviceListOut, summary="Park devices with their latest status")
def list_devices(
    conn: ConnDep,
    _caller: CurrentRole,
    limit: Limit = 100,
    offset: Offset = 0,
    kind: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = None,
) -> dict[str, Any]:
    return {
        "items": storage.queries.list_devices(conn, limit=limit, offset=offset, kind=kind),
        "total": storage.queries.count_devices(conn, kind=kind),
        "limit": limit,
        "offset": offset,
    }


@router.post(
    "/devices",
    response_model=DeviceCreatedOut,
    status_code=201,
    responses={409: {"model": ErrorOut, "description": "the id is taken"}},
    summary="Register a park device (operator)",
)
def register_device(conn: ConnDep, principal: OperatorDep, device: DeviceIn) -> dict[str, Any]:
    metadata = {**device.metadata, "registered_by": principal.name}
    row = storage.queries.insert_device(
        conn,
        device_id=device.device_id,
        kind=device.kind,
        name=device.name,
        lon=device.lon,
        lat=device.lat,
        metadata=metadata,
    )
    if row is None:
        raise HTTPException(409, f"device {device.device_id!r} is already registered")
    return row


@router.get(
    "/devices/{device_id}",
    response_model=DeviceDetailOut,
    responses=_NOT_FOUND,
    summary="One device: status and the latest reading of each metric",
)
def get_device(
    conn: ConnDep, _caller: CurrentRole, device_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> dict[str, Any]:
    device = storage.queries.get_device(conn, device_id)
    if device is None:
        raise HTTPException(404, f"no device {device_id!r}")
    return device


@router.get(
    "/devices/{device_id}/history",
    response_model=DeviceHistoryOut,
    responses=_NOT_FOUND,
    summary="min/avg/max per bucket of one metric",
)
def device_history(
    conn: ConnDep,
    _caller: CurrentRole,
    device_id: Annotated[str, Path(pattern=ID_PATTERN)],
    metric: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:/-]{1,64}$", description="e.g. pm2_5, temperature")],
    from_: From = None,
    to: To = None,
    bucket: BucketParam = "1h",
) -> dict[str, Any]:
    default_span, max_span = _SPANS[bucket]
    start, end = time_range(from_, to, default_span=default_span, max_span=max_span)
    if storage.queries.get_device(conn, device_id) is None:
        raise HTTPException(404, f"no device {device_id!r}")
    items = storage.queries.device_history(conn, device_id, metric, start=start, end=end, bucket=bucket)
    if not items:
        metrics = storage.queries.device_metrics(conn, device_id)
        if metric not in metrics:
            unprocessable(
                f"device {device_id!r} has no metric {metric!r}; "
                f"it reports: {', '.join(metrics) or 'nothing yet'}"
            )
    return {
        "device_id": device_id,
        "metric": metric,
        "bucket": bucket,
        "from": start,
        "to": end,
        "items": items,
    }
