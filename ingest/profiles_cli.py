"""`zhongdu devices profile ...` and `zhongdu devices metric ...`: device profiles and custom metrics.

Registered under `zhongdu devices` (see `zhongdu.broker.cli`); imports stay inside the handlers.
Changes are stored in the database; running ingesters apply them within
ZHONGDU_INGEST_CONFIG_REFRESH_S seconds, without a restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def register(dev_sub: argparse._SubParsersAction[Any]) -> None:
    profile = dev_sub.add_parser(
        "profile",
        help="device profiles: what a device's SenML names mean (see docs/device-profiles.md)",
        description=(
            "Map devices' SenML names (exact names, optionally per unit; device prefixes; aliases) to "
            "catalogue or custom metrics, per device or per device kind. Running ingesters reload "
            "profiles within ZHONGDU_INGEST_CONFIG_REFRESH_S seconds."
        ),
    )
    sub = profile.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    put = sub.add_parser("set", help="create or replace a profile from a JSON document (file or -)")
    put.add_argument("file", help="JSON profile document with its profile_id; - reads standard input")
    put.set_defaults(handler=_profile_set)
    show = sub.add_parser("list", help="print the stored profiles as JSON")
    show.set_defaults(handler=_profile_list)
    delete = sub.add_parser("delete", help="delete a profile")
    delete.add_argument("profile_id")
    delete.set_defaults(handler=_profile_delete)

    metric = dev_sub.add_parser(
        "metric",
        help="custom metrics: add metrics outside the catalogue at run time, no migration",
        description="Custom metrics extend the catalogue for every device: number (with a SenML unit "
        "and an optional range), boolean, text, or data (SenML vd, stored as base64url text).",
    )
    msub = metric.add_subparsers(dest="metric_command", metavar="ACTION", required=True)
    add = msub.add_parser("set", help="create or replace a custom metric")
    add.add_argument("metric", help="name: lower case, digits, _ and - (no : or /)")
    add.add_argument(
        "--type", required=True, choices=["number", "boolean", "text", "data"], dest="value_type"
    )
    add.add_argument("--unit", help="SenML unit (numbers only), e.g. lx, %%EL, lat")
    add.add_argument("--min", type=float, default=None, help="smallest accepted value (numbers)")
    add.add_argument("--max", type=float, default=None, help="largest accepted value (numbers)")
    add.add_argument("--description", default="")
    add.set_defaults(handler=_metric_set)
    mlist = msub.add_parser("list", help="print the custom metrics as JSON")
    mlist.set_defaults(handler=_metric_list)
    mdel = msub.add_parser("delete", help="delete a custom metric (its stored readings stay)")
    mdel.add_argument("metric")
    mdel.set_defaults(handler=_metric_delete)


@contextmanager
def _connection() -> Iterator[Any]:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    database = services.ensure_database(Settings())
    try:
        with storage.connect(database.url) as conn:
            storage.migrate(conn)
            yield conn
    finally:
        database.stop()


def _known_metrics(conn: Any) -> set[str]:
    from zhongdu import storage
    from zhongdu.ingest import METRICS

    return set(METRICS) | {m["metric"] for m in storage.profiles.custom_metrics(conn)}


def _profile_set(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.errors import ConfigError
    from zhongdu.ingest._profiles import Profile

    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{args.file}: not JSON: {exc}") from exc
    with _connection() as conn:
        profile = Profile.from_json(document, _known_metrics(conn))
        storage.profiles.put_profile(conn, profile.as_json())
    targets = [*(f"device {d}" for d in profile.devices), *(f"kind {k}" for k in profile.kinds)]
    print(f"stored profile {profile.profile_id} for {', '.join(targets) or 'no device yet'}")
    return 0


def _profile_list(_args: argparse.Namespace) -> int:
    from zhongdu import storage

    return _print(lambda conn: storage.profiles.profiles(conn))


def _profile_delete(args: argparse.Namespace) -> int:
    from zhongdu import storage

    with _connection() as conn:
        found = storage.profiles.delete_profile(conn, args.profile_id)
    print(f"{'deleted' if found else 'no such profile:'} {args.profile_id}")
    return 0 if found else 1


def _metric_set(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.ingest._profiles import CustomMetric

    metric = CustomMetric(args.metric, args.value_type, args.unit, args.min, args.max, args.description)
    with _connection() as conn:
        storage.profiles.put_custom_metric(conn, metric.as_json())
    unit = f", {metric.unit}" if metric.unit else ""
    print(f"stored custom metric {metric.metric} ({metric.value_type}{unit})")
    return 0


def _metric_list(_args: argparse.Namespace) -> int:
    from zhongdu import storage

    return _print(lambda conn: storage.profiles.custom_metrics(conn))


def _metric_delete(args: argparse.Namespace) -> int:
    from zhongdu import storage

    with _connection() as conn:
        found = storage.profiles.delete_custom_metric(conn, args.metric)
    print(f"{'deleted' if found else 'no such custom metric:'} {args.metric}")
    return 0 if found else 1


def _print(read: Callable[[Any], Any]) -> int:
    with _connection() as conn:
        print(json.dumps(read(conn), indent=1, ensure_ascii=False))
    return 0
