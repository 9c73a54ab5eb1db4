"""Coverage data commands: grid build, station layouts, indicator series. Imports inside handlers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _progress(quiet: bool) -> Any:
    """A progress printer to stderr (stdout stays clean for data and JSON)."""
    t0 = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    return say


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser: `grid`, `stations`, `indicator`."""
    grid = subparsers.add_parser("grid", help="H3 population grid of Taichung's 29 districts")
    grid_sub = grid.add_subparsers(dest="grid_command", metavar="ACTION", required=True)
    build = grid_sub.add_parser(
        "build",
        help="build the population grid from the real inputs (ZHONGDU_SOURCE_DATA_DIR)",
        description="H3 cells whose centres fall in each district; the district's official 2026-09 "
        "population spread by the 2017 statistical areas; columns h3,district,population,environment "
        "(binary grids add lat,lng and the coverage engine's geometry; docs/grid-formats.md).",
    )
    build.add_argument(
        "--resolution", type=int, default=10, help="H3 resolution 7-12 (default 10, ~168k cells)"
    )
    build.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output grid: .csv/.csv.gz, or .arrow/.parquet (binary, with cell centres; fastest to read)",
    )
    build.add_argument("--source-dir", type=Path, default=None, help="override ZHONGDU_SOURCE_DATA_DIR")
    build.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes computing cell centres from resolution 10 on (default 1; 2 helps only when a "
        "second core is idle). The grid is the same either way",
    )
    build.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    build.set_defaults(handler=_grid_build)
    derive = grid_sub.add_parser(
        "rebuild-data",
        help="remake the shipped derived files in coverage/data (grid_res10.csv.gz, districts, 4G counts)",
    )
    derive.add_argument("--source-dir", type=Path, default=None, help="override ZHONGDU_SOURCE_DATA_DIR")
    derive.add_argument("--out-dir", type=Path, default=None, help="default: the package's data folder")
    derive.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    derive.set_defaults(handler=_grid_rebuild_data)
    check = grid_sub.add_parser(
        "check-sources",
        help="verify the shipped Taichung inputs (coverage/data/source) against their manifest",
        description="Each shipped file must decompress and have the rows and SHA-256 its manifest "
        "records; with --originals, each original must pack to the same content. Exit 1 on a problem.",
    )
    check.add_argument("--source-dir", type=Path, default=None, help="default: the shipped copy")
    check.add_argument("--originals", type=Path, default=None, help="folder of the original files to compare")
    check.set_defaults(handler=_grid_check_sources)
    pack = grid_sub.add_parser(
        "pack-sources",
        help="remake the shipped inputs (coverage/data/source) from the original files",
        description="Gzip each input under its own name + .gz, dropping the columns no code reads, "
        "and write manifest.json (rows, SHA-256). Reproducible: the same originals give the same bytes.",
    )
    pack.add_argument(
        "--from", dest="originals", type=Path, required=True, help="folder of the original files"
    )
    pack.add_argument("--out-dir", type=Path, default=None, help="default: the shipped copy's folder")
    pack.set_defaults(handler=_grid_pack_sources)

    stations = subparsers.add_parser("stations", help="synthetic 4G station layouts from NCC counts")
    st_sub = stations.add_subparsers(dest="stations_command", metavar="ACTION", required=True)
    gen = st_sub.add_parser(
        "generate",
        help="place the NCC-counted 4G stations of a date, density following population",
        description="Exactly the NCC count of 4G stations per district at --date, 3 sectors each "
        "(65° beamwidth), bands 700-2600 MHz; seeded and nested (a later date extends an earlier one).",
    )
    gen.add_argument(
        "--date", default="2022-11-30", help="NCC date YYYY-MM-DD or YYYY-MM (default 2022-11-30)"
    )
    gen.add_argument("--seed", type=int, default=2015, help="random seed (default 2015)")
    gen.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="grid CSV/Parquet/Arrow (default: the shipped resolution-10 grid)",
    )
    gen.add_argument("--out", type=Path, required=True, help="output stations CSV")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    gen.set_defaults(handler=_stations_generate)
    counts = st_sub.add_parser("counts", help="NCC 4G station counts per district at a date (shipped table)")
    counts.add_argument("--date", default=None, help="NCC date YYYY-MM-DD or YYYY-MM (default: latest)")
    counts.add_argument("--json", action="store_true", help="print one JSON object")
    counts.set_defaults(handler=_stations_counts)

    ind = subparsers.add_parser(
        "indicator",
        help="plan indicators: import, export, score, report; the modelled 4G series (rebuild, show)",
    )
    ind_sub = ind.add_subparsers(dest="indicator_command", metavar="ACTION", required=True)
    rebuild = ind_sub.add_parser(
        "rebuild",
        help="recompute the modelled series for every NCC date (coverage/data/indicator_4g_modelled.*)",
        description="For each NCC date: the layout (same seed), hata coverage on the shipped grid; writes "
        "CSV, JSON (with plan year-ends and threshold sensitivity) and a PNG plot.",
    )
    rebuild.add_argument("--seed", type=int, default=2015, help="layout seed (default 2015)")
    rebuild.add_argument("--threshold", type=float, default=-110.0, help="RSRP threshold dBm (default -110)")
    rebuild.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="grid CSV/Parquet/Arrow (default: the shipped resolution-10 grid)",
    )
    rebuild.add_argument("--out-dir", type=Path, default=None, help="default: the package's data folder")
    rebuild.add_argument("--no-sensitivity", action="store_true", help="skip the extra thresholds")
    rebuild.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    rebuild.set_defaults(handler=_indicator_rebuild)
    show = ind_sub.add_parser("show", help="print the shipped series (plan year-ends first)")
    show.add_argument("--json", action="store_true", help="print the whole JSON document")
    show.set_defaults(handler=_indicator_show)
    from zhongdu.api.indicator_cli import register_actions

    register_actions(ind_sub)


