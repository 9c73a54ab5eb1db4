"""Indicator benchmark: CSV import, the year's view as the history grows, and the annual report.

    .venv/bin/python benchmarks/bench_indicators.py [--repeats 5] [--database-url URL]

A temporary database on the local PostgreSQL (127.0.0.1:5432) unless --database-url is given,
migrated, dropped at the end. Baselines measured in the same run, printed as ratios:

1. import of a 4-year file (14 keyed indicators × 4 years = 56 rows) against the same file as a
   dry run (parse + validate, nothing stored): the cost of storing;
2. the year's view (what `GET /v1/indicators` computes) after 2,000 corrections against a fresh
   database: whether the append-only history slows the page;
3. the report printed to PDF (WeasyPrint) against rendering its HTML: the price of the PDF.

Times are medians of --repeats runs, wall clock on a shared machine: compare within a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

ROWS = [
    "B1-1,{y},,12,15,,{e},",
    "B2-1,{y},4,,,,{e},",
    "B3-1,{y},,5,8,,{e},",
    "B4-1,{y},,1480,1728,,{e},",
    "B5-1,{y},2,,,,{e},",
    "B6-1,{y},,,,analysis_reports=12; improvement_reviews=4; training_evaluation=1,{e},",
    "B7-1,{y},,,,m1=1; m2=1; m3=1; m4=0,{e},",
    "B7-3,{y},86,,,,{e},",
    "M1-1,{y},1,,,,{e},",
    "M1-2,{y},42.5,,,,{e},",
    "M2-1,{y},,4100,5000,,{e},",
    "M2-2,{y},,610,1000,,{e},",
    "F1-1,{y},81.3,,,,{e},",
    "F1-2,{y},,790,1000,,{e},",
]
HEADER = "indicator_id,year,value,numerator,denominator,components,evidence,note"


def _file(salt: int) -> bytes:
    """14 rows for each of 2015-2018; `salt` changes the evidence, so every import appends."""
    lines = [HEADER] + [
        row.format(y=year, e=f"bench {salt}") for year in (2015, 2016, 2017, 2018) for row in ROWS
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _median(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(url: str, repeats: int) -> None:
    from zhongdu import storage
    from zhongdu.api import _indicator_report as rep
    from zhongdu.api import _indicator_service as service

    with storage.connect(url) as conn:
        storage.migrate(conn)
    series = service.modelled_series("outdoor")
    with psycopg.connect(url) as conn:
        view_fresh = _median(lambda: service.year_view(conn, None, 2016, series=series), repeats)
        dry = _median(
            lambda: service.import_entries(conn, _file(0), recorded_by="bench", dry_run=True), repeats
        )
        salts = iter(range(1, 1000))
        stored = _median(
            lambda: service.import_entries(conn, _file(next(salts)), recorded_by="bench"), repeats
        )
        print(
            "import (56 rows, stored)",
            f"{1000 * stored:.1f} ms;",
            f"dry run {1000 * dry:.1f} ms;",
            f"ratio {stored / dry:.2f}",
        )
        start = time.perf_counter()
        n = 0
        while n < 2000:
            service.import_entries(conn, _file(next(salts, 0) + 10_000 + n), recorded_by="bench")
            n += 56
        print(f"2,000 more entries appended in {time.perf_counter() - start:.1f} s")
        view_full = _median(lambda: service.year_view(conn, None, 2016, series=series), repeats)
        print(
            "year view",
            f"fresh {1000 * view_fresh:.1f} ms;",
            f"after {n:,} corrections {1000 * view_full:.1f} ms;",
            f"ratio {view_full / view_fresh:.2f}",
        )
        items = service.year_view(conn, None, 2016, series=series)
        html_t = _median(
            lambda: rep.render_html(rep.collect(conn, items, 2016, criterion="outdoor")), repeats
        )
        document = rep.render_html(rep.collect(conn, items, 2016, criterion="outdoor"))
        rep.to_pdf(document)  # the first call loads Pango and the fonts
        pdf_t = _median(lambda: rep.to_pdf(document), repeats)
        print(
            "report",
            f"HTML {1000 * html_t:.1f} ms;",
            f"PDF {1000 * pdf_t:.0f} ms;",
            f"ratio {pdf_t / html_t:.1f}; PDF {len(rep.to_pdf(document)) / 1024:.0f} KiB",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--database-url", default=None, help="default: a temporary database on 127.0.0.1")
    args = parser.parse_args()
    if args.database_url:
        run(args.database_url, args.repeats)
        return 0
    name = f"bench_ind_{uuid.uuid4().hex[:8]}"
    server = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        run(server.rsplit("/", 1)[0] + "/" + name, args.repeats)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
