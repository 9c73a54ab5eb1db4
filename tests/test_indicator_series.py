"""The shipped modelled 4G indicator series: consistent files, recomputable, monotone where counts grow."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys

import numpy as np
import pytest

from zhongdu.coverage import (
    Grid,
    compute_coverage,
    generate_layout,
    layout_counts,
    load_default_grid,
    modelled_indicator_document,
    modelled_indicator_series,
    modelled_share,
)
from zhongdu.coverage._indicator import PLAN_TARGETS, SERIES_CSV, indicator_at
from zhongdu.coverage._layout import DATA_DIR, count_dates


@pytest.fixture(scope="module")
def grid() -> Grid:
    return load_default_grid()


def test_series_covers_every_ncc_date_with_sane_values() -> None:
    series = modelled_indicator_series()
    assert [r["date"] for r in series] == list(count_dates())
    for r in series:
        assert 0.0 <= r["share"] <= 1.0
        assert r["population_covered"] <= r["population_total"] + 1e-6
        assert abs(r["population_total"] - 2_866_367) < 1e-6
        assert r["sectors"] == 3 * r["stations"]
        assert len(r["districts"]) == 29
        covered = sum(d["covered"] for d in r["districts"])
        assert abs(covered - r["population_covered"]) < 1e-6
    assert series[-1]["stations"] == 15_788


def test_csv_matches_json() -> None:
    series = {r["date"]: r for r in modelled_indicator_series()}
    with (DATA_DIR / SERIES_CSV).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(series)
    for row in rows:
        r = series[row["date"]]
        assert float(row["share"]) == r["share"]
        assert int(row["stations"]) == r["stations"]
        assert float(row["share_西屯區"]) == next(d["share"] for d in r["districts"] if d["district"] == "西屯區")


def test_station_counts_in_series_are_the_layout_counts(grid: Grid) -> None:
    for r in modelled_indicator_series():
        assert r["stations"] == sum(layout_counts(grid, r["date"]).values())


@pytest.mark.parametrize("date", ["2014-06-30", "2015-12-31"])
def test_series_matches_a_recomputation(grid: Grid, date: str) -> None:
    doc = modelled_indicator_document()
    shipped = next(r for r in doc["series"] if r["date"] == date)
    stations = generate_layout(grid, date=date, seed=doc["seed"])
    result = compute_coverage(grid, stations, model="hata", threshold_dbm=doc["threshold_dbm"])
    # Same layout, same engine: equal up to a few border cells whose RSRP sits on the threshold
    # (about 17 people each), should the engine's float evaluation order change.
    hint = "the shipped series is stale: run `zhongdu indicator rebuild`"
    assert result.population_covered == pytest.approx(shipped["population_covered"], abs=60.0), hint
    assert result.share == pytest.approx(shipped["share"], abs=2e-5), hint
    again = indicator_at(grid, date, seed=doc["seed"])
    assert again["stations"] == shipped["stations"] and again["sectors"] == shipped["sectors"]
    assert [d["covered"] for d in again["districts"]] == pytest.approx(
        [d["covered"] for d in shipped["districts"]], abs=60.0
    ), hint


def test_monotone_where_every_district_grows(grid: Grid) -> None:
    """Layouts are nested, so coverage cannot fall between dates where no district loses stations."""
    series = modelled_indicator_series()
    checked = 0
    for a, b in itertools.pairwise(series):
        ca, cb = layout_counts(grid, a["date"]), layout_counts(grid, b["date"])
        if all(cb[k] >= ca[k] for k in ca):
            checked += 1
            assert b["population_covered"] >= a["population_covered"] - 1e-6, (a["date"], b["date"])
            for da, db in zip(a["districts"], b["districts"], strict=True):
                assert db["covered"] >= da["covered"] - 1e-6
    assert checked >= 20


def test_plan_year_ends_and_targets() -> None:
    doc = modelled_indicator_document()
    years = {p["year"]: p for p in doc["plan_years"]}
    assert set(years) == set(PLAN_TARGETS) == {2015, 2016, 2017, 2018}
    for year, target in PLAN_TARGETS.items():
        p = years[year]
        assert p["date"] == f"{year}-12-31" and p["target"] == target and p["roc_year"] == year - 1911
        assert p["share"] == modelled_share(year)
        assert p["attained"] == (p["share"] >= target)
        shares = p["share_by_threshold_dbm"]
        # a stricter threshold never covers more people
        ordered = [shares[k] for k in sorted(shares, key=float)]
        assert ordered == sorted(ordered, reverse=True)
    assert [0.70, 0.80, 0.90, 0.95] == [PLAN_TARGETS[y] for y in sorted(PLAN_TARGETS)]


def test_indicator_show_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "indicator", "show"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "2015 (2015-12-31)" in proc.stdout and "target 70%" in proc.stdout
    assert np.isfinite(modelled_share(2016))
