"""`zhongdu coverage compute` (registered by `zhongdu.cli`); its benchmark: benchmarks/bench_coverage.py.

`compute` reads a grid CSV and a stations CSV and prints the JSON object of docs/coverage.md#output
(`--json`) or a table; `--per-cell out.csv` also writes best RSRP, serving sector and covered flag
per cell. Progress goes to stderr, so stdout stays one JSON object. Imports inside handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: The grid shipped with the package, the default of every command that reads a grid.
SHIPPED_GRID = Path(__file__).resolve().parent / "data" / "grid_res10.csv.gz"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
    parser = subparsers.add_parser(
        "coverage",
        help="population covered by 4G sectors on an H3 grid (disk or Hata model)",
        description="Coverage engine commands: `compute` from CSV files.",
    )
    sub = parser.add_subparsers(dest="coverage_command", metavar="SUBCOMMAND", required=True)
    compute = sub.add_parser(
        "compute",
        help="covered population and share, city-wide and per district",
        description=(
            "Best-server coverage of every `up` sector over the grid's cells (docs/coverage.md#models). "
            "Prints {population_total, population_covered, share, districts: [...]} with --json."
        ),
    )
    compute.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="grid: CSV (h3, district, population[, environment]) or .parquet/.arrow "
        "(default: the shipped res-10 grid)",
    )
    compute.add_argument(
        "--stations",
        type=Path,
        required=True,
        help="stations CSV, one row per sector (docs/coverage.md#stations-csv)",
    )
    compute.add_argument(
        "--model", choices=("disk", "hata"), default="hata", help="propagation model (default hata)"
    )
    compute.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="RSRP threshold in dBm for hata (default: ZHONGDU_RSRP_THRESHOLD_DBM, -110)",
    )
    add_criterion_arguments(compute)
    compute.add_argument(
        "--operator",
        default="any",
        metavar="NAME|any|each",
        help="any (default): covered by at least one operator; an operator (CHT, TWM, FET, APT, TSTAR "
        "or its name): its sectors only; each: every operator, any, and every major operator at once. "
        "Needs the stations file's `operator` column",
    )
    compute.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    compute.add_argument(
        "--per-cell",
        type=Path,
        metavar="OUT.csv",
        help="also write h3, best_rsrp_dbm, station_id, sector_id, covered",
    )
    compute.set_defaults(handler=_compute)


def add_criterion_arguments(parser: argparse.ArgumentParser) -> None:
    """--criterion and the capacity parameters (shared by `coverage compute` and `plan`)."""
    parser.add_argument(
        "--criterion",
        choices=("outdoor", "indoor", "capacity"),
        default="outdoor",
        help="outdoor (default): signal outdoors (docs/coverage.md#models); indoor: plus the building "
        "loss of 3GPP TR 38.901 O2I per band and environment; capacity: outdoor and the serving sector's "
        "busy-hour load under 1 (docs/coverage.md#criteria)",
    )
    parser.add_argument(
        "--activity", type=float, default=None, help="capacity: busy-hour share of people active (0.05)"
    )
    parser.add_argument(
        "--users-per-mhz", type=float, default=None, help="capacity: users a sector carries per MHz (10)"
    )


def capacity_params(args: argparse.Namespace) -> Any:
    """CapacityParams from --activity/--users-per-mhz (None when neither is given)."""
    if args.activity is None and args.users_per_mhz is None:
        return None
    from zhongdu.coverage._capacity import CapacityParams
    from zhongdu.errors import ConfigError

    given = {
        k: v for k, v in (("activity", args.activity), ("users_per_mhz", args.users_per_mhz)) if v is not None
    }
    try:
        return CapacityParams(**given)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _progress(message: str) -> None:
    print(f"zhongdu coverage: {message}", file=sys.stderr, flush=True)


#: `Settings.rsrp_threshold_dbm`'s default (a test keeps the two equal).
DEFAULT_RSRP_THRESHOLD_DBM = -110.0
THRESHOLD_ENV = "ZHONGDU_RSRP_THRESHOLD_DBM"


def _threshold_setting() -> float:
    """`Settings().rsrp_threshold_dbm`, without importing the settings when it is not set.

    pydantic-settings costs 0.1 s to import, a tenth of a resolution-12 `coverage compute`; when
    no environment variable names the threshold (matched in any case, as the settings match
    them) its value is the default, and otherwise the settings read and check it as everywhere.
    """
    import os

    if not any(name.upper() == THRESHOLD_ENV for name in os.environ):
        return DEFAULT_RSRP_THRESHOLD_DBM
    from zhongdu.settings import Settings

    return Settings().rsrp_threshold_dbm


def _compute(args: argparse.Namespace) -> int:
    import json
    import time

    from zhongdu.coverage._engine import compute_coverage
    from zhongdu.coverage._types import load_grid, load_stations

    threshold = args.threshold
    if threshold is None and args.model == "hata":  # disk ignores it
        threshold = _threshold_setting()
    t0 = time.perf_counter()
    if args.grid is None:  # the same default as `plan` and `stations generate`
        args.grid = SHIPPED_GRID
    grid = load_grid(args.grid)
    _progress(
        f"grid {args.grid}: {len(grid):,} cells at resolution {grid.resolution} "
        f"({time.perf_counter() - t0:.2f} s)"
    )
    t1 = time.perf_counter()
    stations = load_stations(args.stations)
    _progress(
        f"stations {args.stations}: {len(stations):,} sector rows, {int(stations.up.sum()):,} up "
        f"({time.perf_counter() - t1:.2f} s)"
    )
    t2 = time.perf_counter()
    thresholds = {} if threshold is None else {"threshold_dbm": threshold}  # disk: the engine's default
    capacity = capacity_params(args)
    # capacity with operators: each operator's subscribers on its own sectors (_by_operator)
    if args.operator != "any" or (args.criterion == "capacity" and "operator" in stations.extra):
        return _compute_by_operator(args, grid, stations, thresholds, capacity, t2)
    result = compute_coverage(
        grid,
        stations,
        model=args.model,
        per_cell=args.per_cell is not None,
        criterion=args.criterion,
        capacity=capacity,
        **thresholds,
    )
    _progress(
        f"{args.model} model, {args.criterion}: share {result.share:.4f} ({time.perf_counter() - t2:.2f} s)"
    )
    if args.per_cell is not None:
        _write_per_cell(args.per_cell, grid, stations, result)
        _progress(f"per-cell results written to {args.per_cell}")
    if args.json:
        doc = (
            result.to_dict()
            if args.criterion == "outdoor"
            else {**result.to_dict(), "criterion": args.criterion}
        )
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_table(result)
    return 0


def _print_table(result: Any) -> None:
    print(f"{'district':<8} {'population':>12} {'covered':>12} {'share':>7}")
    for d in result.districts:
        print(f"{d.district:<8} {d.population:>12,.0f} {d.covered:>12,.0f} {d.share:>7.2%}")
    total, covered = result.population_total, result.population_covered
    print(f"{'全市':<8} {total:>12,.0f} {covered:>12,.0f} {result.share:>7.2%}")


def _compute_by_operator(
    args: argparse.Namespace, grid: Any, stations: Any, thresholds: dict[str, float], capacity: Any, t0: float
) -> int:
    import json
    import time

    from zhongdu.coverage._by_operator import by_operator_json, compute_by_operator
    from zhongdu.errors import ConfigError

    if args.per_cell is not None:
        raise ConfigError(
            "--per-cell writes one layout's best servers: not with --operator NAME|each, nor with "
            "--criterion capacity on a stations file with operators (served per subscriber share)"
        )
    results = compute_by_operator(
        grid,
        stations,
        operator=args.operator,
        model=args.model,
        criterion=args.criterion,
        capacity=capacity,
        **thresholds,
    )
    shares = ", ".join(f"{k} {v.share:.4f}" for k, v in results.items())
    _progress(f"{args.model} model, {args.criterion}: {shares} ({time.perf_counter() - t0:.2f} s)")
    if args.json:
        json.dump(by_operator_json(results, args.criterion, args.operator), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for name, result in results.items():
            print(f"== {name} ==")
            _print_table(result)
    return 0


def _write_per_cell(path: Path, grid: Any, stations: Any, result: Any) -> None:
    import csv

    import numpy as np

    serving = result.serving_row
    has = serving >= 0
    sid = np.where(has, stations.station_id[np.maximum(serving, 0)], "")
    sec = np.where(has, stations.sector_id[np.maximum(serving, 0)], "")
    rsrp = ["" if np.isnan(x) else f"{x:.2f}" for x in result.best_rsrp_dbm.tolist()]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["h3", "best_rsrp_dbm", "station_id", "sector_id", "covered"])
        w.writerows(
            zip(
                (format(c, "x") for c in grid.cells.tolist()),
                rsrp,
                sid.tolist(),
                sec.tolist(),
                np.where(result.covered, "1", "0").tolist(),
                strict=True,
            )
        )

