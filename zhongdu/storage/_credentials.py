"""SQL for MQTT credentials: who holds which broker username, and a hash of its secret."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]
Conn = psycopg.Connection[Any]


def entity_kinds(conn: Conn, entity_id: str) -> list[str]:
    """Where an id is registered: `park` (devices), `bs` (stations), both or neither."""
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM devices WHERE device_id = %s),
                  EXISTS (SELECT 1 FROM stations WHERE station_id = %s)""",
        (entity_id, entity_id),
    ).fetchone()
    assert row is not None
    return [kind for kind, present in zip(("park", "bs"), row, strict=True) if present]


def add_station(conn: Conn, station_id: str, *, name: str | None = None) -> bool:
    """Register a station by id; False when it already exists (nothing is overwritten)."""
    cur = conn.execute(
        "INSERT INTO stations (station_id, name) VALUES (%s, %s) ON CONFLICT (station_id) DO NOTHING",
        (station_id, name),
    )
    return cur.rowcount == 1


def upsert_credential(conn: Conn, *, username: str, kind: str, entity_id: str, secret_hash: str) -> Row:
    """Issue a credential, or rotate it (a new hash, the count of rotations up, revocation undone)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """INSERT INTO mqtt_credentials AS c (username, entity_kind, entity_id, secret_hash)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (username) DO UPDATE SET
                    secret_hash = EXCLUDED.secret_hash, issued_at = now(),
                    rotations = c.rotations + 1, revoked_at = NULL
                RETURNING username, entity_kind, entity_id, issued_at, rotations, revoked_at""",
            (username, kind, entity_id, secret_hash),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def revoke_credential(conn: Conn, username: str) -> bool:
    """Forget the secret's hash and mark the credential revoked; False when none was active."""
    cur = conn.execute(
        """UPDATE mqtt_credentials SET secret_hash = NULL, revoked_at = now()
           WHERE username = %s AND revoked_at IS NULL""",
        (username,),
    )
    return cur.rowcount == 1


def get_credential(conn: Conn, username: str) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT username, entity_kind, entity_id, issued_at, rotations, revoked_at, secret_hash
               FROM mqtt_credentials WHERE username = %s""",
            (username,),
        )
        return cur.fetchone()


def list_credentials(conn: Conn) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT username, entity_kind, entity_id, issued_at, rotations, revoked_at
               FROM mqtt_credentials ORDER BY username"""
        )
        return list(cur.fetchall())
