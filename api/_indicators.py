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
#: Name and version of the computation behind the engine-fed value; bump the version when the
#: method changes, so an evaluated year says which method it was scored by.
ENGINE_COMPUTATION = "zhongdu.coverage.indicator_4g@1"
#: Indicators the platform can measure itself, with the computation that would fill them. B6-1's
#: analysis reports come from petitions once those are ingested: that computation registers here
#: and its entries carry its name in `computation` instead of a person's key.
PLATFORM_COMPUTATIONS: dict[str, str | None] = {"B7-2": ENGINE_COMPUTATION, "B6-1": None}


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
            "computation": f"{ENGINE_COMPUTATION}/live",
        }
    point = modelled_for_year(series, year)
    if point is None:
        return None
    true = year_true_point(point, year)
    return {
        "value": float(true["share"]),
        "numerator": _float_or_none(true.get("population_covered")),
        "denominator": _float_or_none(true.get("population_total")),
        "source": "modelled",
        "recorded_by": "coverage engine (modelled from the NCC per-district station counts)",
        "recorded_at": None,
        "evidence": f"modelled layout of {point.get('stations', '?')} stations at {point.get('date')}"
        + (f", criterion {point['criterion']}" if point.get("criterion") else "")
        + (
            f"; denominator: {year}-12 population, {true['population_basis']}"
            if "population_basis" in true
            else ""
        )
        + (f" ({true['method']})" if "method" in true else ""),
        "computation": f"{ENGINE_COMPUTATION}/modelled/{point.get('criterion') or 'outdoor'}",
    }


def year_true_point(point: Mapping[str, Any], year: int) -> Mapping[str, Any]:
    """The point re-weighted by the year's district populations (see `_population_years`); a point
    without the fields that needs (hand-made series in tests) is taken as it is."""
    if not point.get("districts") and point.get("criterion") is None:
        return point
    from zhongdu.api._population_years import year_true

    return year_true(point, year)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def build_indicators(
    rows: Iterable[Mapping[str, Any]],
    year: int,
    *,
    recorded: Mapping[str, Mapping[str, Any]],
    engine: Mapping[str, Any] | None,
    history: Mapping[str, Mapping[int, float]] | None = None,
    amendments: Mapping[str, Mapping[str, Any]] | None = None,
    reviews: Mapping[str, Mapping[str, Any]] | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """One output entry per catalogue row, with target, actual, attainment and the actual's source.

    The engine's value wins for the engine-fed indicator; a recorded value is its fallback.
    `history` (indicator -> year -> value) feeds the projection, `amendments` (indicator -> the
    amendment in force) replaces the plan's target, `reviews` gives the yearly cycle's status.
    """
    out = []
    this_year = (today or date.today()).year
    for row in rows:
        details = dict(row.get("details") or {})
        indicator_id = str(row["indicator_id"])
        actual: Mapping[str, Any] | None = recorded.get(indicator_id)
        frozen = actual is not None and actual.get("source") in ("modelled", "live")
        if details.get("actual_source") == COVERAGE_SOURCE and engine is not None and not frozen:
            actual = engine  # until the year is locked: then the value it was evaluated on stays
        amendment = (amendments or {}).get(indicator_id)
        target = float(amendment["new_target"]) if amendment is not None else target_for(row, year)
        value = float(actual["value"]) if actual is not None else None
        direction = str(row.get("direction") or "higher")
        past = {y: v for y, v in ((history or {}).get(indicator_id) or {}).items() if y < year}
        projected = project(past, year) if value is None or year >= this_year else None
        review = (reviews or {}).get(indicator_id)
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
                    "entry_id": actual.get("id"),
                    "components": actual.get("components"),
                    "note": actual.get("note"),
                    "corrects": actual.get("corrects"),
                    "computation": actual.get("computation"),
                },
                "attainment": attainment(value, target, direction),
                "attained": attained(value, target, direction),
                "status": status_of(value, target, direction, projected),
                "projection": None
                if projected is None
                else {
                    **projected,
                    "attainment": attainment(projected["value"], target, direction),
                },
                "amendment": None if amendment is None else dict(amendment),
                "plan_target": target_for(row, year),
                "review": None if review is None else dict(review),
                "frequency": details.get("frequency", "yearly"),
                "owner_agency_zh": details.get("owner_agency_zh"),
                "details": details,
            }
        )
    return out


