"""`zhongdu indicator import|export|report|score`: the commission's indicator work from a shell.

Registered under the `indicator` command (owned by `zhongdu.coverage.build_cli`, which also has the
modelled 4G series actions). Imports stay inside the handlers so `zhongdu --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register_actions(ind_sub: argparse._SubParsersAction[Any]) -> None:
    """Add the entry, export, score and report actions to `zhongdu indicator`."""
    imp = ind_sub.add_parser(
        "import",
        help="import indicator entries from a CSV (all rows or none)",
        description="Columns: indicator_id, year, value, numerator, denominator, components, evidence, "
        "note (UTF-8, with or without BOM). Any bad row rejects the whole file and is named. A row equal "
        "to the current entry is left alone; a different one is appended as its correction.",
    )
    imp.add_argument("file", type=Path, help="the CSV (or the JSON export, by its .json suffix)")
    imp.add_argument("--by", required=True, help="who is importing (recorded as the entries' author)")
    imp.add_argument("--plan", default=None, help="plan id (default: the plan covering each row's year)")
    imp.add_argument("--dry-run", action="store_true", help="validate and report, store nothing")
    imp.set_defaults(handler=_import)

    exp = ind_sub.add_parser("export", help="a year's current entries as CSV or JSON (import takes it back)")
    exp.add_argument("--year", type=int, required=True, help="AD year, e.g. 2016")
    exp.add_argument("--plan", default=None)
    exp.add_argument("--format", choices=["csv", "json"], default="csv")
    exp.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    exp.set_defaults(handler=_export)

    sc = ind_sub.add_parser("score", help="a year's weighted score, saying what is missing")
    sc.add_argument("--year", type=int, required=True)
    sc.add_argument("--plan", default=None)
    sc.set_defaults(handler=_score)

    rep = ind_sub.add_parser(
        "report",
        help="the yearly evaluation report (Traditional Chinese) as PDF or HTML",
        description="Each indicator with target, actual, attainment, weight, evidence and trend; the 4G "
        "share by district; the weighted score. The format follows --out's suffix (.pdf or .html).",
    )
    rep.add_argument("--year", type=int, required=True)
    rep.add_argument("--plan", default=None)
    rep.add_argument("--out", type=Path, required=True, help="report.pdf or report.html")
    rep.set_defaults(handler=_report)


def _connect() -> Any:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    settings = Settings()
    database = services.ensure_database(settings)
    conn = storage.connect(database.url)
    storage.migrate(conn)
    return settings, conn


def _import(args: argparse.Namespace) -> int:
    from zhongdu.api import _indicator_service as service

    if not args.file.is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 2
    _settings, conn = _connect()
    with conn:
        content_type = "application/json" if args.file.suffix.lower() == ".json" else "text/csv"
        try:
            result = service.import_entries(
                conn,
                args.file.read_bytes(),
                recorded_by=args.by,
                content_type=content_type,
                plan=args.plan,
                dry_run=args.dry_run,
            )
        except service.ImportRejected as exc:
            print(f"error: {exc}", file=sys.stderr)
            for error in exc.errors:
                where = f"line {error.line}" if error.line else "file"
                print(
                    f"  {where}{' ' + error.indicator_id if error.indicator_id else ''}: {error.message}",
                    file=sys.stderr,
                )
            return 1
        except service.PlanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    verb = "would import" if args.dry_run else "imported"
    print(f"{verb} {result['imported']} entries; {result['unchanged']} rows equal to the current entry")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from zhongdu.api import _indicator_entries as entries
    from zhongdu.api import _indicator_service as service

    _settings, conn = _connect()
    with conn:
        plan_id, exported = service.export_entries(conn, args.plan, args.year)
    if args.format == "json":
        text = json.dumps(service.export_json(plan_id, args.year, exported), ensure_ascii=False, indent=1)
    else:
        text = entries.write_csv([item["cells"] for item in exported])
    if args.out is None:
        sys.stdout.write(text.removeprefix("\ufeff") if args.format == "csv" else text + "\n")
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(exported)} entries of {args.year} to {args.out}", file=sys.stderr)
    return 0


def _view(args: argparse.Namespace, settings: Any, conn: Any) -> list[dict[str, Any]]:
    from zhongdu.api import _indicator_service as service

    return service.year_view(
        conn, args.plan, args.year, series=service.modelled_series(settings.indicator_4g_criterion)
    )


def _score(args: argparse.Namespace) -> int:
    from zhongdu.api import _indicators as ind

    settings, conn = _connect()
    with conn:
        items = _view(args, settings, conn)
    result = ind.score(items, args.year, criterion=settings.indicator_4g_criterion)
    print(result["summary_zh"])
    print(result["summary_en"])
    print(
        f"4G criterion: {settings.indicator_4g_criterion}; "
        f"behind or at risk: {', '.join(result['behind']) or 'none'}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from zhongdu.api import _indicator_report as rep

    suffix = args.out.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        print(f"error: --out must end in .pdf or .html; got {args.out.name}", file=sys.stderr)
        return 2
    settings, conn = _connect()
    with conn:
        items = _view(args, settings, conn)
        print(f"collected {len(items)} indicators of {args.year}", file=sys.stderr)
        document = rep.render_html(
            rep.collect(conn, items, args.year, criterion=settings.indicator_4g_criterion)
        )
    if suffix == ".pdf":
        print("printing the PDF", file=sys.stderr)
        args.out.write_bytes(rep.to_pdf(document))
    else:
        args.out.write_text(document, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
