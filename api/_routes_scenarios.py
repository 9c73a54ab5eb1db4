"""Placement scenarios: planners post candidate sites (a list, an uploaded file's sites or the
server's city-wide lattice) and a goal; a child process runs the placement
(`zhongdu.coverage.plan`, CELF greedy) on the live layout and the result is stored, named, compared
and exported.

A scenario whose estimated memory is above the limit is refused before it is queued."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from zhongdu import storage
from zhongdu.api import _candidate_files as files
from zhongdu.api._deps import ApiState, ConnDep, CurrentRole, PlannerDep, StateDep
from zhongdu.api._params import Limit, Offset
from zhongdu.api._schemas import (
    CandidatesUploadOut,
    ErrorOut,
    ScenarioCompareOut,
    ScenarioCreatedOut,
    ScenarioIn,
    ScenarioListOut,
    ScenarioOut,
    ScenarioPatchIn,
    ScenarioSummaryOut,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/scenarios", tags=["scenarios"])
SCENARIO_ID = r"^sc_[0-9a-f]{12}$"


def run_scenario(state: ApiState, scenario_id: str, request: dict[str, Any]) -> None:
    """Run one scenario to `done` or `failed`; never raises (it runs on a worker thread)."""
    try:
        with state.pool.connection() as conn:
            storage.queries.update_scenario(conn, scenario_id, status="running")
        result = compute_scenario(state, request)
    except Exception as exc:
        log.info("scenario %s failed: %s", scenario_id, exc)
        try:
            with state.pool.connection() as conn:
                storage.queries.update_scenario(
                    conn, scenario_id, status="failed", error=f"{type(exc).__name__}: {exc}"
                )
        except Exception:
            log.exception("could not record the failure of scenario %s", scenario_id)
        return
    with state.pool.connection() as conn:
        storage.queries.update_scenario(conn, scenario_id, status="done", result=result)


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
    from zhongdu.api._scenario_pool import lattice_in_child, plan_in_child

    live = state.live
    if live is None or not live.ready.wait(timeout=600) or live.grid is None or live.snapshot is None:
        raise RuntimeError(
            live.error if live is not None and live.error else "live coverage is not available"
        )
    model = request.get("model") or live.model
    criterion = request.get("criterion") or "outdoor"
    serving = live.serving_stations()
    source = request.get("candidate_source")
    if source is not None:
        unknown = sorted(set(source.get("districts") or ()) - set(live.grid.districts))
        if unknown:
            raise ValueError(f"unknown district(s) {unknown}")
        lattice = dict(
            source,
            model=model,
            threshold_dbm=state.settings.rsrp_threshold_dbm,
            criterion=criterion,
            operator=request.get("operator"),
        )
        rows = state.scenario_runner.compute(lattice_in_child, live.grid, serving, lattice)
    else:
        rows = request["candidates"]
    candidates = candidate_stations(rows)
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
        criterion=criterion,
        operator=request.get("operator"),
    )
    out: dict[str, Any] = state.scenario_runner.compute(
        plan_in_child, live.grid, serving, candidates, options
    )
    state.metrics.scenario_peak_mb.set(out["worker_peak_mb"])
    out["picks"] = locate_picks(live.grid, out["picks"], rows)
    out.update(
        method="celf-greedy",
        model=model,
        criterion=criterion,
        operator=request.get("operator") or "any",
        candidate_sites=len({r["station_id"] for r in rows}),
        base="stations serving at " + live.snapshot.computed_at.isoformat(),
    )
    return out


def locate_picks(grid: Any, picks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pick with its site's coordinates, name, height and district (of the grid cell under it,
    else of the district boundary it lies in), so a result can be mapped and exported alone."""
    import h3

    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["station_id"], row)
    out = []
    for pick in picks:
        row = first[pick["station_id"]]
        out.append(
            dict(
                pick,
                lat=float(row["lat"]),
                lng=float(row["lon"]),
                name=row.get("name"),
                height=float(row.get("height_m") or 30.0),
                radius_m=row.get("radius_m"),
            )
        )
    if not out:
        return out
    cells = np.array(
        [h3.api.basic_int.latlng_to_cell(p["lat"], p["lng"], grid.resolution) for p in out], dtype=np.uint64
    )
    found = np.flatnonzero(np.isin(grid.cells, cells))  # one pass over the grid, not one per pick
    district_of = {int(grid.cells[i]): grid.districts[int(grid.district_index[i])] for i in found}
    for pick, cell in zip(out, cells.tolist(), strict=True):
        pick["district"] = district_of.get(int(cell)) or _boundary_district(pick["lng"], pick["lat"])
    return out


@lru_cache(maxsize=1)
def _district_shapes() -> Any:
    from zhongdu.coverage._grid_build import read_source_geojson, source_dir_or_default

    return read_source_geojson(source_dir_or_default(None), "taichung_districts.geojson")


