"""Request (`*In`) and response (`*Out`) models of the API, kept apart, with OpenAPI examples.

Inputs are strict where the database has rules (id patterns, finite numbers, no NUL bytes), so bad
input gets a 422 naming the field instead of a database error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

IdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
LongText = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Role = Literal["viewer", "planner", "operator", "admin"]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class InModel(BaseModel):
    """Inputs: unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- health --------------------------------------------------------------------------------


class CheckOut(BaseModel):
    ok: bool
    detail: str


class HealthOut(BaseModel):
    model_config = _examples(
        {
            "status": "ok",
            "checks": {
                "database": {"ok": True, "detail": "SELECT 1 in 0.4 ms"},
                "broker": {"ok": True, "detail": "MQTT CONNACK from 127.0.0.1:1883"},
                "coverage": {"ok": True, "detail": "live snapshot 2026-11-26T08:00:00+00:00"},
            },
        }
    )
    status: Literal["ok", "degraded"]
    checks: dict[str, CheckOut]


# --- coverage ------------------------------------------------------------------------------


class DistrictShareOut(BaseModel):
    district: str
    population: float
    covered: float
    share: float


class CoverageOut(BaseModel):
    model_config = _examples(
        {
            "model": "hata",
            "threshold_dbm": -110.0,
            "computed_at": "2026-11-26T08:00:00+00:00",
            "trigger": "status-change",
            "stations_serving": 15790,
            "stations_total": 15788,
            "population_total": 2_850_000.0,
            "population_covered": 2_790_000.0,
            "share": 0.979,
            "districts": [
                {"district": "西屯區", "population": 232_000.0, "covered": 231_500.0, "share": 0.998}
            ],
        }
    )
    model: str
    threshold_dbm: float | None
    computed_at: datetime
    trigger: str = Field(description="what caused this computation: schedule or status-change")
    stations_serving: int
    stations_total: int
    population_total: float
    population_covered: float
    share: float
    districts: list[DistrictShareOut]
    criterion: str | None = Field(default=None, description="absent for the default (outdoor)")
    operator: str | None = Field(default=None, description="absent for the default (any operator)")
    by_operator: dict[str, dict[str, float]] | None = Field(default=None, description="operator=each")
    every_major: dict[str, float] | None = Field(
        default=None, description="operator=each: covered by every major operator (CHT, TWM, FET)"
    )


class CellPropertiesOut(BaseModel):
    h3: str
    district: str
    population: float
    best_rsrp_dbm: float | None = Field(
        description="None for the disk model, where nothing reaches, and for merged (coarser) cells"
    )
    covered: bool = Field(description="a merged (coarser) cell: at least half its grid cells covered")
    cells: int = Field(1, description="grid cells in this cell: 1 unless a coarser `resolution` merged them")
    covered_cells: int = Field(description="of `cells`, how many are covered")


class PolygonOut(BaseModel):
    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[list[float]]]


class CellFeatureOut(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PolygonOut
    properties: CellPropertiesOut


class CellCollectionOut(BaseModel):
    model_config = _examples(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": "8a4b9f4e5a7ffff",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[120.64, 24.16], [120.641, 24.161], [120.64, 24.16]]],
                    },
                    "properties": {
                        "h3": "8a4b9f4e5a7ffff",
                        "district": "西屯區",
                        "population": 41.2,
                        "best_rsrp_dbm": -87.5,
                        "covered": True,
                        "cells": 1,
                        "covered_cells": 1,
                    },
                }
            ],
            "computed_at": "2026-11-26T08:00:00+00:00",
            "model": "hata",
            "cells": 1,
            "resolution": 10,
            "grid_resolution": 10,
            "source_cells": 1,
            "covered_cells": 1,
        }
    )
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[CellFeatureOut]
    computed_at: datetime
    model: str
    cells: int = Field(description="features in this answer")
    resolution: int = Field(description="H3 resolution of the features")
    grid_resolution: int = Field(description="H3 resolution of the population grid")
    source_cells: int = Field(description="grid cells of the area (more than `cells` when merged)")
    covered_cells: int = Field(description="of `source_cells`, how many are covered")


