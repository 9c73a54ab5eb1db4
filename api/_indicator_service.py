"""Indicator work against the database, shared by the API routes, the CLI and the report.

A year's view (catalogue + current entries + amendments + reviews + the engine's 4G value), the
all-or-nothing import, and the export that round-trips through it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from zhongdu import storage
from zhongdu.api import _indicator_entries as entries
from zhongdu.api import _indicators as ind
from zhongdu.errors import ZhongduError

log = logging.getLogger(__name__)


class PlanError(ZhongduError, ValueError):
    """No such plan, indicator or year for the request."""


class LockedYear(ZhongduError):
    """The year was evaluated and locked: nothing in it changes any more."""


@dataclass
class ImportRejected(ZhongduError):
    """The file is refused as a whole; `errors` name each bad row."""

    errors: list[entries.RowError]

    def __str__(self) -> str:
        return f"{len(self.errors)} bad row(s); nothing was imported"


def choose_plan(conn: psycopg.Connection[Any], plan: str | None, year: int) -> str:
    """The requested plan, else the one whose target years cover `year`, else the latest one."""
    plans = storage.queries.list_plans(conn)
    if not plans:
        raise PlanError("no indicator catalogue is loaded; run `zhongdu db migrate`")
    ids = [str(p["plan_id"]) for p in plans]
    if plan is not None:
        if plan not in ids:
            raise PlanError(f"unknown plan {plan!r}; loaded plans: {', '.join(ids)}")
        return plan
    covering = [p for p in plans if p["first_year"] <= year <= p["last_year"]]
    chosen = covering[-1] if covering else max(plans, key=lambda p: (p["last_year"], p["plan_id"]))
    return str(chosen["plan_id"])


def modelled_series(criterion: str) -> list[dict[str, Any]]:
    """The shipped modelled 4G series for a criterion (empty, with a log line, if it is missing)."""
    try:
        from zhongdu.coverage import modelled_indicator_series

        return list(modelled_indicator_series(criterion))
    except Exception as exc:  # shipped data missing or criterion unknown: serve without it
        log.warning("modelled 4G indicator series (%s) unavailable: %s", criterion, exc)
        return []


def year_view(
    conn: psycopg.Connection[Any],
    plan: str | None,
    year: int,
    *,
    series: Sequence[Mapping[str, Any]],
    live: Mapping[str, Any] | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """Every indicator of the plan for `year` with its target in force, actual, status and trend."""
    plan_id = choose_plan(conn, plan, year)
    rows = storage.queries.list_indicators(conn, plan_id)
    today_ = today or datetime.now(UTC).date()
    engine = None
    if any((r.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE for r in rows):
        engine = ind.engine_actual(year, today=today_, live=live, series=series)
    history: dict[str, dict[int, float]] = {}
    for entry in storage.queries.latest_indicator_actuals_all_years(conn, plan_id):
        history.setdefault(str(entry["indicator_id"]), {})[int(entry["year"])] = float(entry["value"])
    for point_year in {
        int(str(p.get("date", ""))[:4]) for p in series if str(p.get("date", ""))[:4].isdigit()
    }:
        point = ind.modelled_for_year(series, point_year)
        for row in rows:
            if (row.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE and point is not None:
                history.setdefault(str(row["indicator_id"]), {})[point_year] = float(
                    ind.year_true_point(point, point_year)["share"]
                )
    amendments = {str(a["indicator_id"]): a for a in storage.queries.list_amendments(conn, plan_id, year)}
    return ind.build_indicators(
        rows,
        year,
        recorded=storage.queries.latest_indicator_actuals(conn, plan_id, year),
        engine=engine,
        history=history,
        amendments=amendments,
        reviews=storage.queries.latest_reviews(conn, plan_id, year),
        today=today_,
    )


def ensure_open(conn: psycopg.Connection[Any], plan_id: str, year: int) -> None:
    lock = storage.queries.year_lock(conn, plan_id, year)
    if lock is not None:
        raise LockedYear(
            f"{year} of {plan_id} was locked by {lock['locked_by']} "
            f"at {lock['locked_at']:%Y-%m-%d %H:%M} UTC; "
            "record a target amendment or ask an admin"
        )


def _is_engine_fed(row: Mapping[str, Any]) -> bool:
    return (row.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE


def _json_cells(item: Mapping[str, Any]) -> dict[str, str]:
    """A JSON entry (as the JSON export writes it) in the CSV's cell form."""
    cells: dict[str, str] = {}
    for key in entries.CSV_COLUMNS:
        value = item.get(key)
        if key == "components" and isinstance(value, Mapping):
            cells[key] = "; ".join(f"{k}={entries.format_number(float(v))}" for k, v in value.items())
        elif isinstance(value, float | int) and not isinstance(value, bool):
            cells[key] = entries.format_number(float(value))
        else:
            cells[key] = "" if value is None else str(value)
    return cells


def parse_upload(
    data: bytes, content_type: str | None
) -> tuple[list[dict[str, str]], list[entries.RowError]]:
    """CSV (default) or the JSON export's form, as rows of cells with their line (or item) numbers."""
    if content_type and "json" in content_type:
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            return [], [entries.RowError(0, None, f"the body is not JSON: {exc}")]
        items = doc.get("entries") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return [], [entries.RowError(0, None, 'JSON import wants {"entries": [{...}, ...]}')]
        rows = []
        for number, item in enumerate(items, start=1):
            cells = _json_cells(item)
            cells["_line"] = str(number)
            rows.append(cells)
        return rows, []
    return entries.read_csv(data)


