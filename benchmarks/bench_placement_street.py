"""Placement at street level: the block matrix against the per-pair matrix, `zhongdu plan` at
resolution 11 end to end, and CELF against the exact optimum (HiGHS), each in the same run.

Run: `python benchmarks/bench_placement_street.py` (`--help` for options). Inputs are made in
`--work` (default build/bench-placement-street) by the commands a planner runs:
`zhongdu grid build --resolution 11`, `zhongdu stations generate --date 2014-06-30` (394 sites),
`zhongdu plan candidates --resolution 9 --min-population 0 --limit 5000` per grid.

1. Matrix at resolution 10 (the shipped grid), `--threshold` (-110 dBm): the block matrix over the
   cells the existing network misses (`site_coverage_matrix`, what `build_problem` builds) against
   the per-pair `coverage_matrix` and its site union (the builder before), in-process, median of
   `--repeat` for the new one; equal on those cells (checked); the estimate against the columns.
2. The same at resolution 11 for the first `--old-res11` candidates (the per-pair builder on all
   5,000 needs ~120 million pairs there).
3. `zhongdu plan --grid grid11.arrow ... --budget 200 --json` as a whole process (wall, CPU, peak
   RSS, against the memory estimate), interleaved with the same command as it was before (the
   matrix's float64 path, glibc's malloc defaults: `BASELINE`), median of `--runs` each, same JSON
   checked; and its steps in-process: read the grid, read the CSVs, the existing network's
   coverage, the matrix (against the previous path, expanded matrices equal), CELF.
4. CELF against the exact MCLP at resolution 11 on candidate subsets (the first n of the 5,000)
   and site budgets; where HiGHS does not finish within `--exact-time-limit`, CELF against its
   proven bound.
5. Scenario memory: the estimate the API checks (`placement_footprint`, every populated cell)
   against the growth of `zhongdu plan`'s peak RSS over the same command with one candidate, on
   the 2014 layout (much left to cover) and the 2022-11 one (47,364 sectors, little left).
Wall times on a shared 2-core machine carry its load (printed); CPU times less so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def log(msg: str) -> None:
    print(msg, flush=True)


def zhongdu() -> str:
    exe = Path(sys.executable).with_name("zhongdu")
    return str(exe) if exe.exists() else "zhongdu"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_process(cmd: list[str], out: Path | None = None) -> dict[str, float]:
    """A command under /usr/bin/time: wall s, CPU s (user + sys), peak RSS MB."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        with open(out or os.devnull, "w") as sink:
            proc = subprocess.run(
                ["/usr/bin/time", "-o", tf.name, "-f", "%U %S %M", *cmd],
                stdout=sink,
                stderr=subprocess.PIPE,
                text=True,
            )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        user, system, rss_kb = Path(tf.name).read_text().split()[-3:]
    return {"wall_s": wall, "cpu_s": float(user) + float(system), "peak_mb": int(rss_kb) / 1024}


def inputs(work: Path) -> dict[str, Path]:
    """The resolution-11 grid, the 2014 layout and 5,000 lattice candidates per grid."""
    work.mkdir(parents=True, exist_ok=True)
    exe = zhongdu()
    paths = {
        "grid11": work / "grid11.arrow",
        "stations": work / "stations-2014.csv",
        "cand10": work / "candidates10.csv",
        "cand11": work / "candidates11.csv",
    }
    if not paths["grid11"].exists():
        log("building the resolution-11 grid (zhongdu grid build) ...")
        subprocess.run(
            [exe, "grid", "build", "--resolution", "11", "--out", str(paths["grid11"]), "-q"], check=True
        )
    if not paths["stations"].exists():
        subprocess.run(
            [exe, "stations", "generate", "--date", "2014-06-30", "--out", str(paths["stations"])], check=True
        )
    for key, grid in (("cand10", None), ("cand11", paths["grid11"])):
        if not paths[key].exists():
            cmd = [exe, "plan", "candidates", "--stations", str(paths["stations"]), "--resolution", "9"]
            cmd += ["--min-population", "0", "--limit", "5000", "--out", str(paths[key])]
            if grid is not None:
                cmd += ["--grid", str(grid)]
            subprocess.run(cmd, check=True, capture_output=True)
    return paths


