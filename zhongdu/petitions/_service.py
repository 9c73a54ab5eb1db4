"""What the CLI and the API share: reading a city's CSV, importing, the analyses on stored cases."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from zhongdu.errors import ZhongduError
from zhongdu.petitions._cases import COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, check_rows
from zhongdu.petitions._hotspots import (
    Hotspots,
    Measure,
    default_study_area,
    hotspots,
    new_significant_hotspots,
)
from zhongdu.petitions._places import load_places
from zhongdu.petitions._simulate import SYNTHETIC_PREFIX
from zhongdu.storage import _petitions as store


class PetitionInputError(ZhongduError, ValueError):
    """A petitions file or request that cannot be read at all (not a bad row: those are rejected)."""


def read_csv(source: Path | str | io.TextIOBase) -> Iterator[dict[str, Any]]:
    """Rows of a petitions CSV (UTF-8, a BOM from spreadsheet exports is fine) as dicts."""
    handle = open(source, encoding="utf-8-sig", newline="") if isinstance(source, Path | str) else source
    try:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise PetitionInputError(
                f"the CSV lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)} "
                f"(optional: {', '.join(OPTIONAL_COLUMNS)})"
            )
        reader.fieldnames = header
        yield from reader
    finally:
        if isinstance(source, Path | str):
            handle.close()


def import_rows(
    conn: psycopg.Connection[Any],
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str,
    synthetic: bool | None = None,
) -> tuple[store.ImportReport, list[dict[str, Any]]]:
    """Check and store a batch; (report, the rejections row by row). `synthetic=None`: from the ids."""
    checked = check_rows(rows, load_places())
    if synthetic is None:
        synthetic = bool(checked.cases) and all(c.case_id.startswith(SYNTHETIC_PREFIX) for c in checked.cases)
    report = store.import_cases(conn, checked.cases, checked.rejections, source=source, synthetic=synthetic)
    rejected = [{"row": r.row_number, "case_id": r.case_id, "reason": r.reason} for r in checked.rejections]
    return report, rejected


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def resolve_window(
    conn: psycopg.Connection[Any], start: datetime | None, end: datetime | None, days: int = 90
) -> Window:
    """The given window; missing ends default to the latest case and `days` before it."""
    if end is None:
        latest = store.latest_received(conn)
        end = (latest + timedelta(seconds=1)) if latest is not None else datetime.now(UTC)
    if start is None:
        start = end - timedelta(days=days)
    if end <= start:
        raise PetitionInputError("`to` must be after `from`")
    return Window(start, end)


def run_hotspots(
    conn: psycopg.Connection[Any],
    *,
    window: Window,
    category: str | None = None,
    res: int = 9,
    k: int = 1,
    measure: Measure = "count",
    alpha: float = 0.05,
    include_coarse: bool = False,
) -> Hotspots:
    """Gi* over the window's cases. Coarse cases (placed at a village centre) are left out unless
    asked for: at resolution 8-10 they would pile up on the centres and make hotspots of them."""
    area = default_study_area(res, k)
    cells, counts = store.cell_counts(
        conn, res=res, start=window.start, end=window.end, category=category, include_coarse=include_coarse
    )
    return hotspots(area, cells, counts=counts, measure=measure, alpha=alpha)


def hotspots_geojson(
    result: Hotspots, *, window: Window, category: str | None, synthetic: bool, significant_only: bool = True
) -> dict[str, Any]:
    """GeoJSON cells (polygons) with count, rates, z, p, q and the verdict, plus how they were computed."""
    from h3.api import basic_int as h3

    order = np.argsort(-result.z, kind="stable")
    keep = (
        result.significant[order]
        if significant_only
        else (result.counts[order] > 0) | result.significant[order]
    )
    features = []
    for i in order[keep].tolist():
        ring = [[round(lon, 6), round(lat, 6)] for lat, lon in h3.cell_to_boundary(int(result.cells[i]))]
        ring.append(ring[0])
        verdict = "hot" if result.hot[i] else "cold" if result.cold[i] else "not significant"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "cell": h3.int_to_str(int(result.cells[i])),
                    "count": int(result.counts[i]),
                    "neighbourhood_count": int(result.neighbourhood[i]),
                    "population": round(float(result.population[i]), 1),
                    "rate": round(float(result.rate[i]), 4),
                    "raw_rate": None if np.isnan(result.raw_rate[i]) else round(float(result.raw_rate[i]), 4),
                    "z": round(float(result.z[i]), 4),
                    "p": float(result.p[i]),
                    "q": float(result.q[i]),
                    "significant": bool(result.significant[i]),
                    "verdict": verdict,
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "method": result.method(),
        "window": {"from": window.start, "to": window.end},
        "category": category,
        "cases": result.cases,
        "cases_outside_grid": result.outside,
        "hot": int(result.hot.sum()),
        "cold": int(result.cold.sum()),
        "synthetic": synthetic,
    }


#: Called with the new significant hotspots (GeoJSON-ready dicts) whenever an import makes some
#: appear; the API publishes them as `petition_hotspot` events. An alert model connects here with
#: `HOTSPOT_LISTENERS.append(fn)`.
HotspotListener = Callable[[list[dict[str, Any]]], None]
HOTSPOT_LISTENERS: list[HotspotListener] = []


def new_hotspots_between(
    conn: psycopg.Connection[Any],
    before: Window,
    after: Window,
    *,
    category: str | None = None,
    res: int = 8,
    k: int = 1,
    measure: Measure = "rate",
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Cells significantly hot in the `after` window that were not in the `before` window."""
    from h3.api import basic_int as h3

    first = run_hotspots(conn, window=before, category=category, res=res, k=k, measure=measure, alpha=alpha)
    second = run_hotspots(conn, window=after, category=category, res=res, k=k, measure=measure, alpha=alpha)
    cells = new_significant_hotspots(first, second)
    pos = np.searchsorted(second.cells, cells)
    return [
        {
            "cell": h3.int_to_str(int(c)),
            "lat": round(h3.cell_to_latlng(int(c))[0], 6),
            "lon": round(h3.cell_to_latlng(int(c))[1], 6),
            "count": int(second.counts[p]),
            "neighbourhood_count": int(second.neighbourhood[p]),
            "z": round(float(second.z[p]), 3),
            "q": float(second.q[p]),
            "category": category,
            "res": res,
            "k": k,
            "measure": measure,
            "window": {"from": after.start.isoformat(), "to": after.end.isoformat()},
        }
        for c, p in zip(cells.tolist(), pos.tolist(), strict=True)
    ]


