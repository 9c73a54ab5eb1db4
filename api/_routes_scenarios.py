"""Placement scenarios: planners post candidate sites and a goal; a child process runs the
placement (`zhongdu.coverage.plan`, CELF greedy) on the live layout and the result is stored.

A scenario whose estimated memory is above the limit is refused before it is queued."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path

from zhongdu import storage
from zhongdu.api._deps import ApiState, ConnDep, CurrentRole, PlannerDep, StateDep
from zhongdu.api._models import ErrorOut, ScenarioCreatedOut, ScenarioIn, ScenarioListOut, ScenarioOut
from zhongdu.api._params import Limit, Offset

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/scenarios", tags=["scenarios"])
SCENARIO_ID = r"^sc_[0-9a-f]{12}$"


def run_scenario(state: ApiState, scenario_id: str, request: dict[str, Any]) -> None:
    """Run one scenario to `done` or `failed`; never raises (it runs on a worker thread)."""
    try:
        with state.pool.connection() as conn:
            storage.api.update_scenario(conn, scenario_id, status="running")
        result = compute_scenario(state, request)
    except Exception as exc:
        log.info("scenario %s failed: %s", scenario_id, exc)
        try:
            with state.pool.connection() as conn:
                storage.api.update_scenario(
                    conn, scenario_id, status="failed", error=f"{type(exc).__name__}: {exc}"
                )
        except Exception:
            log.exception("could not record the failure of scenario %s", scenario_id)
        return
    with state.pool.connection() as conn:
        storage.api.update_scenario(conn, scenario_id, status="done", result=result)


def candidate_stations(rows: list[dict[str, Any]]) -> Any:
    """The request's candidates as a stations table (defaults filled where a field is empty)."""
    from zhongdu.coverage import Stations

    def column(name: str) -> Any:
        return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=np.float64)

    return Stations.from_columns(
        station_id=[r["station_id"] for r in rows],
        sector_id=[r.get("sector_id") or "" for r in rows],
        lon=column("lon"),
        lat=column("lat"),
        height_m=column("height_m"),
        eirp_dbm=column("eirp_dbm"),
        frequency_mhz=column("frequency_mhz"),
        bandwidth_mhz=column("bandwidth_mhz"),
        azimuth_deg=column("azimuth_deg"),
        beamwidth_deg=column("beamwidth_deg"),
        radius_m=column("radius_m"),
        extra={"cost": column("cost"), "kind": np.array([r.get("kind", "") for r in rows], dtype=str)},
    )


def too_large(state: ApiState, grid: Any, candidates: Any, model: str) -> str | None:
    """Why a scenario may not run (its estimated memory is above the limit), or None.

    The estimate counts every populated cell (`placement_footprint`'s default), so it holds
    whichever stations serve when the scenario runs, for either criterion and any operator."""
    from zhongdu.coverage._footprint import placement_footprint

    limit = state.settings.scenario_max_mb
    footprint = placement_footprint(
        grid, candidates, model=model, threshold_dbm=state.settings.rsrp_threshold_dbm
    )
    if footprint.megabytes <= limit:
        return None
    return (
        f"this scenario would need about {footprint.megabytes:,.0f} MB ({len(candidates):,} candidate rows, "
        f"up to {footprint.pairs:,} site-block and site-cell pairs); the limit is {limit:,} MB "
        "(ZHONGDU_SCENARIO_MAX_MB): send fewer candidates or smaller radius_m, or split it"
    )


def compute_scenario(state: ApiState, request: dict[str, Any]) -> dict[str, Any]:
    """The placement of the request's candidates on top of the stations serving now, computed in a
    child process (`ScenarioPool`); refused first if its memory estimate is above the limit."""
    from zhongdu.api._scenario_pool import plan_in_child

    live = state.live
    if live is None or not live.ready.wait(timeout=600) or live.grid is None or live.snapshot is None:
        raise RuntimeError(
            live.error if live is not None and live.error else "live coverage is not available"
        )
    rows = request["candidates"]
    candidates = candidate_stations(rows)
    model = request.get("model") or live.model
    refusal = too_large(state, live.grid, candidates, model)
    if refusal is not None:
        raise ValueError(refusal)
    target, budget, max_cost = request.get("target_share"), request.get("budget"), request.get("max_cost")
    if target is None and budget is None and max_cost is None:
        budget = len({r["station_id"] for r in rows})  # no goal: rank every candidate site
    options = dict(
        model=model,
        threshold_dbm=state.settings.rsrp_threshold_dbm,
        target=target,
        budget=budget,
        max_cost=max_cost,
        criterion=request.get("criterion") or "outdoor",
        operator=request.get("operator"),
    )
    out: dict[str, Any] = state.scenario_runner.compute(
        plan_in_child, live.grid, live.serving_stations(), candidates, options
    )
    state.metrics.scenario_peak_mb.set(out["worker_peak_mb"])
    out.update(
        method="celf-greedy",
        model=model,
        criterion=request.get("criterion") or "outdoor",
        operator=request.get("operator") or "any",
        base="stations serving at " + live.snapshot.computed_at.isoformat(),
    )
    return out


@router.post(
    "",
    response_model=ScenarioCreatedOut,
    status_code=202,
    responses={422: {"model": ErrorOut, "description": "invalid, or above the scenario memory limit"}},
    summary="Request a placement scenario (planner)",
)
def create_scenario(
    state: StateDep, conn: ConnDep, principal: PlannerDep, scenario: ScenarioIn
) -> dict[str, Any]:
    """Queue a placement of the candidate sites; poll `GET /v1/scenarios/{id}` for the result.

    Refused with 422 when its estimated memory is above `ZHONGDU_SCENARIO_MAX_MB`."""
    scenario_id = f"sc_{secrets.token_hex(6)}"
    request = scenario.model_dump(mode="json")
    live = state.live
    if live is not None and live.grid is not None:  # before the grid loads, the worker checks
        refusal = too_large(
            state, live.grid, candidate_stations(request["candidates"]), scenario.model or live.model
        )
        if refusal is not None:
            state.metrics.scenarios_refused.inc()
            raise HTTPException(422, refusal)
    storage.api.insert_scenario(
        conn, scenario_id=scenario_id, created_by=principal.name, name=scenario.name, request=request
    )
    conn.commit()  # visible before the worker looks for it
    state.scenario_runner.submit(run_scenario, state, scenario_id, request)
    return {"scenario_id": scenario_id, "status": "pending", "href": f"/v1/scenarios/{scenario_id}"}


@router.get("", response_model=ScenarioListOut, summary="Scenarios, newest first")
def list_scenarios(
    conn: ConnDep, _caller: CurrentRole, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    return {
        "items": storage.api.list_scenarios(conn, limit=limit, offset=offset),
        "total": storage.api.count_scenarios(conn),
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/{scenario_id}",
    response_model=ScenarioOut,
    responses={404: {"model": ErrorOut, "description": "no such scenario"}},
    summary="One scenario",
)
def get_scenario(
    conn: ConnDep, _caller: CurrentRole, scenario_id: Annotated[str, Path(pattern=SCENARIO_ID)]
) -> dict[str, Any]:
    row = storage.api.get_scenario(conn, scenario_id)
    if row is None:
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    return row
