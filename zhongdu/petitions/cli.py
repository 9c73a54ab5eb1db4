"""`zhongdu petitions ...`: import a city's export, export, hotspots, trends and breakpoints from the shell.

Imports stay cheap: heavy modules load inside the handlers so `zhongdu --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  zhongdu simulate petitions --cases 50000 --out petitions.csv
  zhongdu petitions import petitions.csv
  zhongdu petitions hotspots --category drain --res 9 --top 5
  zhongdu petitions trends --category drain
  zhongdu petitions emerging --months 12 --res 8
  zhongdu petitions export --format open311 --out requests.json
  zhongdu petitions breakpoint --at 2025-01-01T00:00:00+08:00 --kind policy --note "new towing contract"

The database comes from ZHONGDU_DATABASE_URL (an embedded one is started when unset). The CSV's
columns are documented in docs/petitions.md.
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `petitions` to the `zhongdu` parser."""
    parser = subparsers.add_parser(
        "petitions",
        help="1999 hotline and petition cases: import, hotspots, trends, Open311",
        description="Import petition cases (CSV or Open311 GeoReport v2 JSON), find hotspots with "
        "Getis-Ord Gi* on the H3 grid, read monthly trends and time to close.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="petitions_command", metavar="ACTION", required=True)

    imp = sub.add_parser("import", help="import a CSV (or Open311 JSON) file; re-importing changes nothing")
    imp.add_argument("file", type=Path, help="CSV with the documented columns, or .json (Open311)")
    imp.add_argument(
        "--synthetic", action="store_true", help="mark every case synthetic (SIM- ids always are)"
    )
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(handler=_import)

    exp = sub.add_parser("export", help="write the stored cases as CSV or Open311 GeoReport v2 JSON")
    exp.add_argument("--format", choices=("csv", "open311"), default="csv")
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    exp.add_argument("--category")
    exp.set_defaults(handler=_export)

    hot = sub.add_parser("hotspots", help="Gi* hotspots of a window, FDR-corrected")
    _window_args(hot)
    hot.add_argument("--res", type=int, choices=(8, 9, 10), default=9, help="H3 resolution (default 9)")
    hot.add_argument("--k", type=int, choices=(0, 1, 2, 3), default=1, help="grid-disk radius (default 1)")
    hot.add_argument("--measure", choices=("count", "rate"), default="count")
    hot.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default 0.05)")
    hot.add_argument("--top", type=int, default=10, help="print the N hottest cells (default 10)")
    hot.add_argument("--geojson", type=Path, help="also write the significant cells as GeoJSON")
    hot.set_defaults(handler=_hotspots)

    em = sub.add_parser("emerging", help="emerging hot spots: Gi* per month, Mann-Kendall trend per cell")
    em.add_argument("--category", help="one category (code or Chinese name)")
    em.add_argument("--months", type=int, default=12, help="whole months ending with the latest case's (12)")
    em.add_argument(
        "--to", dest="end", help="the last month is the one holding this time (default: latest case)"
    )
    em.add_argument("--res", type=int, choices=(8, 9), default=8, help="H3 resolution (default 8)")
    em.add_argument("--k", type=int, choices=(0, 1, 2, 3), default=1, help="grid-disk radius (default 1)")
    em.add_argument("--geojson", type=Path, help="also write the labelled cells as GeoJSON")
    em.set_defaults(handler=_emerging)

    tr = sub.add_parser("trends", help="cases per month and time to close, per category")
    _window_args(tr)
    tr.add_argument("--district")
    tr.set_defaults(handler=_trends)

    bp = sub.add_parser(
        "breakpoint", help="record a category change or a policy change trends are read against"
    )
    bp.add_argument("--at", required=True, help="when it took effect (ISO 8601)")
    bp.add_argument("--kind", choices=("category_change", "policy", "data"), required=True)
    bp.add_argument("--note", required=True)
    bp.add_argument("--category", help="the category it concerns (default: all)")
    bp.set_defaults(handler=_breakpoint)


