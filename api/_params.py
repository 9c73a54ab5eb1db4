"""Shared query-parameter rules: time ranges with limits, and 422s that say how to fix the request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import HTTPException, Query

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def unprocessable(message: str) -> NoReturn:
    raise HTTPException(status_code=422, detail=message)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def time_range(
    start: datetime | None,
    end: datetime | None,
    *,
    default_span: timedelta,
    max_span: timedelta,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """[start, end) from optional bounds (naive times are UTC); 422 when reversed or too long."""
    now = now or datetime.now(UTC)
    end_ = _aware(end) if end is not None else now
    if not EARLIEST <= end_ <= LATEST:
        unprocessable(
            f"`to` must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}, got {end_.isoformat()}"
        )
    start_ = _aware(start) if start is not None else end_ - default_span
    if not EARLIEST <= start_ <= LATEST:
        unprocessable(
            f"`from` must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}, got {start_.isoformat()}"
        )
    if start_ >= end_:
        unprocessable(f"`from` ({start_.isoformat()}) must be before `to` ({end_.isoformat()})")
    if end_ - start_ > max_span:
        unprocessable(
            f"time range of {end_ - start_} exceeds the maximum of {max_span} for this query; "
            "narrow it or use a coarser bucket"
        )
    return start_, end_


Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]
