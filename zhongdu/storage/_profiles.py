"""SQL of device profiles and custom metrics (validation lives in `zhongdu.ingest._profiles`).

Every change commits at once; a trigger bumps `ingest_config_version`, which running ingesters
poll to reload both tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_METRIC_COLUMNS = ("metric", "value_type", "unit", "min", "max", "description")


def config_version(conn: psycopg.Connection) -> tuple[int, int]:
    """(profile/metric change counter, registered devices): a new value means reload."""
    row = conn.execute(
        "SELECT (SELECT version FROM ingest_config_version), (SELECT count(*) FROM devices)"
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0] or 0), int(row[1])


def custom_metrics(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT metric, value_type, unit, min, max, description FROM custom_metrics ORDER BY metric"
    ).fetchall()
    conn.commit()
    return [dict(zip(_METRIC_COLUMNS, row, strict=True)) for row in rows]


def profiles(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Stored profile documents, with `updated_at`."""
    rows = conn.execute("SELECT document, updated_at FROM device_profiles ORDER BY profile_id").fetchall()
    conn.commit()
    return [{**row[0], "updated_at": row[1].isoformat()} for row in rows]


def device_kinds(conn: psycopg.Connection, kinds: Iterable[str]) -> dict[str, str]:
    """device_id -> kind for the registered devices of these kinds."""
    wanted = sorted(set(kinds))
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT device_id, kind FROM devices WHERE kind = ANY(%s::text[])", (wanted,)
    ).fetchall()
    conn.commit()
    return {str(d): str(k) for d, k in rows}


def put_custom_metric(conn: psycopg.Connection, metric: dict[str, Any]) -> None:
    """Add or replace a custom metric (its stored readings stay as they are)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO custom_metrics (metric, value_type, unit, min, max, description)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (metric) DO UPDATE SET"
            " value_type = EXCLUDED.value_type, unit = EXCLUDED.unit, min = EXCLUDED.min,"
            " max = EXCLUDED.max, description = EXCLUDED.description",
            tuple(metric.get(c) if c != "description" else metric.get(c) or "" for c in _METRIC_COLUMNS),
        )


def delete_custom_metric(conn: psycopg.Connection, metric: str) -> bool:
    with conn.transaction():
        cur = conn.execute("DELETE FROM custom_metrics WHERE metric = %s", (metric,))
    return cur.rowcount > 0


def put_profile(conn: psycopg.Connection, document: dict[str, Any]) -> None:
    """Add or replace a profile document (already validated)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO device_profiles (profile_id, document) VALUES (%s, %s)"
            " ON CONFLICT (profile_id) DO UPDATE SET document = EXCLUDED.document, updated_at = now()",
            (document["profile_id"], Jsonb(document)),
        )


def delete_profile(conn: psycopg.Connection, profile_id: str) -> bool:
    with conn.transaction():
        cur = conn.execute("DELETE FROM device_profiles WHERE profile_id = %s", (profile_id,))
    return cur.rowcount > 0