def _window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--category", help="one category (code, e.g. drain, or 道路側溝清淤)")
    parser.add_argument("--from", dest="start", help="start, ISO 8601 (default: 90 days before --to)")
    parser.add_argument("--to", dest="end", help="end, exclusive (default: just after the latest case)")


def _connect() -> Any:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    settings = Settings()
    database = services.ensure_database(settings)
    conn = storage.connect(database.url, schema=settings.database_schema)
    storage.migrate(conn)
    return conn


def _time(text: str | None) -> Any:
    from zhongdu.petitions._cases import parse_time

    try:
        return parse_time(text, "time")
    except ValueError as exc:
        from zhongdu.petitions._service import PetitionInputError

        raise PetitionInputError(str(exc)) from None


def _category(text: str | None) -> str | None:
    from zhongdu.petitions._categories import normalise_category

    return normalise_category(text) if text else None


def _import(args: argparse.Namespace) -> int:
    from zhongdu.petitions import _open311, _service

    if not args.file.is_file():
        raise _service.PetitionInputError(f"no such file: {args.file}")
    if args.file.suffix.lower() == ".json":
        rows: Any = _open311.rows_from_open311(json.loads(args.file.read_text("utf-8")))
    else:
        rows = _service.read_csv(args.file)
    print(f"importing {args.file} ...", file=sys.stderr)
    with _connect() as conn:
        report, rejected = _service.import_rows(
            conn, rows, source=f"file:{args.file.name}", synthetic=True if args.synthetic else None
        )
    if args.json:
        print(json.dumps({**report.__dict__, "rejections": rejected}, ensure_ascii=False))
    else:
        print(
            f"{report.rows} rows: {report.inserted} new, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.rejected} rejected (batch {report.batch_id})"
        )
        for r in rejected[:20]:
            print(f"  row {r['row']} ({r['case_id'] or 'no case_id'}): {r['reason']}")
        if len(rejected) > 20:
            print(
                f"  ... and {len(rejected) - 20} more (GET /v1/petitions/rejects?batch_id={report.batch_id})"
            )
    return 0 if not rejected else 1