def project(past: Mapping[int, float], year: int) -> dict[str, Any] | None:
    """The year's value from the trend of earlier years: a least-squares line through two or
    more years, the last value held from one; None without data. Clipped at 0 (no negative counts).

    >>> project({2015: 0.6, 2016: 0.7}, 2017)["value"]
    0.8
    >>> project({2016: 3.0}, 2018)["method"]
    'last value'
    """
    if not past:
        return None
    years = sorted(past)
    if len(years) == 1:
        return {"value": float(past[years[0]]), "method": "last value", "from_years": years}
    n = len(years)
    mean_x = sum(years) / n
    mean_y = sum(past[y] for y in years) / n
    sxx = sum((y - mean_x) ** 2 for y in years)
    slope = sum((y - mean_x) * (past[y] - mean_y) for y in years) / sxx
    value = max(0.0, mean_y + slope * (year - mean_x))
    return {"value": round(value, 9), "method": "linear trend", "from_years": years}


def status_of(
    value: float | None, target: float | None, direction: str, projected: Mapping[str, Any] | None
) -> str:
    """attained / behind (an actual short of its target) / at_risk (projected short) / on_track /
    no_actual / no_target: what the page flags."""
    if target is None:
        return "no_target"
    if value is not None:
        return "attained" if attained(value, target, direction) else "behind"
    if projected is not None:
        return "on_track" if attained(projected["value"], target, direction) else "at_risk"
    return "no_actual"


def score(
    indicators: Sequence[Mapping[str, Any]], year: int, *, criterion: str | None = None
) -> dict[str, Any]:
    """Weighted score of a year over the indicators with an actual and a target.

    The score is out of the whole plan's weight: a missing actual scores nothing and is named in
    `summary_zh`/`summary_en`, so a year with one indicator in never reads as full marks.
    """
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
    missing = [i for i in indicators if i["attainment"] is None]
    weight_missing = total_weight - weight_scored
    projected = sum(
        float(i["weight"])
        * float(
            i["attainment"]
            if i["attainment"] is not None
            else (i.get("projection") or {}).get("attainment") or 0.0
        )
        for i in indicators
    )
    behind = [str(i["id"]) for i in indicators if i.get("status") in ("behind", "at_risk")]
    summary_en = (
        f"{value:.1f} of {total_weight:g} points; {len(scored)} of {len(indicators)} indicators have an "
        f"actual ({weight_scored:g} of {total_weight:g} weight)"
        + (
            f"; {len(missing)} indicators ({weight_missing:g} weight) have none and score 0"
            if missing
            else ""
        )
    )
    summary_zh = (
        f"{value:.1f} / {total_weight:g} 分；{len(indicators)} 項指標中 {len(scored)} 項有實績值"
        f"（權重 {weight_scored:g} / {total_weight:g}）"
        + (f"；{len(missing)} 項（權重 {weight_missing:g}）尚無實績值，以 0 分計" if missing else "")
    )
    return {
        "plan_id": indicators[0]["plan_id"] if indicators else None,
        "year": year,
        "score": round(value, 6),
        "max_score": total_weight,
        "weight_scored": weight_scored,
        # the attainment of the reported indicators only: a partial figure, never the year's score
        "attainment_of_reported": round(100.0 * value / weight_scored, 6) if weight_scored else None,
        "indicators_total": len(indicators),
        "indicators_with_actual": len(scored),
        "indicators_attained": sum(1 for i in scored if i["attained"]),
        "missing": [str(i["id"]) for i in indicators if i["attainment"] is None],
        "weight_missing": round(weight_missing, 6),
        "complete": not missing,
        "projected_score": round(projected, 6),
        "behind": behind,
        "criterion_4g": criterion,
        "summary_en": summary_en,
        "summary_zh": summary_zh,
        "dimensions": [
            {"dimension": name, **{k: round(v, 6) for k, v in entry.items()}}
            for name, entry in by_dimension.items()
        ],
    }
