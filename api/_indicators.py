"""Plan indicators: attainment per indicator and the weighted score of a year (docs/api.md#plan-indicators).

Pure functions over catalogue rows and actuals, so the arithmetic is testable without a server.
Score = Σ weight × attainment over the indicators that have both an actual and a target for the
year, with attainment = min(1, actual / target) (or target / actual for a "lower is better"
indicator). Counts are attained by reaching them, the yes/no indicator by a yes (1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

_EPS = 1e-9

COVERAGE_SOURCE = "coverage_engine"  # `details.actual_source` of the indicator fed by the engine


def attainment(actual: float | None, target: float | None, direction: str = "higher") -> float | None:
    """Fraction of the target reached, in [0, 1]; None without an actual or a target.

    >>> attainment(0.6, 0.8)
    0.75
    >>> attainment(5, 4)
    1.0
    >>> attainment(0, 1)
    0.0
    >>> attainment(2.0, 1.0, "lower")
    0.5
    """
    if actual is None or target is None or not math.isfinite(actual) or not math.isfinite(target):
        return None
    if direction == "lower":
        if actual <= target + _EPS or actual <= 0:
            return 1.0
        return min(1.0, max(0.0, target / actual))
    if target <= 0:
        return 1.0
    return min(1.0, max(0.0, actual / target))


def attained(actual: float | None, target: float | None, direction: str = "higher") -> bool | None:
    """Whether the target is reached (counts by reaching them, yes/no by a yes)."""
    if actual is None or target is None:
        return None
    return actual <= target + _EPS if direction == "lower" else actual >= target - _EPS


def target_for(row: Mapping[str, Any], year: int) -> float | None:
    targets = row.get("targets") or {}
    value = targets.get(str(year))
    return float(value) if value is not None else None


def modelled_for_year(series: Sequence[Mapping[str, Any]], year: int) -> Mapping[str, Any] | None:
    """The last point of the modelled 4G series within `year` (the year-end state), if any."""
    best: Mapping[str, Any] | None = None
    for point in series:
        when = str(point.get("date", ""))
        if when[:4] == str(year) and (best is None or when > str(best.get("date", ""))):
            best = point
    return best


def engine_actual(
    year: int,
    *,
    today: date,
    live: Mapping[str, Any] | None,
    series: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """The coverage engine's actual for the 4G indicator: live this year, modelled for past years."""
    if year == today.year and live is not None:
        return {
            "value": float(live["share"]),
            "numerator": float(live["population_covered"]),
            "denominator": float(live["population_total"]),
            "source": "live",
            "recorded_by": (
                f"coverage engine ({live['model']} model, {live['stations_serving']} stations serving)"
            ),
            "recorded_at": live["computed_at"],
            "evidence": "live coverage snapshot from the latest station status",
        }
    point = modelled_for_year(series, year)
    if point is None:
        return None
    return {
        "value": float(point["share"]),
        "numerator": _float_or_none(point.get("population_covered")),
        "denominator": _float_or_none(point.get("population_total")),
        "source": "modelled",
        "recorded_by": "coverage engine (modelled from the NCC per-district station counts)",
        "recorded_at": None,
        "evidence": f"modelled layout of {point.get('stations', '?')} stations at {point.get('date')}"
        + (f", criterion {point['criterion']}" if point.get("criterion") else ""),
    }


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def build_indicators(
    rows: Iterable[Mapping[str, Any]],
    year: int,
    *,
    recorded: Mapping[str, Mapping[str, Any]],
    engine: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """One output entry per catalogue row, with target, actual, attainment and the actual's source.

    The engine's value wins for the engine-fed indicator; a recorded value is its fallback.
    """
    out = []
    for row in rows:
        details = dict(row.get("details") or {})
        indicator_id = str(row["indicator_id"])
        actual: Mapping[str, Any] | None = recorded.get(indicator_id)
        if details.get("actual_source") == COVERAGE_SOURCE and engine is not None:
            actual = engine
        target = target_for(row, year)
        value = float(actual["value"]) if actual is not None else None
        direction = str(row.get("direction") or "higher")
        out.append(
            {
                "plan_id": row["plan_id"],
                "id": indicator_id,
                "dimension": row["dimension"],
                "goal_zh": row.get("goal"),
                "goal_en": details.get("goal_en"),
                "name_zh": row["name_zh"],
                "name_en": row["name_en"],
                "weight": float(row["weight"]),
                "formula_zh": row["formula"],
                "formula_en": details.get("formula_en"),
                "unit": row["unit"],
                "direction": direction,
                "kind": row["kind"],
                "targets": {str(k): float(v) for k, v in (row.get("targets") or {}).items()},
                "year": year,
                "target": target,
                "actual": None
                if actual is None
                else {
                    "value": value,
                    "numerator": actual.get("numerator"),
                    "denominator": actual.get("denominator"),
                    "source": actual.get("source", "recorded"),
                    "recorded_by": actual.get("recorded_by"),
                    "recorded_at": actual.get("recorded_at"),
                    "evidence": actual.get("evidence"),
                },
                "attainment": attainment(value, target, direction),
                "attained": attained(value, target, direction),
                "details": details,
            }
        )
    return out


def score(indicators: Sequence[Mapping[str, Any]], year: int) -> dict[str, Any]:
    """Weighted score of a year over the indicators with an actual and a target."""
    total_weight = sum(float(i["weight"]) for i in indicators)
    scored = [i for i in indicators if i["attainment"] is not None]
    by_dimension: dict[str, dict[str, float]] = {}
    for item in indicators:
        entry = by_dimension.setdefault(
            str(item["dimension"]), {"weight": 0.0, "weight_scored": 0.0, "score": 0.0}
        )
        entry["weight"] += float(item["weight"])
        if item["attainment"] is not None:
            entry["weight_scored"] += float(item["weight"])
            entry["score"] += float(item["weight"]) * float(item["attainment"])
    value = sum(float(i["weight"]) * float(i["attainment"]) for i in scored)
    weight_scored = sum(float(i["weight"]) for i in scored)
    return {
        "plan_id": indicators[0]["plan_id"] if indicators else None,
        "year": year,
        "score": round(value, 6),
        "max_score": total_weight,
        "weight_scored": weight_scored,
        "score_of_scored": round(100.0 * value / weight_scored, 6) if weight_scored else None,
        "indicators_total": len(indicators),
        "indicators_with_actual": len(scored),
        "indicators_attained": sum(1 for i in scored if i["attained"]),
        "missing": [str(i["id"]) for i in indicators if i["attainment"] is None],
        "dimensions": [
            {"dimension": name, **{k: round(v, 6) for k, v in entry.items()}}
            for name, entry in by_dimension.items()
        ],
    }
