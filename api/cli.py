"""`zhongdu api`: serve the HTTP API with uvicorn; `zhongdu api create-key`: make an API key.

Keep imports inside the handlers so that `zhongdu --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
    api = subparsers.add_parser(
        "api",
        help="serve the HTTP API (embedded database if ZHONGDU_DATABASE_URL is unset)",
        description="Serve the HTTP API. Sub-command `create-key` makes an API key instead.",
    )
    api.add_argument("--host", default=None, help="address to bind (default: ZHONGDU_API_HOST, 127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="port (default: ZHONGDU_API_PORT, 8000)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    api.set_defaults(handler=_serve)
    sub = api.add_subparsers(dest="api_command", metavar="ACTION")
    key = sub.add_parser("create-key", help="create an API key and print it once")
    key.add_argument("--role", required=True, choices=["viewer", "planner", "operator", "admin"])
    key.add_argument("--name", required=True, help="who holds the key (recorded as the author of its writes)")
    key.set_defaults(handler=_create_key)


def _database(settings: Any) -> tuple[Any, Any]:
    """The configured database (or an embedded one), migrated; returns (settings, service)."""
    from zhongdu import services, storage

    database = services.ensure_database(settings)
    with storage.connect(database.url) as conn:
        storage.migrate(conn)
    return settings.model_copy(update={"database_url": database.url}), database


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from zhongdu.api import create_app, with_bootstrap_key
    from zhongdu.api._serve import make_server, proxy_options
    from zhongdu.settings import Settings, mask_url

    settings = Settings()
    settings.require_production_safe()
    settings, key = with_bootstrap_key(settings)
    settings, database = _database(settings)
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    try:
        print(
            f"Zhongdu API on http://{host}:{port} (docs at /docs), database {mask_url(settings.database_url)}"
        )
        if settings.api_metrics_port:
            print(f"Prometheus metrics on http://{settings.api_metrics_host}:{settings.api_metrics_port}/metrics")
        if key:
            print(f"bootstrap admin key of this process (set ZHONGDU_ADMIN_API_KEY to choose one): {key}")
        config = uvicorn.Config(
            create_app(settings, serve_metrics=True),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            **proxy_options(settings),
            timeout_graceful_shutdown=5,
        )
        make_server(config).run()
    finally:
        database.stop()
    return 0


def _create_key(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.api import create_api_key
    from zhongdu.settings import Settings

    settings, database = _database(Settings())
    try:
        with storage.connect(settings.database_url) as conn:
            row, key = create_api_key(conn, name=args.name, role=args.role)
            conn.commit()
    finally:
        database.stop()
    print(f"created key {row['key_id']} for {row['name']} (role {row['role']}); it is shown only once:")
    print(key)
    return 0
