"""Placement commands (`zhongdu plan`), registered by `zhongdu.cli`. Imports inside handlers.

`zhongdu plan --grid G --stations S --candidates C --model disk|hata (--target 0.95 | --budget N)
[--max-cost X] [--district-min 西屯區=0.9 ...] [--threshold -110] --json` prints one JSON object
(docs/placement.md#output); `zhongdu plan candidates --grid G --stations S --out C` writes a lattice of
candidate sites for planners with no list of their own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zhongdu.coverage._types import Grid


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
    parser = subparsers.add_parser(
        "plan",
        help="order candidate sites by the covered population they add (greedy, CELF)",
        description=(
            "Which candidate sites, in which order, raise the covered population most: greedy on marginal "
            "covered population (per unit cost when costs differ) with lazy evaluation, until the target "
            "share is reached or the budget is spent. `zhongdu plan candidates --help` makes candidates."
        ),
    )
    _common(parser, required=False)
    parser.add_argument("--candidates", type=Path, help="candidate sites CSV (stations columns + cost, kind)")
    goal = parser.add_mutually_exclusive_group()
    goal.add_argument("--target", type=float, help="target city share in [0, 1], e.g. 0.95")
    goal.add_argument("--budget", type=int, help="number of sites to add")
    parser.add_argument("--max-cost", type=float, help="bound on the total `cost` of the picks")
    parser.add_argument(
        "--district-min",
        action="append",
        default=[],
        metavar="DISTRICT=SHARE",
        help="minimum share for a district, met first (repeatable), e.g. 西屯區=0.9",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON object (default: a table)")
    parser.add_argument(
        "--cells-out",
        type=Path,
        help="CSV of the cells each pick newly covers (pick,station_id,h3,district,population)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=_plan)
    sub = parser.add_subparsers(dest="plan_command", metavar="SUBCOMMAND")
    cand = sub.add_parser(
        "candidates",
        help="write public-land-like candidate sites on an H3 lattice over under-covered people",
        description=(
            "One tri-sector candidate (1800 MHz, 20 MHz, 30 m, 58 dBm EIRP, 65° sectors, radius_m 1000, "
            "cost 1, kind public_land) at the centre of every lattice cell whose population the existing "
            "up sectors miss."
        ),
    )
    _common(cand, required=True)
    cand.add_argument("--out", type=Path, required=True, help="candidates CSV to write")
    cand.add_argument("--resolution", type=int, default=7, help="H3 lattice resolution (default 7, ~2.5 km)")
    cand.add_argument(
        "--min-population",
        type=float,
        default=1.0,
        help="uncovered people a lattice cell needs to get a candidate (default 1)",
    )
    cand.add_argument("--limit", type=int, help="keep the N lattice cells with most uncovered people")
    cand.set_defaults(handler=_candidates)


def _common(parser: argparse.ArgumentParser, *, required: bool) -> None:
    # On the sub-command, defaults are suppressed so options given before `candidates` survive.
    sub: dict[str, Any] = {"default": argparse.SUPPRESS} if required else {}
    parser.add_argument("--grid", type=Path, help="population grid CSV (default: the shipped grid)", **sub)
    parser.add_argument("--stations", type=Path, required=required, help="existing stations CSV")
    parser.add_argument(
        "--model",
        choices=("disk", "hata"),
        help="propagation model (default hata)",
        **(sub or {"default": "hata"}),
    )
    parser.add_argument(
        "--threshold", type=float, help="RSRP threshold, dBm (default -110)", **(sub or {"default": -110.0})
    )
    parser.add_argument(
        "--criterion",
        choices=("outdoor", "indoor"),
        help="plan for outdoor coverage (default) or indoor (3GPP O2I building loss counted)",
        **(sub or {"default": "outdoor"}),
    )
    parser.add_argument(
        "--operator",
        help="count a cell as covered only by this operator's sectors (CHT, TWM, FET, ...) or by each "
        "major operator's (every_major; new sites are then shared by the three); default: any operator",
        **(sub or {"default": None}),
    )


def _progress(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stderr, seconds since the placement began (stdout stays the result)."""
    t0 = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    return say


