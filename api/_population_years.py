"""Year-true denominators for the 4G indicator: each district's household-registration population
at the year's end, so that 2015's share is divided by 2015's people, not by today's.

The shipped figures (`data/taichung_district_population_years.csv`, sources in data/README.md) are
district totals at 2017-06, 2024-04 and 2026-09. A date between two of them is interpolated
linearly per district; a date before the first or after the last takes the nearest one (no
extrapolation: the earliest district figures shipped are 2017-06). The modelled coverage keeps its
spatial spread (the grid's cells within each district); only each district's weight changes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

DATA_FILE = "taichung_district_population_years.csv"


@dataclass(frozen=True)
class Snapshots:
    months: np.ndarray  # (S,) month index (year * 12 + month - 1) of each snapshot, ascending
    labels: tuple[str, ...]  # "2017-06", ...
    districts: tuple[str, ...]  # Chinese names, in column order
    population: np.ndarray  # (S, D)


@lru_cache(maxsize=1)
def snapshots() -> Snapshots:
    text = resources.files("zhongdu.api").joinpath("data", DATA_FILE).read_text("utf-8")
    table: dict[str, dict[str, float]] = {}
    for row in csv.DictReader(text.splitlines()):
        table.setdefault(row["year_month"], {})[row["name_zh"]] = float(row["population"])
    labels = tuple(sorted(table))
    districts = tuple(sorted(table[labels[0]]))
    months = np.array([int(label[:4]) * 12 + int(label[5:7]) - 1 for label in labels], dtype=float)
    population = np.array([[table[label][d] for d in districts] for label in labels])
    return Snapshots(months, labels, districts, population)


def population_at(year: int, month: int = 12) -> tuple[dict[str, float], str]:
    """Each district's population at the end of `year`-`month`, and how it was obtained."""
    snap = snapshots()
    when = year * 12 + month - 1
    weights = np.array(
        [np.interp(when, snap.months, snap.population[:, j]) for j in range(len(snap.districts))]
    )
    if when <= snap.months[0]:
        basis = f"district figures of {snap.labels[0]} (the earliest shipped; held, not extrapolated)"
    elif when >= snap.months[-1]:
        basis = f"district figures of {snap.labels[-1]} (the latest shipped)"
    else:
        i = int(np.searchsorted(snap.months, when))
        basis = (
            f"interpolated per district between {snap.labels[i - 1]} and {snap.labels[i]}"
            if snap.months[i] != when
            else f"district figures of {snap.labels[i]}"
        )
    return dict(zip(snap.districts, weights.tolist(), strict=True)), basis


def year_true(point: Mapping[str, Any], year: int) -> dict[str, Any]:
    """A modelled year-end point re-weighted by that year's district populations.

    With per-district shares (the outdoor criterion), share = Σ share_d × pop_d / Σ pop_d; a point
    without them keeps its city share and only its counts take the year's total.
    """
    people, basis = population_at(year)
    total = float(sum(people.values()))
    districts = point.get("districts") or []
    if districts and point.get("criterion", "outdoor") == "outdoor":
        shares = {str(d["district"]): float(d["share"]) for d in districts}
        missing = sorted(set(people) - set(shares))
        if missing:
            raise ValueError(f"modelled point {point.get('date')} lacks districts {', '.join(missing)}")
        names = sorted(people)
        weights = np.array([people[n] for n in names])
        covered = float(np.dot(weights, np.array([shares[n] for n in names])))
        share = covered / total
        method = "district shares weighted by the year's district populations"
    else:
        share = float(point["share"])
        covered = share * total
        method = "city share (no district detail for this criterion) times the year's total"
    return {
        "share": share,
        "population_covered": covered,
        "population_total": total,
        "population_basis": basis,
        "method": method,
        "population_by_district": people,
    }