def _cpu_timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """The result, wall seconds and CPU seconds of this process (the load inflates wall time)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def compare_builders(
    grid: Any, stations: Any, candidates: Any, threshold: float, repeat: int, label: str
) -> None:
    """The block matrix against the per-pair builder, same inputs, same process."""
    from scipy import sparse

    from zhongdu.coverage._engine import coverage_matrix
    from zhongdu.coverage._footprint import placement_footprint
    from zhongdu.coverage._placement import existing_covered, site_matrix
    from zhongdu.coverage._site_matrix import column_bound, site_coverage_matrix

    covered = existing_covered(grid, stations, model="hata", threshold_dbm=threshold)
    cells = ~covered & (grid.population > 0)
    site_coverage_matrix(grid, candidates, model="hata", threshold_dbm=threshold, cells=cells)  # warm caches
    runs = [
        _cpu_timed(site_coverage_matrix, grid, candidates, model="hata", threshold_dbm=threshold, cells=cells)
        for _ in range(repeat)
    ]
    new, t_new = runs[0][0], statistics.median(t for _, t, _ in runs)
    c_new = statistics.median(c for _, _, c in runs)
    bound, t_bound = _timed(
        column_bound, grid, candidates, model="hata", threshold_dbm=threshold, cells=cells
    )
    footprint = placement_footprint(grid, candidates, model="hata", threshold_dbm=threshold)

    def old_builder() -> Any:
        sector = coverage_matrix(grid, candidates, model="hata", threshold_dbm=threshold)
        return sector, site_matrix(sector, candidates.station_id)[2]

    (sector, old), t_old, c_old = _cpu_timed(old_builder)
    keep = np.flatnonzero(cells)
    equal = (sparse.csr_array(new.cell_matrix()[:, keep]) != sparse.csr_array(old[:, keep])).nnz == 0
    n_sites = len(new.site_ids)
    new_mb = (new.sites.indices.nbytes + new.sites.indptr.nbytes + new.sites.data.nbytes) / 2**20
    old_mb = (old.indices.nbytes + old.indptr.nbytes + old.data.nbytes) / 2**20
    sector_mb = (sector.indices.nbytes + sector.indptr.nbytes + sector.data.nbytes) / 2**20
    log(
        f"\n[matrix, {label}] {n_sites:,} candidate sites at {threshold:g} dBm, hata; "
        f"{int(cells.sum()):,} of {len(grid):,} cells can add people ({load()})\n"
        f"  block matrix  {t_new:7.2f} s wall, {c_new:6.2f} s CPU (median of {repeat}), "
        f"{new.sites.nnz:,} site columns "
        f"({int((new.sites.indices >= len(grid)).sum()):,} whole blocks), {new_mb:,.0f} MB, "
        f"int32 indices: {new.sites.indices.dtype == np.int32}\n"
        f"  per-pair      {t_old:7.2f} s wall, {c_old:6.2f} s CPU, {sector.nnz:,} sector-cell pairs "
        f"({sector_mb:,.0f} MB), "
        f"site union {old.nnz:,} pairs ({old_mb:,.0f} MB)\n"
        f"  speed-up x{t_old / t_new:.1f} wall, x{c_old / c_new:.1f} CPU; "
        f"equal on the cells that can add people: {equal}\n"
        f"  bound from the block tests {bound:,} columns ({t_bound:.2f} s); scenario estimate over every "
        f"populated cell {footprint.pairs:,} columns, {footprint.megabytes:,.0f} MB"
    )
    if not equal:
        raise SystemExit("the block matrix differs from the per-pair matrix")


# `zhongdu plan` as it was before: the site matrix's float64 path (no float32 bounds, screen,
# sub-blocks or groups), one thread, glibc's malloc defaults; same code otherwise, same inputs.
BASELINE = (
    "import sys; import zhongdu.coverage._site_matrix as m; m.FLOAT32 = False; m.THREADS = 1; "
    "import zhongdu.coverage._memory as mem; mem.keep_freed_memory = lambda: False; "
    "from zhongdu.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _previous_path(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn` with the site matrix's previous path (float64 bounds and cells, one thread)."""
    from zhongdu.coverage import _site_matrix as m

    saved = m.FLOAT32, m.THREADS
    m.FLOAT32, m.THREADS = False, 1
    try:
        return fn(*args, **kwargs)
    finally:
        m.FLOAT32, m.THREADS = saved


