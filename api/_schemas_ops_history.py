"""Response models of the outage effect, timeline and incident routes (`_routes_ops_history`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from zhongdu.api._schemas import _examples


class OutageSiteOut(BaseModel):
    station_id: str
    status: str
    since: datetime | None
    lon: float
    lat: float
    people: float | None  # None: beyond the per-site limit (the totals still count it)
    cells: int | None
    share_pp: float | None


class OutagesOut(BaseModel):
    model_config = _examples(
        {
            "computed_at": "2026-12-05T05:00:00+00:00",
            "criterion": "indoor",
            "operator": "every_major",
            "population_total": 2_850_000.0,
            "people": 412.0,
            "cells": 9,
            "share_pp": 0.0145,
            "outages": [
                {
                    "station_id": "bs-0001",
                    "status": "down",
                    "since": "2026-12-05T04:31:00+00:00",
                    "lon": 120.64,
                    "lat": 24.17,
                    "people": 412.0,
                    "cells": 9,
                    "share_pp": 0.0145,
                }
            ],
        }
    )
    computed_at: datetime
    criterion: str
    operator: str
    population_total: float
    people: float
    cells: int
    share_pp: float
    outages: list[OutageSiteOut]


class SharePointOut(BaseModel):
    time: datetime
    share: float
    population_covered: float
    sites_down: int


class ShareSeriesOut(BaseModel):
    criterion: str
    operator: str
    points: list[SharePointOut]


class IncidentOut(BaseModel):
    incident_id: int
    station_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    ongoing: bool
    criterion: str | None
    operator: str | None
    people_worst: float
    cells_worst: int
    lon: float | None
    lat: float | None


class IncidentsOut(BaseModel):
    model_config = _examples(
        {
            "since": "2026-12-04T05:00:00+00:00",
            "now": "2026-12-05T05:00:00+00:00",
            "items": [
                {
                    "incident_id": 7,
                    "station_id": "bs-0001",
                    "status": "down",
                    "started_at": "2026-12-05T04:31:00+00:00",
                    "ended_at": None,
                    "duration_s": 1740.0,
                    "ongoing": True,
                    "criterion": "indoor",
                    "operator": "every_major",
                    "people_worst": 412.0,
                    "cells_worst": 9,
                    "lon": 120.64,
                    "lat": 24.17,
                }
            ],
        }
    )
    since: datetime
    now: datetime
    items: list[IncidentOut]


class TimelineOut(BaseModel):
    model_config = _examples(
        {
            "from": "2026-12-05T00:00:00+00:00",
            "to": "2026-12-05T06:00:00+00:00",
            "series": [
                {
                    "criterion": "indoor",
                    "operator": "every_major",
                    "points": [
                        {
                            "time": "2026-12-05T04:31:05+00:00",
                            "share": 0.9006,
                            "population_covered": 2_566_000.0,
                            "sites_down": 1,
                        }
                    ],
                }
            ],
            "incidents": [],
        }
    )
    from_: datetime = Field(alias="from")
    to: datetime
    series: list[ShareSeriesOut]
    incidents: list[IncidentOut]
