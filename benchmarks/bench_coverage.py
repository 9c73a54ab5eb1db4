"""Coverage engine benchmark: Taichung at H3 resolution 10 and 11, against two baselines in the same run.

Run: `python benchmarks/bench_coverage.py`; `--help` for options.

- Grid: `build_grid(R)` from the shipped inputs when it works, else a stand-in built
  here (h3 polygon fill of the district polygons, each district's population spread uniformly).
- Stations: `generate_layout(grid)` (NCC counts of 2022-11, 15,788 sites x 3 sectors) when present,
  else a seeded population-weighted stand-in; then a seeded sample of whole sites down to about
  `--rows` sector rows (default 30,000).
- Baselines (disk model): (a) the GIS analyst's way: geopandas buffers of each up sector's radius
  in EPSG:3826, union, spatial join of cell centres; (b) a per-sector loop of `h3.grid_disk` plus a
  great-circle filter collecting a Python set. `disk` must equal (b) exactly and (a) within 0.1 %.
- Engine: `compute_coverage` disk and hata in-process (grid and stations loaded; cold = first call,
  computing the cell centres; warm = best of the next runs), one-sector what-if on
  `CoverageEngine`, peak memory at resolution 11 in a child process, and whole-process
  `zhongdu coverage compute` from CSV against the whole (a) script (imports included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

R_EARTH = 6_371_008.8
HERE = Path(__file__).resolve()


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------ inputs


def source_dir() -> Path:
    """The real inputs: the shipped copy (coverage/data/source) unless ZHONGDU_SOURCE_DATA_DIR is set."""
    from zhongdu.coverage._grid_build import source_dir_or_default

    return source_dir_or_default(None)


def standin_grid(res: int) -> Any:
    """h3 polygon fill of each district, population uniform per district; first district wins a cell."""
    import h3

    from zhongdu.coverage import Grid

    try:
        from zhongdu.coverage._grid_build import ENVIRONMENT_BY_DISTRICT as envs
    except ImportError:
        envs = {}
    from zhongdu.coverage._grid_build import read_source_geojson

    gdf = read_source_geojson(source_dir(), "taichung_districts.geojson")
    seen: set[int] = set()
    cells: list[int] = []
    names: list[str] = []
    pops: list[float] = []
    env: list[str] = []
    for _, row in gdf.sort_values("name_zh").iterrows():
        own = [c for c in (h3.str_to_int(x) for x in h3.geo_to_cells(row.geometry, res)) if c not in seen]
        if not own:
            continue
        seen.update(own)
        cells += own
        names += [row.name_zh] * len(own)
        pops += [float(row.population) / len(own)] * len(own)
        env += [envs.get(row.name_zh, "urban")] * len(own)
    return Grid.from_arrays(np.asarray(cells, dtype=np.uint64), pops, names, env)


def get_grid(res: int, cache: Path) -> tuple[Any, Path, str]:
    from zhongdu.coverage import load_grid, write_grid

    path = cache / f"grid_r{res}.csv"
    label_path = cache / f"grid_r{res}.label"
    if path.exists() and label_path.exists():
        return load_grid(path), path, label_path.read_text()
    t = time.perf_counter()
    try:
        try:
            from zhongdu.coverage import build_grid  # type: ignore[attr-defined]
        except ImportError:
            from zhongdu.coverage._grid_build import build_grid
        grid = build_grid(res)
        label = "build_grid (real population surface)"
    except Exception as exc:  # any failure of the grid builder: use the stand-in
        log(f"  build_grid({res}) unavailable ({type(exc).__name__}: {exc}); using the stand-in grid")
        grid = standin_grid(res)
        label = "stand-in grid (h3 polygon fill, uniform population per district)"
    write_grid(grid, path)
    label_path.write_text(label)
    log(f"  built grid r{res}: {len(grid):,} cells in {time.perf_counter() - t:.1f} s ({label})")
    return grid, path, label


def standin_layout(grid: Any, n_sites: int, seed: int) -> Any:
    from zhongdu.coverage import Stations

    rng = np.random.default_rng(seed)
    lat, lng = grid.latlng_deg()
    p = grid.population / grid.population.sum()
    idx = rng.choice(len(grid), n_sites, p=p)
    env = grid.environment[idx]
    f = rng.choice([700.0, 900.0, 1800.0, 2100.0, 2600.0], n_sites)
    rep = np.repeat
    return Stations.from_columns(
        station_id=rep(np.char.add("S", np.arange(n_sites).astype(str)), 3),
        sector_id=np.arange(3 * n_sites).astype(str),
        lon=rep(lng[idx], 3),
        lat=rep(lat[idx], 3),
        height_m=rep(rng.uniform(25, 40, n_sites), 3),
        eirp_dbm=rep(np.where(f < 1000, 59.0, 61.0), 3),
        frequency_mhz=rep(f, 3),
        bandwidth_mhz=rep(np.where(f < 1000, 10.0, 20.0), 3),
        azimuth_deg=(rep(rng.uniform(0, 120, n_sites), 3) + np.tile([0.0, 120.0, 240.0], n_sites)) % 360,
        beamwidth_deg=65.0,
        radius_m=rep(np.array([800.0, 2000.0, 6000.0])[env], 3),
    )


def get_stations(grid: Any, res: int, rows: int, cache: Path, seed: int) -> tuple[Any, Any, Path, str]:
    """(sample of about `rows` rows, full layout, CSV path of the sample, label)."""
    from zhongdu.coverage import Stations, write_stations

    try:
        try:
            from zhongdu.coverage import generate_layout  # type: ignore[attr-defined]
        except ImportError:
            from zhongdu.coverage._layout import generate_layout
        full = generate_layout(grid)
        label = "generate_layout (NCC counts 2022-11, 3 sectors per site)"
    except Exception as exc:  # the layout generator failing: use the stand-in
        log(f"  generate_layout unavailable ({type(exc).__name__}: {exc}); using a stand-in layout")
        full = standin_layout(grid, 15_788, seed)
        label = "stand-in layout (15,788 population-weighted sites x 3 sectors)"
    ids, inverse = full.station_index()
    per_site = len(full) / len(ids)
    n_sites = min(len(ids), round(rows / per_site))
    keep_ids = np.random.default_rng(seed).choice(len(ids), n_sites, replace=False)
    mask = np.zeros(len(ids), dtype=bool)
    mask[keep_ids] = True
    sample: Stations = full.take(mask[inverse])
    path = cache / f"stations_r{res}_{len(sample)}.csv"
    write_stations(sample, path)
    return sample, full, path, f"{label}; seeded sample of {n_sites:,} of {len(ids):,} sites"


# ---------------------------------------------------------------------------------- baselines


def baseline_a(grid: Any, st: Any) -> tuple[float, np.ndarray]:
    """geopandas buffers in EPSG:3826, union, spatial join of the cell centres."""
    import geopandas as gpd

    up = st.up
    sites = gpd.GeoSeries(gpd.points_from_xy(st.lon[up], st.lat[up]), crs="EPSG:4326").to_crs("EPSG:3826")
    disks = sites.buffer(st.radius_m[up])
    union = disks.union_all()
    lat, lng = grid.latlng_deg()
    cells = gpd.GeoDataFrame(
        {"i": np.arange(len(grid))}, geometry=gpd.points_from_xy(lng, lat), crs="EPSG:4326"
    ).to_crs("EPSG:3826")
    joined = gpd.sjoin(cells, gpd.GeoDataFrame(geometry=[union], crs="EPSG:3826"), predicate="within")
    covered = np.zeros(len(grid), dtype=bool)
    covered[joined["i"].to_numpy()] = True
    return float(grid.population[covered].sum()), covered


def baseline_b(grid: Any, st: Any) -> tuple[float, np.ndarray]:
    """A per-sector loop of h3.grid_disk and a great-circle filter, collecting a Python set."""
    import h3
    import h3.api.basic_int as h3i

    lat, lng = grid.latlng_deg()
    index = {c: i for i, c in enumerate(grid.cells.tolist())}
    # cells within r of the point are within r + edge of the point's cell centre; a k-ring holds
    # every centre within k * spacing * sqrt(3)/2 (spacing taken at 75 % of the average, for safety)
    edge = h3.average_hexagon_edge_length(grid.resolution, unit="m")
    ring = 0.75 * math.sqrt(3.0) * edge * math.sqrt(3.0) / 2.0
    covered: set[int] = set()
    up = np.flatnonzero(st.up)
    for s_lat, s_lng, r in zip(
        st.lat[up].tolist(), st.lon[up].tolist(), st.radius_m[up].tolist(), strict=True
    ):
        origin = h3i.latlng_to_cell(s_lat, s_lng, grid.resolution)
        k = int((r + edge) / ring) + 1
        for c in h3i.grid_disk(origin, k):
            i = index.get(c)
            if i is not None and (
                h3i.great_circle_distance((s_lat, s_lng), (lat[i], lng[i]), unit="rads") * R_EARTH <= r
            ):
                covered.add(i)
    mask = np.zeros(len(grid), dtype=bool)
    mask[list(covered)] = True
    return float(grid.population[mask].sum()), mask


SCRIPT_A = r"""
import json, sys, h3, numpy as np, pandas as pd, geopandas as gpd
grid = pd.read_csv(sys.argv[1]); st = pd.read_csv(sys.argv[2])
ll = np.array([h3.cell_to_latlng(c) for c in grid["h3"]])
up = st[st["status"] == "up"]
disks = gpd.GeoSeries(gpd.points_from_xy(up["lon"], up["lat"]), crs="EPSG:4326").to_crs("EPSG:3826").buffer(
    up["radius_m"].to_numpy())