class CellColumnsOut(BaseModel):
    """`GET /v1/coverage/cells?format=h3`: the cells as columns, one value per cell in each."""

    model_config = _examples(
        {
            "format": "h3",
            "computed_at": "2026-11-26T08:00:00+00:00",
            "model": "hata",
            "cells": 3,
            "resolution": 11,
            "grid_resolution": 11,
            "source_cells": 3,
            "covered_cells": 2,
            "h3": ["8b4b9f4e5a00fff", "8b4b9f4e5a01fff", "8b4b9f4e5a02fff"],
            "covered": "110",
            "population": [5.9, 6.1, 0.0],
            "districts": ["西屯區"],
            "district": [0, 0, 0],
            "best_rsrp_dbm": [-87.5, -104.2, None],
        }
    )
    format: Literal["h3"] = "h3"
    computed_at: datetime
    model: str
    cells: int = Field(description="cells in this answer (the length of every column)")
    resolution: int = Field(description="H3 resolution of the cells")
    grid_resolution: int = Field(description="H3 resolution of the population grid")
    source_cells: int = Field(description="grid cells of the area (more than `cells` when merged)")
    covered_cells: int = Field(description="of `source_cells`, how many are covered")
    h3: list[str] = Field(description="H3 cell ids (hex), ascending")
    covered: str = Field(
        description="one character per cell: 1 covered, 0 not (merged cells: at least half their cells)"
    )
    population: list[float] = Field(description="residents per cell (2 decimals)")
    districts: list[str] = Field(description="the districts of these cells (sorted)")
    district: list[int] = Field(description="each cell's district: an index into `districts`")
    cell_counts: list[int] | None = Field(None, description="merged cells only: grid cells in each")
    covered_counts: list[int] | None = Field(
        None, description="merged cells only: covered grid cells in each"
    )
    best_rsrp_dbm: list[float | None] | None = Field(
        None, description="with `rsrp=true`: best RSRP per cell (null: not covered, merged cells or disk)"
    )


class SnapshotOut(BaseModel):
    time: datetime
    model: str
    trigger: str
    population_total: float
    population_covered: float
    share: float
    stations_serving: int | None
    districts: list[DistrictShareOut]


class SnapshotListOut(BaseModel):
    model_config = _examples(
        {"items": [], "from": "2026-11-25T08:00:00Z", "to": "2026-11-26T08:00:00Z", "limit": 1000}
    )
    items: list[SnapshotOut]
    from_: datetime = Field(alias="from")
    to: datetime
    limit: int


# --- stations and devices ------------------------------------------------------------------


class StationOut(BaseModel):
    station_id: str
    name: str | None
    district: str | None
    lon: float | None
    lat: float | None
    auto_registered: bool
    registered_at: datetime
    status: str | None = Field(description="up, degraded or down; None if never heard")
    connection: str | None
    status_observed_at: datetime | None


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class StationListOut(Page):
    items: list[StationOut]


class SectorOut(BaseModel):
    sector_id: str
    lon: float
    lat: float
    height_m: float
    eirp_dbm: float
    frequency_mhz: float
    bandwidth_mhz: float
    azimuth_deg: float | None
    beamwidth_deg: float | None
    radius_m: float | None


class SectorLoadOut(BaseModel):
    sector_id: str
    time: datetime
    status: str
    prb_utilisation: float | None
    active_users: int | None
    tx_power_dbm: float | None


class StationDetailOut(StationOut):
    metadata: dict[str, Any]
    sectors: list[SectorOut]
    latest_load: list[SectorLoadOut]


class StationBucketOut(BaseModel):
    bucket: datetime
    sector_id: str
    prb_min: float | None
    prb_avg: float | None
    prb_max: float | None
    users_min: float | None
    users_avg: float | None
    users_max: float | None
    n: int


