"""1999 hotline and petition cases: batch import, hotspots (GeoJSON), emerging hot spots, trends, Open311.

Imports need an operator key; reads are open. After an import the latest month is compared with
the month before it, and cells that became significant hot spots are published on the page's
event stream as `petition_hotspot` (and handed to `HOTSPOT_LISTENERS`, where alerting connects).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from zhongdu.api._deps import ConnDep, CurrentRole, OperatorDep, StateDep
from zhongdu.api._live import event_bus
from zhongdu.api._params import unprocessable
from zhongdu.api._schemas import ErrorOut
from zhongdu.api._schemas_petitions import (
    MAX_BATCH,
    BreakpointIn,
    BreakpointOut,
    CategoriesOut,
    EmergingOut,
    HotspotsOut,
    ImportOut,
    PetitionBatchIn,
    PetitionIn,
    RejectsOut,
    TrendsOut,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["petitions"])

Category = Annotated[
    str | None, Query(max_length=64, description="a category code (e.g. drain) or its Chinese name")
]
From = Annotated[
    datetime | None, Query(alias="from", description="start (inclusive); default: `to` minus 90 days")
]
To = Annotated[datetime | None, Query(description="end (exclusive); default: just after the latest case")]
Res = Annotated[int, Query(ge=8, le=10, description="H3 resolution, 8-10")]
K = Annotated[int, Query(ge=0, le=3, description="neighbourhood: H3 grid disk radius k (0-3)")]
Alpha = Annotated[float, Query(gt=0, lt=0.5, description="false discovery rate (Benjamini-Hochberg)")]
_BAD: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut, "description": "invalid parameters"}}


def _category(text: str | None) -> str | None:
    from zhongdu.petitions._categories import normalise_category

    if text is None or not text.strip():
        return None
    try:
        return normalise_category(text)
    except ValueError as exc:
        unprocessable(str(exc))


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    from zhongdu.api._params import LATEST

    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not datetime(1980, 1, 1, tzinfo=UTC) <= aware <= LATEST:
        unprocessable(f"times must lie between 1980 and {LATEST.year}, got {value.isoformat()}")
    return aware


def _window(conn: Any, start: datetime | None, end: datetime | None, days: int = 90) -> Any:
    from zhongdu.petitions._service import PetitionInputError, resolve_window

    try:
        return resolve_window(conn, _aware(start), _aware(end), days)
    except PetitionInputError as exc:
        unprocessable(str(exc))


def publish_new_hotspots(state: Any, conn: Any) -> list[dict[str, Any]]:
    """Compare the latest window (ZHONGDU_PETITION_ALERT_WINDOW_DAYS, ending at the latest case) with
    the one before it; announce the cells that became significant hot spots, once each."""
    from zhongdu.petitions._service import HOTSPOT_LISTENERS, Window, new_hotspots_between
    from zhongdu.storage import _petitions as store

    latest = store.latest_received(conn)
    if latest is None:
        return []
    end = latest + timedelta(seconds=1)
    span = timedelta(days=state.settings.petition_alert_window_days)
    after = Window(end - span, end)
    before = Window(end - 2 * span, end - span)
    found = new_hotspots_between(
        conn,
        before,
        after,
        res=state.settings.petition_alert_resolution,
        measure=state.settings.petition_alert_measure,
    )
    announced: set[tuple[str, str]] = state.extras.setdefault("petition_hotspots_announced", set())
    fresh = [h for h in found if (h["cell"], h["window"]["from"][:10]) not in announced]
    if not fresh:
        return []
    synthetic = store.any_synthetic(conn)
    bus = event_bus(state.extras)
    for h in fresh:
        announced.add((h["cell"], h["window"]["from"][:10]))
        bus.publish("petition_hotspot", {**h, "synthetic": synthetic})
    _raise_hotspot_incidents(conn, fresh, synthetic=synthetic)
    for listener in HOTSPOT_LISTENERS:
        try:
            listener(fresh)
        except Exception:  # a listener's failure must not undo the import
            log.exception("a petition hotspot listener failed")
    return fresh


HOTSPOT_RULE = "petition-hotspot"


def _raise_hotspot_incidents(conn: Any, hotspots: list[dict[str, Any]], *, synthetic: bool) -> None:
    """One alert incident per new hotspot cell (rule `petition-hotspot`, created on first use), so
    the operations center is alerted, acknowledges and is webhooked as for telemetry. In a
    savepoint: an alerting failure must not undo the import."""
    from zhongdu.alerts import raise_incident

    try:
        with conn.transaction():
            for h in hotspots:
                prefix = "synthetic data: " if synthetic else ""
                raise_incident(
                    conn,
                    HOTSPOT_RULE,
                    h["cell"],
                    name="new significant 1999 petition hotspot",
                    summary=f"{prefix}{h['count']} petitions in cell {h['cell']} "
                    f"(z {h['z']}, q {h['q']:.3g}) since {h['window']['from'][:10]}",
                    source_kind="petitions",
                    value=float(h["z"]),
                    lon=h["lon"],
                    lat=h["lat"],
                    details={**h, "synthetic": synthetic},
                )
    except Exception:
        log.exception("petition hotspot incidents could not be raised")


def _metrics(state: Any) -> dict[str, Any]:
    """The petition collectors, in the app's registry (created on first use)."""
    found: dict[str, Any] | None = state.extras.get("petition_metrics")
    if found is None:
        from prometheus_client import Counter

        registry = state.metrics.registry
        found = {
            "rows": Counter(
                "zhongdu_petition_rows", "petition rows imported, by outcome", ["outcome"], registry=registry
            ),
            "hotspots": Counter(
                "zhongdu_petition_new_hotspots",
                "new significant petition hotspots announced",
                registry=registry,
            ),
        }
        state.extras["petition_metrics"] = found
    return found


