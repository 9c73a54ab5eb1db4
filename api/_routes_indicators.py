"""Plan indicators (docs/indicators.md): catalogue with targets, entries, attainment, weighted score.

Actuals: the engine-fed 4G indicator is live for the current year and modelled (from the
regulator's per-district station counts) for past years, on the criterion the commission chose
(ZHONGDU_INDICATOR_4G_CRITERION); every other indicator takes its current entry, keyed in by a
planner (or higher) one at a time or imported from a CSV. Entries are append-only: a new entry for
an indicator and year corrects the current one and says so. A locked year no longer changes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from zhongdu import storage
from zhongdu.api import _indicator_entries as entries
from zhongdu.api import _indicator_service as service
from zhongdu.api import _indicators as ind
from zhongdu.api._deps import AdminDep, ApiState, ConnDep, CurrentRole, OperatorDep, PlannerDep, StateDep
from zhongdu.api._params import unprocessable
from zhongdu.api._schemas import (
    ActualHistoryOut,
    ActualIn,
    ActualRecordOut,
    ErrorOut,
    IndicatorListOut,
    ScoreOut,
)
from zhongdu.api._schemas import LongText as _LongText

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/indicators", tags=["indicators"])

Year = Annotated[
    int | None, Query(ge=1990, le=2100, description="AD year (ROC year + 1911); default: this year")
]
PlanParam = Annotated[
    str | None, Query(pattern=r"^[a-z0-9-]{1,64}$", description="default: the plan covering the year")
]
_CRITERION = r"^(outdoor|indoor|capacity|indoor_every_major|indoor_[A-Z]{2,5})$"
CriterionParam = Annotated[
    str | None,
    Query(
        pattern=_CRITERION,
        description=(
            "criterion of the engine-fed 4G indicator, to look beside the recorded one: outdoor, indoor, "
            "capacity, indoor_every_major, or indoor_<operator> (CHT, TWM, FET, APT, TSTAR). Default: the "
            "commission's recorded choice (ZHONGDU_INDICATOR_4G_CRITERION); the score always names it"
        ),
    ),
]
IndicatorId = Annotated[str, Path(pattern=r"^[A-Z][0-9]+-[0-9]+$", description="e.g. B7-2")]


def _criterion(state: ApiState, criterion: str | None) -> str:
    return criterion or state.settings.indicator_4g_criterion


def _series(state: ApiState, criterion: str) -> list[dict[str, Any]]:
    cache: dict[str, list[dict[str, Any]]] = state.extras.setdefault("indicator_series", {})
    if criterion not in cache:
        if criterion == "outdoor" and state.modelled_series is not None:
            cache[criterion] = state.modelled_series
        else:
            cache[criterion] = service.modelled_series(criterion)
            if not cache[criterion] and criterion != "outdoor":
                unprocessable(f"no modelled 4G series for criterion {criterion!r}")
            if criterion == "outdoor":
                state.modelled_series = cache[criterion]
    return cache[criterion]


def _modelled_series(state: ApiState, criterion: str = "outdoor") -> list[dict[str, Any]]:
    """The modelled 4G series of a criterion, computed once per app (the coverage-series route's too)."""
    return _series(state, criterion)


def choose_plan(conn: psycopg.Connection[Any], plan: str | None, year: int) -> str:
    try:
        return service.choose_plan(conn, plan, year)
    except service.PlanError as exc:
        if "no indicator catalogue" in str(exc):
            raise HTTPException(503, str(exc)) from None
        unprocessable(str(exc))


def _indicators(
    state: ApiState, conn: psycopg.Connection[Any], plan: str | None, year: int, criterion: str
) -> list[dict[str, Any]]:
    choose_plan(conn, plan, year)  # 422/503 before any work
    snapshot = state.live.snapshot if state.live is not None and criterion == "outdoor" else None
    return service.year_view(
        conn, plan, year, series=_series(state, criterion), live=snapshot.summary if snapshot else None
    )


def _year(year: int | None) -> int:
    return year if year is not None else datetime.now(UTC).year


@router.get(
    "", response_model=IndicatorListOut, summary="Every plan indicator with target, actual, attainment"
)
def list_indicators(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    year: Year = None,
    plan: PlanParam = None,
    criterion: CriterionParam = None,
) -> dict[str, Any]:
    year_ = _year(year)
    items = _indicators(state, conn, plan, year_, _criterion(state, criterion))
    return {"plan_id": items[0]["plan_id"] if items else plan, "year": year_, "items": items}


@router.get("/score", response_model=ScoreOut, summary="Weighted score of a year")
def get_score(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    year: Year = None,
    plan: PlanParam = None,
    criterion: CriterionParam = None,
) -> dict[str, Any]:
    """Σ weight × min(1, actual / target), out of the whole plan: missing actuals score 0 and are named."""
    year_ = _year(year)
    criterion_ = _criterion(state, criterion)
    result = ind.score(_indicators(state, conn, plan, year_, criterion_), year_, criterion=criterion_)
    result["criterion_4g_recorded"] = state.settings.indicator_4g_criterion
    return result


def _entry_of(row: dict[str, Any], body: ActualIn) -> entries.Entry:
    """The body as an entry; `count` and `achieved` are the older spellings of `value`."""
    kind = entries.structure(row)
    indicator_id = str(row["indicator_id"])
    value = body.value
    if body.count is not None:
        if kind != "count":
            unprocessable(f"`count` is for count indicators; {indicator_id} is {_kind_help(kind)}")
        if value is not None:
            unprocessable("give `count` or `value`, not both")
        value = body.count
    if body.achieved is not None:
        if kind not in ("boolean", "quota"):
            unprocessable(f"`achieved` is for yes/no indicators; {indicator_id} is {_kind_help(kind)}")
        if value is not None:
            unprocessable("give `achieved` or `value`, not both")
        value = 1.0 if body.achieved else 0.0
    try:
        return entries.make_entry(
            row,
            body.year,
            value=value,
            numerator=body.numerator,
            denominator=body.denominator,
            components=body.components,
            evidence=body.evidence,
            note=body.note,
            corrects=body.corrects,
        )
    except entries.EntryError as exc:
        unprocessable(str(exc))


def _kind_help(kind: str) -> str:
    return {
        "ratio": "a ratio: give `numerator` and `denominator`, or `value` in percent",
        "count": "a count: give `count` or `value`",
        "boolean": "yes/no: give `achieved` (true or false) or `value` 1/0",
        "quota": "yes/no with its quotas: give `achieved`, `value` 1/0, or the four counts as `components`",
        "checklist": "a milestone checklist: give `components` (milestone key -> 1 or 0)",
        "parts": "made of parts: give `components` (part key -> times done)",
    }[kind]


@router.post(
    "/{indicator_id}/actuals",
    response_model=ActualRecordOut,
    status_code=201,
    responses={
        404: {"model": ErrorOut, "description": "no such indicator"},
        409: {"model": ErrorOut, "description": "the year is locked, or `corrects` is not the current entry"},
    },
    summary="Enter an indicator's actual for a year (planner or higher)",
)
def record_actual(
    state: StateDep,
    conn: ConnDep,
    principal: PlannerDep,
    indicator_id: IndicatorId,
    body: ActualIn,
    plan: PlanParam = None,
) -> dict[str, Any]:
    """`numerator`+`denominator` or `value` (percent) for a ratio, `value`/`count` for a count,
    `value` 1/0 or `achieved` for yes/no, `components` for B7-1 (checklist), B6-1 (parts) and M1-1.

    `recorded_by` is the key's name. An entry for a year that already has one corrects it: pass
    the current entry's id as `corrects` to be sure nobody corrected it meanwhile.
    """
    plan_id = choose_plan(conn, plan, body.year)
    row = storage.queries.get_indicator(conn, plan_id, indicator_id)
    if row is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    if (row.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE:
        unprocessable(
            f"{indicator_id}'s actual comes from the coverage engine "
            "(live this year, modelled for past years); "
            "it is not recorded by hand"
        )
    entry = _entry_of(row, body)
    try:
        service.ensure_open(conn, plan_id, body.year)
    except service.LockedYear as exc:
        raise HTTPException(409, str(exc)) from None
    current = storage.queries.latest_indicator_actuals(conn, plan_id, body.year).get(indicator_id)
    if body.corrects is not None and (current is None or int(current["id"]) != body.corrects):
        raise HTTPException(
            409,
            f"entry {body.corrects} is not the current entry of {indicator_id} {body.year}"
            + (
                f" (entry {current['id']} by {current['recorded_by']} is); reload and retry"
                if current
                else ""
            ),
        )
    stored = service.store_entry(
        conn,
        plan_id,
        entry,
        recorded_by=principal.name,
        corrects=None if current is None else int(current["id"]),
    )
    state.metrics.indicator_entries.labels("form").inc()
    return stored


@router.get(
    "/{indicator_id}/actuals",
    response_model=ActualHistoryOut,
    responses={404: {"model": ErrorOut, "description": "no such indicator"}},
    summary="Every entry of an indicator, corrections included (audit trail)",
)
def list_actuals(
    conn: ConnDep, _caller: CurrentRole, indicator_id: IndicatorId, year: Year = None, plan: PlanParam = None
) -> dict[str, Any]:
    plan_id = choose_plan(conn, plan, year if year is not None else datetime.now(UTC).year)
    if storage.queries.get_indicator(conn, plan_id, indicator_id) is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    items = storage.queries.list_indicator_actuals(conn, plan_id, indicator_id, year=year)
    for item in items:
        item["plan_id"] = plan_id
    return {"plan_id": plan_id, "indicator_id": indicator_id, "items": items}


# --- bulk: import and export -------------------------------------------------------------------


class RowErrorOut(BaseModel):
    line: int = Field(description="line of the CSV as a spreadsheet numbers it (header = 1); 0: the file")
    indicator_id: str | None
    message: str


class ImportRejectedOut(BaseModel):
    detail: str
    errors: list[RowErrorOut]


class ImportOut(BaseModel):
    imported: int = Field(description="entries appended (new, or corrections of the current entry)")
    unchanged: int = Field(description="rows equal to the current entry, left alone")
    dry_run: bool
    entries: list[dict[str, Any]]


_CSV_EXAMPLE = (
    "indicator_id,year,value,numerator,denominator,components,evidence,note\n"
    "B4-1,2016,,850,1000,,105 年度績效報告 p. 12,\n"
    "B2-1,2016,4,,,,,\n"
    "B7-1,2016,,,,m1=1; m2=1; m3=0; m4=1,,\n"
)


@router.post(
    "/import",
    response_model=ImportOut,
    responses={422: {"model": ImportRejectedOut, "description": "bad rows, each named; nothing imported"}},
    summary="Import entries from a CSV (or the JSON export): all rows or none (planner or higher)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def import_actuals(
    request: Request,
    state: StateDep,
    principal: PlannerDep,
    plan: PlanParam = None,
    dry_run: Annotated[bool, Query(description="validate and report, store nothing")] = False,
) -> Any:
    """Columns: indicator_id, year, value, numerator, denominator, components, evidence, note
    (UTF-8, with or without a BOM). Any bad row rejects the file, with every bad row named."""
    data = await request.body()
    content_type = request.headers.get("content-type")

    def work() -> dict[str, Any]:
        with state.pool.connection() as conn:
            return service.import_entries(
                conn, data, recorded_by=principal.name, content_type=content_type, plan=plan, dry_run=dry_run
            )

    from starlette.concurrency import run_in_threadpool

    try:
        result = await run_in_threadpool(work)
        if not dry_run:
            state.metrics.indicator_entries.labels("import").inc(result["imported"])
        return result
    except service.ImportRejected as exc:
        state.metrics.indicator_rows_rejected.inc(len(exc.errors))
        errors = [{"line": e.line, "indicator_id": e.indicator_id, "message": e.message} for e in exc.errors]
        return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)
    except service.PlanError as exc:
        return JSONResponse({"detail": str(exc), "errors": []}, status_code=422)


@router.get(
    "/export",
    responses={
        200: {
            "content": {"text/csv": {}, "application/json": {}},
            "description": "the year's current entries",
        }
    },
    summary="A year's current entries as CSV or JSON, in the form import takes back",
)
def export_actuals(
    conn: ConnDep,
    _caller: CurrentRole,
    year: Year = None,
    plan: PlanParam = None,
    format: Annotated[Literal["csv", "json"], Query(description="csv (Excel, with BOM) or json")] = "csv",
) -> Response:
    year_ = _year(year)
    choose_plan(conn, plan, year_)
    plan_id, exported = service.export_entries(conn, plan, year_)
    if format == "json":
        return JSONResponse(service.export_json(plan_id, year_, exported))
    text = entries.write_csv([item["cells"] for item in exported])
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="indicators_{plan_id}_{year_}.csv"'},
    )