class StationHistoryOut(BaseModel):
    station_id: str
    bucket: Literal["1m", "1h"]
    from_: datetime = Field(alias="from")
    to: datetime
    items: list[StationBucketOut]


class DeviceOut(BaseModel):
    device_id: str
    kind: str
    name: str | None
    lon: float | None
    lat: float | None
    auto_registered: bool
    registered_at: datetime
    status: str | None = None
    connection: str | None = None
    status_observed_at: datetime | None = None


class DeviceCreatedOut(DeviceOut):
    metadata: dict[str, Any]


class DeviceListOut(Page):
    items: list[DeviceOut]


class LatestReadingOut(BaseModel):
    metric: str
    time: datetime
    value: float | None
    unit: str | None
    value_text: str | None


class DeviceDetailOut(DeviceOut):
    metadata: dict[str, Any]
    latest: list[LatestReadingOut]


class DeviceIn(InModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "device_id": "air-017",
                    "kind": "air",
                    "name": "水湳 north gate",
                    "lon": 120.6452,
                    "lat": 24.1745,
                    "metadata": {"vendor": "demo"},
                }
            ]
        },
    )
    device_id: IdStr
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        description="air, weather, noise, meter, solar, ev_charger, security, ..."
    )
    name: Text | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    metadata: dict[
        Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")],
        LongText | float | bool | None,
    ] = Field(default_factory=dict, max_length=50)


class BucketOut(BaseModel):
    bucket: datetime
    min: float | None
    avg: float | None
    max: float | None
    n: int


class DeviceHistoryOut(BaseModel):
    device_id: str
    metric: str
    bucket: Literal["1m", "1h"]
    from_: datetime = Field(alias="from")
    to: datetime
    items: list[BucketOut]


# --- scenarios -----------------------------------------------------------------------------


class CandidateIn(InModel):
    """One sector of a candidate site (columns as the station CSV, plus cost and kind)."""

    station_id: IdStr
    sector_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = ""
    lon: float = Field(ge=119.0, le=122.5, description="Taichung and surroundings")
    lat: float = Field(ge=23.0, le=25.5)
    height_m: float = Field(30.0, gt=0, le=500)
    eirp_dbm: float = Field(58.0, ge=0, le=90)
    frequency_mhz: float = Field(1800.0, ge=150, le=6000)
    bandwidth_mhz: float = Field(20.0, ge=1.4, le=100)
    azimuth_deg: float | None = Field(None, ge=0, lt=360, description="None: omni")
    beamwidth_deg: float | None = Field(None, gt=0, le=360)
    radius_m: float | None = Field(None, gt=0, le=50_000, description="reach for the disk model")
    cost: float = Field(1.0, ge=0, le=1e12)
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] = "public_building"
    name: Text | None = Field(None, description="the site's name (e.g. a public building's), shown, exported")
    # The two columns `zhongdu plan candidates` writes beyond the station CSV, so its rows post as
    # they are; both are ignored, as by `zhongdu plan`: a proposal is assumed built.
    status: Literal["up", "down"] = Field("up", description="ignored: a candidate counts as built")
    uncovered_population: float | None = Field(
        None, ge=0, description="ignored: what `zhongdu plan candidates` found uncovered around the site"
    )


class LatticeSourceIn(InModel):
    """Candidates generated by the server: one tri-sector site per H3 lattice cell holding people the
    stations serving now miss, over the whole city or the chosen districts (`zhongdu plan candidates`)."""

    source: Literal["lattice"]
    resolution: int = Field(8, ge=5, le=9, description="H3 resolution of the lattice (8: ~0.7 km²)")
    limit: int = Field(200, ge=1, le=1500, description="keep the lattice cells with most uncovered people")
    districts: list[Text] | None = Field(
        None, max_length=29, description="count only these districts' uncovered people; default: the city"
    )
    min_population: float = Field(1.0, ge=0, le=1e6, description="uncovered people a lattice cell needs")