def import_entries(
    conn: psycopg.Connection[Any],
    data: bytes,
    *,
    recorded_by: str,
    content_type: str | None = None,
    plan: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Validate every row, then append them all in one transaction, or nothing (ImportRejected).

    A row equal to the current entry of its indicator and year is left alone (re-importing a file
    changes nothing); a different one is appended as a correction of the current entry.
    """
    rows, errors = parse_upload(data, content_type)
    if not rows and not errors:
        errors.append(entries.RowError(0, None, "the file has no data rows"))
    catalogue: dict[str, dict[str, Mapping[str, Any]]] = {}
    current: dict[tuple[str, int], dict[str, Any]] = {}
    locks: dict[tuple[str, int], bool] = {}
    planned: list[tuple[str, entries.Entry, Mapping[str, Any] | None]] = []
    seen: dict[tuple[str, str, int], int] = {}
    for cells in rows:
        line = int(cells["_line"])
        indicator_id = cells.get("indicator_id", "").strip()
        try:
            year_text = cells.get("year", "").strip()
            if not year_text.isdigit() or not 1990 <= int(year_text) <= 2100:
                raise entries.EntryError(f"`year` is an AD year between 1990 and 2100; got {year_text!r}")
            year = int(year_text)
            plan_id = choose_plan(conn, (cells.get("plan_id") or "").strip() or plan, year)
            if plan_id not in catalogue:
                catalogue[plan_id] = {
                    str(r["indicator_id"]): r for r in storage.queries.list_indicators(conn, plan_id)
                }
            row = catalogue[plan_id].get(indicator_id)
            if row is None:
                raise entries.EntryError(f"plan {plan_id} has no indicator {indicator_id!r}")
            if _is_engine_fed(row):
                raise entries.EntryError(
                    f"{indicator_id}'s actual comes from the coverage engine, not a file"
                )
            key = (plan_id, indicator_id, year)
            if key in seen:
                raise entries.EntryError(f"{indicator_id} {year} is already on line {seen[key]}")
            seen[key] = line
            if (plan_id, year) not in locks:
                locks[(plan_id, year)] = storage.queries.year_lock(conn, plan_id, year) is not None
                current.update(
                    {
                        (k, year): v
                        for k, v in storage.queries.latest_indicator_actuals(conn, plan_id, year).items()
                    }
                )
            if locks[(plan_id, year)]:
                raise entries.EntryError(f"{year} is locked (evaluated); its entries no longer change")
            entry = entries.entry_from_cells(row, cells, year)
        except (entries.EntryError, PlanError) as exc:
            errors.append(entries.RowError(line, indicator_id or None, str(exc)))
            continue
        planned.append((plan_id, entry, current.get((indicator_id, year))))
    if errors:
        conn.rollback()
        raise ImportRejected(errors)
    written: list[dict[str, Any]] = []
    unchanged: list[dict[str, Any]] = []
    for plan_id, entry, stored in planned:
        if entries.same_entry(entry, stored):
            unchanged.append({"indicator_id": entry.indicator_id, "year": entry.year})
            continue
        if dry_run:
            written.append({"indicator_id": entry.indicator_id, "year": entry.year, "value": entry.value})
            continue
        written.append(
            store_entry(
                conn,
                plan_id,
                entry,
                recorded_by=recorded_by,
                corrects=None if stored is None else int(stored["id"]),
            )
        )
    if dry_run:
        conn.rollback()
    else:
        conn.commit()
    return {"imported": len(written), "unchanged": len(unchanged), "dry_run": dry_run, "entries": written}


def store_entry(
    conn: psycopg.Connection[Any],
    plan_id: str,
    entry: entries.Entry,
    *,
    recorded_by: str,
    corrects: int | None,
) -> dict[str, Any]:
    return storage.queries.insert_indicator_actual(
        conn,
        plan_id=plan_id,
        indicator_id=entry.indicator_id,
        year=entry.year,
        value=entry.value,
        numerator=entry.numerator,
        denominator=entry.denominator,
        source="recorded",
        recorded_by=recorded_by,
        evidence=entry.evidence,
        components=entry.components,
        note=entry.note,
        corrects=corrects,
    )


def export_entries(
    conn: psycopg.Connection[Any], plan: str | None, year: int
) -> tuple[str, list[dict[str, Any]]]:
    """The current entry of every recorded indicator of a year: (plan, [{cells..., audit...}])."""
    plan_id = choose_plan(conn, plan, year)
    rows = {str(r["indicator_id"]): r for r in storage.queries.list_indicators(conn, plan_id)}
    current = storage.queries.latest_indicator_actuals(conn, plan_id, year)
    out = []
    for indicator_id, row in rows.items():
        stored = current.get(indicator_id)
        if stored is None or _is_engine_fed(row):
            continue
        cells = entries.export_cells(row, stored)
        out.append(
            {
                "cells": cells,
                "id": stored["id"],
                "recorded_by": stored["recorded_by"],
                "recorded_at": stored["recorded_at"],
                "corrects": stored.get("corrects"),
                "unit": row["unit"],
            }
        )
    return plan_id, out


def export_json(plan_id: str, year: int, exported: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON export: each entry's import fields (numbers typed) plus its audit fields."""
    items = []
    for item in exported:
        cells = item["cells"]
        typed: dict[str, Any] = {"indicator_id": cells["indicator_id"], "year": int(cells["year"])}
        for key in ("value", "numerator", "denominator"):
            typed[key] = float(cells[key]) if cells[key] else None
        typed["components"] = entries.parse_components(cells["components"])
        typed["evidence"] = cells["evidence"] or None
        typed["note"] = cells["note"] or None
        typed.update(
            {
                "unit": item["unit"],
                "entry_id": item["id"],
                "recorded_by": item["recorded_by"],
                "recorded_at": item["recorded_at"].isoformat(),
                "corrects": item["corrects"],
            }
        )
        items.append(typed)
    return {"plan_id": plan_id, "year": year, "entries": items}