# --- the commission's cycle: locks, amendments, reviews ----------------------------------------


class LockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: _LongText | None = None


class AmendmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    year: int = Field(ge=1990, le=2100)
    new_target: float = Field(ge=0, le=1e12, description="in the score's unit: a fraction for ratios")
    reason: Annotated[str, Field(min_length=2, max_length=2000)]
    countermeasures: Annotated[str, Field(min_length=2, max_length=2000)]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    year: int = Field(ge=1990, le=2100)
    status: Literal["draft", "self_assessed", "reviewed", "approved", "returned"]
    note: _LongText | None = None


class LockOut(BaseModel):
    plan_id: str
    year: int
    locked_by: str
    locked_at: datetime
    note: str | None


class AmendmentOut(BaseModel):
    id: int
    plan_id: str
    indicator_id: str
    year: int
    old_target: float | None = Field(
        description="the target in force before (the plan's, or an earlier amendment)"
    )
    new_target: float
    reason: str
    countermeasures: str
    amended_by: str
    amended_at: datetime


class ReviewOut(BaseModel):
    id: int
    plan_id: str
    indicator_id: str
    year: int
    status: Literal["draft", "self_assessed", "reviewed", "approved", "returned"]
    changed_by: str
    changed_at: datetime
    note: str | None