def _grid_build(args: argparse.Namespace) -> int:
    from zhongdu.coverage._grid_build import build_grid
    from zhongdu.coverage._types import write_grid

    say = _progress(args.quiet)
    grid = build_grid(args.resolution, args.source_dir, progress=say, processes=args.processes)
    write_grid(grid, args.out)
    say(f"wrote {len(grid):,} cells, population {grid.population.sum():,.0f}, to {args.out}")
    return 0


def _grid_rebuild_data(args: argparse.Namespace) -> int:
    from zhongdu.coverage._grid_build import build_grid
    from zhongdu.coverage._layout import (
        DATA_DIR,
        DISTRICTS_FILE,
        STATION_COUNTS_FILE,
        build_station_counts_table,
        write_districts_table,
        write_station_counts_table,
    )
    from zhongdu.coverage._operators import (
        OPERATOR_COUNTS_FILE,
        build_operator_counts_table,
    )
    from zhongdu.coverage._types import write_grid

    say = _progress(args.quiet)
    out: Path = args.out_dir or DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    write_districts_table(args.source_dir, out / DISTRICTS_FILE)
    write_station_counts_table(build_station_counts_table(args.source_dir), out / STATION_COUNTS_FILE)
    write_station_counts_table(build_operator_counts_table(args.source_dir), out / OPERATOR_COUNTS_FILE)
    say(f"wrote {out / DISTRICTS_FILE}, {out / STATION_COUNTS_FILE} and {out / OPERATOR_COUNTS_FILE}")
    grid = build_grid(10, args.source_dir, progress=say)
    write_grid(grid, out / "grid_res10.csv.gz")
    say(f"wrote {out / 'grid_res10.csv.gz'} ({len(grid):,} cells)")
    return 0


def _grid_check_sources(args: argparse.Namespace) -> int:
    from zhongdu.coverage._grid_build import SHIPPED_SOURCE_DIR
    from zhongdu.coverage._sources import MANIFEST_FILE, check_sources

    source_dir: Path = args.source_dir or SHIPPED_SOURCE_DIR
    problems = check_sources(source_dir, args.originals)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    against = f", and the originals in {args.originals} pack to them" if args.originals else ""
    print(f"{source_dir}: every file matches {MANIFEST_FILE}{against}")
    return 0


def _grid_pack_sources(args: argparse.Namespace) -> int:
    from zhongdu.coverage._grid_build import SHIPPED_SOURCE_DIR
    from zhongdu.coverage._sources import pack_sources

    out: Path = args.out_dir or SHIPPED_SOURCE_DIR
    packed = pack_sources(args.originals, out)
    for p in packed:
        print(f"{p.name}\t{p.rows:>6,} rows\t{p.bytes_packed / 1e6:6.3f} MB")
    print(f"total {sum(p.bytes_packed for p in packed) / 1e6:.2f} MB in {out}")
    return 0


def _load_grid_arg(path: Path | None) -> Any:
    from zhongdu.coverage._indicator import load_default_grid
    from zhongdu.coverage._types import load_grid

    return load_default_grid() if path is None else load_grid(path)


def _stations_generate(args: argparse.Namespace) -> int:
    from zhongdu.coverage._layout import generate_layout
    from zhongdu.coverage._types import write_stations

    say = _progress(args.quiet)
    grid = _load_grid_arg(args.grid)
    say(f"grid: {len(grid):,} cells at resolution {grid.resolution}")
    stations = generate_layout(grid, date=args.date, seed=args.seed)
    write_stations(stations, args.out)
    n = len(set(stations.station_id.tolist()))
    say(f"wrote {n:,} stations ({len(stations):,} sectors) to {args.out}")
    return 0


def _stations_counts(args: argparse.Namespace) -> int:
    from zhongdu.coverage._layout import resolve_date, station_counts, unlabelled_station_count

    date = resolve_date(args.date)
    counts = station_counts(date)
    extra = unlabelled_station_count(date)
    if args.json:
        print(json.dumps({"date": date, "unlabelled": extra, "districts": counts}, ensure_ascii=False))
        return 0
    print(f"{date}: {sum(counts.values()) + extra:,} 4G stations ({extra} without district)")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {name}\t{n:,}")
    return 0


def _indicator_rebuild(args: argparse.Namespace) -> int:
    from zhongdu.coverage._indicator import compute_series, write_series
    from zhongdu.coverage._layout import DATA_DIR

    say = _progress(args.quiet)
    grid = _load_grid_arg(args.grid)
    doc = compute_series(
        grid, seed=args.seed, threshold_dbm=args.threshold, sensitivity=not args.no_sensitivity, progress=say
    )
    for path in write_series(doc, args.out_dir or DATA_DIR):
        say(f"wrote {path}")
    for p in doc["plan_years"]:
        print(
            f"{p['year']} ({p['date']}): modelled {100 * p['share']:.2f}% vs target {100 * p['target']:.0f}%"
        )
    return 0


def _indicator_show(args: argparse.Namespace) -> int:
    from zhongdu.coverage._indicator import modelled_indicator_document

    doc = modelled_indicator_document()
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    print(f"model {doc['model']}, threshold {doc['threshold_dbm']} dBm, seed {doc['seed']} (synthetic sites)")
    for p in doc["plan_years"]:
        print(f"{p['year']} ({p['date']}): {100 * p['share']:.2f}% vs target {100 * p['target']:.0f}%")
    for r in doc["series"]:
        print(f"{r['date']}\t{r['stations']:>6,}\t{100 * r['share']:.2f}%")
    return 0
