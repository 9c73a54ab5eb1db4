"""Opening connections and pools, and telling TimescaleDB from plain PostgreSQL."""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from zhongdu.errors import StorageError
from zhongdu.settings import mask_url

# A connection refused or dropped during start-up is retried briefly: servers restarting, and the
# single-connection TimescaleDB test server (which now and then drops a connection that arrives
# while the previous one is being torn down), answer a moment later.
_CONNECT_ATTEMPTS = 5


def connect(url: str, *, schema: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    """A connection to `url`, with `schema` first on the search path when given.

    `schema` isolates test modules from each other on one server (the TimescaleDB test server
    has a single database); `public` stays on the path for the extension's functions.
    """
    conn = None
    for attempt in range(_CONNECT_ATTEMPTS):
        try:
            conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
            break
        except psycopg.OperationalError as exc:
            if attempt == _CONNECT_ATTEMPTS - 1:
                raise StorageError(f"cannot connect to {mask_url(url)}: {exc}".strip()) from exc
            time.sleep(0.05 * 2**attempt)
    assert conn is not None
    prepare_connection(conn)
    if schema:
        set_search_path(conn, schema)
    return conn


def prepare_connection(conn: psycopg.Connection) -> None:
    """Adapt a new connection to its server; pools call this from their `configure` hook.

    The TimescaleDB test server (PGlite, PostgreSQL compiled to WebAssembly) runs every client
    connection in ONE backend session, so statements psycopg prepared on a closed connection
    outlive it and collide with the next connection's (`_pg3_0 already exists`). There, automatic
    preparing is switched off and leftovers are dropped; real servers keep prepared statements.
    """
    row = conn.execute("SELECT version()").fetchone()
    if row is not None and "emscripten" in str(row[0]).lower():
        conn.prepare_threshold = None
        conn.execute("DEALLOCATE ALL")
    if not conn.autocommit:
        conn.commit()


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
