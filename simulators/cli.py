"""Sub-commands of the `simulators` part (registered by `zhongdu.cli`). Keep imports inside handlers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  zhongdu simulate park --devices 200 --rate 100
  zhongdu simulate all --speed 120                  # replay the last day in 12 minutes, then run live
  zhongdu simulate park --devices 2000 --count 100000 --seed 7     # exactly 100,000 messages, then exit
  zhongdu simulate park --devices 2000 --count 100000 --engine raw  # the same, fastest (for benchmarks)
  zhongdu simulate park --faults duplicate,malformed,late --fault-rate 0.05
  zhongdu stations generate --out stations.csv     # then take two of its sites down, one degraded:
  zhongdu simulate stations --stations stations.csv \\
      --outages 'TC-66000010-CHT-00001@2m+5m,TC-66000010-CHT-00002@10m+5m:degraded'
  zhongdu simulate petitions --cases 50000 --out petitions.csv --cluster 120.6846,24.1375,300,500,drain

Progress and a summary go to stderr. The broker comes from --url, else ZHONGDU_MQTT_URL, else
mqtt://127.0.0.1:1883.
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _utc(text: str) -> Any:
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {text}Z")
    return value


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
    sim = subparsers.add_parser(
        "simulate",
        help="publish simulated park devices and base stations over MQTT",
        description=(
            "Simulate the Shuinan (水湳) smart park's devices (air, weather, noise, meters, solar, EV "
            "chargers, security) and the city's base stations, publishing on the documented MQTT topics "
            "(SenML packs and station telemetry at QoS 1, retained online/offline status with wills)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument(
        "what",
        choices=("park", "stations", "all", "petitions"),
        help="which entities to simulate (petitions: a synthetic 1999/petition CSV, no broker)",
    )
    sim.add_argument(
        "--url", help="broker, mqtt://[user:pass@]host:port (default: ZHONGDU_MQTT_URL or localhost)"
    )
    sim.add_argument("--devices", type=_nonnegative_int, default=60, help="park devices (default 60)")
    sim.add_argument(
        "--rate", type=_positive_float, help="cap on telemetry messages per second (default: none)"
    )
    sim.add_argument(
        "--speed", type=_positive_float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    sim.add_argument("--seed", type=int, default=2015, help="random seed (default 2015)")
    sim.add_argument(
        "--count",
        type=_nonnegative_int,
        help="fixed-count mode: publish exactly N telemetry messages, wait for their acks, exit",
    )
    sim.add_argument("--duration", type=_positive_float, help="stop after this many real seconds")
    sim.add_argument(
        "--start", type=_utc, help="simulated start time, e.g. 2025-06-21T00:00:00Z (repeatable runs)"
    )
    sim.add_argument(
        "--faults",
        help="comma-separated: drop,late,out_of_order,duplicate,malformed,skew (or all); default none",
    )
    sim.add_argument(
        "--fault-rate", type=float, help="share of messages that get a fault (default 0.05 with --faults)"
    )
    sim.add_argument(
        "--stations",
        dest="stations_file",
        help="station layout CSV (docs/coverage.md#stations-csv); default ZHONGDU_STATIONS_PATH, else "
        "the coverage engine's generated layout (the same one the API uses)",
    )
    sim.add_argument("--max-stations", type=_nonnegative_int, help="only the N stations nearest Shuinan")
    sim.add_argument(
        "--station-interval", type=_positive_float, default=60.0, help="seconds between station reports (60)"
    )
    sim.add_argument(
        "--outages",
        default="auto",
        help="auto (default: a cluster of sites goes down every 20 simulated minutes), none, or "
        "ID@START+DURATION[:degraded],... with durations like 90s, 10m, 1h",
    )
    sim.add_argument(
        "--connections",
        type=int,
        help="share N connections instead of one per device (default: one per device up to 2000 entities)",
    )
    sim.add_argument(
        "--engine",
        choices=("paho", "raw"),
        default="paho",
        help="paho (default: wills, reconnects) or raw (a minimal batched QoS 1 publisher, ~6x faster; "
        "no wills, no `drop` faults), for benchmarks",
    )
    sim.add_argument("--mqtt-version", choices=("auto", "5", "3.1.1"), default="auto", help="MQTT protocol")
    sim.add_argument("--id-prefix", default="", help="prefix for every device and station id")
    sim.add_argument("--no-status", action="store_true", help="no retained status topics or wills")
    sim.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    sim.add_argument(
        "--credentials",
        type=Path,
        help="JSON {username: password} per device/station (`zhongdu devices credential issue ID... --json`) "
        "for a broker that confines each device to its own topics",
    )
    from zhongdu.petitions.cli import add_simulate_arguments

    add_simulate_arguments(sim)
    sim.set_defaults(handler=run_simulate)


def _read_credentials(path: Path) -> dict[str, str]:
    import json

    from zhongdu.errors import ConfigError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the credentials file {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path} must hold a JSON object of username: password strings")
    return {str(k): v for k, v in data.items()}


def run_simulate(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading
    from pathlib import Path

    from zhongdu.settings import Settings
    from zhongdu.simulators import FaultConfig, SimulationConfig, run_simulation

    if args.what == "petitions":
        from zhongdu.petitions.cli import simulate_petitions

        return simulate_petitions(args)
    settings = Settings()
    url = args.url or settings.mqtt_url or "mqtt://127.0.0.1:1883"
    stations_file = Path(args.stations_file) if args.stations_file else settings.stations_path
    config = SimulationConfig(
        url=url,
        park=args.what in ("park", "all"),
        stations=args.what in ("stations", "all"),
        devices=args.devices,
        stations_file=stations_file,
        grid_path=settings.grid_path,
        h3_resolution=settings.h3_resolution,
        max_stations=args.max_stations,
        station_interval_s=args.station_interval,
        rate=args.rate,
        speed=args.speed,
        seed=args.seed,
        count=args.count,
        duration_s=args.duration,
        start=args.start,
        faults=FaultConfig.parse(args.faults, args.fault_rate),
        outages=args.outages,
        connections=args.connections,
        mqtt_version=args.mqtt_version,
        id_prefix=args.id_prefix,
        statuses=not args.no_status,
        engine=args.engine,
        progress=sys.stderr,
        progress_interval_s=1e9 if args.quiet else 5.0,
        credentials=_read_credentials(args.credentials) if args.credentials else None,
        cafile=str(settings.mqtt_cafile) if settings.mqtt_cafile else None,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = run_simulation(config, stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    if args.count is not None and stats.acked != stats.sent:
        print(f"simulate: only {stats.acked} of {stats.sent} messages were acknowledged", file=sys.stderr)
        return 1
    return 0