union = disks.union_all()
cells = gpd.GeoDataFrame(grid[["district", "population"]], geometry=gpd.points_from_xy(ll[:, 1], ll[:, 0]),
                         crs="EPSG:4326").to_crs("EPSG:3826")
joined = gpd.sjoin(cells, gpd.GeoDataFrame(geometry=[union], crs="EPSG:3826"), predicate="within")
total = grid.groupby("district")["population"].sum(); cov = joined.groupby("district")["population"].sum()
out = {"population_total": float(total.sum()), "population_covered": float(cov.sum()),
       "districts": [{"district": d, "population": float(p), "covered": float(cov.get(d, 0.0))}
                     for d, p in total.items()]}
print(json.dumps(out, ensure_ascii=False))
"""

# The leaner analyst: one buffer per site (its sectors share position and radius), so the union,
# the script's costliest step, has a third of the circles.
SCRIPT_A_LEAN = SCRIPT_A.replace(
    'up = st[st["status"] == "up"]',
    'up = st[st["status"] == "up"].drop_duplicates(["lon", "lat", "radius_m"])',
)
assert SCRIPT_A_LEAN != SCRIPT_A


# ------------------------------------------------------------------------------------ helpers


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def warm(fn: Any, repeats: int, *args: Any, **kw: Any) -> float:
    return min(timed(fn, *args, **kw)[0] for _ in range(repeats))


def run_wall(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-2000:]}")
    return wall, proc.stdout


def zhongdu_exe() -> str:
    exe = Path(sys.executable).with_name("zhongdu")
    return str(exe) if exe.exists() else shutil.which("zhongdu") or "zhongdu"


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM); unlike ru_maxrss it is not inherited across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(grid_csv: str, stations_csv: str) -> None:
    """Child process: load, compute disk and hata, build the incremental engine; print peak RSS."""
    from zhongdu.coverage import CoverageEngine, compute_coverage, load_grid, load_stations

    grid = load_grid(grid_csv)
    st = load_stations(stations_csv)
    out: dict[str, float] = {"loaded_maxrss_mb": peak_rss_mb()}
    for model in ("disk", "hata"):
        t, res = timed(compute_coverage, grid, st, model=model)
        out[f"{model}_s"] = t
        out[f"{model}_share"] = res.share
        out[f"{model}_maxrss_mb"] = peak_rss_mb()
    out["engine_init_s"] = timed(CoverageEngine, grid, st, model="hata")[0]
    out["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(out))


# --------------------------------------------------------------------------------------- main


def bench_resolution(res: int, args: argparse.Namespace, cache: Path, report: dict[str, Any]) -> None:
    from zhongdu.coverage import CoverageEngine, Stations, compute_coverage

    log(f"\n=== resolution {res} ===")
    grid, grid_csv, grid_label = get_grid(res, cache)
    st, full, st_csv, st_label = get_stations(grid, res, args.rows, cache, args.seed)
    log(f"grid: {len(grid):,} cells, {grid.population.sum():,.0f} people [{grid_label}]")
    log(f"stations: {len(st):,} sector rows ({int(st.up.sum()):,} up) [{st_label}]")
    r: dict[str, Any] = {"cells": len(grid), "rows": len(st), "grid": grid_label, "stations": st_label}

    t_cold_disk = timed(compute_coverage, grid, st, model="disk")[0]
    t_disk = warm(compute_coverage, args.repeats, grid, st, model="disk")
    t_cells_disk, disk = timed(compute_coverage, grid, st, model="disk", per_cell=True)
    t_cold_hata, hata = timed(compute_coverage, grid, st, model="hata")
    t_hata = warm(compute_coverage, args.repeats, grid, st, model="hata")
    t_full_hata = warm(compute_coverage, 1, grid, full, model="hata")
    t_full_disk = warm(compute_coverage, 1, grid, full, model="disk")
    log(
        f"engine disk: {t_disk:.3f} s warm ({t_cold_disk:.3f} s first call, incl. cell centres)"
        f"  share {disk.share:.5f}; with per-cell output (nearest server): {t_cells_disk:.2f} s"
    )
    log(f"engine hata: {t_hata:.3f} s warm ({t_cold_hata:.3f} s first call)  share {hata.share:.5f}")
    log(f"full layout ({len(full):,} rows): hata {t_full_hata:.3f} s, disk {t_full_disk:.3f} s")
    if "operator" in full.extra:  # the per-operator criteria on the 2022-11 layout (goal: each < 0.5 s)
        from zhongdu.coverage._by_operator import compute_by_operator

        t_indoor = warm(compute_coverage, args.repeats, grid, full, model="hata", criterion="indoor")
        t_capacity = warm(compute_coverage, args.repeats, grid, full, model="hata", criterion="capacity")
        t_cht = warm(compute_by_operator, args.repeats, grid, full, operator="CHT", model="hata")
        t_cht_in = warm(
            compute_by_operator, args.repeats, grid, full, operator="CHT", model="hata", criterion="indoor"
        )
        t_each = warm(compute_by_operator, 1, grid, full, operator="each", model="hata", criterion="indoor")
        log(
            f"criteria, full layout, hata: indoor {t_indoor:.3f} s, capacity {t_capacity:.3f} s, "
            f"one operator (CHT, 4,863 sites) {t_cht:.3f} s outdoor / {t_cht_in:.3f} s indoor "
            f"(goal < 0.5 s); each operator + any + every major, indoor {t_each:.3f} s"
        )
        r.update(indoor_s=t_indoor, capacity_s=t_capacity, operator_s=t_cht, operator_indoor_s=t_cht_in,
                 each_indoor_s=t_each)  # fmt: skip
    r.update(disk_s=t_disk, hata_s=t_hata, disk_cold_s=t_cold_disk, hata_cold_s=t_cold_hata,
             full_rows=len(full), full_hata_s=t_full_hata, full_disk_s=t_full_disk,
             disk_share=disk.share, hata_share=hata.share, disk_per_cell_s=t_cells_disk)  # fmt: skip

    if res <= args.baselines_max_res:
        t_a, (pop_a, cov_a) = timed(baseline_a, grid, st)
        log(f"baseline (a) geopandas buffers+union+sjoin: {t_a:.3f} s  covered {pop_a:,.1f}")
        rel = abs(pop_a - disk.population_covered) / max(disk.population_covered, 1.0)
        log(
            f"  disk vs (a): {disk.population_covered:,.1f} vs {pop_a:,.1f} (rel. diff {rel:.2e}, "
            f"{int((cov_a != disk.covered).sum())} cells differ) -> "
            f"{'OK' if rel < 1e-3 else 'MISMATCH'} (< 0.1 %)"
        )
        log(f"  ratio (a) / engine disk: {t_a / t_disk:.1f}x warm, {t_a / t_cold_disk:.1f}x vs first call")
        r.update(a_s=t_a, a_rel_diff=rel, ratio_a=t_a / t_disk, ratio_a_cold=t_a / t_cold_disk)
        if not args.skip_b:
            t_b, (pop_b, cov_b) = timed(baseline_b, grid, st)
            differ = int((cov_b != disk.covered).sum())
            exact = differ == 0 and math.isclose(pop_b, disk.population_covered, rel_tol=1e-12)
            log(
                f"baseline (b) h3.grid_disk loop + great-circle filter: {t_b:.2f} s  covered {pop_b:,.3f}"
                f" -> disk {'EQUAL (same cells)' if exact else f'DIFFERENT ({differ} cells)'}"
            )
            log(
                f"  ratio (b) / engine disk: {t_b / t_disk:.0f}x warm, {t_b / t_cold_disk:.0f}x vs first call"
            )
            r.update(b_s=t_b, b_exact=exact, b_cells_differ=differ, ratio_b=t_b / t_disk)

    # one-sector what-if (hata)
    t_init, engine = timed(CoverageEngine, grid, st, model="hata")
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(st), 60, replace=False)
    toggles = []
    for row in rows.tolist():
        toggles.append(timed(engine.set_sector_up, row, False)[0])
        toggles.append(timed(engine.set_sector_up, row, True)[0])
    one = st.take(np.arange(3))
    one = Stations.from_columns(
        station_id=["NEW"] * 3, sector_id=["a", "b", "c"], lon=one.lon, lat=one.lat + 0.003,
        azimuth_deg=[0.0, 120.0, 240.0], beamwidth_deg=65.0, radius_m=800.0)  # fmt: skip
    t_add = timed(engine.add_sectors, one)[0]
    tog = np.array(toggles) * 1000
    log(
        f"what-if (hata engine, init {t_init:.2f} s): one sector off/on median {np.median(tog):.2f} ms, "
        f"p95 {np.percentile(tog, 95):.2f} ms, max {tog.max():.2f} ms; "
        f"add a 3-sector site {t_add * 1000:.2f} ms"
    )
    r.update(engine_init_s=t_init, whatif_median_ms=float(np.median(tog)), add_site_ms=t_add * 1000,
             whatif_p95_ms=float(np.percentile(tog, 95)), whatif_max_ms=float(tog.max()))  # fmt: skip

    if res >= 11 or args.memory_all:
        out = run_wall([sys.executable, str(HERE), "--memory-child", str(grid_csv), str(st_csv)])[1]
        mem = json.loads(out.strip().splitlines()[-1])
        log(
            f"peak memory (child: load + disk + hata + engine): {mem['maxrss_mb']:.0f} MB "
            f"(after loading the CSVs {mem['loaded_maxrss_mb']:.0f} MB, "
            f"after disk {mem['disk_maxrss_mb']:.0f} MB, "
            f"after hata {mem['hata_maxrss_mb']:.0f} MB; engine init {mem['engine_init_s']:.1f} s)"
        )
        r.update(maxrss_mb=mem["maxrss_mb"], maxrss_after_hata_mb=mem["hata_maxrss_mb"])

    if res == 10 or args.whole_all:
        exe = zhongdu_exe()
        base = [exe, "coverage", "compute", "--grid", str(grid_csv), "--stations", str(st_csv), "--json"]
        script = cache / "baseline_a_script.py"
        script.write_text(SCRIPT_A)
        lean = cache / "baseline_a_lean_script.py"
        lean.write_text(SCRIPT_A_LEAN)
        # alternate the four commands, best of `--whole-repeats` each (the box is shared and noisy)
        w_disk = w_hata = w_a = w_lean = math.inf
        out_a = out_lean = ""
        for _ in range(args.whole_repeats):
            w_disk = min(w_disk, run_wall([*base, "--model", "disk"])[0])
            w_hata = min(w_hata, run_wall([*base, "--model", "hata"])[0])
            t_a_script, out_a = run_wall([sys.executable, str(script), str(grid_csv), str(st_csv)])
            w_a = min(w_a, t_a_script)
            t_lean, out_lean = run_wall([sys.executable, str(lean), str(grid_csv), str(st_csv)])
            w_lean = min(w_lean, t_lean)
        cov_a = json.loads(out_a)["population_covered"]
        if abs(json.loads(out_lean)["population_covered"] - cov_a) > 1e-6 * cov_a:
            raise RuntimeError("the lean (a) script covers other people than (a)")
        log(
            f"whole process from CSV: zhongdu coverage compute disk {w_disk:.2f} s, hata {w_hata:.2f} s; "
            f"whole (a) script {w_a:.2f} s (covered {cov_a:,.1f})"
        )
        log(
            f"  ratio (a) script / zhongdu disk: {w_a / w_disk:.1f}x; hata finishes "
            f"{'sooner' if w_hata < w_a else 'LATER'} than (a) ({w_a / w_hata:.1f}x)"
        )
        log(f"  lean (a) script, one buffer per site: {w_lean:.2f} s; to zhongdu disk {w_lean / w_disk:.1f}x")
        r.update(
            whole_disk_s=w_disk,
            whole_hata_s=w_hata,
            whole_a_s=w_a,
            whole_ratio=w_a / w_disk,
            whole_lean_a_s=w_lean,
            whole_lean_ratio=w_lean / w_disk,
        )
    report[str(res)] = r


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--resolutions", default="10,11", help="comma-separated H3 resolutions (default 10,11)"
    )
    parser.add_argument(
        "--rows", type=int, default=30_000, help="about this many sector rows (default 30000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per engine timing (best of)")
    parser.add_argument("--baselines-max-res", type=int, default=10, help="run (a)/(b) up to this resolution")
    parser.add_argument("--skip-b", action="store_true", help="skip baseline (b) (slow: a Python loop)")
    parser.add_argument("--memory-all", action="store_true", help="measure peak memory at every resolution")
    parser.add_argument("--whole-all", action="store_true", help="whole-process timings at every resolution")
    parser.add_argument("--whole-repeats", type=int, default=3, help="whole-process runs of each (best of)")
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "zhongdu-bench-coverage")
    parser.add_argument("--json-out", type=Path, help="also write the numbers as JSON")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    log(f"coverage benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    report: dict[str, Any] = {}
    for res in (int(x) for x in args.resolutions.split(",")):
        bench_resolution(res, args, args.cache, report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