def _grid(path: Path | None) -> Grid:
    from zhongdu.coverage._indicator import load_default_grid
    from zhongdu.coverage._types import load_grid

    return load_grid(path) if path is not None else load_default_grid()


def _district_minima(items: list[str]) -> dict[str, float]:
    from zhongdu.coverage._placement import PlacementError

    minima: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError(item)
            minima[name.strip()] = float(value)
        except ValueError:
            raise PlacementError(
                f"--district-min expects DISTRICT=SHARE (e.g. 西屯區=0.9), got {item!r}"
            ) from None
    return minima


def _plan(args: argparse.Namespace) -> int:
    from zhongdu.coverage._placement import PlacementError, plan
    from zhongdu.coverage._types import load_stations

    if args.stations is None or args.candidates is None:
        raise PlacementError("zhongdu plan needs --stations and --candidates (and --target or --budget)")
    if args.target is None and args.budget is None and args.max_cost is None:
        raise PlacementError("zhongdu plan needs --target SHARE or --budget N (or --max-cost C)")
    from zhongdu.coverage._memory import keep_freed_memory

    keep_freed_memory()  # the matrix's chunks reuse their pages instead of faulting them in again
    say = _progress(args.quiet)
    grid = _grid(args.grid)
    say(f"grid: {len(grid):,} cells at resolution {grid.resolution}")
    stations, candidates = load_stations(args.stations), load_stations(args.candidates)
    say(f"stations: {len(stations):,} existing sector rows, {len(candidates):,} candidate rows")
    result = plan(
        grid,
        stations,
        candidates,
        model=args.model,
        threshold_dbm=args.threshold,
        target=args.target,
        budget=args.budget,
        max_cost=args.max_cost,
        district_min=_district_minima(args.district_min),
        criterion=args.criterion,
        operator=args.operator,
        progress=say,
    )
    if args.cells_out is not None:
        _write_cells(grid, result, args.cells_out)
        say(f"wrote {sum(len(p.cells) for p in result.picks):,} newly covered cells to {args.cells_out}")
    if args.json:
        json.dump(result.to_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(f"share before {result.share_before:.4%}, after {result.share_after:.4%}")
    for i, p in enumerate(result.picks, 1):
        print(f"{i:4d}  {p.station_id:<24} +{p.gain:12.1f}  {p.share:.4%}  cost {p.cost:g}  ({p.phase})")
    if result.target is not None:
        state = "reached" if result.target_reached else "NOT reached"
        print(
            f"target {result.target:.2%} {state}; "
            f"best reachable with every candidate {result.best_reachable_share:.4%}"
        )
    for d, ok in result.district_min_met.items():
        print(
            f"district minimum {d} {result.district_min[d]:.2%}: {'met' if ok else 'NOT met'} "
            f"({result.districts_after[d]:.4%})"
        )
    return 0


def _write_cells(grid: Grid, result: Any, path: Path) -> None:
    """One row per cell a pick newly covers, in pick order: the blocks each site brings in."""
    import csv

    import numpy as np

    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["pick", "station_id", "h3", "district", "population"])
        for i, pick in enumerate(result.picks, 1):
            cells = np.sort(pick.cells)
            h3 = [f"{int(c):x}" for c in grid.cells[cells].tolist()]
            district = np.asarray(grid.districts)[grid.district_index[cells]].tolist()
            population = grid.population[cells].tolist()
            out.writerows(
                (i, pick.station_id, h, d, p) for h, d, p in zip(h3, district, population, strict=True)
            )


def _candidates(args: argparse.Namespace) -> int:
    from zhongdu.coverage._candidates import generate_candidates
    from zhongdu.coverage._types import load_stations, write_stations

    candidates = generate_candidates(
        _grid(args.grid),
        load_stations(args.stations),
        model=args.model,
        threshold_dbm=args.threshold,
        resolution=args.resolution,
        min_population=args.min_population,
        limit=args.limit,
        criterion=getattr(args, "criterion", "outdoor"),
        operator=getattr(args, "operator", None),
    )
    write_stations(candidates, args.out)
    n_sites = len(set(candidates.station_id.tolist()))
    print(f"wrote {n_sites} candidate sites ({len(candidates)} sectors) to {args.out}", file=sys.stderr)
    return 0