def end_to_end(paths: dict[str, Path], work: Path, picks: int, threshold: float, runs_n: int) -> None:
    """`zhongdu plan` at resolution 11 as a whole process against the baseline process (the
    previous matrix path), interleaved; then its steps in-process."""
    from zhongdu.coverage._footprint import placement_footprint
    from zhongdu.coverage._placement import build_problem, existing_covered, greedy
    from zhongdu.coverage._site_matrix import site_coverage_matrix
    from zhongdu.coverage._types import load_grid, load_stations

    args = ["plan", "--grid", str(paths["grid11"]), "--stations", str(paths["stations"])]
    args += ["--candidates", str(paths["cand11"]), "--budget", str(picks), "--threshold", f"{threshold:g}"]
    args += ["--json", "-q"]
    runs, base = [], []
    for _ in range(runs_n):  # interleaved: both see the same load
        runs.append(timed_process([zhongdu(), *args], work / "plan11.json"))
        base.append(timed_process([sys.executable, "-c", BASELINE, *args], work / "plan11-base.json"))

    def median(rs: list[dict[str, float]], key: str) -> float:
        return float(statistics.median(r[key] for r in rs))

    result = json.loads((work / "plan11.json").read_text())
    same_base = json.loads((work / "plan11-base.json").read_text()) == result
    grid, t_grid = _timed(load_grid, paths["grid11"])
    (stations, candidates), t_csv = _timed(
        lambda: (load_stations(paths["stations"]), load_stations(paths["cand11"]))
    )
    covered, t_cov, c_cov = _cpu_timed(
        existing_covered, grid, stations, model="hata", threshold_dbm=threshold
    )
    kw: dict[str, Any] = {
        "model": "hata",
        "threshold_dbm": threshold,
        "cells": ~covered & (grid.population > 0),
    }
    matrix, t_matrix, c_matrix = _cpu_timed(site_coverage_matrix, grid, candidates, **kw)
    before, t_before, c_before = _cpu_timed(_previous_path, site_coverage_matrix, grid, candidates, **kw)
    equal = (matrix.cell_matrix() != before.cell_matrix()).nnz == 0
    problem = build_problem(grid, stations, candidates, model="hata", threshold_dbm=threshold)
    plan, t_celf, c_celf = _cpu_timed(greedy, problem, budget=picks)
    same = [p["station_id"] for p in result["picks"]] == [p.station_id for p in plan.picks]
    footprint = placement_footprint(grid, candidates, model="hata", threshold_dbm=threshold)
    walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
    base_walls = ", ".join(f"{r['wall_s']:.2f}" for r in base)
    wall, cpu, b_wall, b_cpu = (median(rs, k) for rs in (runs, base) for k in ("wall_s", "cpu_s"))
    log(
        f"\n[zhongdu plan, resolution 11] {len(grid):,} cells, 5,000 candidates, budget {picks} ({load()})\n"
        f"  whole process: {wall:.2f} s wall (median of {runs_n}: {walls}), {cpu:.2f} s CPU, "
        f"peak {median(runs, 'peak_mb'):,.0f} MB; goal < 5 s: {'met' if wall < 5 else 'MISSED'} "
        f"({sum(r['wall_s'] < 5 for r in runs)} of {runs_n} runs under 5 s)\n"
        f"  baseline (previous matrix path): {b_wall:.2f} s wall (runs {base_walls}), {b_cpu:.2f} s CPU; "
        f"x{b_wall / wall:.2f} wall, x{b_cpu / cpu:.2f} CPU; same JSON: {same_base}\n"
        f"  {len(result['picks'])} picks (then nobody is left in reach), "
        f"share {result['share_before']:.4%} -> {result['share_after']:.4%}; in-process picks equal: {same}\n"
        f"  steps in-process: read grid {t_grid:.2f} s, read CSVs {t_csv:.2f} s, existing coverage "
        f"{t_cov:.2f} s ({c_cov:.2f} s CPU), matrix {t_matrix:.2f} s ({c_matrix:.2f} s CPU; "
        f"{matrix.sites.nnz:,} columns) against the previous path {t_before:.2f} s ({c_before:.2f} s CPU; "
        f"{before.sites.nnz:,} columns), equal expanded: {equal}; "
        f"CELF {t_celf:.2f} s ({c_celf:.2f} s CPU)\n"
        f"  memory estimate (scenario bound): {footprint.megabytes:,.0f} MB for the placement, against the "
        f"process's peak {median(runs, 'peak_mb'):,.0f} MB (interpreter and imports included)"
    )
    if not (equal and same and same_base):
        raise SystemExit("the matrix or the picks differ from the previous path")


