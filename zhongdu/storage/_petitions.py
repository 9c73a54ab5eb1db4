"""Petitions: idempotent batch import with row rejections kept, and the reads the analyses need.

A batch is one transaction: its good rows are upserted by case_id (a row equal to the stored one
changes nothing, so re-importing an export is a no-op), its bad rows are stored in
`petition_rejects` with their reason, and the batch is recorded in `petition_imports`.
Case cells are read with a binary COPY straight into NumPy: a million cells in a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.rows import dict_row

if TYPE_CHECKING:
    from zhongdu.petitions._cases import Case, Rejection

_FIELDS = (
    "case_id",
    "received_at",
    "category",
    "lon",
    "lat",
    "coarse",
    "h3_10",
    "district",
    "village",
    "status",
    "dispatched_at",
    "closed_at",
    "description",
    "synthetic",
    "source",
)
# the fields whose change makes a re-imported row an update
_TAIPEI = timezone(timedelta(hours=8))
_COMPARED = tuple(f for f in _FIELDS if f not in ("source",))


@dataclass(frozen=True)
class ImportReport:
    batch_id: int
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int


def import_cases(
    conn: psycopg.Connection[Any],
    cases: Sequence[Case],
    rejections: Sequence[Rejection],
    *,
    source: str,
    synthetic: bool = False,
) -> ImportReport:
    """Upsert `cases`, keep `rejections`, record the batch; all in one transaction."""
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS petitions_incoming (LIKE petitions INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        copy_sql = sql.SQL("COPY petitions_incoming ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, _FIELDS))
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for c in cases:
                copy.write_row(
                    (
                        c.case_id,
                        c.received_at,
                        c.category,
                        c.lon,
                        c.lat,
                        c.coarse,
                        c.h3_10,
                        c.district,
                        c.village,
                        c.status,
                        c.dispatched_at,
                        c.closed_at,
                        c.description,
                        synthetic,
                        source,
                    )
                )
        upsert = sql.SQL(
            "INSERT INTO petitions AS p ({fields}) SELECT {fields} FROM petitions_incoming"
            " ON CONFLICT (case_id) DO UPDATE SET {sets}, updated_at = now()"
            " WHERE ({old}) IS DISTINCT FROM ({new})"
            " RETURNING (xmax = 0) AS inserted"
        ).format(
            fields=sql.SQL(", ").join(map(sql.Identifier, _FIELDS)),
            sets=sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(f), sql.Identifier(f)) for f in _FIELDS
            ),
            old=sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(f)) for f in _COMPARED),
            new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(f)) for f in _COMPARED),
        )
        flags = [bool(r[0]) for r in conn.execute(upsert).fetchall()]
        inserted = sum(flags)
        updated = len(flags) - inserted
        row = conn.execute(
            "INSERT INTO petition_imports (source, rows, inserted, updated, unchanged, rejected)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING batch_id",
            (
                source,
                len(cases) + len(rejections),
                inserted,
                updated,
                len(cases) - len(flags),
                len(rejections),
            ),
        ).fetchone()
        assert row is not None
        batch_id = int(row[0])
        if rejections:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO petition_rejects (batch_id, row_number, case_id, reason, raw)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [
                        (
                            batch_id,
                            r.row_number,
                            r.case_id,
                            r.reason,
                            # jsonb refuses \u0000: a NUL in a rejected row is kept as U+FFFD
                            json.dumps(r.raw, ensure_ascii=False, default=str).replace("\\u0000", "\ufffd"),
                        )
                        for r in rejections
                    ],
                )
    return ImportReport(
        batch_id, len(cases) + len(rejections), inserted, updated, len(cases) - len(flags), len(rejections)
    )


def _where(
    start: datetime | None, end: datetime | None, category: str | None, district: str | None
) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    if start is not None:
        parts.append(sql.SQL("received_at >= {}").format(sql.Literal(start)))
    if end is not None:
        parts.append(sql.SQL("received_at < {}").format(sql.Literal(end)))
    if category is not None:
        parts.append(sql.SQL("category = {}").format(sql.Literal(category)))
    if district is not None:
        parts.append(sql.SQL("district = {}").format(sql.Literal(district)))
    return sql.SQL(" AND ").join(parts)


def _copy_int64(conn: psycopg.Connection[Any], query: sql.Composable, columns: int) -> NDArray[np.int64]:
    """Rows of `columns` non-null bigint columns, as an (n, columns) array, via binary COPY."""
    buffer = bytearray()
    copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for chunk in copy:
            buffer += chunk
    header = 19  # signature (11), flags (4), extension length (4)
    body = bytes(buffer[header:-2])  # the trailer is a field count of -1
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i in range(columns):
        fields += [(f"len{i}", ">i4"), (f"v{i}", ">i8")]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    out = np.empty((len(rows), columns), dtype=np.int64)
    for i in range(columns):
        out[:, i] = rows[f"v{i}"]
    return out


def case_cells(
    conn: psycopg.Connection[Any],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    district: str | None = None,
    include_coarse: bool = False,
) -> NDArray[np.int64]:
    """The resolution-10 cell of every case in the window (by default only those with coordinates)."""
    query = sql.SQL("SELECT h3_10 FROM petitions WHERE {} AND (NOT coarse OR {})").format(
        _where(start, end, category, district), sql.Literal(include_coarse)
    )
    return _copy_int64(conn, query, 1)[:, 0]


def cell_counts(
    conn: psycopg.Connection[Any],
    *,
    res: int,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    district: str | None = None,
    include_coarse: bool = False,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(cells at `res`, cases per cell) of the window, counted by the database.

    The parent cell is the stored resolution-10 index with its resolution field set to `res` and
    the finer digits set to 7 (as `zhongdu.petitions._hotspots.parent_cells`): a million cases
    become at most a few ten thousand rows before they leave the server.
    """
    if not 0 <= res <= 10:
        raise ValueError(f"resolution must be 0-10, got {res}")
    clear = ~(0xF << 52)
    bits = (res << 52) | ((1 << ((15 - res) * 3)) - 1)
    query = sql.SQL(
        "SELECT (h3_10 & {clear}::bigint) | {bits}::bigint AS cell, count(*) FROM petitions"
        " WHERE {w} AND (NOT coarse OR {c}) GROUP BY 1"
    ).format(
        clear=sql.Literal(clear),
        bits=sql.Literal(bits),
        w=_where(start, end, category, district),
        c=sql.Literal(include_coarse),
    )
    rows = _copy_int64(conn, query, 2)
    return rows[:, 0], rows[:, 1]