class ScenarioIn(InModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "公有建物 round 1",
                    "target_share": 0.99,
                    "model": "disk",
                    "candidates": [
                        {
                            "station_id": "cand-001",
                            "lon": 120.64,
                            "lat": 24.17,
                            "radius_m": 800,
                            "cost": 1.0,
                            "kind": "public_building",
                        }
                    ],
                },
                {
                    "name": "西屯 lattice",
                    "note": "resolution 8, indoor",
                    "budget": 10,
                    "criterion": "indoor",
                    "candidate_source": {
                        "source": "lattice",
                        "resolution": 8,
                        "limit": 300,
                        "districts": ["西屯區"],
                    },
                },
            ]
        },
    )
    name: Text
    note: LongText | None = Field(None, description="the planner's note, shown with the name")
    candidates: list[CandidateIn] | None = Field(
        None, min_length=1, max_length=5000, description="sector rows; or `candidate_source`"
    )
    candidate_source: LatticeSourceIn | None = Field(
        None, description="generate the candidates on the server instead of listing them"
    )
    candidate_origin: Literal["list", "cells", "upload", "drawn"] | None = Field(
        None, description="where a listed set of candidates came from (shown in lists and comparisons)"
    )
    target_share: float | None = Field(None, gt=0, le=1, description="stop once the city share reaches this")
    budget: int | None = Field(None, ge=1, le=5000, description="at most this many sites")
    max_cost: float | None = Field(None, gt=0, le=1e15, description="total cost bound (uses `cost`)")
    model: Literal["disk", "hata"] | None = Field(None, description="default: the server's coverage model")
    criterion: Literal["outdoor", "indoor"] = Field(
        "outdoor", description="plan for outdoor coverage or indoor (3GPP O2I building loss counted)"
    )
    operator: Annotated[str, StringConstraints(pattern=r"^(any|every_major|[A-Z]{2,5})$")] | None = Field(
        None,
        description="count only this operator's coverage (CHT, TWM, FET, ...), or each major operator's "
        "(every_major: new sites shared by the three); default any operator",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ScenarioIn:
        if (self.candidates is None) == (self.candidate_source is None):
            raise ValueError("give either `candidates` or `candidate_source` (the lattice), not both")
        return self

    @model_validator(mode="after")
    def _disk_needs_radius(self) -> ScenarioIn:
        model = self.model
        if model == "disk" and self.candidates is not None:
            missing = sorted({c.station_id for c in self.candidates if c.radius_m is None})
            if missing:
                raise ValueError(
                    f"the disk model needs radius_m on every candidate; missing on {missing[:5]}"
                )
        return self


class ScenarioPatchIn(InModel):
    model_config = _examples({"name": "公有建物 round 2", "note": "校舍與公園，成本依 113 年估價"})
    name: Text | None = None
    note: LongText | None = Field(None, description="null clears the note; absent leaves it")


class CandidateSiteOut(BaseModel):
    id: str
    name: str | None
    lat: float
    lng: float
    cost: float
    height: float
    kind: str
    line: int = Field(description="the file's line (CSV) or feature number (GeoJSON, from 1)")


class CandidatesUploadOut(BaseModel):
    format: Literal["csv", "geojson"]
    sites: list[CandidateSiteOut]
    candidates: list[dict[str, Any]] = Field(
        description="the sites as sector rows (three 65° sectors each), ready for `POST /v1/scenarios`"
    )


class ScenarioCreatedOut(BaseModel):
    model_config = _examples(
        {"scenario_id": "sc_5f2c8e1a9b7d", "status": "pending", "href": "/v1/scenarios/sc_5f2c8e1a9b7d"}
    )
    scenario_id: str
    status: str
    href: str


class ScenarioBaseOut(BaseModel):
    scenario_id: str
    created_at: datetime
    created_by: str | None
    name: str | None
    note: str | None = None
    status: Literal["pending", "running", "done", "failed"]
    error: str | None
    finished_at: datetime | None


class ScenarioSummaryOut(ScenarioBaseOut):
    criterion: str = Field(description="outdoor or indoor")
    operator: str = Field(description="any, every_major or one operator")
    source: str = Field(description="lattice, or where a listed set came from: list, cells, upload, drawn")
    picks_count: int | None
    total_cost: float | None
    people_added: float | None
    share_before: float | None
    share_after: float | None
    target: float | None


class ScenarioCompareItemOut(ScenarioSummaryOut):
    picks: list[dict[str, Any]] = Field(description="in order, with lat, lng, name, district, cost, gain")


class ScenarioCompareOut(BaseModel):
    items: list[ScenarioCompareItemOut]


class ScenarioOut(ScenarioBaseOut):
    model_config = _examples(
        {
            "scenario_id": "sc_5f2c8e1a9b7d",
            "created_at": "2026-11-26T08:00:00Z",
            "created_by": "planner-a",
            "name": "公有建物 round 1",
            "status": "done",
            "error": None,
            "finished_at": "2026-11-26T08:00:02Z",
            "request": {"name": "公有建物 round 1", "target_share": 0.99, "candidates": ["..."]},
            "result": {
                "method": "greedy",
                "share_before": 0.97,
                "share_after": 0.99,
                "target_reached": True,
                "picks": [{"station_id": "cand-001", "gain": 5000.0, "share": 0.99}],
            },
        }
    )
    request: dict[str, Any]
    result: dict[str, Any] | None


class ScenarioListOut(Page):
    items: list[ScenarioSummaryOut]


# --- indicators ----------------------------------------------------------------------------


class ActualOut(BaseModel):
    value: float = Field(description="fraction for ratios (0.8 = 80%), the count, or 1/0")
    numerator: float | None
    denominator: float | None
    source: Literal["recorded", "modelled", "live"]
    recorded_by: str | None
    recorded_at: datetime | None
    evidence: str | None
    entry_id: int | None = None
    components: dict[str, float] | None = None
    note: str | None = None
    corrects: int | None = Field(None, description="the entry this one corrects")
    computation: str | None = Field(None, description="name@version of the platform computation")


class IndicatorOut(BaseModel):
    plan_id: str
    id: str
    dimension: Literal["業務", "人力", "經費"]
    goal_zh: str | None
    goal_en: str | None
    name_zh: str
    name_en: str
    weight: float = Field(description="percent of the plan (all weights sum to 100)")
    formula_zh: str
    formula_en: str | None
    unit: str
    direction: Literal["higher", "lower"]
    kind: Literal["ratio", "count", "boolean"]
    targets: dict[str, float]
    year: int
    target: float | None
    actual: ActualOut | None
    attainment: float | None = Field(description="min(1, actual / target)")
    attained: bool | None
    status: Literal["attained", "behind", "at_risk", "on_track", "no_actual", "no_target"] = Field(
        description="behind: an actual short of its target; at_risk: the trend's projection is short"
    )
    projection: dict[str, Any] | None = Field(
        description="the year's value projected from earlier years' actuals (when it has none yet)"
    )
    amendment: dict[str, Any] | None = Field(description="the target amendment in force, if any")
    plan_target: float | None = Field(description="the plan's own target, before amendments")
    review: dict[str, Any] | None = Field(description="the yearly cycle's status of this indicator")
    frequency: str
    owner_agency_zh: str | None
    details: dict[str, Any]


class IndicatorListOut(BaseModel):
    model_config = _examples({"plan_id": "taichung-rdec-midterm-104-107", "year": 2018, "items": []})
    plan_id: str
    year: int
    items: list[IndicatorOut]


class DimensionScoreOut(BaseModel):
    dimension: str
    weight: float
    weight_scored: float
    score: float


class ScoreOut(BaseModel):
    model_config = _examples(
        {
            "plan_id": "taichung-rdec-midterm-104-107",
            "year": 2018,
            "score": 61.5,
            "max_score": 100.0,
            "weight_scored": 65.0,
            "attainment_of_reported": 94.6,
            "indicators_total": 15,
            "indicators_with_actual": 9,
            "indicators_attained": 7,
            "missing": ["B1-1"],
            "dimensions": [],
        }
    )
    plan_id: str | None
    year: int
    score: float = Field(description="Σ weight × attainment over indicators with an actual and a target")
    max_score: float
    weight_scored: float = Field(description="total weight of the indicators that have an actual")
    attainment_of_reported: float | None = Field(
        description="attainment (0-100) of the reported indicators only: a partial figure, not the score"
    )
    indicators_total: int
    indicators_with_actual: int
    indicators_attained: int
    missing: list[str]
    weight_missing: float = Field(description="weight of the indicators without an actual (they score 0)")
    complete: bool = Field(description="every indicator has an actual for the year")
    projected_score: float = Field(
        description="the score if indicators without an actual reach their trend's projection"
    )
    behind: list[str] = Field(description="indicators behind their target or projected to miss it")
    criterion_4g: str | None = Field(description="the 4G indicator's criterion this score uses")
    criterion_4g_recorded: str | None = Field(
        None, description="the criterion the commission scores on (ZHONGDU_INDICATOR_4G_CRITERION)"
    )
    summary_en: str
    summary_zh: str
    dimensions: list[DimensionScoreOut]


class ActualIn(InModel):
    """Provide what the indicator's kind needs: numerator and denominator (ratio), count, or achieved."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "year": 2016,
                    "numerator": 9,
                    "denominator": 12,
                    "evidence": "研考會 105 年度績效報告 p. 12",
                },
                {"year": 2016, "count": 4},
                {"year": 2016, "achieved": True},
            ]
        },
    )
    year: int = Field(ge=1990, le=2100)
    numerator: float | None = Field(None, ge=0, le=1e12)
    denominator: float | None = Field(None, gt=0, le=1e12)
    count: float | None = Field(None, ge=0, le=1e9)
    achieved: bool | None = None
    value: float | None = Field(
        None, ge=0, le=1e12, description="in the plan's unit: percent for a % indicator, the count, 1/0"
    )
    components: dict[str, float] | None = Field(
        None, description="B7-1 milestone -> 1/0, B6-1 part -> times done, M1-1 quota counts"
    )
    evidence: LongText | None = None
    note: LongText | None = None
    corrects: int | None = Field(None, ge=1, description="id of the entry this one corrects")


class ActualRecordOut(BaseModel):
    id: int
    plan_id: str
    indicator_id: str
    year: int
    numerator: float | None
    denominator: float | None
    value: float
    source: str
    recorded_by: str
    recorded_at: datetime
    evidence: str | None
    components: dict[str, float] | None = None
    note: str | None = None
    corrects: int | None = None
    computation: str | None = None


class ActualHistoryOut(BaseModel):
    plan_id: str
    indicator_id: str
    items: list[ActualRecordOut]


# --- keys ----------------------------------------------------------------------------------


class KeyIn(InModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "planner-a", "role": "planner"}]}
    )
    name: Text
    role: Role


class KeyOut(BaseModel):
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class KeyCreatedOut(KeyOut):
    model_config = _examples(
        {
            "key_id": "3f9a1c2b7d4e",
            "name": "planner-a",
            "role": "planner",
            "created_at": "2026-11-26T08:00:00Z",
            "revoked_at": None,
            "key": "zd_3f9a1c2b7d4e_" + "x" * 43,
        }
    )
    key: str = Field(description="the whole key; shown only now, store it safely")


class KeyListOut(BaseModel):
    items: list[KeyOut]


class ErrorOut(BaseModel):
    detail: Any
