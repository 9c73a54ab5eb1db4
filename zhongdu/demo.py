"""`zhongdu demo`: the whole platform on one machine, with embedded services where none is set.

Starts (or connects to) the database and the broker, applies migrations, registers the simulated
park devices and stations, then runs the ingester, the simulators (a gentle live load with
scripted outages) and the API until interrupted, and reports where everything is.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    demo = subparsers.add_parser(
        "demo", help="run everything on this machine (embedded database and broker if none is set)"
    )
    demo.add_argument("--port", type=int, default=None, help="API port (default ZHONGDU_API_PORT, 8000)")
    demo.add_argument(
        "--once",
        action="store_true",
        help="start everything, wait until telemetry is stored and the API answers, report, stop",
    )
    demo.add_argument("--timeout", type=float, default=90.0, help="with --once: seconds to wait for data")
    demo.set_defaults(handler=run_demo)


class _Threads:
    """Background parts of the demo, each in a thread that reports how it ended."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.failures: list[str] = []

    def start(self, name: str, target: Callable[[threading.Event], object]) -> None:
        def run() -> None:
            try:
                target(self.stop)
            except Exception as exc:  # a part that dies is reported, and the demo stops
                log.exception("%s stopped", name)
                self.failures.append(f"{name}: {exc}")
                self.stop.set()

        thread = threading.Thread(target=run, name=f"demo-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)


def _register(database_url: str, plan: Any, layout: Any) -> tuple[int, int]:
    """Put the park devices (with kinds and places) and the whole station layout (sites and
    sectors, the same the API's live coverage uses) in the registry before anything talks."""
    from zhongdu import storage
    from zhongdu.coverage import STATION_COLUMNS

    columns: dict[str, Any] = {name: getattr(layout, name) for name in STATION_COLUMNS if name != "status"}
    columns["radius_m"] = layout.radius_m
    if "district" in layout.extra:
        columns["district"] = layout.extra["district"]
    with storage.connect(database_url) as conn:
        for device in plan.devices:
            storage.telemetry.register_device(
                conn, device.device_id, device.kind, name=device.name, lon=device.lon, lat=device.lat
            )
        for station in plan.stations:  # a stations file may name sites outside the layout
            storage.telemetry.register_station(conn, station.station_id)
        return storage.register_layout(conn, columns)


def _issue_credentials(database_url: str, settings: Any, plan: Any) -> dict[str, str]:
    """A secured broker (ZHONGDU_BROKER_ADMIN_URL set): one credential per simulated device and
    station, so each publishes only under its own id, as real ones would."""
    from zhongdu import storage
    from zhongdu.broker import DynsecAdmin, issue

    cafile = str(settings.mqtt_cafile) if settings.mqtt_cafile else None
    with (
        storage.connect(database_url) as conn,
        DynsecAdmin(settings.broker_admin_url, cafile=cafile) as admin,
    ):
        issued = [issue(conn, admin, s.entity_id, kind=s.kind) for s in plan.sources]
    return {c.username: c.password for c in issued}


def _stored_counts(database_url: str) -> tuple[int, int]:
    from zhongdu import storage

    with storage.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM station_telemetry)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run_demo(args: argparse.Namespace) -> int:
    import httpx

    from zhongdu import services, storage
    from zhongdu.alerts._evaluator import run_alerts
    from zhongdu.api import default_layout, start_api
    from zhongdu.ingest import run_ingester
    from zhongdu.settings import Settings, mask_url
    from zhongdu.simulators import demo_config, make_plan, run_simulation

    settings = Settings()
    settings.require_production_safe()
    started: list[services.Service] = []
    parts = _Threads()
    api = None
    try:
        database = services.ensure_database(settings)
        started.append(database)
        broker = services.ensure_broker(settings)
        started.append(broker)
        with storage.connect(database.url) as conn:
            applied = storage.migrate(conn)
            flavour = "/".join(sorted(set(storage.applied_versions(conn).values())))
        settings = settings.model_copy(update={"database_url": database.url, "mqtt_url": broker.url})

        sim_config = demo_config(broker.url, mqtt5=broker.mqtt5, settings=settings)
        plan = make_plan(sim_config)
        layout = default_layout(settings)
        _grid, stations = layout()
        sites_added, sectors_added = _register(database.url, plan, stations)
        if settings.broker_admin_url:
            credentials = _issue_credentials(database.url, settings, plan)
            cafile = str(settings.mqtt_cafile) if settings.mqtt_cafile else None
            sim_config = dataclasses.replace(sim_config, credentials=credentials, cafile=cafile)

        parts.start("ingester", lambda stop: run_ingester(settings, stop, mqtt5=broker.mqtt5))
        parts.start("alerts", lambda stop: run_alerts(settings, stop))
        api = start_api(settings, port=args.port, layout=lambda: (_grid, stations), serve_metrics=True)
        parts.start("simulators", lambda stop: run_simulation(sim_config, stop))

        print("Zhongdu demo is up:")
        print(f"  database   : {mask_url(database.url)}  [{database.detail or 'configured'}; {flavour}]")
        print(f"               migrations applied now: {len(applied)}")
        print(f"  broker     : {broker.url}  [{broker.detail or 'configured'}]")
        print(
            f"  registry   : the 4G layout, {len(stations)} sectors"
            f" ({sites_added} sites and {sectors_added} sectors added now)"
        )
        print(f"  simulators : {len(plan.devices)} park devices, {len(plan.stations)} base stations")
        if sim_config.credentials:
            print(f"               each with its own MQTT credential ({len(sim_config.credentials)} issued)")
        print(f"  ops page   : {api.url}/   (open this: map, indicators, live, scenarios)")
        metrics = (
            f"http://{settings.api_metrics_host}:{settings.api_metrics_port}/metrics"
            if settings.api_metrics_port
            else "off"
        )
        print(f"  API        : {api.url}/docs   (OpenAPI {api.url}/openapi.json, metrics {metrics})")
        print(f"  coverage   : {api.url}/v1/coverage")
        print(f"  alerts     : {api.url}/v1/alerts   (rules: zhongdu alerts rules list; docs/alerts.md)")
        if api.admin_key:
            print(f"  admin key  : {api.admin_key}   (this run only; set ZHONGDU_ADMIN_API_KEY to fix one)")

        if args.once:
            return _smoke(api.url, database.url, parts, args.timeout, httpx)
        signal.signal(signal.SIGTERM, lambda *_: parts.stop.set())
        print("Press Ctrl-C to stop.")
        try:
            while not parts.stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        if parts.failures:
            print("stopped because: " + "; ".join(parts.failures))
            return 1
        return 0
    finally:
        parts.join()
        if api is not None:
            api.stop()
        for service in reversed(started):
            service.stop()


def _smoke(api_url: str, database_url: str, parts: _Threads, timeout: float, httpx: Any) -> int:
    """Wait until park readings and station telemetry are stored and the API serves coverage."""
    deadline = time.monotonic() + timeout
    readings = telemetry = 0
    while time.monotonic() < deadline and not parts.failures:
        readings, telemetry = _stored_counts(database_url)
        if readings and telemetry:
            break
        time.sleep(0.5)
    share = None
    while share is None and time.monotonic() < deadline + 30:
        answer = httpx.get(f"{api_url}/v1/coverage", timeout=30)
        share = answer.json().get("share") if answer.status_code == 200 else None
        if share is None:
            time.sleep(0.5)
    print(f"  stored     : {readings} park readings, {telemetry} station telemetry rows")
    print(f"  live share : {share}")
    problems = list(parts.failures)
    if not (readings and telemetry):
        problems.append("no telemetry stored in time")
    if share is None:
        problems.append(f"GET /v1/coverage did not answer with a share ({answer.status_code})")
    if problems:
        print("demo smoke check FAILED: " + "; ".join(problems))
        return 1
    print("demo smoke check passed")
    return 0