class YearOut(BaseModel):
    plan_id: str
    year: int
    lock: LockOut | None = Field(description="null while the year is open")
    reviews: list[ReviewOut] = Field(description="the current status of each indicator that has one")
    amendments: list[AmendmentOut]


#: Who may set each status: the owner agency assesses itself (planner), the commission reviews or
#: returns it (operator), approval is the commission's head's (admin).
REVIEW_ROLES: dict[str, str] = {
    "draft": "planner",
    "self_assessed": "planner",
    "reviewed": "operator",
    "returned": "operator",
    "approved": "admin",
}


@router.get("/years/{year}", response_model=YearOut, summary="Whether a plan year is locked, and its reviews")
def get_year(
    conn: ConnDep, _caller: CurrentRole, year: Annotated[int, Path(ge=1990, le=2100)], plan: PlanParam = None
) -> dict[str, Any]:
    plan_id = choose_plan(conn, plan, year)
    return {
        "plan_id": plan_id,
        "year": year,
        "lock": storage.queries.year_lock(conn, plan_id, year),
        "reviews": list(storage.queries.latest_reviews(conn, plan_id, year).values()),
        "amendments": storage.queries.list_amendments(conn, plan_id, year),
    }


@router.post(
    "/years/{year}/lock", response_model=LockOut, status_code=201, summary="Lock an evaluated year (admin)"
)
def lock_year(
    state: StateDep,
    conn: ConnDep,
    principal: AdminDep,
    year: Annotated[int, Path(ge=1990, le=2100)],
    body: Annotated[LockIn | None, Body()] = None,
    plan: PlanParam = None,
) -> dict[str, Any]:
    """After the lock no entry, amendment or review of the year is accepted. Locking twice keeps the first.

    The platform-computed values (B7-2) are stored as entries at the lock, with their computation,
    so a later model or data change cannot move an evaluated year.
    """
    plan_id = choose_plan(conn, plan, year)
    existing = storage.queries.year_lock(conn, plan_id, year)
    if existing is not None:
        return existing
    criterion = state.settings.indicator_4g_criterion
    for item in _indicators(state, conn, plan_id, year, criterion):
        actual = item["actual"]
        if actual is None or actual.get("source") not in ("modelled", "live") or actual.get("entry_id"):
            continue
        storage.queries.insert_indicator_actual(
            conn,
            plan_id=plan_id,
            indicator_id=str(item["id"]),
            year=year,
            value=float(actual["value"]),
            numerator=actual.get("numerator"),
            denominator=actual.get("denominator"),
            source=str(actual["source"]),
            recorded_by=f"platform, frozen at the lock by {principal.name}",
            evidence=actual.get("evidence"),
            note=f"criterion {criterion}",
            computation=actual.get("computation"),
        )
    return storage.queries.lock_year(conn, plan_id, year, principal.name, body.note if body else None)


