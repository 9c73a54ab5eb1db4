"""Request and response models of the petition routes (OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 50_000


class PetitionIn(BaseModel):
    """One case, as a row of the import CSV (docs/petitions.md); checked row by row, never as a whole."""

    model_config = ConfigDict(extra="allow")
    case_id: Any = None
    received_at: Any = None
    category: Any = None
    lon: Any = None
    lat: Any = None
    district: Any = None
    village: Any = None
    status: Any = None
    closed_at: Any = None
    dispatched_at: Any = None
    description: Any = None


class PetitionBatchIn(BaseModel):
    cases: list[PetitionIn] = Field(..., max_length=MAX_BATCH, description=f"at most {MAX_BATCH} cases")
    synthetic: bool | None = Field(
        None, description="mark the batch synthetic (default: when every id starts SIM-)"
    )


class RejectionOut(BaseModel):
    row: int = Field(..., description="1-based position in the batch")
    case_id: str | None
    reason: str


class ImportOut(BaseModel):
    batch_id: int
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejections: list[RejectionOut]
    new_hotspots: list[dict[str, Any]] = Field(
        default_factory=list, description="cells that became significant hot spots with this import"
    )


class HotspotsOut(BaseModel):
    type: str = "FeatureCollection"
    features: list[dict[str, Any]]
    method: dict[str, Any]
    window: dict[str, datetime]
    category: str | None
    cases: int
    cases_outside_grid: int
    coarse_cases_left_out: int
    hot: int
    cold: int
    synthetic: bool


class EmergingOut(BaseModel):
    type: str = "FeatureCollection"
    features: list[dict[str, Any]]
    method: dict[str, Any]
    months: list[str]
    category: str | None
    counts: dict[str, int]
    synthetic: bool


class TrendsOut(BaseModel):
    category: str | None
    district: str | None
    months: list[str]
    series: list[dict[str, Any]]
    time_to_close: list[dict[str, Any]]
    breakpoints: list[dict[str, Any]]
    timezone: str
    synthetic: bool


class BreakpointIn(BaseModel):
    at: datetime
    kind: str = Field(..., pattern=r"^(category_change|policy|data)$")
    note: str = Field(..., min_length=1, max_length=500)
    category: str | None = Field(None, max_length=64)


class BreakpointOut(BaseModel):
    id: int
    at: datetime
    category: str | None
    kind: str
    note: str
    created_at: datetime


class CategoryOut(BaseModel):
    code: str
    name_zh: str | None
    name_en: str | None
    cases: int
    first: datetime | None
    last: datetime | None


class CategoriesOut(BaseModel):
    items: list[CategoryOut]
    synthetic: bool


class RejectOut(BaseModel):
    batch_id: int
    row_number: int
    case_id: str | None
    reason: str
    raw: dict[str, Any]
    at: datetime
    source: str


class RejectsOut(BaseModel):
    items: list[RejectOut]
