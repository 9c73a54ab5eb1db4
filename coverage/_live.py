"""Live coverage from the latest station status, and the snapshot record the API stores.

A station serves when its latest status is `up` or `degraded` and was observed within the
silence timeout; `down`, or silent for longer, means not serving. Stations with no status at all
serve as their layout's `up` flag says (documented choice: a station the telemetry has never
reported on is taken at its planned state, so a fresh deployment does not read as 0 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from zhongdu.coverage._engine import CoverageEngine, CoverageError, CoverageResult

__all__ = ["SERVING_STATUSES", "STATUSES", "StationStatus", "live_coverage", "snapshot_record"]

STATUSES: tuple[str, ...] = ("up", "degraded", "down")
SERVING_STATUSES: frozenset[str] = frozenset({"up", "degraded"})


@dataclass(frozen=True)
class StationStatus:
    """Latest reported status of one station and when it was observed (timezone-aware)."""

    status: str
    observed_at: datetime

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise CoverageError(f"station status {self.status!r} must be one of {', '.join(STATUSES)}")
        if self.observed_at.tzinfo is None:
            raise CoverageError(f"observed_at {self.observed_at.isoformat()} needs a timezone (use UTC)")


def live_coverage(
    engine: CoverageEngine,
    statuses: Mapping[str, StationStatus],
    *,
    now: datetime,
    silence_timeout_s: float = 300.0,
) -> CoverageResult:
    """Set every sector of `engine` to its live state and return the result (only changes are applied).

    Statuses of stations the engine does not know are ignored (telemetry may run ahead of the
    layout). The engine keeps the live state afterwards; the layout flags stay available as
    `engine.layout_up` and are what stations without any status fall back to.
    """
    if now.tzinfo is None:
        raise CoverageError(f"now={now.isoformat()} needs a timezone (use UTC)")
    if not silence_timeout_s >= 0:
        raise CoverageError(f"silence_timeout_s={silence_timeout_s!r} must be >= 0")
    ids, inverse = engine.stations.station_index()
    has_status = np.zeros(len(ids), dtype=bool)
    serving = np.zeros(len(ids), dtype=bool)
    if statuses:
        keys = np.asarray(list(statuses.keys()), dtype=np.str_)
        pos = np.searchsorted(ids, keys)
        known = (
            (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == keys)
            if len(ids)
            else np.zeros(len(keys), bool)
        )
        ok = np.array(
            [
                s.status in SERVING_STATUSES and (now - s.observed_at).total_seconds() <= silence_timeout_s
                for s in statuses.values()
            ],
            dtype=bool,
        )
        has_status[pos[known]] = True
        serving[pos[known]] = ok[known]
    per_row = np.where(has_status[inverse], serving[inverse], engine.layout_up)
    return engine.set_rows_up(np.arange(len(per_row)), per_row)


def snapshot_record(result: CoverageResult, *, time: datetime, model: str, trigger: str) -> dict[str, Any]:
    """One `coverage_snapshots` row: time, model, trigger, totals, share, stations serving, districts."""
    return {
        "time": time,
        "model": model,
        "trigger": trigger,
        "population_total": result.population_total,
        "population_covered": result.population_covered,
        "share": result.share,
        "stations_serving": result.stations_serving,
        "districts": result.to_dict()["districts"],
    }