def exact(paths: dict[str, Path], sizes: str, time_limit: float, threshold: float) -> None:
    """CELF against HiGHS at resolution 11 on the first n candidates."""
    from zhongdu.coverage._mclp import solve_mclp
    from zhongdu.coverage._placement import build_problem, greedy
    from zhongdu.coverage._types import load_grid, load_stations

    grid = load_grid(paths["grid11"])
    problem = build_problem(
        grid,
        load_stations(paths["stations"]),
        load_stations(paths["cand11"]),
        model="hata",
        threshold_dbm=threshold,
    )
    log(
        f"\n[CELF vs exact, resolution 11, {threshold:g} dBm] ({load()}; HiGHS time limit {time_limit:g} s)\n"
        "  candidates  picks  CELF/optimum  CELF/bound  exact_s  CELF_s  exact/CELF  status"
    )
    for item in sizes.split(","):
        n, p = (int(x) for x in item.split(":"))
        sub = problem.take(np.arange(min(n, problem.n_sites)))
        times = []
        for _ in range(3):  # best of 3: one sub-millisecond run is all noise
            g, t = _timed(greedy, sub, budget=p)
            times.append(t)
        t_g = min(times)
        ex = solve_mclp(sub, p, time_limit=time_limit)
        status = "optimal" if ex.optimal else "time limit (incumbent)"
        log(
            f"  {n:>10,}  {p:5d}  {g.covered_after / ex.covered_population:12.5f}  "
            f"{g.covered_after / ex.upper_bound:10.5f}  {ex.seconds:7.1f}  {t_g:6.3f}  "
            f"x{ex.seconds / t_g:9,.0f}  {status} "
            f"({ex.n_demand_rows:,} demand rows from {ex.n_cells:,} cells)"
        )


