"""Alerts: incidents (list, acknowledge, resolve), rules (operator), webhooks (admin), backtests, and
a server-sent event stream of every incident change for the operations page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from zhongdu.alerts import _incidents as incidents
from zhongdu.alerts import _rules as rules
from zhongdu.alerts import _webhooks as webhooks
from zhongdu.alerts._backtest import backtest
from zhongdu.api._deps import AdminDep, ApiState, ConnDep, CurrentRole, OperatorDep, StateDep
from zhongdu.api._schemas import ErrorOut
from zhongdu.errors import ConfigError

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
STREAM_MAX_S = 600.0
POLL_S = 1.0
KEEPALIVE_S = 15.0
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no such id"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such incident"},
    409: {"model": ErrorOut, "description": "the incident is not in a state that allows this"},
}

State = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]
Condition = Literal[
    "above", "below", "rate_above", "rate_below", "no_data", "event", "station_down", "external"
]


class IncidentOut(BaseModel):
    incident_id: int
    rule_id: str
    source: str
    source_kind: str
    state: State
    severity: Severity
    summary: str
    value: float | None
    lon: float | None
    lat: float | None
    details: dict[str, Any]
    flapping: bool
    flaps: int
    opened_at: datetime
    data_time: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_note: str | None
    escalation_level: int
    escalated_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolve_note: str | None
    updated_at: datetime


class CountsOut(BaseModel):
    open: int = Field(description="unacknowledged incidents")
    acknowledged: int


class IncidentListOut(BaseModel):
    items: list[IncidentOut]
    counts: CountsOut


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000, description="why, what is being done")
    by: str | None = Field(
        None, min_length=1, max_length=200, description="the person acknowledging (default: the key's name)"
    )


class RuleIn(BaseModel):
    """A rule; see docs/alerts.md for what each field means."""

    model_config = ConfigDict(extra="forbid")
    rule_id: str = Field(pattern=RULE_ID)
    name: str = Field(min_length=1, max_length=200)
    condition: Condition
    metric: str | None = None
    device_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    device_kind: str | None = None
    area: str | None = Field(None, max_length=200)
    threshold: float | None = None
    clear_threshold: float | None = None
    no_data_s: float | None = Field(None, gt=0)
    for_s: float = Field(0.0, ge=0, le=30 * 86400)
    clear_for_s: float = Field(0.0, ge=0, le=30 * 86400)
    active_hours: str | None = Field(None, pattern=r"^\d{1,2}-\d{1,2}$")
    severity: Severity = "warning"
    escalate_after_s: float | None = Field(None, gt=0)
    flap_window_s: float = Field(600.0, gt=0)
    flap_count: int = Field(4, ge=2, le=1000)
    auto_resolve: bool = Field(True, description="false: the incident stays until a person resolves it")
    enabled: bool = True
    source_note: str = Field("", max_length=2000)


class RuleOut(RuleIn):
    created_by: str


class RuleListOut(BaseModel):
    items: list[RuleOut]


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: datetime = Field(alias="from")
    to: datetime


class WouldBeOut(BaseModel):
    source: str
    opened_at: datetime
    resolved_at: datetime | None
    peak: float | None
    flaps: int
    flapping: bool


class BacktestOut(BaseModel):
    rule_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    readings: int
    sources: int
    truncated: bool
    incidents: list[WouldBeOut]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_id: str = Field(pattern=RULE_ID)
    url: HttpUrl
    format: Literal["zhongdu", "alertmanager"] = "zhongdu"
    min_severity: Severity = "info"
    secret: str | None = Field(None, min_length=16, max_length=200, description="default: a random one")


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    format: str
    min_severity: Severity
    enabled: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="the HMAC key; shown here only")


class WebhookStatsOut(WebhookOut):
    delivered: int
    pending: int
    failed: int


class WebhookListOut(BaseModel):
    items: list[WebhookStatsOut]


# -- incidents ---------------------------------------------------------------------------------------


@router.get(
    "", response_model=IncidentListOut, summary="Incidents, newest first, with the unacknowledged count"
)
def list_alerts(
    conn: ConnDep,
    _caller: CurrentRole,
    state: Annotated[State | None, Query(description="open, acknowledged or resolved; default: all")] = None,
    rule_id: Annotated[str | None, Query(pattern=RULE_ID)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    items = incidents.list_incidents(conn, state=state, rule_id=rule_id, source=source, limit=limit)
    return {"items": items, "counts": incidents.counts(conn)}


async def _stream(request: Request, state: ApiState, after: int | None, max_s: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()

    def read(last: int | None) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
        with state.read_pool.connection() as conn:
            if last is None:
                row = conn.execute("SELECT coalesce(max(event_id), 0) FROM alert_events").fetchone()
                return (int(row[0]) if row else 0), [], incidents.counts(conn)
            rows = conn.execute(
                "SELECT event_id, incident_id, kind, at, actor, note FROM alert_events WHERE event_id > %s "
                "ORDER BY event_id LIMIT 500",
                (last,),
            ).fetchall()
            out = []
            for event_id, incident_id, kind, at, actor, note in rows:
                incident = incidents.get_incident(conn, incident_id)
                if incident is not None:
                    out.append({"event_id": event_id, "event": kind, "at": at, "actor": actor, "note": note,
                                "incident": IncidentOut(**incident).model_dump(mode="json")})  # fmt: skip
            return (int(rows[-1][0]) if rows else last), out, incidents.counts(conn)

    yield b"retry: 3000\n\n"
    last, missed, counts = await run_in_threadpool(read, after)
    for item in missed:  # a reconnecting client's Last-Event-ID: what happened meanwhile
        yield _event("alert", item, event_id=item["event_id"])
    yield _event("counts", counts)
    while loop.time() - started < max_s and not state.closing.is_set():
        last, items, now_counts = await run_in_threadpool(read, last)
        for item in items:
            yield _event("alert", item, event_id=item["event_id"])
            last_sent = loop.time()
        if items or now_counts != counts:
            counts = now_counts
            yield _event("counts", counts)
            last_sent = loop.time()
        if loop.time() - last_sent >= KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = loop.time()
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


def _event(name: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, ensure_ascii=False, default=str)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


@router.get(
    "/stream",
    summary="Server-sent events: every incident change, and the open/acknowledged counts",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an event stream"}},
)
async def stream_alerts(
    request: Request,
    state: StateDep,
    _caller: CurrentRole,
    max_seconds: Annotated[
        float, Query(gt=0, le=STREAM_MAX_S, description="end after this long")
    ] = STREAM_MAX_S,
) -> StreamingResponse:
    """`event: alert` (with `id:` = the event id) carries the event (`opened`, `acknowledged`,
    `escalated`, `flapping`, `resolved`) and the incident as it is now; `event: counts` the open and
    acknowledged totals, first on connecting and after every change. A reconnecting EventSource
    sends `Last-Event-ID` and gets what it missed."""
    header = request.headers.get("last-event-id", "")
    after = int(header) if header.isdigit() else None
    return StreamingResponse(
        _stream(request, state, after, max_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- rules -------------------------------------------------------------------------------------------


@router.get(
    "/rules", response_model=RuleListOut, summary="Alert rules, with where their thresholds come from"
)
def list_rules(conn: ConnDep, _caller: CurrentRole) -> dict[str, Any]:
    return {"items": [r.as_dict() for r in rules.load_rules(conn)]}


@router.put(
    "/rules/{rule_id}",
    response_model=RuleOut,
    responses={422: {"model": ErrorOut, "description": "the rule is inconsistent (the message says why)"}},
    summary="Create or replace a rule (operator)",
)
def put_rule(
    conn: ConnDep, caller: OperatorDep, rule_id: Annotated[str, Path(pattern=RULE_ID)], body: RuleIn
) -> dict[str, Any]:
    if body.rule_id != rule_id:
        raise HTTPException(422, f"the body's rule_id {body.rule_id!r} differs from the path's {rule_id!r}")
    rule = rules.rule_from_mapping({**body.model_dump(), "created_by": caller.name})
    rules.save_rule(conn, rule)
    saved = rules.get_rule(conn, rule_id)
    assert saved is not None
    return saved.as_dict()


@router.delete("/rules/{rule_id}", status_code=204, responses=_NOT_FOUND, summary="Delete a rule (operator)")
def delete_rule(conn: ConnDep, _op: OperatorDep, rule_id: Annotated[str, Path(pattern=RULE_ID)]) -> Response:
    """Deletes its incidents' history too; to keep it, PUT the rule with `enabled: false`."""
    if not rules.delete_rule(conn, rule_id):
        raise HTTPException(404, f"no rule {rule_id!r}")
    return Response(status_code=204)


