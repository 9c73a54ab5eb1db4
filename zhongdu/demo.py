"""`zhongdu demo`: the whole platform on one machine, with embedded services where none is set.

Starts (or connects to) the database and the broker, applies migrations, then runs the parts
that exist (ingester, simulators, API) until interrupted, and reports where everything is.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    demo = subparsers.add_parser(
        "demo", help="run everything on this machine (embedded database and broker if none is set)"
    )
    demo.add_argument("--once", action="store_true", help="start, report, and stop (a smoke test)")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from zhongdu import services, storage
    from zhongdu.settings import Settings, mask_url

    settings = Settings()
    settings.require_production_safe()
    started: list[services.Service] = []
    try:
        database = services.ensure_database(settings)
        started.append(database)
        broker = services.ensure_broker(settings)
        started.append(broker)
        with storage.connect(database.url) as conn:
            applied = storage.migrate(conn)
            flavour = "/".join(sorted(set(storage.applied_versions(conn).values())))
        print("Zhongdu demo is up:")
        print(f"  database : {mask_url(database.url)}  [{database.detail or 'configured'}; {flavour}]")
        print(f"  migrations applied now: {len(applied)}")
        print(f"  broker   : {broker.url}  [{broker.detail or 'configured'}]")
        if args.once:
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("Press Ctrl-C to stop.")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        for service in reversed(started):
            service.stop()
