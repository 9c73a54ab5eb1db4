"""Schema migrations: plain SQL files applied in order, each in its own transaction, and recorded.

The files live in `infra/migrations` (installed as `zhongdu.migrations`); see its docstring for
the naming rules. A PostgreSQL advisory lock keeps two processes from migrating at once.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from zhongdu.errors import StorageError
from zhongdu.storage._connect import has_timescale

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "zhongdu.migrations"
_MIGRATION_LOCK_KEY = 0x7A68_6F6E_6764_75  # "zhongdu"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(timescale|plain))?\.(sql|py)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    common_sql: str | None
    timescale_sql: str | None
    plain_sql: str | None
    python_module: str | None

    def statements_for(self, timescale: bool) -> list[str]:
        flavour = self.timescale_sql if timescale else self.plain_sql
        return [text for text in (self.common_sql, flavour) if text]


def discover() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    parts: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, flavour, ext = int(match[1]), match[2], match[3] or "common", match[4]
        if names.setdefault(version, name) != name:
            raise StorageError(f"two migrations share version {version:04d}: {names[version]}, {name}")
        key = "python" if ext == "py" else flavour
        parts.setdefault(version, {})[key] = (
            f"{MIGRATIONS_PACKAGE}.{entry.name[:-3]}" if ext == "py" else entry.read_text("utf-8")
        )
    return [
        Migration(v, names[v], p.get("common"), p.get("timescale"), p.get("plain"), p.get("python"))
        for v, p in sorted(parts.items())
    ]


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """Versions already applied in the current schema, with the flavour they were applied in."""
    _ensure_history_table(conn)
    rows = conn.execute("SELECT version, flavour FROM schema_migrations").fetchall()
    conn.commit()
    return {int(v): str(f) for v, f in rows}


def migrate(conn: psycopg.Connection, *, timescale: bool | None = None) -> list[Migration]:
    """Apply every pending migration; return the ones applied now.

    `timescale=None` detects the extension (and creates it when available); pass False to force
    plain PostgreSQL on a server that has the extension.
    """
    if timescale is None:
        timescale = has_timescale(conn)
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
    conn.commit()
    try:
        done = applied_versions(conn)
        flavours = set(done.values())
        wanted = "timescale" if timescale else "plain"
        if flavours and flavours != {wanted}:
            raise StorageError(
                f"this schema was migrated as {flavours.pop()!r}; refusing to continue as {wanted!r}"
            )
        if timescale:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        applied = []
        for migration in discover():
            if migration.version in done:
                continue
            _apply(conn, migration, timescale)
            applied.append(migration)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))
        conn.commit()


def _ensure_history_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   flavour    text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )


def _apply(conn: psycopg.Connection, migration: Migration, timescale: bool) -> None:
    flavour = "timescale" if timescale else "plain"
    log.info("applying migration %04d_%s (%s)", migration.version, migration.name, flavour)
    try:
        with conn.transaction():
            with conn.cursor() as cur:
                for text in migration.statements_for(timescale):
                    cur.execute(text.encode())  # bytes: several statements, no parameters
            if migration.python_module:
                module = importlib.import_module(migration.python_module)
                module.apply(conn, timescale)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, flavour) VALUES (%s, %s, %s)",
                (migration.version, migration.name, flavour),
            )
    except psycopg.Error as exc:
        raise StorageError(
            f"migration {migration.version:04d}_{migration.name} ({flavour}) failed: {exc}"
        ) from exc