def _import(
    state: Any, conn: Any, rows: list[dict[str, Any]], source: str, synthetic: bool | None
) -> dict[str, Any]:
    from zhongdu.petitions._service import import_rows

    report, rejected = import_rows(conn, rows, source=source, synthetic=synthetic)
    conn.commit()
    counters = _metrics(state)
    for outcome in ("inserted", "updated", "unchanged", "rejected"):
        counters["rows"].labels(outcome).inc(getattr(report, outcome))
    fresh = publish_new_hotspots(state, conn) if report.inserted or report.updated else []
    counters["hotspots"].inc(len(fresh))
    return {**report.__dict__, "rejections": rejected, "new_hotspots": fresh}


@router.post(
    "/petitions",
    response_model=ImportOut,
    responses=_BAD,
    summary="Import a batch of petition cases (idempotent by case_id; bad rows answered row by row)",
)
def post_petitions(
    body: PetitionBatchIn, state: StateDep, conn: ConnDep, caller: OperatorDep
) -> dict[str, Any]:
    """Each case is checked on its own: good ones are stored (a case equal to the stored one changes
    nothing), bad ones are listed in `rejections` with the reason and kept in the database
    (`GET /v1/petitions/rejects`). The batch is one transaction."""
    rows = [case.model_dump(exclude_none=False) for case in body.cases]
    return _import(state, conn, rows, f"api:{caller.key_id}", body.synthetic)


@router.get(
    "/petitions/hotspots",
    response_model=HotspotsOut,
    responses=_BAD,
    summary="Gi* hotspots as GeoJSON H3 cells, FDR-corrected, per category and window",
)
def get_hotspots(
    conn: ConnDep,
    _caller: CurrentRole,
    category: Category = None,
    from_: From = None,
    to: To = None,
    res: Res = 9,
    k: K = 1,
    measure: Annotated[
        Literal["count", "rate"], Query(description="cases, or EB-smoothed cases per 1,000 residents")
    ] = "count",
    alpha: Alpha = 0.05,
    all_cells: Annotated[
        bool, Query(alias="all", description="also cells with cases that are not significant")
    ] = False,
    include_coarse: Annotated[bool, Query(description="count cases placed at a village centre")] = False,
) -> dict[str, Any]:
    """Each feature is an H3 cell with `count`, `population`, `rate` (EB-smoothed per 1,000
    residents), `raw_rate`, `z` (Gi*), `p`, `q` (Benjamini-Hochberg) and `verdict` (hot, cold,
    not significant), hottest first; `method` states the statistic, neighbourhood, resolution and
    correction. `synthetic` is true when simulated cases are stored."""
    from zhongdu.petitions._service import hotspots_geojson, run_hotspots
    from zhongdu.storage import _petitions as store

    cat = _category(category)
    window = _window(conn, from_, to)
    result = run_hotspots(
        conn,
        window=window,
        category=cat,
        res=res,
        k=k,
        measure=measure,
        alpha=alpha,
        include_coarse=include_coarse,
    )
    body = hotspots_geojson(
        result,
        window=window,
        category=cat,
        synthetic=store.any_synthetic(conn),
        significant_only=not all_cells,
    )
    body["coarse_cases_left_out"] = (
        0 if include_coarse else store.count_coarse(conn, start=window.start, end=window.end, category=cat)
    )
    return body


@router.get(
    "/petitions/emerging",
    response_model=EmergingOut,
    responses=_BAD,
    summary="Emerging hot spots: Gi* per month and a Mann-Kendall trend per cell",
)
def get_emerging(
    conn: ConnDep,
    _caller: CurrentRole,
    category: Category = None,
    months: Annotated[
        int, Query(ge=3, le=60, description="how many months, ending with the latest case's")
    ] = 12,
    to: To = None,
    res: Annotated[int, Query(ge=8, le=9, description="H3 resolution, 8-9 (a cells x months matrix)")] = 8,
    k: K = 1,
    alpha: Alpha = 0.05,
) -> dict[str, Any]:
    """Cells labelled new, intensifying, persistent, diminishing or sporadic (docs/petitions.md)."""
    from zhongdu.petitions._service import emerging_geojson

    cat = _category(category)
    return emerging_geojson(conn, category=cat, months=months, end=_aware(to), res=res, k=k, alpha=alpha)


