"""Base-station telemetry: the JSON object on `zhongdu/v1/bs/{station_id}/telemetry`.

Schema (the simulators publish it; extra keys are ignored):

    {"time": "2026-11-26T07:00:00Z",          # RFC 3339 with a UTC offset, or epoch seconds
     "status": "up",                           # "up" | "degraded" | "down"
     "sectors": [                              # may be empty or absent: a status-only report
        {"sector_id": "1",                     # non-empty string (an integer is accepted)
         "prb_utilisation": 0.42,              # 0..1, or null when unknown
         "active_users": 17,                   # integer >= 0, or null
         "tx_power_dbm": 43.0}]}               # -30..80 dBm, or null

Rows: one `station_telemetry` row per sector, plus one row with sector_id '' for the station itself
(its status, loads NULL), so a status-only report is stored too. The station's `entity_status`
takes the report's status and time (only a newer time wins).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from zhongdu.ingest._senml import SenmlReject
from zhongdu.ingest._types import Reason, TelemetryRow

STATION_STATUSES = frozenset({"up", "degraded", "down"})
MAX_SECTORS = 64
MAX_ACTIVE_USERS = 100_000
TX_POWER_RANGE = (-30.0, 80.0)
_SECTOR_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


def _bad(detail: str) -> SenmlReject:
    return SenmlReject(Reason.BAD_TELEMETRY, detail)


def _time(value: object) -> float:
    """Epoch seconds from an RFC 3339 string (with offset) or a number."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(f"time {value!r:.40} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _bad(f"time {value!r:.40} has no UTC offset")
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("time must be an RFC 3339 string or epoch seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise _bad("time is not finite")
    return seconds


def _optional_number(sector: dict[str, Any], key: str, index: int) -> float | None:
    value = sector.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"sector {index}: {key} must be a number or null")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _bad(f"sector {index}: {key} is not finite")
    return number


def resolve_telemetry(
    obj: Any, station_id: str, now_s: float, max_future_s: float, max_age_s: float
) -> tuple[list[TelemetryRow], str, float]:
    """Rows for one telemetry report, its status and its time; raise `SenmlReject` when invalid."""
    if not isinstance(obj, dict):
        raise _bad(f"telemetry is a JSON object, got {type(obj).__name__}")
    if "time" not in obj:
        raise _bad("telemetry has no time")
    time_s = _time(obj["time"])
    if time_s > now_s + max_future_s:
        raise SenmlReject(Reason.FUTURE_TIMESTAMP, f"time is {time_s - now_s:.0f} s in the future")
    if time_s < now_s - max_age_s:
        raise SenmlReject(Reason.STALE_TIMESTAMP, f"time is {now_s - time_s:.0f} s in the past")
    status = obj.get("status")
    if status not in STATION_STATUSES:
        raise _bad(f"status must be one of up, degraded, down; got {status!r:.20}")
    assert isinstance(status, str)
    sectors = obj.get("sectors", [])
    if sectors is None:
        sectors = []
    if not isinstance(sectors, list):
        raise _bad("sectors must be a JSON array")
    if len(sectors) > MAX_SECTORS:
        raise _bad(f"{len(sectors)} sectors; at most {MAX_SECTORS}")
    when = datetime.fromtimestamp(time_s, UTC)
    rows: list[TelemetryRow] = [(when, station_id, "", status, None, None, None)]
    seen: set[str] = set()
    for index, sector in enumerate(sectors):
        if not isinstance(sector, dict):
            raise _bad(f"sector {index} is not a JSON object")
        raw_id = sector.get("sector_id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id < 10**6:
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not _SECTOR_ID_RE.fullmatch(raw_id):
            raise _bad(f"sector {index}: sector_id must be a short non-empty string, got {raw_id!r:.40}")
        if raw_id in seen:
            raise _bad(f"sector {index}: sector_id {raw_id!r} appears twice")
        seen.add(raw_id)
        prb = _optional_number(sector, "prb_utilisation", index)
        if prb is not None and not 0.0 <= prb <= 1.0:
            raise SenmlReject(Reason.OUT_OF_RANGE, f"sector {index}: prb_utilisation {prb:g} outside [0, 1]")
        users_raw = _optional_number(sector, "active_users", index)
        users: int | None = None
        if users_raw is not None:
            if not users_raw.is_integer():
                raise _bad(f"sector {index}: active_users must be an integer")
            if not 0 <= users_raw <= MAX_ACTIVE_USERS:
                raise SenmlReject(
                    Reason.OUT_OF_RANGE,
                    f"sector {index}: active_users {users_raw:g} outside [0, {MAX_ACTIVE_USERS}]",
                )
            users = int(users_raw)
        tx = _optional_number(sector, "tx_power_dbm", index)
        if tx is not None and not TX_POWER_RANGE[0] <= tx <= TX_POWER_RANGE[1]:
            raise SenmlReject(
                Reason.OUT_OF_RANGE,
                f"sector {index}: tx_power_dbm {tx:g} outside [{TX_POWER_RANGE[0]:g}, {TX_POWER_RANGE[1]:g}]",
            )
        rows.append((when, station_id, raw_id, status, prb, users, tx))
    return rows, status, time_s