@router.post(
    "/{indicator_id}/amendments",
    response_model=AmendmentOut,
    status_code=201,
    responses={409: {"model": ErrorOut, "description": "the year is locked"}},
    summary="Amend a target, with its reason and countermeasures (operator)",
)
def amend_target(
    conn: ConnDep,
    principal: OperatorDep,
    indicator_id: IndicatorId,
    body: AmendmentIn,
    plan: PlanParam = None,
) -> dict[str, Any]:
    plan_id = choose_plan(conn, plan, body.year)
    row = storage.queries.get_indicator(conn, plan_id, indicator_id)
    if row is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    try:
        service.ensure_open(conn, plan_id, body.year)
    except service.LockedYear as exc:
        raise HTTPException(409, str(exc)) from None
    in_force = [
        a
        for a in storage.queries.list_amendments(conn, plan_id, body.year)
        if a["indicator_id"] == indicator_id
    ]
    old = float(in_force[-1]["new_target"]) if in_force else ind.target_for(row, body.year)
    return storage.queries.insert_amendment(
        conn,
        plan_id=plan_id,
        indicator_id=indicator_id,
        year=body.year,
        old_target=old,
        new_target=body.new_target,
        reason=body.reason.strip(),
        countermeasures=body.countermeasures.strip(),
        amended_by=principal.name,
    )


