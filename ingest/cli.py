"""Sub-commands of the `ingest` part (registered by `zhongdu.cli`). Keep imports inside handlers."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `zhongdu ingest` (the worker); its benchmark is `benchmarks/bench_ingest.py`."""
    parser = subparsers.add_parser(
        "ingest",
        help="run an ingest worker: MQTT telemetry into the database (ack after commit)",
        description=(
            "Subscribe to zhongdu/v1/# (MQTT v5 shared subscription $share/<group>/..., persistent "
            "session, QoS 1; MQTT 3.1.1 where the broker refuses v5), validate SenML and base-station "
            "telemetry, write batches idempotently and acknowledge after commit. Settings: "
            "ZHONGDU_DATABASE_URL, ZHONGDU_MQTT_URL, ZHONGDU_AUTO_REGISTER, ZHONGDU_INGEST_*. "
            "The client id names a persistent MQTT session (7-day expiry) that outlives the process: "
            "the broker keeps queuing this worker's share of the messages while it is stopped and "
            "hands them to whichever process next connects with the same id, whatever database that "
            "process writes to. So restart a worker with its own id, give every worker (and every "
            "database) a distinct id, and retire an id for good only by letting its session expire."
        ),
    )
    parser.add_argument("--database-url", help="default: ZHONGDU_DATABASE_URL")
    parser.add_argument("--mqtt-url", help="default: ZHONGDU_MQTT_URL")
    parser.add_argument(
        "--client-id",
        help="MQTT client id = the name of this worker's persistent session: keep it stable across "
        "restarts, distinct per worker and per database (default: ZHONGDU_MQTT_CLIENT_ID-<hostname>; "
        "when ZHONGDU_MQTT_URL names a user, that username, the only id a secured broker accepts)",
    )
    parser.add_argument(
        "--group",
        help="shared-subscription group (default: ZHONGDU_MQTT_SHARE_GROUP); `--group ''` for one worker "
        "with a plain subscription (Mosquitto 2.0 keeps those across a broker restart, not shared ones)",
    )
    parser.add_argument(
        "--mqtt-protocol", choices=("auto", "5", "3.1.1"), default="auto", help="default: v5 when accepted"
    )
    parser.add_argument("--batch-size", type=int, help="rows per batch (default: ZHONGDU_INGEST_BATCH_SIZE)")
    parser.add_argument(
        "--batch-interval-ms",
        type=int,
        help="longest wait to fill a batch (ZHONGDU_INGEST_BATCH_INTERVAL_MS)",
    )
    parser.add_argument("--schema", help="database schema to write into (default: the search path)")
    parser.add_argument(
        "--writers", type=int, default=1, help="database connections writing batches in parallel (default 1)"
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--auto-register", action="store_true", default=None, help="register unknown devices")
    parser.set_defaults(handler=_run)



def _run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from zhongdu.ingest._worker import Ingester, default_client_id
    from zhongdu.settings import Settings

    overrides: dict[str, Any] = {}
    if args.group is not None:
        overrides["mqtt_share_group"] = args.group
    if args.batch_size:
        overrides["ingest_batch_size"] = args.batch_size
    if args.batch_interval_ms:
        overrides["ingest_batch_interval_ms"] = args.batch_interval_ms
    if args.auto_register:
        overrides["auto_register"] = True
    settings = Settings(**overrides)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")
    protocol = {"auto": None, "5": True, "3.1.1": False}[args.mqtt_protocol]
    ingester = Ingester(
        settings,
        database_url=args.database_url,
        mqtt_url=args.mqtt_url,
        schema=args.schema,
        client_id=args.client_id or default_client_id(settings),
        mqtt5=protocol,
        writers=args.writers,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    ingester.run(stop)
    return 0

