"""What the lazy re-exports (`zhongdu._lazy`) buy: whole-process time of short `zhongdu` commands.

Each command runs as a fresh process, alternately as shipped (lazy) and with every package's
exports resolved before the command runs, which is what eager imports in the `__init__` modules
would cost. Prints the median of `--runs` per command and the ratio eager / lazy.

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
RUN = "import sys\nfrom zhongdu.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"


def _seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - started


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
    meta = {"runs": args.runs, "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}
    if args.json:
        print(json.dumps({**meta, "commands": results}))
        return 0
    print(f"median of {args.runs} processes, {meta['cores']} cores, load {meta['load_average']}")
    for name, r in results.items():
        ratio = r["ratio_eager_over_lazy"]
        print(f"{name:34}lazy {r['lazy_s']:6.3f} s   eager {r['eager_s']:6.3f} s   {ratio}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
