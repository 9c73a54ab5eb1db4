"""`zhongdu db …`: apply and inspect schema migrations."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    db = subparsers.add_parser("db", help="database schema: migrate, status")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations (embedded DB if no URL)")
    migrate.add_argument("--plain", action="store_true", help="plain PostgreSQL even if TimescaleDB is there")
    migrate.set_defaults(handler=_migrate)
    status = db_sub.add_parser("status", help="list migrations and whether they are applied")
    status.set_defaults(handler=_status)


def _migrate(args: argparse.Namespace) -> int:
    from zhongdu import services, storage
    from zhongdu.settings import Settings, mask_url

    settings = Settings()
    database = services.ensure_database(settings)
    with storage.connect(database.url) as conn:
        applied = storage.migrate(conn, timescale=False if args.plain else None)
        flavour = set(storage.applied_versions(conn).values())
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none pending"
    print(f"{mask_url(database.url)}: applied {names} ({'/'.join(flavour)})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    database = services.ensure_database(Settings())
    with storage.connect(database.url) as conn:
        done = storage.applied_versions(conn)
    for migration in storage.discover():
        state = f"applied ({done[migration.version]})" if migration.version in done else "pending"
        print(f"{migration.version:04d}_{migration.name}: {state}")
    return 0