def _export(args: argparse.Namespace) -> int:
    from zhongdu.petitions import _open311
    from zhongdu.storage import _petitions as store

    with _connect() as conn:
        cases = store.list_cases(conn, category=_category(args.category))
    out = args.out.open("w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        if args.format == "open311":
            json.dump(_open311.to_open311(cases), out, ensure_ascii=False, indent=1, default=str)
        else:
            _open311.write_csv(cases, out)
    finally:
        if args.out:
            out.close()
    print(f"exported {len(cases)} cases", file=sys.stderr)
    return 0


def _hotspots(args: argparse.Namespace) -> int:
    from datetime import timedelta, timezone

    from zhongdu.petitions import _service
    from zhongdu.storage import _petitions as store

    category = _category(args.category)
    with _connect() as conn:
        window = _service.resolve_window(conn, _time(args.start), _time(args.end))
        result = _service.run_hotspots(
            conn,
            window=window,
            category=category,
            res=args.res,
            k=args.k,
            measure=args.measure,
            alpha=args.alpha,
        )
        synthetic = store.any_synthetic(conn)
    body = _service.hotspots_geojson(result, window=window, category=category, synthetic=synthetic)
    taipei = timezone(timedelta(hours=8))
    first, last = window.start.astimezone(taipei), window.end.astimezone(taipei)
    print(
        f"{result.cases} cases {first:%Y-%m-%d}..{last:%Y-%m-%d} (Taiwan time)"
        f"{' (SYNTHETIC)' if synthetic else ''}; {len(result.cells)} cells at res {args.res}, k={args.k}, "
        f"{args.measure}: {body['hot']} hot, {body['cold']} cold at FDR {args.alpha}"
    )
    for f in body["features"][: args.top]:
        p = f["properties"]
        if p["verdict"] == "hot":
            print(
                f"  {p['cell']}  count {p['count']:6d}  rate {p['rate']:8.3f}  z {p['z']:7.2f}"
                f"  q {p['q']:.2e}"
            )
    if args.geojson:
        args.geojson.write_text(json.dumps(body, ensure_ascii=False, default=str), "utf-8")
    return 0


def _emerging(args: argparse.Namespace) -> int:
    from zhongdu.petitions import _service

    if not 3 <= args.months <= 60:
        raise _service.PetitionInputError("--months must be 3-60")
    with _connect() as conn:
        body = _service.emerging_geojson(
            conn,
            category=_category(args.category),
            months=args.months,
            end=_time(args.end),
            res=args.res,
            k=args.k,
        )
    counts = ", ".join(f"{n} {p}" for p, n in body["counts"].items())
    print(
        f"{body['months'][0]}..{body['months'][-1]}{' (SYNTHETIC)' if body['synthetic'] else ''}, "
        f"res {args.res}, k={args.k}: {counts}"
    )
    for f in body["features"]:
        p = f["properties"]
        print(
            f"  {p['cell']}  {p['pattern']:<12}  hot {p['hot_months']:2d} months  trend z {p['trend_z']:6.2f}"
        )
    if args.geojson:
        args.geojson.write_text(json.dumps(body, ensure_ascii=False, default=str), "utf-8")
    return 0


def _trends(args: argparse.Namespace) -> int:
    from zhongdu.petitions import _trends

    with _connect() as conn:
        body = _trends.trends(
            conn,
            category=_category(args.category),
            district=args.district,
            start=_time(args.start),
            end=_time(args.end),
        )
    print(json.dumps(body, ensure_ascii=False, default=str, indent=1))
    return 0


def _breakpoint(args: argparse.Namespace) -> int:
    from zhongdu.storage import _petitions as store

    with _connect() as conn:
        row = store.add_breakpoint(
            conn, at=_time(args.at), kind=args.kind, note=args.note, category=_category(args.category)
        )
        conn.commit()
    print(json.dumps(row, ensure_ascii=False, default=str))
    return 0


def add_simulate_arguments(sim: argparse.ArgumentParser) -> None:
    """The options of `zhongdu simulate petitions` (on the shared `simulate` parser)."""
    group = sim.add_argument_group("petitions (zhongdu simulate petitions)")
    group.add_argument("--cases", type=int, default=20000, help="cases spread by population (default 20000)")
    group.add_argument("--out", type=Path, help="CSV to write (default: stdout)")
    group.add_argument("--months", type=int, default=24, help="window: the last N months (default 24)")
    group.add_argument("--end", dest="petitions_end", help="window end, ISO 8601 (default: now)")
    group.add_argument(
        "--spread", choices=("population", "uniform"), default="population", help="where cases fall"
    )
    group.add_argument(
        "--cluster",
        action="append",
        default=[],
        help="plant a cluster LON,LAT,RADIUS_M,CASES[,CATEGORY[,START]] (repeatable)",
    )
    group.add_argument("--coarse-share", type=float, default=0.03, help="share without lon/lat (0.03)")


def simulate_petitions(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from zhongdu.petitions._service import PetitionInputError
    from zhongdu.petitions._simulate import Cluster, simulate, write_csv

    try:
        clusters = tuple(Cluster.parse(c) for c in args.cluster)
    except ValueError as exc:
        raise PetitionInputError(str(exc)) from None
    from datetime import UTC, datetime

    end = _time(args.petitions_end) or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=round(args.months * 30.44))
    print(f"simulating {args.cases} synthetic cases {start:%Y-%m-%d}..{end:%Y-%m-%d} ...", file=sys.stderr)
    df = simulate(
        args.cases,
        start=start,
        end=end,
        seed=args.seed,
        spread=args.spread,
        clusters=clusters,
        coarse_share=args.coarse_share,
    )
    write_csv(df, args.out or sys.stdout)
    print(
        f"wrote {len(df)} synthetic cases (ids SIM-{args.seed}-...) to {args.out or 'stdout'}",
        file=sys.stderr,
    )
    return 0