@router.post(
    "/{indicator_id}/review",
    response_model=ReviewOut,
    status_code=201,
    responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "the year is locked"}},
    summary="Move an indicator's year through self-assessment, review and approval",
)
def review(
    conn: ConnDep, principal: PlannerDep, indicator_id: IndicatorId, body: ReviewIn, plan: PlanParam = None
) -> dict[str, Any]:
    """self_assessed (planner: the owner agency) → reviewed or returned (operator: the commission)
    → approved (admin)."""
    needed = REVIEW_ROLES[body.status]
    if not principal.allows(needed):
        raise HTTPException(
            403, f"setting {body.status!r} needs the {needed} role; this key is {principal.role}"
        )
    plan_id = choose_plan(conn, plan, body.year)
    if storage.queries.get_indicator(conn, plan_id, indicator_id) is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    try:
        service.ensure_open(conn, plan_id, body.year)
    except service.LockedYear as exc:
        raise HTTPException(409, str(exc)) from None
    return storage.queries.insert_review(
        conn,
        plan_id=plan_id,
        indicator_id=indicator_id,
        year=body.year,
        status=body.status,
        changed_by=principal.name,
        note=body.note,
    )


# --- the annual report -------------------------------------------------------------------------


@router.get(
    "/report",
    responses={200: {"content": {"application/pdf": {}, "text/html": {}}, "description": "the report"}},
    summary="The commission's yearly evaluation report (Traditional Chinese), PDF or HTML",
)
def report(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    year: Year = None,
    plan: PlanParam = None,
    format: Annotated[Literal["pdf", "html"], Query()] = "pdf",
) -> Response:
    from zhongdu.api import _indicator_report as rep

    year_ = _year(year)
    criterion = state.settings.indicator_4g_criterion
    items = _indicators(state, conn, plan, year_, criterion)
    html = rep.render_html(rep.collect(conn, items, year_, criterion=criterion))
    if format == "html":
        return HTMLResponse(html)
    return Response(
        rep.to_pdf(html),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="indicators_report_{year_}.pdf"'},
    )