def emerging_geojson(
    conn: psycopg.Connection[Any],
    *,
    category: str | None,
    months: int,
    end: datetime | None,
    res: int = 8,
    k: int = 1,
    alpha: float = 0.05,
    include_coarse: bool = False,
) -> dict[str, Any]:
    """Emerging hot spot labels over the last `months` whole months (Taiwan time) up to `end`."""
    from h3.api import basic_int as h3

    from zhongdu.petitions._emerging import PATTERNS, PERSISTENT_SHARE, emerging_hotspots

    taipei = timezone(timedelta(hours=8))
    if end is None:
        latest = store.latest_received(conn)
        end = latest if latest is not None else datetime.now(UTC)
    last = end.astimezone(taipei)
    # whole months: from the first of the month `months - 1` before the last one, to the end of the last
    y, m = last.year, last.month - (months - 1)
    while m < 1:
        y, m = y - 1, m + 12
    start = datetime(y, m, 1, tzinfo=taipei)
    ny, nm = (last.year + 1, 1) if last.month == 12 else (last.year, last.month + 1)
    stop = datetime(ny, nm, 1, tzinfo=taipei)
    cells, steps, counts = store.cell_counts_by_month(
        conn, res=res, start=start, end=stop, category=category, include_coarse=include_coarse
    )
    area = default_study_area(res, k)
    result = emerging_hotspots(area, cells, steps, months, counts=counts, alpha=alpha)
    labels = []
    yy, mm = y, m
    for _ in range(months):
        labels.append(f"{yy:04d}-{mm:02d}")
        yy, mm = (yy + 1, 1) if mm == 12 else (yy, mm + 1)
    features = []
    for i in range(len(result.cells)):
        cell = int(result.cells[i])
        ring = [[round(lon, 6), round(lat, 6)] for lat, lon in h3.cell_to_boundary(cell)]
        ring.append(ring[0])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "cell": h3.int_to_str(cell),
                    "pattern": str(result.pattern[i]),
                    "hot_months": int(result.hot_steps[i]),
                    "trend_z": round(float(result.trend_z[i]), 3),
                    "trend_p": float(result.trend_p[i]),
                    "last_z": round(float(result.last_z[i]), 3),
                },
            }
        )
    per_pattern = {p: int((result.pattern == p).sum()) for p in PATTERNS}
    return {
        "type": "FeatureCollection",
        "features": features,
        "method": {
            "statistic": "Getis-Ord Gi* per month (as /v1/petitions/hotspots, measure count), "
            "Benjamini-Hochberg per month",
            "trend": "Mann-Kendall test on each cell's monthly Gi* z-scores (two-sided, alpha as given)",
            "neighbourhood": f"H3 grid disk k={k}",
            "resolution": res,
            "alpha": alpha,
            "persistent_share": PERSISTENT_SHARE,
            "patterns": {
                "new": "hot in the last month only",
                "intensifying": f"hot in >= {PERSISTENT_SHARE:.0%} of months incl. the last, rising trend",
                "persistent": f"hot in >= {PERSISTENT_SHARE:.0%} of months incl. the last, no trend",
                "diminishing": f"hot in >= {PERSISTENT_SHARE:.0%} of months incl. the last, falling trend",
                "sporadic": f"hot in the last month and on and off before (< {PERSISTENT_SHARE:.0%})",
            },
        },
        "months": labels,
        "category": category,
        "counts": per_pattern,
        "synthetic": store.any_synthetic(conn),
    }
