"""The plan's 4G indicator (基地台覆蓋人口數 / 本市總人口數) reconstructed as a modelled series.

For every NCC date the synthetic layout of that date (`generate_layout`, one seed, nested) is put
through the engine (`hata`, -110 dBm) on the shipped resolution-10 grid. The population is the
2026-09 grid for every date: the share is a ratio, so the city's growth (2.74 M in 2014 to 2.87 M)
cancels; only shifts between districts would move it, and those are a few per cent. The result is
a model of coverage given the counted stations, not a measurement;
`docs/coverage.md#the-modelled-4g-indicator` says what drives it.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from zhongdu.coverage._layout import DATA_DIR, DEFAULT_SEED, count_dates, generate_layout, resolve_date
from zhongdu.coverage._types import Grid, load_grid
from zhongdu.errors import ZhongduError

SERIES_CSV = "indicator_4g_modelled.csv"
SERIES_JSON = "indicator_4g_modelled.json"
SERIES_PNG = "indicator_4g_modelled.png"
DEFAULT_RESOLUTION = 10
DEFAULT_THRESHOLD_DBM = -110.0
#: The plan's targets for 104-107 (2015-2018) and the NCC date that closes each year.
PLAN_TARGETS: dict[int, float] = {2015: 0.70, 2016: 0.80, 2017: 0.90, 2018: 0.95}
#: The series per criterion (keys of each row's `by_criterion`): outdoor / indoor / capacity by any
#: operator, and indoor by every major operator at once (a subscriber's view: whichever of the
#: three big networks one is on). `share` stays the outdoor one (docs/coverage.md#models).
SERIES_CRITERIA: tuple[str, ...] = ("outdoor", "indoor", "capacity", "indoor_every_major")
#: Which criterion the API's indicator reports by default (see docs/coverage.md#criteria): outdoor,
#: the definition of docs/coverage.md#models and the only one computed live from station status.
DEFAULT_API_CRITERION = "outdoor"
#: Extra thresholds for the plan year-ends, to show what the result depends on.
SENSITIVITY_THRESHOLDS_DBM: tuple[float, ...] = (-115.0, -105.0, -100.0, -95.0)

Progress = Callable[[str], None]


class IndicatorError(ZhongduError, ValueError):
    """The modelled series is missing or does not match the request."""


def load_default_grid(resolution: int = DEFAULT_RESOLUTION) -> Grid:
    """The shipped grid (coverage/data/grid_res10.csv.gz); needs no source data."""
    from zhongdu.coverage._grid_build import check_resolution

    res = check_resolution(resolution)
    path = DATA_DIR / f"grid_res{res}.csv.gz"
    if not path.is_file():
        raise IndicatorError(
            f"no shipped grid at resolution {res} ({path.name}); only resolution {DEFAULT_RESOLUTION} is "
            f"shipped. Build one with `zhongdu grid build --resolution {res} --out grid.csv`"
        )
    return _load_default_grid_cached(str(path))


@lru_cache(maxsize=2)
def _load_default_grid_cached(path: str) -> Grid:
    return load_grid(path)


def year_end_date(year: int) -> str:
    """The last NCC date of `year` (e.g. 2015 -> 2015-12-31)."""
    all_dates = count_dates()
    dates = [d for d in all_dates if d.startswith(f"{year}-")]
    if not dates:
        raise IndicatorError(f"no NCC count in {year}; counts cover {all_dates[0][:4]}-{all_dates[-1][:4]}")
    return str(dates[-1])


def indicator_at(
    grid: Grid,
    date: str,
    *,
    seed: int = DEFAULT_SEED,
    threshold_dbm: float = DEFAULT_THRESHOLD_DBM,
    model: Literal["disk", "hata"] = "hata",
) -> dict[str, Any]:
    """One row of the series: the layout at `date` and its coverage result."""
    from zhongdu.coverage._engine import compute_coverage

    iso = resolve_date(date)
    stations = generate_layout(grid, date=iso, seed=seed)
    if model not in ("hata", "disk"):
        raise IndicatorError(f"model must be 'hata' or 'disk', got {model!r}")
    result = compute_coverage(grid, stations, model=model, threshold_dbm=threshold_dbm)
    by_criterion, by_operator = _criteria(grid, stations, model, threshold_dbm, result.share)
    return {
        "date": iso,
        "share": result.share,
        "by_criterion": by_criterion,
        "indoor_by_operator": by_operator,
        "population_covered": result.population_covered,
        "population_total": result.population_total,
        "stations": len(set(stations.station_id.tolist())),
        "sectors": len(stations),
        "districts": [
            {"district": d.district, "population": d.population, "covered": d.covered, "share": d.share}
            for d in result.districts
        ],
    }


def _criteria(
    grid: Grid, stations: Any, model: Literal["disk", "hata"], threshold_dbm: float, outdoor: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Shares per criterion (SERIES_CRITERIA) and the indoor share of each operator."""
    from zhongdu.coverage._by_operator import compute_by_operator

    kw: dict[str, Any] = {"model": model, "threshold_dbm": threshold_dbm}
    each = compute_by_operator(grid, stations, operator="each", criterion="indoor", **kw)
    capacity = compute_by_operator(grid, stations, operator="any", criterion="capacity", **kw)["any"].share
    by_criterion = {"outdoor": outdoor, "indoor": each["any"].share, "capacity": capacity}
    by_criterion["indoor_every_major"] = each["every_major"].share if "every_major" in each else 0.0
    by_operator = {k: v.share for k, v in each.items() if k not in ("any", "every_major")}
    return by_criterion, by_operator


