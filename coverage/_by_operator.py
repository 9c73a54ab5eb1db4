"""Coverage per operator: by any operator (the layout as a whole), by one, by each, by every major one.

People subscribe to one operator, so "covered by at least one operator" (`any`, the plan's
indicator as computed so far) overstates what each person gets. The stations table says which
operator runs each sector in its optional `operator` column (the generated layouts fill it).
`each` computes every operator on its own, `any`, and the share covered by every major operator
(CHT, TWM, FET: those left after the 2023-2024 mergers) at once: the cells all three cover.
For the capacity criterion an operator's subscribers are taken as its share of the sites, and
`any` is what subscribers get from their own network: each cell's people split among the
operators by that share, each part served if its operator's serving sector has capacity (pooling
every operator's sectors would load the nearest site with everyone and leave co-located sites of
the other operators idle).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._capacity import CapacityParams
from zhongdu.coverage._engine import (
    CoverageError,
    CoverageResult,
    Criterion,
    Model,
    compute_coverage,
    result_from_covered,
    result_from_fraction,
)
from zhongdu.coverage._operators import MAJOR_OPERATORS, OPERATORS, resolve_operator
from zhongdu.coverage._types import Grid, Stations

__all__ = ["compute_by_operator", "operator_mask", "operators_in"]


def operators_in(stations: Stations) -> list[str]:
    """Operator codes present in the table's `operator` column (CoverageError without one)."""
    col = stations.extra.get("operator")
    if col is None or col.dtype.kind not in "US":
        raise CoverageError(
            "the stations table has no `operator` column; per-operator coverage needs one "
            f"(codes {', '.join(OPERATORS)}; `zhongdu stations generate` writes it)"
        )
    present = set(np.unique(col).tolist())
    return [c for c in OPERATORS if c in present] + sorted(present - set(OPERATORS) - {""})


def operator_mask(stations: Stations, operator: str) -> NDArray[np.bool_]:
    """Rows of one operator (code or name)."""
    operators_in(stations)
    col = np.asarray(stations.extra["operator"]).astype(np.str_)
    code = operator if operator in set(col.tolist()) else resolve_operator(operator)
    return np.asarray(col == code, dtype=np.bool_)


def _site_share(stations: Stations, mask: NDArray[np.bool_]) -> float:
    ids = np.unique(stations.station_id)
    return len(np.unique(stations.station_id[mask])) / max(len(ids), 1)


def _one(
    grid: Grid,
    stations: Stations,
    mask: NDArray[np.bool_],
    model: Model,
    threshold_dbm: float,
    criterion: Criterion,
    capacity: CapacityParams | None,
) -> CoverageResult:
    params = capacity
    if criterion == "capacity" and (capacity is None or capacity.subscriber_share == 1.0):
        base = capacity or CapacityParams()
        params = dataclasses.replace(base, subscriber_share=max(_site_share(stations, mask), 1e-9))
    return compute_coverage(
        grid,
        stations.take(mask),
        model=model,
        threshold_dbm=threshold_dbm,
        criterion=criterion,
        capacity=params,
    )


def _subscribers_served(
    grid: Grid,
    stations: Stations,
    model: Model,
    threshold_dbm: float,
    capacity: CapacityParams | None,
    done: dict[str, CoverageResult],
) -> CoverageResult:
    """Capacity for everyone: each operator's share of each cell served by its own sectors."""
    col = np.asarray(stations.extra["operator"]).astype(np.str_)
    fraction = np.zeros(len(grid))
    for code in operators_in(stations):
        mask = col == code
        res = done.get(code) or _one(grid, stations, mask, model, threshold_dbm, "capacity", capacity)
        assert res.covered is not None
        fraction += _site_share(stations, mask) * res.covered
    return result_from_fraction(grid, np.minimum(fraction, 1.0))


def compute_by_operator(
    grid: Grid,
    stations: Stations,
    *,
    operator: str = "any",
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    criterion: Criterion = "outdoor",
    capacity: CapacityParams | None = None,
) -> dict[str, Any]:
    """{"any": result} / {code: result} / each: any, every operator, "every_major" (CoverageResults)."""
    kw: dict[str, Any] = {"model": model, "threshold_dbm": threshold_dbm, "criterion": criterion}
    per_subscriber = criterion == "capacity" and "operator" in stations.extra
    if operator == "any" and per_subscriber:
        return {"any": _subscribers_served(grid, stations, model, threshold_dbm, capacity, {})}
    if operator == "any":
        return {"any": compute_coverage(grid, stations, capacity=capacity, **kw)}
    if operator != "each":
        mask = operator_mask(stations, operator)
        code = (
            str(np.asarray(stations.extra["operator"])[mask][0]) if mask.any() else resolve_operator(operator)
        )
        if not mask.any():
            raise CoverageError(f"no sector of operator {code} in the stations table")
        return {code: _one(grid, stations, mask, model, threshold_dbm, criterion, capacity)}
    codes = operators_in(stations)
    col = np.asarray(stations.extra["operator"]).astype(np.str_)
    out: dict[str, Any] = {}
    for code in codes:
        out[code] = _one(grid, stations, col == code, model, threshold_dbm, criterion, capacity)
    if per_subscriber:
        out = {"any": _subscribers_served(grid, stations, model, threshold_dbm, capacity, out), **out}
    else:
        out = {"any": compute_coverage(grid, stations, capacity=capacity, **kw), **out}
    majors = [c for c in MAJOR_OPERATORS if c in out]
    if majors:
        every = np.logical_and.reduce([out[c].covered for c in majors])
        out["every_major"] = result_from_covered(grid, every)
    return out


def by_operator_json(results: dict[str, CoverageResult], criterion: str, operator: str) -> dict[str, Any]:
    """The JSON object of `zhongdu coverage compute --json` for a criterion/operator request."""
    if operator == "any" and len(results) == 1:
        doc = results["any"].to_dict()
        return doc if criterion == "outdoor" else {**doc, "criterion": criterion}
    if operator != "each":
        ((code, res),) = results.items()
        return {**res.to_dict(), "criterion": criterion, "operator": code}
    return {
        "criterion": criterion,
        "operator": "each",
        "major_operators": [c for c in MAJOR_OPERATORS if c in results],
        **{k: v.to_dict() for k, v in results.items()},
    }