@router.get(
    "/petitions/trends",
    response_model=TrendsOut,
    responses=_BAD,
    summary="Cases per month and category, time to close, breakpoints",
)
def get_trends(
    conn: ConnDep,
    _caller: CurrentRole,
    category: Category = None,
    district: Annotated[
        str | None, Query(max_length=32, description="a district, e.g. 西屯區 or Xitun")
    ] = None,
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """Monthly received and resolved counts (Taiwan time; months without cases are 0), the hours
    to a work order and to resolution (median, 90th percentile) per category, and each recorded
    breakpoint with the mean monthly cases in the 6 months before and after it."""
    from zhongdu.petitions._places import load_places
    from zhongdu.petitions._trends import trends

    name = None
    if district:
        try:
            name = load_places().district_name(district)
        except ValueError as exc:
            unprocessable(str(exc))
    return trends(conn, category=_category(category), district=name, start=_aware(from_), end=_aware(to))


@router.get(
    "/petitions/categories", response_model=CategoriesOut, summary="Categories with their case counts"
)
def get_categories(conn: ConnDep, _caller: CurrentRole) -> dict[str, Any]:
    from zhongdu.petitions._categories import BY_CODE, CATEGORIES
    from zhongdu.storage import _petitions as store

    stored = {str(r["category"]): r for r in store.categories(conn)}
    codes = [c.code for c in CATEGORIES] + [c for c in stored if c not in BY_CODE]
    items = []
    for code in codes:
        known = BY_CODE.get(code)
        row = stored.get(code, {})
        items.append(
            {
                "code": code,
                "name_zh": known.name_zh if known else None,
                "name_en": known.name_en if known else None,
                "cases": int(row.get("cases", 0)),
                "first": row.get("first"),
                "last": row.get("last"),
            }
        )
    return {"items": items, "synthetic": store.any_synthetic(conn)}


@router.get(
    "/petitions/rejects", response_model=RejectsOut, summary="Rows that were not imported, with the reason"
)
def get_rejects(
    conn: ConnDep,
    _caller: CurrentRole,
    batch_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    from zhongdu.storage import _petitions as store

    return {"items": store.list_rejects(conn, batch_id=batch_id, limit=limit)}


@router.get("/petitions/breakpoints", response_model=list[BreakpointOut], summary="Recorded breakpoints")
def get_breakpoints(conn: ConnDep, _caller: CurrentRole, category: Category = None) -> list[dict[str, Any]]:
    from zhongdu.storage import _petitions as store

    return store.list_breakpoints(conn, category=_category(category))


@router.post(
    "/petitions/breakpoints",
    response_model=BreakpointOut,
    status_code=201,
    responses=_BAD,
    summary="Record a category change or a policy change that trends should be read against",
)
def post_breakpoint(body: BreakpointIn, conn: ConnDep, _caller: OperatorDep) -> dict[str, Any]:
    from zhongdu.storage import _petitions as store

    return store.add_breakpoint(
        conn, at=_aware(body.at) or body.at, kind=body.kind, note=body.note, category=_category(body.category)
    )


@router.get(
    "/open311/requests.json",
    tags=["petitions"],
    summary="Stored cases as Open311 GeoReport v2 service requests",
)
def get_open311_requests(
    conn: ConnDep,
    _caller: CurrentRole,
    service_code: Annotated[str | None, Query(max_length=64)] = None,
    start_date: Annotated[datetime | None, Query()] = None,
    end_date: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """GeoReport v2's `status` is open or closed; `zhongdu_status` keeps received, dispatched (work
    order created), resolved and withdrawn apart, and `zhongdu_dispatched_at` the work order's time."""
    from zhongdu.petitions._open311 import to_open311
    from zhongdu.storage import _petitions as store

    cases = store.list_cases(
        conn, start=_aware(start_date), end=_aware(end_date), category=_category(service_code), limit=limit
    )
    return to_open311(cases)


@router.post(
    "/open311/requests",
    tags=["petitions"],
    response_model=ImportOut,
    responses=_BAD,
    summary="Import Open311 GeoReport v2 service requests (a JSON array)",
)
def post_open311_requests(
    body: list[dict[str, Any]], state: StateDep, conn: ConnDep, caller: OperatorDep
) -> dict[str, Any]:
    from zhongdu.petitions._open311 import rows_from_open311

    if len(body) > MAX_BATCH:
        raise HTTPException(422, f"at most {MAX_BATCH} service requests in one batch, got {len(body)}")
    rows = list(rows_from_open311(body))
    # checked through the same model as POST /v1/petitions, so both answer alike
    rows = [PetitionIn.model_validate(r).model_dump() for r in rows]
    return _import(state, conn, rows, f"open311:{caller.key_id}", None)