def series_share(row: dict[str, Any], criterion: str) -> float:
    """A series row's share for a criterion key (SERIES_CRITERIA, `indoor_<operator>`)."""
    if criterion == "outdoor" or ("by_criterion" not in row and criterion == "outdoor"):
        return float(row["share"])
    if criterion in row.get("by_criterion", {}):
        return float(row["by_criterion"][criterion])
    if criterion.startswith("indoor_") and criterion[7:] in row.get("indoor_by_operator", {}):
        return float(row["indoor_by_operator"][criterion[7:]])
    raise IndicatorError(
        f"the modelled series has no criterion {criterion!r}; use one of {', '.join(SERIES_CRITERIA)} "
        "or indoor_<operator> (e.g. indoor_CHT)"
    )


def compute_series(
    grid: Grid,
    *,
    seed: int = DEFAULT_SEED,
    threshold_dbm: float = DEFAULT_THRESHOLD_DBM,
    dates: list[str] | None = None,
    sensitivity: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The whole modelled series (every NCC date), plan year-ends and threshold sensitivity."""
    say = progress or (lambda _m: None)
    todo = list(dates) if dates is not None else list(count_dates())
    rows = []
    t0 = time.perf_counter()
    for i, date in enumerate(todo):
        rows.append(indicator_at(grid, date, seed=seed, threshold_dbm=threshold_dbm))
        say(
            f"{i + 1}/{len(todo)} {date}: {rows[-1]['stations']:,} stations, share {rows[-1]['share']:.4f} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    by_date = {r["date"]: r for r in rows}
    plan_years = []
    for year, target in PLAN_TARGETS.items():
        date = year_end_date(year)
        row = by_date.get(date) or indicator_at(grid, date, seed=seed, threshold_dbm=threshold_dbm)
        entry: dict[str, Any] = {
            "year": year,
            "roc_year": year - 1911,
            "date": date,
            "target": target,
            "share": row["share"],
            "stations": row["stations"],
            "attained": row["share"] >= target,
            "by_criterion": row["by_criterion"],
            "indoor_by_operator": row["indoor_by_operator"],
        }
        if sensitivity:
            entry["share_by_threshold_dbm"] = {
                str(int(t)): indicator_at(grid, date, seed=seed, threshold_dbm=t)["share"]
                for t in SENSITIVITY_THRESHOLDS_DBM
            }
            entry["share_disk_model"] = indicator_at(grid, date, seed=seed, model="disk")["share"]
            say(
                f"sensitivity {date}: {entry['share_by_threshold_dbm']}, disk {entry['share_disk_model']:.4f}"
            )
        plan_years.append(entry)
    curve = stations_needed_curve(grid, seed=seed, threshold_dbm=threshold_dbm) if sensitivity else []
    if curve:
        say(f"stations-needed curve: {[(c['stations'], round(c['share'], 4)) for c in curve]}")
    return {
        "stations_needed": curve,
        "what": "modelled share of population covered by 4G base stations (基地台覆蓋人口數/本市總人口數)",
        "model": "hata",
        "threshold_dbm": threshold_dbm,
        "seed": seed,
        "grid": {"resolution": grid.resolution, "cells": len(grid), "population": "2026-09 (all dates)"},
        "stations": "synthetic layouts from NCC 4G counts per district (zhongdu.coverage.generate_layout)",
        "series": rows,
        "plan_years": plan_years,
        "criteria": list(SERIES_CRITERIA),
        "default_api_criterion": DEFAULT_API_CRITERION,
    }


#: Fractions of a date's counted stations for the stations-needed curve.
CURVE_FRACTIONS: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)


def stations_needed_curve(
    grid: Grid,
    *,
    date: str = "2015-12-31",
    seed: int = DEFAULT_SEED,
    threshold_dbm: float = DEFAULT_THRESHOLD_DBM,
    fractions: tuple[float, ...] = CURVE_FRACTIONS,
) -> list[dict[str, Any]]:
    """Share when only a fraction of `date`'s stations exist (each district's first sites).

    The counted stations saturate the indicator, so this says how many stations, placed the same
    way, the plan's targets would have needed in this model.
    """
    from zhongdu.coverage._engine import compute_coverage
    from zhongdu.coverage._layout import layout_counts, layout_from_counts

    full = layout_counts(grid, date)
    out = []
    for f in fractions:
        counts = {k: round(v * f) for k, v in full.items()}
        if sum(counts.values()) == 0:
            continue
        result = compute_coverage(
            grid, layout_from_counts(grid, counts, seed=seed), threshold_dbm=threshold_dbm
        )
        out.append({"date": date, "fraction": f, "stations": sum(counts.values()), "share": result.share})
    return out


def write_series(doc: dict[str, Any], out_dir: Path = DATA_DIR) -> list[Path]:
    """CSV (one row per date, per-district shares as columns), JSON (everything) and a PNG plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = doc["series"]
    names = [d["district"] for d in rows[0]["districts"]]
    csv_path = out_dir / SERIES_CSV
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "date",
                "share",
                "population_covered",
                "population_total",
                "stations",
                "sectors",
                *(f"share_{c}" for c in SERIES_CRITERIA[1:]),
                *(f"share_indoor_{o}" for o in rows[0]["indoor_by_operator"]),
                *(f"share_{n}" for n in names),
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r["date"],
                    repr(r["share"]),
                    repr(r["population_covered"]),
                    repr(r["population_total"]),
                    r["stations"],
                    r["sectors"],
                    *(repr(r["by_criterion"][c]) for c in SERIES_CRITERIA[1:]),
                    *(repr(r["indoor_by_operator"].get(o, 0.0)) for o in rows[0]["indoor_by_operator"]),
                    *(repr(d["share"]) for d in r["districts"]),
                ]
            )
    json_path = out_dir / SERIES_JSON
    json_path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths = [csv_path, json_path]
    png = plot_series(doc, out_dir / SERIES_PNG)
    if png is not None:
        paths.append(png)
    return paths


