"""Ingestion benchmark: the same as `zhongdu ingest bench` (see `zhongdu ingest bench --help`).

Example: `.venv/bin/python benchmarks/bench_ingest.py --rate 5000 --seconds 20 --workers 2`
"""

from __future__ import annotations

import sys

from zhongdu.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["ingest", "bench", *sys.argv[1:]]))
