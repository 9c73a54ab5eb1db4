"""Plan indicators (docs/api.md#plan-indicators): catalogue with targets, actuals, attainment, weighted score.

Actuals: the engine-fed 4G indicator is live for the current year and modelled (from the
regulator's per-district station counts) for past years; every other indicator takes the most
recent actual recorded through `POST /v1/indicators/{id}/actuals` (role operator or admin), with who
recorded it, when, and an optional evidence note. Older records stay as the audit trail.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query

from zhongdu import storage
from zhongdu.api import _indicators as ind
from zhongdu.api._deps import ApiState, ConnDep, CurrentRole, OperatorDep, StateDep
from zhongdu.api._models import (
    ActualHistoryOut,
    ActualIn,
    ActualRecordOut,
    ErrorOut,
    IndicatorListOut,
    ScoreOut,
)
from zhongdu.api._params import unprocessable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/indicators", tags=["indicators"])

Year = Annotated[
    int | None, Query(ge=1990, le=2100, description="AD year (ROC year + 1911); default: this year")
]
PlanParam = Annotated[
    str | None, Query(pattern=r"^[a-z0-9-]{1,64}$", description="default: the plan covering the year")
]
CriterionParam = Annotated[
    str,
    Query(
        pattern=r"^(outdoor|indoor|capacity|indoor_every_major|indoor_[A-Z]{2,5})$",
        description=(
            "criterion of the engine-fed 4G indicator: outdoor (default: docs/coverage.md#models, "
            "-110 dBm, the only one computed live), indoor, capacity, indoor_every_major, or "
            "indoor_<operator> (CHT, TWM, FET, APT, TSTAR); the others come from the modelled series"
        ),
    ),
]
IndicatorId = Annotated[str, Path(pattern=r"^[A-Z][0-9]+-[0-9]+$", description="e.g. B7-2")]


def choose_plan(conn: psycopg.Connection[Any], plan: str | None, year: int) -> str:
    """The requested plan, else the one whose target years cover `year`, else the latest one."""
    plans = storage.api.list_plans(conn)
    if not plans:
        raise HTTPException(503, "no indicator catalogue is loaded; run `zhongdu db migrate`")
    ids = [str(p["plan_id"]) for p in plans]
    if plan is not None:
        if plan not in ids:
            unprocessable(f"unknown plan {plan!r}; loaded plans: {', '.join(ids)}")
        return plan
    covering = [p for p in plans if p["first_year"] <= year <= p["last_year"]]
    chosen = covering[-1] if covering else max(plans, key=lambda p: (p["last_year"], p["plan_id"]))
    return str(chosen["plan_id"])


def _modelled_series(state: ApiState, criterion: str = "outdoor") -> list[dict[str, Any]]:
    if criterion != "outdoor":
        from zhongdu.coverage import IndicatorError, modelled_indicator_series

        try:
            return modelled_indicator_series(criterion)
        except IndicatorError as exc:
            unprocessable(str(exc))
    if state.modelled_series is None:
        try:
            from zhongdu.coverage import modelled_indicator_series

            state.modelled_series = list(modelled_indicator_series())
        except Exception as exc:  # shipped data missing: say so in the log, serve without it
            log.warning("modelled 4G indicator series unavailable: %s", exc)
            state.modelled_series = []
    return state.modelled_series


def _indicators(
    state: ApiState, conn: psycopg.Connection[Any], plan: str | None, year: int, criterion: str = "outdoor"
) -> list[dict[str, Any]]:
    plan_id = choose_plan(conn, plan, year)
    rows = storage.api.list_indicators(conn, plan_id)
    engine = None
    if any((r.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE for r in rows):
        snapshot = state.live.snapshot if state.live is not None and criterion == "outdoor" else None
        engine = ind.engine_actual(
            year,
            today=datetime.now(UTC).date(),
            live=snapshot.summary if snapshot else None,
            series=_modelled_series(state, criterion),
        )
    return ind.build_indicators(
        rows, year, recorded=storage.api.latest_indicator_actuals(conn, plan_id, year), engine=engine
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
    criterion: CriterionParam = "outdoor",
) -> dict[str, Any]:
    year_ = _year(year)
    items = _indicators(state, conn, plan, year_, criterion)
    return {"plan_id": items[0]["plan_id"] if items else plan, "year": year_, "items": items}


@router.get("/score", response_model=ScoreOut, summary="Weighted score of a year")
def get_score(
    state: StateDep,
    conn: ConnDep,
    _caller: CurrentRole,
    year: Year = None,
    plan: PlanParam = None,
    criterion: CriterionParam = "outdoor",
) -> dict[str, Any]:
    """Σ weight × min(1, actual / target) over the indicators with an actual and a target."""
    year_ = _year(year)
    return ind.score(_indicators(state, conn, plan, year_, criterion), year_)


def _value_of(kind: str, body: ActualIn) -> tuple[float, float | None, float | None]:
    """(value, numerator, denominator) from the fields the indicator's kind needs; 422 otherwise."""
    given = {k for k in ("numerator", "denominator", "count", "achieved") if getattr(body, k) is not None}
    if kind == "ratio":
        if given != {"numerator", "denominator"} or body.numerator is None or body.denominator is None:
            unprocessable(
                f"a ratio indicator needs exactly `numerator` and `denominator` (> 0); got {sorted(given)}"
            )
        return body.numerator / body.denominator, body.numerator, body.denominator
    if kind == "count":
        if given != {"count"} or body.count is None:
            unprocessable(f"a count indicator needs exactly `count`; got {sorted(given)}")
        return float(body.count), None, None
    if given != {"achieved"} or body.achieved is None:
        unprocessable(f"a yes/no indicator needs exactly `achieved` (true or false); got {sorted(given)}")
    return (1.0 if body.achieved else 0.0), None, None