def scenario_memory(work: Path, paths: dict[str, Path]) -> None:
    """The scenario bound against what a placement process really needs."""
    from zhongdu.coverage import Stations, write_stations
    from zhongdu.coverage._footprint import placement_footprint
    from zhongdu.coverage._indicator import load_default_grid
    from zhongdu.coverage._types import load_grid, load_stations

    exe = zhongdu()
    layout22 = work / "stations-2022.csv"
    if not layout22.exists():
        subprocess.run(
            [exe, "stations", "generate", "--date", "2022-11-30", "--out", str(layout22)], check=True
        )
    rng = np.random.default_rng(3)
    disk = work / "disk50km-5000.csv"
    write_stations(
        Stations.from_columns(
            station_id=[f"big-{i}" for i in range(5000)],
            lon=rng.uniform(120.55, 120.85, 5000),
            lat=rng.uniform(24.05, 24.3, 5000),
            radius_m=50_000.0,
        ),
        disk,
    )
    layout14 = paths["stations"]
    cases = [
        ("res 10, 2014, 5,000 lattice, hata", None, layout14, paths["cand10"], "hata"),
        ("res 11, 2014, 5,000 lattice, hata", paths["grid11"], layout14, paths["cand11"], "hata"),
        ("res 10, 2014, 5,000 at 50 km, disk", None, layout14, disk, "disk"),
        ("res 10, 2022, 5,000 lattice, hata", None, layout22, paths["cand10"], "hata"),
    ]
    log(
        f"\n[scenario memory] budget 5 ({load()}); the placement's own memory is the peak RSS above "
        "the same command with one candidate site (interpreter, imports, the layout and its coverage)"
    )
    grids = {None: load_default_grid(), paths["grid11"]: load_grid(paths["grid11"])}
    for name, grid_path, layout, path, model in cases:
        candidates = load_stations(path)
        estimate = placement_footprint(grids[grid_path], candidates, model=model, threshold_dbm=-110.0)
        one = work / f"one-{path.name}"
        write_stations(candidates.take(candidates.station_id == candidates.station_id[0]), one)
        peaks = []
        for cand in (one, path):
            cmd = [exe, "plan", "--stations", str(layout), "--candidates", str(cand), "--model", model]
            cmd += ["--grid", str(grid_path)] if grid_path is not None else []
            peaks.append(timed_process([*cmd, "--budget", "5", "--json", "-q"]))
        grew = peaks[1]["peak_mb"] - peaks[0]["peak_mb"]
        log(
            f"  {name:<36} estimate {estimate.megabytes:6,.0f} MB ({estimate.pairs:,} columns); placement "
            f"{grew:+5,.0f} MB (peak {peaks[1]['peak_mb']:,.0f} MB, one site {peaks[0]['peak_mb']:,.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("build/bench-placement-street"))
    parser.add_argument("--threshold", type=float, default=-110.0, help="RSRP threshold, dBm (default -110)")
    parser.add_argument("--picks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the block matrix (median)")
    parser.add_argument("--runs", type=int, default=5, help="`zhongdu plan` processes of each kind (median)")
    parser.add_argument(
        "--old-res11", type=int, default=500, help="candidates for the per-pair builder at res 11"
    )
    parser.add_argument(
        "--exact-sizes", default="100:5,100:10,250:5,250:10,500:5,500:10", help="candidates:picks instances"
    )
    parser.add_argument("--exact-time-limit", type=float, default=120.0, help="seconds per exact solve")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: matrix10,matrix11,plan,exact,memory"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))

    from zhongdu.coverage._indicator import load_default_grid
    from zhongdu.coverage._types import load_grid, load_stations

    log(f"machine: {os.cpu_count()} CPUs; {load()}")
    paths = inputs(args.work)
    stations = load_stations(paths["stations"])
    if "matrix10" not in skip:
        compare_builders(
            load_default_grid(),
            stations,
            load_stations(paths["cand10"]),
            args.threshold,
            args.repeat,
            "resolution 10",
        )
    if "matrix11" not in skip:
        cand = load_stations(paths["cand11"])
        first = cand.take(np.arange(len(cand)) < 3 * args.old_res11)
        compare_builders(
            load_grid(paths["grid11"]), stations, first, args.threshold, args.repeat, "resolution 11"
        )
    if "plan" not in skip:
        end_to_end(paths, args.work, args.picks, args.threshold, args.runs)
    if "exact" not in skip:
        exact(paths, args.exact_sizes, args.exact_time_limit, args.threshold)
    if "memory" not in skip:
        scenario_memory(args.work, paths)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"\nbenchmark process peak {peak:,.0f} MB; {load()}")


if __name__ == "__main__":
    main()
