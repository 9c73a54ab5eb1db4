"""Response models of the operations page's routes (`_routes_ops`), with OpenAPI examples."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from zhongdu.api._schemas import _examples


class DistrictPropertiesOut(BaseModel):
    district: str
    name_en: str
    code: str
    population: int
    environment: Literal["urban", "suburban", "rural"]
    area_km2: float


class DistrictGeometryOut(BaseModel):
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]


class DistrictFeatureOut(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: DistrictGeometryOut
    properties: DistrictPropertiesOut


class DistrictCollectionOut(BaseModel):
    model_config = _examples(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": "66000010",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[120.68608, 24.13949], [120.68, 24.14], [120.68608, 24.13949]]],
                    },
                    "properties": {
                        "district": "中區",
                        "name_en": "Central",
                        "code": "66000010",
                        "population": 18011,
                        "environment": "urban",
                        "area_km2": 0.944,
                    },
                }
            ],
            "simplified_m": 30.0,
        }
    )
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[DistrictFeatureOut]
    simplified_m: float


class SitesOut(BaseModel):
    model_config = _examples(
        {
            "count": 2,
            "ids": ["bs-0001", "bs-0002"],
            "lon": [120.64, 120.65],
            "lat": [24.17, 24.16],
            "sectors": [3, 3],
            "statuses": ["unknown", "up", "degraded", "down", "silent"],
            "status": [1, 3],
            "since": [1795680000.0, 1795683600.0],
            "computed_at": "2026-11-26T08:00:00+00:00",
        }
    )
    count: int
    ids: list[str]
    lon: list[float]
    lat: list[float]
    sectors: list[int]
    statuses: list[str]
    status: list[int]
    since: list[float | None] | None = Field(
        None, description="per site, since when (Unix seconds) it holds its status; null: never reported"
    )
    computed_at: datetime


class IngestHealthOut(BaseModel):
    model_config = _examples(
        {
            "available": True,
            "source": "http://127.0.0.1:9108/metrics",
            "detail": None,
            "messages_per_s": 812.5,
            "committed_per_s": 810.0,
            "received": 120000,
            "received_by_kind": {"park": 20000, "bs": 100000},
            "committed": 119990,
            "rejected": {"bad_json": 3},
            "rejected_total": 3,
            "lag_mean_s": 0.08,
            "lag_p95_s": 0.25,
            "queue_depth": 12,
            "db_errors": 0,
            "broker_connected": 1,
            "duplicates": 40,
            "conflicting_values": 0,
        }
    )
    available: bool
    source: str
    detail: str | None
    messages_per_s: float | None = None
    committed_per_s: float | None = None
    received: float | None = None
    received_by_kind: dict[str, float] | None = None
    committed: float | None = None
    rejected: dict[str, float] | None = None
    rejected_total: float | None = None
    lag_mean_s: float | None = None
    lag_p95_s: float | None = None
    queue_depth: float | None = None
    db_errors: float | None = None
    broker_connected: float | None = None
    duplicates: float | None = None  # rows absorbed as identical replays
    conflicting_values: float | None = None  # readings kept as conflicting_value rejections


class ParkSeriesOut(BaseModel):
    kind: str
    metric: str
    unit: str | None
    devices: int
    latest: float
    latest_at: datetime
    points: list[tuple[datetime, float]]


class ParkTrendsOut(BaseModel):
    model_config = _examples(
        {
            "from": "2026-11-26T07:00:00+00:00",
            "bucket_s": 60,
            "items": [
                {
                    "kind": "air",
                    "metric": "pm2_5",
                    "unit": "ug/m3",
                    "devices": 4,
                    "latest": 12.5,
                    "latest_at": "2026-11-26T07:59:00+00:00",
                    "points": [["2026-11-26T07:58:00+00:00", 12.1], ["2026-11-26T07:59:00+00:00", 12.5]],
                }
            ],
        }
    )
    from_: datetime = Field(alias="from")
    bucket_s: int
    items: list[ParkSeriesOut]


class CoverageIndicatorOut(BaseModel):
    plan_id: str
    id: str
    name_zh: str
    name_en: str
    targets: dict[str, float]


class ModelledPointOut(BaseModel):
    date: str
    share: float
    stations: int | None


class CriterionPointOut(BaseModel):
    date: str = Field(description="an NCC release date (YYYY-MM-DD)")
    share: float = Field(description="modelled share of the population covered under the criterion, 0-1")


class LivePointOut(BaseModel):
    time: datetime
    share: float
    trigger: str
    model: str


class CoverageSeriesOut(BaseModel):
    model_config = _examples(
        {
            "indicator": {
                "plan_id": "taichung-104-107",
                "id": "B7-2",
                "name_zh": "4G 涵蓋率",
                "name_en": "4G coverage",
                "targets": {"2015": 0.7, "2016": 0.8, "2017": 0.9, "2018": 0.95},
            },
            "modelled": [{"date": "2022-11-30", "share": 0.99999, "stations": 15788}],
            "modelled_by_criterion": {
                "outdoor": [{"date": "2018-12-31", "share": 0.99997}],
                "indoor": [{"date": "2018-12-31", "share": 0.9939}],
                "capacity": [{"date": "2018-12-31", "share": 0.9995}],
                "indoor_every_major": [{"date": "2018-12-31", "share": 0.9006}],
            },
            "live": [
                {"time": "2026-11-26T08:00:00+00:00", "share": 0.9991, "trigger": "schedule", "model": "hata"}
            ],
        }
    )
    indicator: CoverageIndicatorOut | None
    modelled: list[ModelledPointOut] = Field(
        description="the outdoor criterion's modelled series (the API's default), with station counts"
    )
    modelled_by_criterion: dict[str, list[CriterionPointOut]] = Field(
        description="the modelled series of every criterion the indicator is rebuilt for (outdoor, indoor, "
        "capacity, indoor_every_major: SERIES_CRITERIA), each equal to "
        "`modelled_indicator_series(criterion)`; empty when the shipped series is missing"
    )
    live: list[LivePointOut]
