"""Checking petition rows (CSV, API batch, Open311) into columns ready to store; pure, no database.

Every row either becomes one complete case or one rejection with its reason: nothing is half kept.
Cases without coordinates are placed at their village's (else district's) population-weighted
centre and marked coarse, so they still count in the hotspot analysis at a coarser certainty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from zhongdu.petitions._categories import CLOSED_STATUSES, normalise_category, normalise_status
from zhongdu.petitions._places import Places

#: columns of the CSV (and fields of the API batch); the last ones are optional
COLUMNS: tuple[str, ...] = (
    "case_id",
    "received_at",
    "category",
    "lon",
    "lat",
    "district",
    "village",
    "status",
    "closed_at",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("dispatched_at", "description")
REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "received_at", "category", "status")
#: a naive time in a city's export is Taiwan time
TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")
#: Taichung's extent with a margin; a point outside is a wrong column or a typo
LON_RANGE = (120.3, 121.6)
LAT_RANGE = (23.9, 24.6)
_MAX_DESCRIPTION = 2000
#: 1999 began in 2011 (as 1999 臺中市民當家熱線); earlier dates are typos, not history
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    case_id: str
    received_at: datetime
    category: str
    lon: float
    lat: float
    coarse: bool
    h3_10: int
    district: str | None
    village: str | None
    status: str
    dispatched_at: datetime | None
    closed_at: datetime | None
    description: str | None


@dataclass(frozen=True)
class Rejection:
    row_number: int  # 1-based data row (the CSV header is row 0)
    case_id: str | None
    reason: str
    raw: dict[str, Any]


@dataclass
class Checked:
    cases: list[Case] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def parse_time(text: str | None, name: str) -> datetime | None:
    """ISO 8601 (a space or `/` also accepted); naive times are Taiwan time."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip().replace("/", "-")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=TAIPEI)
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError(f"{name} {value} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return parsed.astimezone(UTC)


def _coordinate(text: Any, name: str, bounds: tuple[float, float]) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {text!r}") from None
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} {value} is outside Taichung ({bounds[0]}..{bounds[1]})")
    return value


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    text = str(value).strip()
    if "\x00" in text:
        raise ValueError(f"{key} contains a NUL character")
    return text or None


def check_row(row: Mapping[str, Any], places: Places) -> Case:
    """One row as a Case; ValueError says what is wrong."""
    import h3

    case_id = _text(row, "case_id")
    if case_id is None or len(case_id) > 64:
        raise ValueError("case_id is required (1-64 characters)")
    received = parse_time(_text(row, "received_at"), "received_at")
    if received is None:
        raise ValueError("received_at is required")
    if received > datetime.now(UTC) + timedelta(days=1):
        raise ValueError(f"received_at {received.isoformat()} is in the future")
    category = normalise_category(_text(row, "category") or "")
    status = normalise_status(_text(row, "status") or "received")
    closed = parse_time(_text(row, "closed_at"), "closed_at")
    dispatched = parse_time(_text(row, "dispatched_at"), "dispatched_at")
    if status in CLOSED_STATUSES and closed is None:
        raise ValueError(f"status {status} needs closed_at")
    if status not in CLOSED_STATUSES and closed is not None:
        raise ValueError(f"closed_at is given but status is {status} (use resolved or withdrawn)")
    if closed is not None and closed < received:
        raise ValueError("closed_at is before received_at")
    if dispatched is not None and dispatched < received:
        raise ValueError("dispatched_at is before received_at")
    lon = _coordinate(row.get("lon"), "lon", LON_RANGE)
    lat = _coordinate(row.get("lat"), "lat", LAT_RANGE)
    district = places.district_name(_text(row, "district"))
    village = _text(row, "village")
    if (lon is None) != (lat is None):
        raise ValueError("give both lon and lat, or neither")
    coarse = lon is None
    if lon is None or lat is None:
        lon, lat = places.centre(district, village)
    description = _text(row, "description")
    if description is not None and len(description) > _MAX_DESCRIPTION:
        raise ValueError(f"description is longer than {_MAX_DESCRIPTION} characters")
    return Case(
        case_id=case_id,
        received_at=received,
        category=category,
        lon=lon,
        lat=lat,
        coarse=coarse,
        h3_10=int(h3.str_to_int(h3.latlng_to_cell(lat, lon, 10))),
        district=district,
        village=village,
        status=status,
        dispatched_at=dispatched,
        closed_at=closed,
        description=description,
    )


def check_rows(rows: Iterable[Mapping[str, Any]], places: Places) -> Checked:
    """Every row checked; a case_id seen twice in one batch rejects the later row."""
    result = Checked()
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        raw = {str(k): v for k, v in row.items() if k is not None}
        case_id = str(row.get("case_id")).replace("\x00", "")[:64] if row.get("case_id") is not None else None
        try:
            extra = row.get(None)  # type: ignore[call-overload]
            if extra:
                raise ValueError(f"{len(extra)} more fields than the header has columns")
            case = check_row(row, places)
            if case.case_id in seen:
                raise ValueError(f"case_id {case.case_id} appears twice in this batch")
        except ValueError as exc:
            result.rejections.append(Rejection(number, case_id, str(exc), raw))
            continue
        seen.add(case.case_id)
        result.cases.append(case)
    return result
