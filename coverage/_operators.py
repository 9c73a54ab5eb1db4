"""The five mobile operators' 4G station counts (NCC, city-wide) and their split over districts.

NCC publishes 4G base stations per district (all operators) and per operator (whole city), not
per district and operator. The layout needs both margins: `operator_district_counts` splits each
district's count among the operators in proportion to their city-wide shares at that date, with
an integer rounding that keeps both margins exact (every district's count and every operator's
city count): floors of the proportional quotas, then the remaining units row by row (largest
deficit first), each to the operator with the largest fractional part among those whose city
count is not yet reached (ties: larger remaining city deficit, then operator order).
Deterministic; documented in docs/coverage.md#operators-in-the-layouts.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._grid_build import (
    OPERATOR_SOURCE_FILE,
    GridBuildError,
    open_source_text,
    source_dir_or_default,
)

__all__ = [
    "MAJOR_OPERATORS",
    "OPERATORS",
    "OPERATOR_COUNTS_FILE",
    "OPERATOR_SOURCE_FILE",
    "build_operator_counts_table",
    "operator_counts",
    "operator_district_counts",
    "resolve_operator",
]

OPERATOR_COUNTS_FILE = "station_counts_4g_by_operator.csv"
#: Short code -> registered name in the NCC file, in the order of the derived table's columns.
OPERATORS: dict[str, str] = {
    "CHT": "中華電信股份有限公司",
    "TWM": "台灣大哥大股份有限公司",
    "FET": "遠傳電信股份有限公司",
    "APT": "亞太電信股份有限公司",
    "TSTAR": "台灣之星電信股份有限公司",
}
#: The three operators left after the 2023-2024 mergers (台灣之星 into 台灣大哥大, 亞太 into 遠傳).
MAJOR_OPERATORS: tuple[str, ...] = ("CHT", "TWM", "FET")
_DATA_DIR = Path(__file__).resolve().parent / "data"


class OperatorError(GridBuildError):
    """An unknown operator, or the derived operator table is missing or inconsistent."""


def resolve_operator(name: str) -> str:
    """The short code of an operator from its code (any case), registered or short Chinese name."""
    text = name.strip()
    if text.upper() in OPERATORS:
        return text.upper()
    for code, full in OPERATORS.items():
        if text and (text == full or full.startswith(text)):
            return code
    raise OperatorError(
        f"unknown operator {name!r}; use one of {', '.join(OPERATORS)} "
        f"({', '.join(f'{c} {n}' for c, n in OPERATORS.items())})"
    )


def build_operator_counts_table(source_dir: Path | str | None = None) -> list[dict[str, object]]:
    """4G rows of the NCC per-operator file pivoted: per date, `total` and one column per operator."""
    src = source_dir_or_default(source_dir)
    by_name = {v: k for k, v in OPERATORS.items()}
    table: dict[str, dict[str, int]] = {}
    with open_source_text(src, OPERATOR_SOURCE_FILE) as fh:
        for row in csv.DictReader(fh):
            if row["technology"] != "4G":
                continue
            code = by_name.get(row["operator"])
            if code is None:
                raise OperatorError(f"{OPERATOR_SOURCE_FILE}: unknown operator {row['operator']!r}")
            per_date = table.setdefault(row["as_of_date"], {})
            per_date[code] = per_date.get(code, 0) + int(row["base_stations"])
    return [
        {"as_of_date": d, "total": sum(table[d].values()), **{c: table[d].get(c, 0) for c in OPERATORS}}
        for d in sorted(table)
    ]


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, int]]:
    path = _DATA_DIR / OPERATOR_COUNTS_FILE
    if not path.is_file():
        raise OperatorError(f"{path} is missing; remake it with `zhongdu grid rebuild-data`")
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["as_of_date"]: {c: int(r[c]) for c in OPERATORS} for r in csv.DictReader(fh)}


def operator_counts(date: str) -> dict[str, int]:
    """City-wide 4G stations per operator at an NCC date (ISO, as in the derived table)."""
    table = _table()
    if date not in table:
        raise OperatorError(f"no per-operator 4G count for {date!r} in {OPERATOR_COUNTS_FILE}")
    return dict(table[date])


def operator_district_counts(
    district_counts: dict[str, int], city_counts: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Split each district's count among the operators: both margins exact (see the module doc)."""
    names = list(district_counts)
    ops = list(city_counts)
    rows = np.array([district_counts[n] for n in names], dtype=np.int64)
    cols = np.array([city_counts[o] for o in ops], dtype=np.int64)
    if rows.sum() != cols.sum():
        raise OperatorError(
            f"district counts add up to {int(rows.sum())} but operator counts to {int(cols.sum())}"
        )
    total = max(int(cols.sum()), 1)
    quota = rows[:, None] * cols[None, :] / total
    out: NDArray[np.int64] = np.floor(quota).astype(np.int64)
    frac = quota - out
    row_left = rows - out.sum(axis=1)
    col_left = cols - out.sum(axis=0)
    for d in np.lexsort((np.arange(len(rows)), -row_left)).tolist():
        for _ in range(int(row_left[d])):
            open_ = col_left > 0
            pick = int(np.lexsort((np.arange(len(ops)), -col_left, -frac[d], ~open_))[0])
            out[d, pick] += 1
            col_left[pick] -= 1
            frac[d, pick] = -1.0  # a second unit to the same cell only when nothing else is left
    return {n: {o: int(out[i, j]) for j, o in enumerate(ops)} for i, n in enumerate(names)}