@router.post(
    "/rules/{rule_id}/backtest",
    response_model=BacktestOut,
    responses=_NOT_FOUND,
    summary="When the rule would have fired over stored readings (nothing is written)",
)
def backtest_rule(
    conn: ConnDep, _caller: CurrentRole, rule_id: Annotated[str, Path(pattern=RULE_ID)], body: BacktestIn
) -> dict[str, Any]:
    rule = rules.get_rule(conn, rule_id)
    if rule is None:
        raise HTTPException(404, f"no rule {rule_id!r}")
    return backtest(conn, rule, body.from_, body.to)


# -- webhooks ----------------------------------------------------------------------------------------


@router.get("/webhooks", response_model=WebhookListOut, summary="Webhooks with delivery counts (admin)")
def list_hooks(conn: ConnDep, _admin: AdminDep) -> dict[str, Any]:
    return {"items": webhooks.list_webhooks(conn)}


@router.post(
    "/webhooks",
    response_model=WebhookCreatedOut,
    status_code=201,
    summary="Send every incident event to a URL, signed (admin)",
)
def add_hook(conn: ConnDep, admin: AdminDep, body: WebhookIn) -> dict[str, Any]:
    """The answer holds the HMAC secret (shown once); see docs/alerts.md for verifying signatures."""
    try:
        return webhooks.add_webhook(
            conn, body.webhook_id, str(body.url), secret=body.secret, fmt=body.format,
            min_severity=body.min_severity, created_by=admin.name,
        )  # fmt: skip
    except ConfigError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, responses=_NOT_FOUND, summary="Remove a webhook (admin)"
)
def delete_hook(
    conn: ConnDep, _admin: AdminDep, webhook_id: Annotated[str, Path(pattern=RULE_ID)]
) -> Response:
    if not webhooks.delete_webhook(conn, webhook_id):
        raise HTTPException(404, f"no webhook {webhook_id!r}")
    return Response(status_code=204)


