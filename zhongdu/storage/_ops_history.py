"""SQL for the operations page's memory: the city share per criterion over time and the outage
incidents (tables of migration 0080), written by the API's live loop, read by `/v1/ops/timeline`
and `/v1/ops/incidents`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]
Conn = psycopg.Connection[Any]


def insert_shares(conn: Conn, rows: Sequence[tuple[datetime, str, str, float, float, int]]) -> None:
    """(time, criterion, operator, share, population_covered, sites_down) rows; repeats ignored."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ops_share_history
                      (time, criterion, operator, share, population_covered, sites_down)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            rows,
        )


def shares(conn: Conn, *, start: datetime) -> list[Row]:
    """Share rows since `start`, oldest first, with the last one before `start` per series (so a
    chart starts at the level it had)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """(SELECT DISTINCT ON (criterion, operator) time, criterion, operator, share,
                       population_covered, sites_down
                FROM ops_share_history WHERE time < %s ORDER BY criterion, operator, time DESC)
               UNION ALL
               (SELECT time, criterion, operator, share, population_covered, sites_down
                FROM ops_share_history WHERE time >= %s)
               ORDER BY time""",
            (start, start),
        )
        return list(cur.fetchall())


def open_incidents(conn: Conn) -> dict[str, Row]:
    """The incidents not ended yet, by station."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT incident_id, station_id, status, started_at FROM ops_incidents WHERE ended_at IS NULL"
        )
        return {str(r["station_id"]): r for r in cur.fetchall()}


def open_incident(conn: Conn, station_id: str, status: str, started_at: datetime) -> None:
    """Open an incident unless one is open for the site (then its status is updated)."""
    conn.execute(
        """INSERT INTO ops_incidents (station_id, status, started_at) VALUES (%s, %s, %s)
           ON CONFLICT (station_id) WHERE ended_at IS NULL DO UPDATE SET status = EXCLUDED.status""",
        (station_id, status, started_at),
    )


def close_incident(conn: Conn, station_id: str, ended_at: datetime) -> None:
    """End the site's open incident (never before it started)."""
    conn.execute(
        """UPDATE ops_incidents SET ended_at = greatest(%s, started_at)
           WHERE station_id = %s AND ended_at IS NULL""",
        (ended_at, station_id),
    )


def update_worst(
    conn: Conn, rows: Sequence[tuple[str, float, int]], *, criterion: str, operator: str
) -> None:
    """Raise the open incidents' worst people and cells: (station_id, people, cells) rows."""
    with conn.cursor() as cur:
        cur.executemany(
            """UPDATE ops_incidents SET criterion = %s, operator = %s,
                      people_worst = greatest(people_worst, %s), cells_worst = greatest(cells_worst, %s)
               WHERE station_id = %s AND ended_at IS NULL""",
            [(criterion, operator, people, cells, sid) for sid, people, cells in rows],
        )


def incidents(conn: Conn, *, since: datetime, limit: int) -> list[Row]:
    """Incidents open at or after `since` (ongoing ones included), newest start first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT incident_id, station_id, status, started_at, ended_at, criterion, operator,
                      people_worst, cells_worst
               FROM ops_incidents WHERE ended_at IS NULL OR ended_at >= %s
               ORDER BY started_at DESC, incident_id DESC LIMIT %s""",
            (since, limit),
        )
        return list(cur.fetchall())


def prune(conn: Conn, *, before: datetime) -> tuple[int, int]:
    """Delete share rows and ended incidents older than `before`; (shares, incidents) deleted."""
    a = conn.execute("DELETE FROM ops_share_history WHERE time < %s", (before,)).rowcount
    b = conn.execute("DELETE FROM ops_incidents WHERE ended_at < %s", (before,)).rowcount
    return a, b