def cell_counts_by_month(
    conn: psycopg.Connection[Any],
    *,
    res: int,
    start: datetime,
    end: datetime,
    category: str | None = None,
    include_coarse: bool = False,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """(cells at `res`, month index from `start`'s month in Taiwan time, cases) of the window."""
    if not 0 <= res <= 10:
        raise ValueError(f"resolution must be 0-10, got {res}")
    query = sql.SQL(
        "SELECT cell, ((extract(year FROM t) - {y}) * 12 + extract(month FROM t) - {m})::bigint, count(*)"
        " FROM (SELECT (h3_10 & {clear}::bigint) | {bits}::bigint AS cell,"
        " received_at AT TIME ZONE 'Asia/Taipei' AS t FROM petitions"
        " WHERE {w} AND (NOT coarse OR {c})) s GROUP BY 1, 2"
    ).format(
        y=sql.Literal(start.astimezone(_TAIPEI).year),
        m=sql.Literal(start.astimezone(_TAIPEI).month),
        clear=sql.Literal(~(0xF << 52)),
        bits=sql.Literal((res << 52) | ((1 << ((15 - res) * 3)) - 1)),
        w=_where(start, end, category, None),
        c=sql.Literal(include_coarse),
    )
    rows = _copy_int64(conn, query, 3)
    return rows[:, 0], rows[:, 1], rows[:, 2]


def count_coarse(
    conn: psycopg.Connection[Any], *, start: datetime, end: datetime, category: str | None
) -> int:
    query = sql.SQL("SELECT count(*) FROM petitions WHERE {} AND coarse").format(
        _where(start, end, category, None)
    )
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def latest_received(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute("SELECT max(received_at) FROM petitions").fetchone()
    return row[0] if row else None


def monthly_counts(
    conn: psycopg.Connection[Any],
    *,
    start: datetime | None,
    end: datetime | None,
    category: str | None,
    district: str | None,
) -> list[dict[str, Any]]:
    """Cases per month (Taiwan time) and category: received, resolved, coarse, synthetic."""
    query = sql.SQL(
        "SELECT to_char(date_trunc('month', received_at AT TIME ZONE 'Asia/Taipei'), 'YYYY-MM') AS month,"
        " category, count(*) AS received, count(*) FILTER (WHERE status = 'resolved') AS resolved,"
        " count(*) FILTER (WHERE coarse) AS coarse, bool_or(synthetic) AS synthetic"
        " FROM petitions WHERE {} GROUP BY 1, 2 ORDER BY 1, 2"
    ).format(_where(start, end, category, district))
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query).fetchall())


