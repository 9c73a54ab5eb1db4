"""What the lazy re-exports (`zhongdu._lazy`) buy: whole-process time of short `zhongdu` commands.

Each command runs as a fresh process, alternately as shipped (lazy) and with every package's
exports resolved before the command runs, which is what eager imports in the `__init__` modules
would cost. Prints the median of `--runs` per command and the ratio eager / lazy.

Then the coverage command's own start, against what it did before in the same run:
`coverage compute --help` as shipped and with `zhongdu.coverage`'s former eager exports resolved
first (everything but the placement names: NumPy and the engine); `coverage compute --model hata`
on the shipped resolution-10 grid as shipped and with `ZHONGDU_RSRP_THRESHOLD_DBM` set to its
default (which makes it read the settings, as every run did before: pydantic-settings).

Run: `.venv/bin/python benchmarks/bench_startup.py --runs 7`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["coverage", "compute", "--help"])
PACKAGES = (
    "zhongdu.storage", "zhongdu.broker", "zhongdu.ingest", "zhongdu.simulators", "zhongdu.coverage",
    "zhongdu.api",
)  # fmt: skip
EAGER = (
    "import importlib\n"
    f"for p in {PACKAGES!r}:\n"
    "    m = importlib.import_module(p)\n"
    "    [getattr(m, n) for n in m.__all__]\n"
)
#: The names `zhongdu.coverage` already loaded on first use before: the placement (SciPy).
PLACEMENT_NAMES = (
    "CandidateDefaults", "generate_candidates", "MCLPResult", "solve_mclp", "PlacementError",
    "PlacementPick", "PlacementProblem", "PlacementResult", "build_problem", "greedy", "plan",
)  # fmt: skip
#: What `zhongdu.coverage`'s `__init__` imported before all its exports became lazy.
PREVIOUS_COVERAGE = (
    f"import zhongdu.coverage as c\n[getattr(c, n) for n in c.__all__ if n not in {PLACEMENT_NAMES!r}]\n"
)
RUN = "import sys\nfrom zhongdu.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"


def _seconds(code: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, env=env
    )
    if done.returncode:
        raise RuntimeError(f"{code!r} failed: {done.stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def _stations() -> str:
    """The 2022-11 layout (47,364 sectors), made once in build/."""
    path = Path("build/bench-startup/stations_2022-11.csv")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run = RUN.format(args=["stations", "generate", "--date", "2022-11-30", "--out", str(path), "-q"])
        subprocess.run([sys.executable, "-c", run], check=True, timeout=600)
    return str(path)


def _before_after(runs: int) -> dict[str, dict[str, float]]:
    """The coverage command's start as shipped against what it did before, alternating."""
    plain = {k: v for k, v in os.environ.items() if k.upper() != "ZHONGDU_RSRP_THRESHOLD_DBM"}
    hata = ["coverage", "compute", "--stations", _stations(), "--model", "hata", "--json"]
    cases = {
        "zhongdu coverage compute --help": (
            (RUN.format(args=["coverage", "compute", "--help"]), plain),
            (PREVIOUS_COVERAGE + RUN.format(args=["coverage", "compute", "--help"]), plain),
        ),
        "zhongdu coverage compute --model hata (res 10)": (
            (RUN.format(args=hata), plain),
            (RUN.format(args=hata), {**plain, "ZHONGDU_RSRP_THRESHOLD_DBM": "-110"}),
        ),
    }
    out = {}
    for name, ((now_code, now_env), (then_code, then_env)) in cases.items():
        _seconds(now_code, now_env)
        now, then = [], []
        for _ in range(runs):
            now.append(_seconds(now_code, now_env))
            then.append(_seconds(then_code, then_env))
        out[name] = {
            "now_s": round(statistics.median(now), 3),
            "before_s": round(statistics.median(then), 3),
            "saved_s": round(statistics.median(then) - statistics.median(now), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per command and mode (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = {}
    for command in COMMANDS:
        lazy: list[float] = []
        eager: list[float] = []
        run = RUN.format(args=command)
        _seconds(run)  # warm the page cache and the byte-code cache once
        for _ in range(args.runs):
            lazy.append(_seconds(run))
            eager.append(_seconds(EAGER + run))
        results["zhongdu " + " ".join(command)] = {
            "lazy_s": round(statistics.median(lazy), 3),
            "eager_s": round(statistics.median(eager), 3),
            "ratio_eager_over_lazy": round(statistics.median(eager) / statistics.median(lazy), 2),
        }
    before_after = _before_after(args.runs)
    meta = {"runs": args.runs, "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}
    if args.json:
        print(json.dumps({**meta, "commands": results, "coverage_start": before_after}))
        return 0
    print(f"median of {args.runs} processes, {meta['cores']} cores, load {meta['load_average']}")
    for name, r in results.items():
        ratio = r["ratio_eager_over_lazy"]
        print(f"{name:34}lazy {r['lazy_s']:6.3f} s   eager {r['eager_s']:6.3f} s   {ratio}x")
    for name, r in before_after.items():
        saved = r["saved_s"]
        print(f"{name:48}now {r['now_s']:6.3f} s   before {r['before_s']:6.3f} s   saved {saved:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