# -- one incident (after the fixed paths) ------------------------------------------------------------


@router.get("/{incident_id}", response_model=IncidentOut, responses=_NOT_FOUND, summary="One incident")
def get_alert(conn: ConnDep, _caller: CurrentRole, incident_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    found = incidents.get_incident(conn, incident_id)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return found


def _change(action: Any, conn: Any, incident_id: int, by: str, note: str | None) -> dict[str, Any]:
    try:
        result: dict[str, Any] = action(conn, incident_id, by=by, note=note)
    except incidents.IncidentError as exc:
        raise HTTPException(404 if str(exc).startswith("no incident") else 409, str(exc)) from exc
    return result


@router.post(
    "/{incident_id}/ack",
    response_model=IncidentOut,
    responses=_CONFLICT,
    summary="Acknowledge an open incident: who and why are recorded (operator)",
)
def ack_alert(
    conn: ConnDep, caller: OperatorDep, incident_id: Annotated[int, Path(ge=1)], body: AckIn | None = None
) -> dict[str, Any]:
    """It still resolves by itself when the condition clears; the next crossing opens a new one."""
    body = body or AckIn()
    return _change(incidents.acknowledge, conn, incident_id, body.by or caller.name, body.note)


@router.post(
    "/{incident_id}/resolve",
    response_model=IncidentOut,
    responses=_CONFLICT,
    summary="Resolve an incident by hand (operator)",
)
def resolve_alert(
    conn: ConnDep, caller: OperatorDep, incident_id: Annotated[int, Path(ge=1)], body: AckIn | None = None
) -> dict[str, Any]:
    body = body or AckIn()
    return _change(incidents.resolve, conn, incident_id, body.by or caller.name, body.note)