def plot_series(doc: dict[str, Any], path: Path) -> Path | None:
    """Modelled share by date with the plan's targets, and the station count (matplotlib, Agg)."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["series"]
    x: Any = [dt.date.fromisoformat(r["date"]) for r in rows]
    curve = doc.get("stations_needed") or []
    if curve:
        fig, (ax, axc) = plt.subplots(
            1, 2, figsize=(13, 4.8), dpi=110, gridspec_kw={"width_ratios": [2.2, 1]}
        )
        axc.semilogx([c["stations"] for c in curve], [100 * c["share"] for c in curve], marker="o")
        for t in PLAN_TARGETS.values():
            axc.axhline(100 * t, color="tab:red", lw=0.8, ls="--")
        axc.set_xlabel(f"stations (first sites of the {curve[0]['date']} layout)")
        axc.set_ylabel("population covered (%)")
        axc.set_title("stations the targets need in this model", fontsize=9)
        axc.grid(alpha=0.3, which="both")
        axc.set_ylim(0, 102)
    else:
        fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    ax.plot(
        x,
        [100 * r["share"] for r in rows],
        marker=".",
        label=f"outdoor, any operator (hata, {doc['threshold_dbm']:g} dBm)",
    )
    labels = {  # colours away from the targets' red
        "indoor": ("indoor (3GPP O2I loss), any operator", "tab:orange"),
        "capacity": ("outdoor within sector capacity", "tab:green"),
        "indoor_every_major": ("indoor, by every major operator (CHT, TWM, FET)", "tab:purple"),
    }
    for key, (label, colour) in labels.items():
        if all("by_criterion" in r for r in rows):
            values = [100 * r["by_criterion"][key] for r in rows]
            ax.plot(x, values, marker=".", markersize=3, color=colour, label=label)
    for p in doc["plan_years"]:
        d: Any = dt.date.fromisoformat(p["date"])
        ax.plot([d], [100 * p["target"]], marker="_", markersize=18, color="tab:red")
        ax.annotate(
            f"target {100 * p['target']:.0f}%",
            (d, 100 * p["target"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
            color="tab:red",
        )
        for t, share in p.get("share_by_threshold_dbm", {}).items():
            ax.plot([d], [100 * share], marker="x", color="tab:gray", markersize=4)
            ax.annotate(
                f"{t}",
                (d, 100 * share),
                textcoords="offset points",
                xytext=(4, 0),
                fontsize=6,
                color="tab:gray",
            )
    ax.set_ylabel("population covered (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.bar(x, [r["stations"] for r in rows], width=20, alpha=0.2, color="tab:green", label="NCC 4G stations")
    ax2.set_ylabel("4G base stations (NCC count)")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    lines = ax.get_legend_handles_labels()
    bars = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + bars[0], lines[1] + bars[1], loc="lower right", fontsize=7)
    ax.set_title(
        "Taichung 4G population coverage, modelled from NCC station counts (synthetic sites)\n"
        "gray x: share at other thresholds (dBm) at plan year-ends",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@lru_cache(maxsize=1)
def _series_doc() -> dict[str, Any]:
    path = DATA_DIR / SERIES_JSON
    if not path.is_file():
        raise IndicatorError(f"{path} is missing; remake it with `zhongdu indicator rebuild`")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def modelled_indicator_series(criterion: str | None = None) -> list[dict[str, Any]]:
    """The shipped series: [{date, share, population_covered, population_total, stations, districts}].

    With a `criterion` (a `by_criterion` key or `indoor_<operator>`), `share` is that criterion's
    and `population_covered` is share x total (district detail stays the outdoor one).
    """
    rows = [dict(r) for r in _series_doc()["series"]]
    if criterion is None:
        return rows
    for r in rows:
        r["share"] = series_share(r, criterion)
        r["population_covered"] = r["share"] * float(r["population_total"])
        r["criterion"] = criterion
    return rows


def modelled_indicator_document() -> dict[str, Any]:
    """The shipped series with its metadata, plan year-ends and sensitivity lines."""
    return dict(_series_doc())


def modelled_share(year: int) -> float:
    """The modelled share at the last NCC date of `year` (the plan indicator's actual)."""
    date = year_end_date(year)
    for r in _series_doc()["series"]:
        if r["date"] == date:
            return float(r["share"])
    raise IndicatorError(f"the shipped series has no row for {date}; run `zhongdu indicator rebuild`")