@router.post(
    "/{indicator_id}/actuals",
    response_model=ActualRecordOut,
    status_code=201,
    responses={404: {"model": ErrorOut, "description": "no such indicator"}},
    summary="Record an indicator's actual for a year (operator)",
)
def record_actual(
    conn: ConnDep, principal: OperatorDep, indicator_id: IndicatorId, body: ActualIn, plan: PlanParam = None
) -> dict[str, Any]:
    """Numerator and denominator for a ratio, `count` for a count, `achieved` for the yes/no indicator.

    `recorded_by` is the key's name. A later record for the same year supersedes earlier ones.
    """
    plan_id = choose_plan(conn, plan, body.year)
    row = storage.api.get_indicator(conn, plan_id, indicator_id)
    if row is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    if (row.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE:
        unprocessable(
            f"{indicator_id}'s actual comes from the coverage engine "
            "(live this year, modelled for past years); "
            "it is not recorded by hand"
        )
    value, numerator, denominator = _value_of(str(row["kind"]), body)
    return storage.api.insert_indicator_actual(
        conn,
        plan_id=plan_id,
        indicator_id=indicator_id,
        year=body.year,
        value=value,
        numerator=numerator,
        denominator=denominator,
        source="recorded",
        recorded_by=principal.name,
        evidence=body.evidence,
    )


@router.get(
    "/{indicator_id}/actuals",
    response_model=ActualHistoryOut,
    responses={404: {"model": ErrorOut, "description": "no such indicator"}},
    summary="Every recorded actual of an indicator (audit trail)",
)
def list_actuals(
    conn: ConnDep, _caller: CurrentRole, indicator_id: IndicatorId, year: Year = None, plan: PlanParam = None
) -> dict[str, Any]:
    plan_id = choose_plan(conn, plan, year if year is not None else datetime.now(UTC).year)
    if storage.api.get_indicator(conn, plan_id, indicator_id) is None:
        raise HTTPException(404, f"plan {plan_id} has no indicator {indicator_id!r}")
    items = storage.api.list_indicator_actuals(conn, plan_id, indicator_id, year=year)
    for item in items:
        item["plan_id"] = plan_id
    return {"plan_id": plan_id, "indicator_id": indicator_id, "items": items}