def time_to_close(
    conn: psycopg.Connection[Any],
    *,
    start: datetime | None,
    end: datetime | None,
    category: str | None,
    district: str | None,
) -> list[dict[str, Any]]:
    """Per category: hours from received to work order and to resolved (median, 90th percentile)."""
    query = sql.SQL(
        "SELECT category, count(*) AS cases,"
        " count(*) FILTER (WHERE status = 'resolved') AS resolved,"
        " count(*) FILTER (WHERE status NOT IN ('resolved', 'withdrawn')) AS open,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - received_at) / 3600)"
        "   FILTER (WHERE status = 'resolved') AS close_median_h,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - received_at) / 3600)"
        "   FILTER (WHERE status = 'resolved') AS close_p90_h,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - received_at) / 3600)"
        "   FILTER (WHERE dispatched_at IS NOT NULL) AS dispatch_median_h"
        " FROM petitions WHERE {} GROUP BY category ORDER BY category"
    ).format(_where(start, end, category, district))
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query).fetchall())


def any_synthetic(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM petitions WHERE synthetic)").fetchone()
    return bool(row and row[0])


def categories(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(
            cur.execute(
                "SELECT category, count(*) AS cases, min(received_at) AS first, max(received_at) AS last"
                " FROM petitions GROUP BY category ORDER BY count(*) DESC"
            ).fetchall()
        )


def list_cases(
    conn: psycopg.Connection[Any],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    district: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    query = sql.SQL(
        "SELECT case_id, received_at, category, lon, lat, coarse, district, village, status,"
        " dispatched_at, closed_at, description, synthetic, updated_at FROM petitions WHERE {}"
        " ORDER BY received_at, case_id {}"
    ).format(
        _where(start, end, category, district),
        sql.SQL("LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query).fetchall())


def list_rejects(
    conn: psycopg.Connection[Any], *, batch_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(
            cur.execute(
                "SELECT r.batch_id, r.row_number, r.case_id, r.reason, r.raw, r.at, i.source"
                " FROM petition_rejects r JOIN petition_imports i USING (batch_id)"
                " WHERE %(b)s::bigint IS NULL OR r.batch_id = %(b)s ORDER BY r.id DESC LIMIT %(n)s",
                {"b": batch_id, "n": limit},
            ).fetchall()
        )


def add_breakpoint(
    conn: psycopg.Connection[Any], *, at: datetime, kind: str, note: str, category: str | None
) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO petition_breakpoints (at, category, kind, note) VALUES (%s, %s, %s, %s)"
            " RETURNING id, at, category, kind, note, created_at",
            (at, category, kind, note),
        ).fetchone()
    assert row is not None
    return dict(row)


def list_breakpoints(conn: psycopg.Connection[Any], *, category: str | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(
            cur.execute(
                "SELECT id, at, category, kind, note, created_at FROM petition_breakpoints"
                " WHERE %(c)s::text IS NULL OR category IS NULL OR category = %(c)s ORDER BY at",
                {"c": category},
            ).fetchall()
        )
