"""Street-level coverage benchmark: resolutions 9 to 12 of the whole city, binary grid against CSV
and against the GIS analyst's geopandas script, in the same run; writes a cost plot.

Run: `python benchmarks/bench_street_level.py` (`--help` for options). Everything is built into
`--work` (default build/bench-street): the grids by `zhongdu grid build` (Arrow IPC), their CSV
copies, and the 2022-11 layout (47,364 sectors) by `zhongdu stations generate`.

Per resolution, each a whole process timed by /usr/bin/time (wall, CPU = user + sys, peak RSS):
- `zhongdu grid build --resolution R --out gR.arrow`; at `--build-baseline-res` (12) in turn
  with `--processes 2`, and today's builder and the builder of `--build-baseline-rev` (the
  previous one, taken from git) each run by the same small script through today's grid writer,
  `--build-repeats` times each (medians): every file must be the same bytes;
- `zhongdu coverage compute` disk and hata from gR.arrow (with the engine's stored geometry),
  from gR-v1.arrow (the previous layout: centres only, the geometry computed per run) and from
  gR.csv (the CSV path); the shares must agree to 1e-9;
- the analyst's script (geopandas buffers, union, spatial join; `bench_coverage.SCRIPT_A`) up to
  `--analyst-max-res`; its covered population must agree with disk to 1e-6;
- in-process at `--live-res`: `CoverageEngine.set_station_up` (a station going down and back up,
  the live recomputation) against a full `compute_coverage` of the same layout;
- at `--cells-res`, through a real API process (`zhongdu api`, a scratch PostgreSQL database,
  the grid and layout above, hata): `GET /v1/coverage/cells?district=D&format=h3` first asked
  (computed) and again (cached), gzipped bytes on the wire, against the GeoJSON answer of the
  same district (the previous way: best servers per cell, one polygon per cell).
Python runs with bytecode caches, as an installed package does (PYTHONDONTWRITEBYTECODE is
dropped for the timed processes). The machine is shared: wall times carry the load, CPU times
less so; ratios compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))


def log(msg: str) -> None:
    print(msg, flush=True)


def zhongdu() -> str:
    exe = Path(sys.executable).with_name("zhongdu")
    return str(exe) if exe.exists() else "zhongdu"


def child_env() -> dict[str, str]:
    """The environment of timed processes: bytecode cached as for an installed package."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed_process(cmd: list[str]) -> dict[str, Any]:
    """Run a command under /usr/bin/time: wall s, CPU s (user + sys), peak RSS MB, stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-o", tf.name, "-f", "%U %S %M", *cmd],
            capture_output=True,
            text=True,
            env=child_env(),
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        user, system, rss_kb = Path(tf.name).read_text().split()[-3:]
    return {
        "wall_s": wall,
        "cpu_s": float(user) + float(system),
        "peak_mb": int(rss_kb) / 1024,
        "stdout": proc.stdout,
    }


def fmt(m: dict[str, Any]) -> str:
    return f"{m['wall_s']:6.2f} s wall, {m['cpu_s']:6.2f} s CPU, {m['peak_mb']:6.0f} MB"


#: Runs a `coverage/_grid_build.py` of another revision (argv: module path, resolution, output),
#: with today's grid writer: what differs is the builder alone.
BASELINE_BUILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("zhongdu.coverage._grid_build_baseline", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from zhongdu.coverage._types import write_grid
write_grid(module.build_grid(int(sys.argv[2])), __import__("pathlib").Path(sys.argv[3]))
"""


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over repeated runs (and the runs themselves)."""
    keys = ("wall_s", "cpu_s", "peak_mb")
    return {
        **{k: statistics.median(r[k] for r in runs) for k in keys},
        "runs": [{k: r[k] for k in keys} for r in runs],
    }


def build_baselines(
    exe: str, res: int, arrow: Path, work: Path, rev: str, now: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """`grid build` again, with two processes, and the builder of `rev`, in turn `repeats` times
    (medians; `now`: the first build's timing), each checked to write `arrow`'s bytes."""
    source = subprocess.run(
        ["git", "-C", str(HERE.parent), "show", f"{rev}:coverage/_grid_build.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = work / f"grid_build_{rev}.py"
    module.write_text(source)
    other = work / f"g{res}-other.arrow"
    build = [exe, "grid", "build", "--resolution", str(res), "--out", str(other), "-q"]
    current = HERE.parents[1] / "coverage" / "_grid_build.py"
    commands = {
        "grid_build": build,
        "grid_build_two_processes": [*build, "--processes", "2"],
        # the two builders through the same small script: the CLI's parser (every part's
        # commands, 0.2 s) is not in these two
        "grid_build_module": [sys.executable, "-c", BASELINE_BUILD, str(current), str(res), str(other)],
        "grid_build_baseline": [sys.executable, "-c", BASELINE_BUILD, str(module), str(res), str(other)],
    }
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in commands}
    runs["grid_build"].append(now)
    for i in range(repeats):
        for key, cmd in commands.items():
            if key == "grid_build" and i == 0:
                continue  # the build that wrote `arrow`
            m = timed_process(cmd)
            m.pop("stdout")
            runs[key].append(m)
            if other.read_bytes() != arrow.read_bytes():
                raise RuntimeError(f"res {res}: the grid of `{' '.join(cmd[:3])}...` differs from {arrow}")
            other.unlink()
    out = {key: _median_run(r) for key, r in runs.items()}
    one, two, base = out["grid_build"], out["grid_build_two_processes"], out["grid_build_baseline"]
    mod = out["grid_build_module"]
    log(
        f"res {res}: medians of {repeats}: grid build {fmt(one)} | two processes {fmt(two)} | this "
        f"builder by script {fmt(mod)} | builder of {rev} by script {fmt(base)} | same bytes; "
        f"{rev} / this builder: CPU {base['cpu_s'] / mod['cpu_s']:.2f}x, wall "
        f"{base['wall_s'] / mod['wall_s']:.2f}x; two processes / one: wall "
        f"{two['wall_s'] / one['wall_s']:.2f}x"
    )
    return out


def live(grid_path: Path, stations_csv: Path, repeats: int) -> dict[str, float]:
    """Median time of a station going down (and back up) on `CoverageEngine` vs a full compute."""
    import numpy as np

    from zhongdu.coverage import CoverageEngine, compute_coverage, load_grid, load_stations

    grid = load_grid(grid_path)
    st = load_stations(stations_csv)
    t0 = time.perf_counter()
    engine = CoverageEngine(grid, st, model="hata")
    build = time.perf_counter() - t0
    ids = np.unique(st.station_id)
    rng = np.random.default_rng(22)
    down, up = [], []
    for sid in rng.choice(ids, repeats, replace=False).tolist():
        t = time.perf_counter()
        engine.set_station_up(sid, False)
        down.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine.set_station_up(sid, True)
        up.append(time.perf_counter() - t)
    full = []
    for _ in range(2):
        t = time.perf_counter()
        want = compute_coverage(grid, st, model="hata")
        full.append(time.perf_counter() - t)
    if engine.result().to_dict() != want.to_dict():
        raise RuntimeError("the incremental engine disagrees with a full recomputation")
    return {
        "cells": float(len(grid)),
        "engine_build_s": build,
        "station_down_median_s": statistics.median(down),
        "station_up_median_s": statistics.median(up),
        "station_down_max_s": max(down),
        "full_compute_s": min(full),
    }


def _fetch(url: str) -> tuple[float, int, bytes]:
    """(seconds, bytes on the wire, decoded body) of a GET asking for gzip."""
    import gzip
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    t = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        raw = answer.read()
        packed = answer.headers.get("Content-Encoding") == "gzip"
    took = time.perf_counter() - t
    return took, len(raw), gzip.decompress(raw) if packed else raw


def api_cells(
    grid_path: Path, stations_csv: Path, district: str, baseline: str, repeats: int
) -> dict[str, Any]:
    """District cells through a real `zhongdu api` process: H3 columns against GeoJSON."""
    import urllib.parse
    import uuid

    import psycopg
    from psycopg import sql

    from zhongdu import services, storage

    admin_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"zhongdu_bench_street_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    port = services.free_port()
    server = None
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn)
        env = child_env()
        env.pop("ZHONGDU_MQTT_URL", None)
        env.update(
            ZHONGDU_DATABASE_URL=url,
            ZHONGDU_GRID_PATH=str(grid_path),
            ZHONGDU_STATIONS_PATH=str(stations_csv),
            ZHONGDU_COVERAGE_MODEL="hata",
            ZHONGDU_API_PORT=str(port),
        )
        server = subprocess.Popen([zhongdu(), "api"], env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        while True:
            try:
                _fetch(base + "/v1/coverage")
                break
            except Exception:
                if server.poll() is not None or time.perf_counter() - started > 600:
                    raise RuntimeError("the API did not come up") from None
                time.sleep(1.0)
        out: dict[str, Any] = {"api_start_s": time.perf_counter() - started}

        def cells(params: dict[str, Any]) -> str:
            return base + "/v1/coverage/cells?" + urllib.parse.urlencode(params)

        for label, d in (("h3", district), ("h3_baseline_district", baseline)):
            first, again = [], []
            for i in range(repeats):  # each `limit` is its own cache entry: the work is done anew
                params = {"district": d, "format": "h3", "limit": 1_000_000 - i}
                took, wire, body = _fetch(cells(params))
                first.append(took)
                again.append(_fetch(cells(params))[0])
            doc = json.loads(body)
            out[label] = {
                "district": d,
                "cells": doc["cells"],
                "first_median_s": statistics.median(first),
                "cached_median_s": statistics.median(again),
                "wire_bytes": wire,
                "body_bytes": len(body),
            }
            took, wire, body = _fetch(cells({"district": d, "format": "h3", "rsrp": "true"}))
            out[label]["rsrp_first_s"] = took
            out[label]["rsrp_wire_bytes"] = wire
        took, wire, body = _fetch(cells({"district": baseline, "limit": 20_000}))
        out["geojson_baseline"] = {
            "district": baseline,
            "cells": json.loads(body)["cells"],
            "first_s": took,
            "wire_bytes": wire,
            "body_bytes": len(body),
        }
        return out
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["resolutions"]
    res = [r["resolution"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    series = [
        ("grid build (Arrow)", "grid_build", "k", "-"),
        ("grid build, previous builder", "grid_build_baseline", "k", "--"),
        ("compute disk, Arrow grid", "disk_arrow", "tab:blue", "-"),
        ("compute hata, Arrow grid", "hata_arrow", "tab:green", "-"),
        ("compute disk, previous Arrow layout", "disk_arrow_v1", "tab:blue", "-."),
        ("compute hata, previous Arrow layout", "hata_arrow_v1", "tab:green", "-."),
        ("compute disk, CSV grid", "disk_csv", "tab:blue", "--"),
        ("compute hata, CSV grid", "hata_csv", "tab:green", "--"),
        ("analyst's geopandas script (disk)", "analyst", "tab:red", ":"),
    ]
    for label, key, colour, style in series:
        xs = [r["resolution"] for r in rows if key in r]
        ys = [r[key]["cpu_s"] for r in rows if key in r]
        if xs:
            ax.plot(xs, ys, style, color=colour, marker="o", label=label)
    ax.axhline(2.0, color="grey", lw=0.8)
    ax.text(res[-1], 2.1, "2 s goal (compute)", color="grey", fontsize=8, ha="right")
    ax.axhline(10.0, color="grey", lw=0.8, ls=":")
    ax.text(res[-1], 10.5, "10 s goal (grid build)", color="grey", fontsize=8, ha="right")
    ax.set_yscale("log")
    ax.set_xticks(res, [f"{r}\n{int(rows[i]['cells']):,} cells" for i, r in enumerate(res)])
    ax.set_xlabel("H3 resolution (whole city)")
    ax.set_ylabel("whole-process CPU time (user + sys), s (log)")
    ax.set_title(
        f"Coverage cost by resolution, 2022-11 layout ({report['sectors']:,} sectors)\n{report['machine']}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[9, 10, 11, 12])
    parser.add_argument("--analyst-max-res", type=int, default=12, help="run the geopandas script up to this")
    parser.add_argument(
        "--live-res", type=int, default=11, help="resolution of the live what-if timing (0: skip)"
    )
    parser.add_argument("--live-repeats", type=int, default=15, help="stations switched in the live timing")
    parser.add_argument(
        "--cells-res",
        type=int,
        default=11,
        help="resolution of the district cells timing through the API (0: skip)",
    )
    parser.add_argument("--cells-district", default="西屯區", help="district of the H3-columns timing")
    parser.add_argument(
        "--cells-baseline-district",
        default="南屯區",
        help="district of the GeoJSON baseline (at most 20,000 cells, the GeoJSON limit)",
    )
    parser.add_argument(
        "--work", type=Path, default=Path("build/bench-street"), help="grids and layout go here"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild grids already in --work (else reuse)")
    parser.add_argument(
        "--build-baseline-res",
        type=int,
        nargs="*",
        default=[12],
        help="resolutions whose grid build is also timed with --processes 2 and with the builder of "
        "--build-baseline-rev (the outputs must be the same bytes)",
    )
    parser.add_argument(
        "--build-repeats", type=int, default=3, help="builds of each kind at --build-baseline-res (medians)"
    )
    parser.add_argument(
        "--build-baseline-rev",
        default="2de22d8",
        help="git revision of the baseline builder (coverage/_grid_build.py; default: before the "
        "centres were split and called directly)",
    )
    parser.add_argument("--json-out", type=Path, help="write the numbers as JSON")
    parser.add_argument("--plot", type=Path, help="write the cost plot (PNG)")
    parser.add_argument("--replot", type=Path, help="only redraw --plot from this --json-out report")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.plot or Path("street_level_cost.png"))
        return 0

    from bench_coverage import SCRIPT_A

    from zhongdu.coverage import load_grid, write_grid
    from zhongdu.coverage._grid_binary import write_binary

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    exe = zhongdu()
    stations = work / "stations_2022-11.csv"
    if not stations.exists():
        subprocess.run(
            [exe, "stations", "generate", "--date", "2022-11-30", "--out", str(stations), "-q"], check=True
        )
    script = work / "analyst.py"
    script.write_text(SCRIPT_A)
    load = os.getloadavg()
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at start",
        "sectors": sum(1 for _ in stations.open()) - 1,
        "resolutions": [],
    }
    log(f"layout: {report['sectors']:,} sectors; {report['machine']}")
    for res in args.resolutions:
        row: dict[str, Any] = {"resolution": res}
        arrow, csv, v1 = work / f"g{res}.arrow", work / f"g{res}.csv", work / f"g{res}-v1.arrow"
        if args.rebuild or not arrow.exists():
            row["grid_build"] = timed_process(
                [exe, "grid", "build", "--resolution", str(res), "--out", str(arrow), "-q"]
            )
            log(f"res {res}: grid build {fmt(row['grid_build'])}")
            if res in args.build_baseline_res:
                row.update(
                    build_baselines(
                        exe, res, arrow, work, args.build_baseline_rev, row["grid_build"], args.build_repeats
                    )
                )
        if args.rebuild or not csv.exists():
            write_grid(load_grid(arrow), csv)
        if args.rebuild or not v1.exists():
            write_binary(load_grid(arrow), v1, geometry=False)
        row["cells"] = len(load_grid(arrow))
        row["arrow_mb"] = arrow.stat().st_size / 1e6
        row["csv_mb"] = csv.stat().st_size / 1e6
        shares: dict[str, float] = {}
        covered: dict[str, float] = {}
        for model in ("disk", "hata"):
            for kind, path in (("arrow", arrow), ("arrow_v1", v1), ("csv", csv)):
                m = timed_process(
                    [
                        exe,
                        "coverage",
                        "compute",
                        "--grid",
                        str(path),
                        "--stations",
                        str(stations),
                        "--model",
                        model,
                        "--json",
                    ]
                )
                doc = json.loads(m.pop("stdout"))
                shares[f"{model}_{kind}"] = doc["share"]
                covered[f"{model}_{kind}"] = doc["population_covered"]
                row[f"{model}_{kind}"] = m
            a = row[f"{model}_arrow"]
            log(
                f"res {res}: {model} Arrow {fmt(a)} | previous Arrow {fmt(row[f'{model}_arrow_v1'])} "
                f"| CSV {fmt(row[f'{model}_csv'])} | CPU previous / Arrow "
                f"{row[f'{model}_arrow_v1']['cpu_s'] / a['cpu_s']:.1f}x, CSV / Arrow "
                f"{row[f'{model}_csv']['cpu_s'] / a['cpu_s']:.1f}x"
            )
            for kind in ("arrow_v1", "csv"):
                if abs(shares[f"{model}_arrow"] - shares[f"{model}_{kind}"]) > 1e-9:
                    raise RuntimeError(f"res {res} {model}: Arrow and {kind} shares differ: {shares}")
        row["shares"] = shares
        if res <= args.analyst_max_res:
            m = timed_process([sys.executable, str(script), str(csv), str(stations)])
            doc = json.loads(m.pop("stdout"))
            row["analyst"] = m
            diff = abs(doc["population_covered"] - covered["disk_arrow"]) / doc["population_total"]
            row["analyst_share_diff"] = diff
            log(
                f"res {res}: analyst {fmt(m)} | analyst / zhongdu disk (Arrow) "
                f"{m['wall_s'] / row['disk_arrow']['wall_s']:.1f}x wall, "
                f"{m['cpu_s'] / row['disk_arrow']['cpu_s']:.1f}x CPU; share differs by {diff:.1e}"
            )
            if diff > 1e-6:
                raise RuntimeError(f"res {res}: the analyst's covered share differs by {diff}")
        report["resolutions"].append(row)
    if args.live_res:
        grid_path = work / f"g{args.live_res}.arrow"
        if grid_path.exists():
            lv = live(grid_path, stations, args.live_repeats)
            report["live"] = {"resolution": args.live_res, **lv}
            log(
                f"live at res {args.live_res} ({int(lv['cells']):,} cells): station down median "
                f"{1000 * lv['station_down_median_s']:.1f} ms "
                f"(max {1000 * lv['station_down_max_s']:.1f} ms), "
                f"up {1000 * lv['station_up_median_s']:.1f} ms; full compute {lv['full_compute_s']:.2f} s "
                f"({lv['full_compute_s'] / lv['station_down_median_s']:.0f}x)"
            )
    if args.cells_res:
        grid_path = work / f"g{args.cells_res}.arrow"
        if grid_path.exists():
            cells = api_cells(grid_path, stations, args.cells_district, args.cells_baseline_district, 5)
            report["cells"] = {"resolution": args.cells_res, **cells}
            h, g = cells["h3"], cells["geojson_baseline"]
            hb = cells["h3_baseline_district"]
            log(
                f"cells at res {args.cells_res} through the API (start {cells['api_start_s']:.1f} s): "
                f"{h['district']} {h['cells']:,} cells as H3 columns: "
                f"first {1000 * h['first_median_s']:.0f} ms, "
                f"cached {1000 * h['cached_median_s']:.0f} ms, {h['wire_bytes'] / 1e3:.0f} kB gzipped "
                f"({h['body_bytes'] / 1e3:.0f} kB), plus RSRP {h['rsrp_first_s']:.2f} s | baseline "
                f"{g['district']} {g['cells']:,} cells as GeoJSON {g['first_s']:.2f} s, "
                f"{g['wire_bytes'] / 1e3:.0f} kB gzipped ({g['body_bytes'] / 1e6:.1f} MB); "
                "the same district as "
                f"H3 columns {1000 * hb['first_median_s']:.0f} ms, {hb['wire_bytes'] / 1e3:.0f} kB "
                f"({g['first_s'] / hb['first_median_s']:.0f}x faster, "
                f"{g['wire_bytes'] / hb['wire_bytes']:.0f}x fewer bytes)"
            )
    end = os.getloadavg()
    report["machine"] += f", {end[0]:.1f} at end"
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
        log(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