def _boundary_district(lng: float, lat: float) -> str:
    """The district whose boundary holds the point ("" outside the city or without source data)."""
    try:
        import shapely

        shapes = _district_shapes()
        inside = shapes.geometry.contains(shapely.Point(lng, lat))
        names = shapes.loc[inside, "name_zh"]
        return str(names.iloc[0]) if len(names) else ""
    except Exception:  # a nicety: a missing source file must not fail a finished placement
        return ""


def _checked(state: ApiState, scenario: ScenarioIn, request: dict[str, Any]) -> None:
    """Refuse now what the worker would refuse later, when the live grid is already loaded."""
    live = state.live
    if live is None or live.grid is None:  # before the grid loads, the worker checks
        return
    source = scenario.candidate_source
    if source is not None:
        unknown = sorted(set(source.districts or ()) - set(live.grid.districts))
        if unknown:
            raise HTTPException(
                422, f"unknown district(s) {unknown}; the city's are {sorted(live.grid.districts)}"
            )
        return
    refusal = too_large(
        state, live.grid, candidate_stations(request["candidates"]), scenario.model or live.model
    )
    if refusal is not None:
        state.metrics.scenarios_refused.inc()
        raise HTTPException(422, refusal)


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
    """Queue a placement of the candidate sites (listed, or `candidate_source` for the city-wide
    lattice); poll `GET /v1/scenarios/{id}` for the result.

    Refused with 422 when its estimated memory is above `ZHONGDU_SCENARIO_MAX_MB`."""
    scenario_id = f"sc_{secrets.token_hex(6)}"
    request = scenario.model_dump(mode="json", exclude_none=True)
    _checked(state, scenario, request)
    storage.queries.insert_scenario(
        conn,
        scenario_id=scenario_id,
        created_by=principal.name,
        name=scenario.name,
        note=scenario.note,
        request=request,
    )
    conn.commit()  # visible before the worker looks for it
    state.scenario_runner.submit(run_scenario, state, scenario_id, request)
    return {"scenario_id": scenario_id, "status": "pending", "href": f"/v1/scenarios/{scenario_id}"}


@router.post(
    "/candidates",
    response_model=CandidatesUploadOut,
    responses={
        413: {"model": ErrorOut, "description": "over the size limit"},
        422: {"model": ErrorOut, "description": "every bad line or feature, by number and reason"},
    },
    summary="Check a candidate file (CSV or GeoJSON of public buildings and land) (planner)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "id,name,lat,lng,cost\nPB-001,北屯區公所,24.1826,120.6862,1\n",
                },
                "application/geo+json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def upload_candidates(
    request: Request,
    state: StateDep,
    _principal: PlannerDep,
    format: Annotated[
        Literal["auto", "csv", "geojson"], Query(description="auto: GeoJSON if it starts with {")
    ] = "auto",
) -> Any:
    """The file's sites, checked (every bad line is named, and nothing is kept), and the same sites
    as sector rows to post as a scenario's `candidates`. Stores nothing."""
    body = await request.body()
    if len(body) > files.MAX_BYTES:
        state.metrics.candidate_files.labels("refused").inc()
        raise HTTPException(413, f"the file has {len(body):,} bytes; the limit is {files.MAX_BYTES:,}")
    try:
        fmt, sites = files.parse(body, format)
    except files.CandidateFileError as exc:
        state.metrics.candidate_files.labels("refused").inc()
        status = 413 if exc.code == "too_big" else 422
        return JSONResponse({"detail": exc.errors, "message": str(exc), "code": exc.code}, status_code=status)
    state.metrics.candidate_files.labels("accepted").inc()
    return {"format": fmt, "sites": [s.to_dict() for s in sites], "candidates": files.sector_rows(sites)}


