"""`/sta/v1.1/…`: the park's telemetry as a read-only OGC SensorThings API 1.1 service.

Resource paths follow the standard (§9.2): an entity set, an entity by id (`Things('air-001')`,
`Datastreams(12)`), a navigation from it (`Datastreams(12)/Observations`, `Things('air-001')/
Locations`), or one of its properties (`Things('air-001')/name`). Query options per §9.3.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request

from zhongdu.api._deps import ConnDep, CurrentRole
from zhongdu.api._sta import _MULTI_NAV, _SINGLE_NAV, ENTITY_SETS, NotFound, StaService
from zhongdu.api._sta_query import QueryError, QueryOptions, parse_options

PREFIX = "/sta/v1.1"
router = APIRouter(prefix=PREFIX, tags=["sensorthings"])

_SEGMENT = re.compile(r"([A-Za-z]+)(?:\((\d+|'(?:[^']|'')*')\))?")
_CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]


def _metric_info(metric: str) -> tuple[str, str]:
    from zhongdu.ingest._metrics_catalogue import METRICS

    spec = METRICS.get(metric)
    return (spec.unit or "", spec.description) if spec is not None else ("", metric)


def _service(request: Request, conn: Any) -> StaService:
    return StaService(conn, str(request.base_url).rstrip("/") + PREFIX, _metric_info)


@router.get("", summary="SensorThings service root: the entity sets and conformance classes")
def service_root(request: Request, _caller: CurrentRole) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + PREFIX
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {"conformance": _CONFORMANCE},
    }


def _next_link(request: Request, options: QueryOptions) -> str:
    params = dict(request.query_params)
    params["$top"] = str(options.top)
    params["$skip"] = str(options.skip + options.top)
    return f"{str(request.url).split('?')[0]}?{urlencode(params)}"


@router.get(
    "/{resource:path}",
    summary="SensorThings resources: Things, Locations, Sensors, ObservedProperties, Datastreams, "
    "Observations",
    responses={400: {"description": "a query option the service cannot understand"}, 404: {}},
)
def resource(resource: str, request: Request, conn: ConnDep, _caller: CurrentRole) -> dict[str, Any]:
    """Read-only SensorThings 1.1 with `$filter`, `$orderby`, `$select`, `$expand` (nested, with
    options), `$top` (default 100, at most 10,000), `$skip`, `$count` and `@iot.nextLink` paging.
    Observations filter and order on `phenomenonTime`, `resultTime` and `result`; the latest
    Observation of every Datastream is `Datastreams?$expand=Observations($orderby=phenomenonTime
    desc;$top=1)`."""
    try:
        options = parse_options({k: v for k, v in request.query_params.items() if k.startswith("$")})
        return _resolve(_service(request, conn), request, resource, options)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _key(raw: str | None) -> str | None:
    if raw is None:
        return None
    return raw[1:-1].replace("''", "'") if raw.startswith("'") else raw


def _resolve(service: StaService, request: Request, resource: str, options: QueryOptions) -> dict[str, Any]:
    segments = [s for s in resource.split("/") if s]
    parsed = []
    for segment in segments:
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise NotFound(f"cannot read the path segment {segment!r}")
        parsed.append((match[1], _key(match[2])))
    if not parsed or parsed[0][0] not in ENTITY_SETS:
        raise NotFound(f"no entity set {segments[0] if segments else ''!r}; served: {', '.join(ENTITY_SETS)}")
    kind, key = parsed[0]
    entity = service.get(kind, key) if key is not None else None
    scope: list[Any] | None = None  # a collection's members, when reached through navigation
    streams: list[dict[str, Any]] | None = None  # Observations' Datastreams, when scoped
    for name, nav_key in parsed[1:]:
        if entity is None:
            raise NotFound(f"{name!r} follows a collection; name one entity first, e.g. {kind}(1)/{name}")
        if name in _SINGLE_NAV.get(entity.kind, {}):
            entity, kind = service.navigate_single(entity, name), _SINGLE_NAV[entity.kind][name]
        elif name in _MULTI_NAV.get(entity.kind, {}):
            kind = _MULTI_NAV[entity.kind][name]
            if kind == "Observations":
                streams = [entity.row]
                scope = None
            else:
                scope = service.related(entity, name)
            entity = None
            if nav_key is not None:
                entity = service.get(kind, nav_key)
                if scope is not None and all(str(e.id) != str(entity.id) for e in scope):
                    raise NotFound(f"{kind}({nav_key}) is not related to that entity")
        elif name in entity.props:
            return {name: entity.props[name]}
        else:
            raise NotFound(f"{entity.kind} has no property or navigation {name!r}")
    if entity is not None:
        return service.render(entity, options)
    if kind == "Observations":
        page, count, more = service.observations(streams, options)
    else:
        page, total = service.select_entities(scope if scope is not None else service.entities(kind), options)
        count = total if options.count else None
        more = options.skip + len(page) < total
    return service.collection(
        page, options, count=count, next_link=_next_link(request, options) if more else None
    )
