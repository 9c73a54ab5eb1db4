"""Open311 GeoReport v2 service requests in and out, and the CSV export.

GeoReport's status is only `open` or `closed`, so a work order (派工) would be lost in it: Zhongdu
keeps its own status and the work order's time in extension fields (`zhongdu_status`,
`zhongdu_dispatched_at`), and reads them back when present. `closed` without them means resolved.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any

from zhongdu.petitions._cases import COLUMNS, OPTIONAL_COLUMNS
from zhongdu.petitions._categories import BY_CODE

CSV_COLUMNS = (*COLUMNS, *OPTIONAL_COLUMNS)  # the import CSV with every optional column


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def to_open311(cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored cases as GeoReport v2 `requests.json` entries."""
    out = []
    for c in cases:
        closed = c["status"] in ("resolved", "withdrawn")
        known = BY_CODE.get(str(c["category"]))
        out.append(
            {
                "service_request_id": c["case_id"],
                "status": "closed" if closed else "open",
                "status_notes": {
                    "received": "received",
                    "dispatched": "work order created",
                    "resolved": "resolved",
                    "withdrawn": "withdrawn",
                }[c["status"]],
                "service_code": c["category"],
                "service_name": known.name_zh if known else c["category"],
                "description": c.get("description"),
                "requested_datetime": _iso(c["received_at"]),
                "updated_datetime": _iso(c.get("closed_at") or c.get("dispatched_at") or c["received_at"]),
                "address": " ".join(p for p in (c.get("district"), c.get("village")) if p) or None,
                "lat": None if c.get("coarse") else c["lat"],
                "long": None if c.get("coarse") else c["lon"],
                "zhongdu_status": c["status"],
                "zhongdu_dispatched_at": _iso(c.get("dispatched_at")),
                "zhongdu_closed_at": _iso(c.get("closed_at")),
                "zhongdu_district": c.get("district"),
                "zhongdu_village": c.get("village"),
                "zhongdu_synthetic": bool(c.get("synthetic")),
            }
        )
    return out


def rows_from_open311(requests: Any) -> Iterator[dict[str, Any]]:
    """GeoReport v2 service requests as import rows (checked like CSV rows afterwards)."""
    if isinstance(requests, dict) and "service_requests" in requests:
        requests = requests["service_requests"]
    if not isinstance(requests, list):
        raise ValueError("Open311 input must be a JSON array of service requests")
    for r in requests:
        if not isinstance(r, dict):
            yield {"case_id": None, "_error": "not an object"}
            continue
        status = r.get("zhongdu_status") or ("resolved" if r.get("status") == "closed" else "received")
        closed = r.get("zhongdu_closed_at") or (
            r.get("updated_datetime") if status in ("resolved", "withdrawn") else None
        )
        yield {
            "case_id": r.get("service_request_id"),
            "received_at": r.get("requested_datetime"),
            "category": r.get("service_code") or r.get("service_name"),
            "lon": r.get("long"),
            "lat": r.get("lat"),
            "district": r.get("zhongdu_district"),
            "village": r.get("zhongdu_village"),
            "status": status,
            "closed_at": closed,
            "dispatched_at": r.get("zhongdu_dispatched_at"),
            "description": r.get("description"),
        }


def write_csv(cases: Iterable[Mapping[str, Any]], out: IO[str]) -> None:
    """The import CSV (coarse cases without lon/lat, as they came in)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for c in cases:
        coarse = c.get("coarse")
        writer.writerow(
            [
                c["case_id"],
                _iso(c["received_at"]),
                c["category"],
                "" if coarse else c["lon"],
                "" if coarse else c["lat"],
                c.get("district") or "",
                c.get("village") or "",
                c["status"],
                _iso(c.get("closed_at")) or "",
                _iso(c.get("dispatched_at")) or "",
                c.get("description") or "",
            ]
        )