@router.get(
    "", response_model=ScenarioListOut, summary="Scenarios, newest first, with their names and outcomes"
)
def list_scenarios(
    conn: ConnDep, _caller: CurrentRole, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    return {
        "items": storage.queries.list_scenarios(conn, limit=limit, offset=offset),
        "total": storage.queries.count_scenarios(conn),
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/compare",
    response_model=ScenarioCompareOut,
    responses={404: {"model": ErrorOut, "description": "no such scenario"}, 422: {"model": ErrorOut}},
    summary="Two or three scenarios side by side",
)
def compare_scenarios(
    conn: ConnDep,
    _caller: CurrentRole,
    ids: Annotated[
        str,
        Query(
            description="2 or 3 scenario ids, comma-separated", examples=["sc_5f2c8e1a9b7d,sc_0a1b2c3d4e5f"]
        ),
    ],
) -> dict[str, Any]:
    """Picks count, cost, people added, shares before and after, criterion and the picks of each."""
    import re

    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not 2 <= len(wanted) <= 3 or len(set(wanted)) != len(wanted):
        raise HTTPException(422, f"compare 2 or 3 different scenarios; got {len(wanted)} id(s)")
    bad = [i for i in wanted if not re.match(SCENARIO_ID, i)]
    if bad:
        raise HTTPException(422, f"not scenario ids: {bad}")
    rows = storage.queries.get_scenarios(conn, wanted)
    missing = sorted(set(wanted) - {r["scenario_id"] for r in rows})
    if missing:
        raise HTTPException(404, f"no scenario {missing}")
    from zhongdu.api._scenario_export import picks as located

    items = []
    for row in rows:
        # coordinates from the request's candidates where a result stored before picks carried them
        where = {p["id"]: p for p in located(row)}
        picks = [
            dict(p, lat=where[p["station_id"]]["lat"], lng=where[p["station_id"]]["lng"])
            for p in (row["result"] or {}).get("picks", [])
        ]
        items.append({k: v for k, v in row.items() if k not in ("request", "result")} | {"picks": picks})
    return {"items": items}


ScenarioId = Annotated[str, Path(pattern=SCENARIO_ID)]


@router.get(
    "/{scenario_id}",
    response_model=ScenarioOut,
    responses={404: {"model": ErrorOut, "description": "no such scenario"}},
    summary="One scenario",
)
def get_scenario(conn: ConnDep, _caller: CurrentRole, scenario_id: ScenarioId) -> dict[str, Any]:
    row = storage.queries.get_scenario(conn, scenario_id)
    if row is None:
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    return row


@router.patch(
    "/{scenario_id}",
    response_model=ScenarioSummaryOut,
    responses={404: {"model": ErrorOut, "description": "no such scenario"}},
    summary="Rename a scenario, or set its note (planner)",
)
def rename_scenario(
    conn: ConnDep, _principal: PlannerDep, scenario_id: ScenarioId, patch: ScenarioPatchIn
) -> dict[str, Any]:
    if "name" not in patch.model_fields_set and "note" not in patch.model_fields_set:
        raise HTTPException(422, "give a new `name`, a `note`, or both")
    if "name" in patch.model_fields_set and patch.name is None:
        raise HTTPException(422, "a scenario keeps a name: `name` cannot be null")
    row = storage.queries.rename_scenario(
        conn, scenario_id, name=patch.name, note=patch.note, set_note="note" in patch.model_fields_set
    )
    if row is None:
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    conn.commit()  # now: the dependency commits after the answer is sent, and the next read can come first
    return row


@router.delete(
    "/{scenario_id}",
    status_code=204,
    responses={404: {"model": ErrorOut, "description": "no such scenario"}},
    summary="Delete a scenario (planner)",
)
def delete_scenario(conn: ConnDep, _principal: PlannerDep, scenario_id: ScenarioId) -> Response:
    if not storage.queries.delete_scenario(conn, scenario_id):
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    conn.commit()  # as for a rename: gone for the client's next read
    return Response(status_code=204)


@router.get(
    "/{scenario_id}/export",
    responses={
        200: {
            "content": {"text/csv": {}, "application/geo+json": {}, "application/pdf": {}},
            "description": "the picks as CSV, GeoJSON, or a one-page A4 PDF",
        },
        404: {"model": ErrorOut, "description": "no such scenario"},
        409: {"model": ErrorOut, "description": "the scenario has not finished"},
    },
    summary="Export a scenario's picks (CSV, GeoJSON, one-page PDF)",
)
def export_scenario(
    conn: ConnDep,
    _caller: CurrentRole,
    scenario_id: ScenarioId,
    format: Annotated[Literal["csv", "geojson", "pdf"], Query(description="csv, geojson or pdf")] = "csv",
    bom: Annotated[bool, Query(description="CSV: start with a UTF-8 BOM so Excel reads the Chinese")] = False,
    lang: Annotated[Literal["zh", "en"], Query(description="PDF: the page's language")] = "zh",
) -> Response:
    """The exported CSV and GeoJSON are candidate files: uploaded again they give the same picks."""
    from zhongdu.api import _scenario_export as export

    row = storage.queries.get_scenario(conn, scenario_id)
    if row is None:
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    if row["status"] != "done":
        raise HTTPException(409, f"scenario {scenario_id} is {row['status']}; export it once it is done")
    stem = export.file_stem(row)
    if format == "csv":
        body, media = export.to_csv(row, bom=bom), "text/csv; charset=utf-8"
    elif format == "geojson":
        body, media = export.to_geojson(row), "application/geo+json"
    else:
        body, media = export.to_pdf(row, lang=lang), "application/pdf"
    ext = "csv" if format == "csv" else format
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{stem}.{ext}"'},
    )
