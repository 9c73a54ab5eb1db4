"""Opening connections and pools, and telling TimescaleDB from plain PostgreSQL."""

from __future__ import annotations

import psycopg
from psycopg import sql

from zhongdu.errors import StorageError
from zhongdu.settings import mask_url


def connect(url: str, *, schema: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    """A connection to `url`, with `schema` first on the search path when given.

    `schema` isolates test modules from each other on one server (the TimescaleDB test server
    has a single database); `public` stays on the path for the extension's functions.
    """
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StorageError(f"cannot connect to {mask_url(url)}: {exc}".strip()) from exc
    if schema:
        set_search_path(conn, schema)
    return conn


def set_search_path(conn: psycopg.Connection, schema: str) -> None:
    """Create `schema` if needed and put it first on the connection's search path."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))


def has_timescale(conn: psycopg.Connection) -> bool:
    """True when the TimescaleDB extension is installed or can be installed in this database."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    ).fetchone()
    assert row is not None
    return bool(row[0] or row[1])
