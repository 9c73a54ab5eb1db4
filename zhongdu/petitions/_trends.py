"""Monthly series per category, time to close, and each breakpoint's before/after monthly mean."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from zhongdu.storage import _petitions as store

_TAIPEI = timezone(timedelta(hours=8))
BREAK_MONTHS = 6  # months compared on each side of a breakpoint


def _month(at: datetime) -> str:
    return at.astimezone(_TAIPEI).strftime("%Y-%m")


def trends(
    conn: psycopg.Connection[Any],
    *,
    category: str | None = None,
    district: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Series per category (months without cases are 0), time to close, breakpoints."""
    rows = store.monthly_counts(conn, start=start, end=end, category=category, district=district)
    months = sorted({str(r["month"]) for r in rows})
    if months:
        months = _month_range(months[0], months[-1])
    series: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = series.setdefault(
            str(r["category"]),
            {
                "category": r["category"],
                "received": dict.fromkeys(months, 0),
                "resolved": dict.fromkeys(months, 0),
            },
        )
        entry["received"][r["month"]] = int(r["received"])
        entry["resolved"][r["month"]] = int(r["resolved"])
    out_series = [
        {
            "category": e["category"],
            "points": [
                {"month": m, "received": e["received"][m], "resolved": e["resolved"][m]} for m in months
            ],
        }
        for e in series.values()
    ]
    breaks = []
    for bp in store.list_breakpoints(conn, category=category):
        at_month = _month(bp["at"])
        before = [m for m in months if m < at_month][-BREAK_MONTHS:]
        after = [m for m in months if m >= at_month][:BREAK_MONTHS]
        cats = [e for e in series.values() if bp["category"] in (None, e["category"])]

        def mean(ms: list[str], cats: list[dict[str, Any]] = cats) -> float | None:
            if not ms:
                return None
            return round(float(sum(int(e["received"][m]) for e in cats for m in ms)) / len(ms), 2)

        breaks.append({**bp, "month": at_month, "mean_before": mean(before), "mean_after": mean(after)})
    close = [
        {
            **r,
            **{
                k: None if r[k] is None else round(float(r[k]), 2)
                for k in ("close_median_h", "close_p90_h", "dispatch_median_h")
            },
        }
        for r in store.time_to_close(conn, start=start, end=end, category=category, district=district)
    ]
    return {
        "category": category,
        "district": district,
        "months": months,
        "series": out_series,
        "time_to_close": close,
        "breakpoints": breaks,
        "timezone": "Asia/Taipei",
        "synthetic": store.any_synthetic(conn),
    }


def _month_range(first: str, last: str) -> list[str]:
    y, m = map(int, first.split("-"))
    ly, lm = map(int, last.split("-"))
    out = []
    while (y, m) <= (ly, lm):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
