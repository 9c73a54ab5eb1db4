"""`zhongdu alerts …`: run the evaluator and webhook dispatcher, list and acknowledge incidents,
manage rules and webhooks, backtest a rule. Imports stay inside handlers (fast `--help`)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

_SEVERITIES = ("info", "warning", "critical")
_CONDITIONS = ("above", "below", "rate_above", "rate_below", "no_data", "event", "station_down")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    alerts = subparsers.add_parser(
        "alerts",
        help="alerts on telemetry and outages: evaluator, incidents, rules, webhooks, backtests",
        description=(
            "Incidents open when a rule's condition holds for its duration and resolve when it clears. "
            "Settings: ZHONGDU_DATABASE_URL, ZHONGDU_ALERTS_* (see docs/alerts.md)."
        ),
    )
    sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    run = sub.add_parser(
        "run",
        help="evaluate the rules beside the ingesters and deliver webhooks, until stopped",
        description=(
            "Follows the readings the ingest workers commit (any number of them), station statuses "
            "and silences; opens, flags, escalates and resolves incidents; sends every incident event "
            "to the registered webhooks with retries. One process leads (a database lock); start a "
            "second one as a standby."
        ),
    )
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    run.add_argument("--no-webhooks", action="store_true", help="evaluate only (another process delivers)")
    run.set_defaults(handler=_run)

    listing = sub.add_parser("list", help="incidents, newest first")
    listing.add_argument("--state", choices=("open", "acknowledged", "resolved"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)

    for name, text in (("ack", "acknowledge an open incident"), ("resolve", "resolve an incident by hand")):
        change = sub.add_parser(name, help=f"{text} (records who and why)")
        change.add_argument("incident_id", type=int)
        change.add_argument("--by", required=True, help="who (a person's name)")
        change.add_argument("--note", help="why, what is being done")
        change.set_defaults(handler=_change, action=name)

    rules = sub.add_parser("rules", help="alert rules: list, set, delete, defaults, backtest")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rules_sub.add_parser("list", help="every rule with its threshold and source").set_defaults(
        handler=_rules_list
    )
    put = rules_sub.add_parser(
        "set",
        help="create or replace a rule",
        description="Create or replace a rule. Example: zhongdu alerts rules set co2-high --name 'CO2 high' "
        "--condition above --metric co2 --threshold 1500 --clear-threshold 1200 --for 300 --kind air",
    )
    put.add_argument("rule_id")
    put.add_argument("--name", required=True)
    put.add_argument("--condition", choices=_CONDITIONS, required=True)
    put.add_argument("--metric", help="a metric of the ingester's catalogue")
    put.add_argument("--device", dest="device_id", help="one device")
    put.add_argument("--kind", dest="device_kind", help="every device of a kind (air, noise, meter, ...)")
    put.add_argument("--area", help="devices whose metadata area (stations: district) is this")
    put.add_argument("--threshold", type=float)
    put.add_argument("--clear-threshold", type=float, help="hysteresis: clears only past this value")
    put.add_argument("--no-data", dest="no_data_s", type=float, help="seconds of silence (no_data rules)")
    put.add_argument("--for", dest="for_s", type=float, default=0.0, help="seconds the condition must hold")
    put.add_argument(
        "--clear-for", dest="clear_for_s", type=float, default=0.0, help="seconds it must stay clear"
    )
    put.add_argument("--hours", dest="active_hours", help="active hours, local time, e.g. 07-20 or 23-07")
    put.add_argument("--severity", choices=_SEVERITIES, default="warning")
    put.add_argument("--escalate-after", dest="escalate_after_s", type=float, help="seconds unacknowledged")
    put.add_argument("--flap-window", dest="flap_window_s", type=float, default=600.0)
    put.add_argument("--flap-count", type=int, default=4)
    put.add_argument("--manual-resolve", action="store_true", help="a person resolves (no auto-resolve)")
    put.add_argument("--disabled", action="store_true")
    put.add_argument("--source-note", default="", help="where the threshold comes from")
    put.set_defaults(handler=_rules_set)
    delete = rules_sub.add_parser("delete", help="delete a rule (and its incidents' history)")
    delete.add_argument("rule_id")
    delete.set_defaults(handler=_rules_delete)
    rules_sub.add_parser(
        "defaults", help="add the shipped defaults that are missing (AQI, noise standard, intrusion, ...)"
    ).set_defaults(handler=_rules_defaults)
    back = rules_sub.add_parser("backtest", help="when a rule would have fired over stored readings")
    back.add_argument("rule_id")
    back.add_argument("--from", dest="start", help="ISO time (default: 7 days ago)")
    back.add_argument("--to", dest="end", help="ISO time (default: now)")
    back.set_defaults(handler=_rules_backtest)

    hooks = sub.add_parser("webhooks", help="outgoing webhooks: add, list, delete")
    hooks_sub = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    add = hooks_sub.add_parser("add", help="send every incident event to URL (prints the HMAC secret once)")
    add.add_argument("webhook_id")
    add.add_argument("url")
    add.add_argument("--format", choices=("zhongdu", "alertmanager"), default="zhongdu")
    add.add_argument("--min-severity", choices=_SEVERITIES, default="info")
    add.set_defaults(handler=_hooks_add)
    hooks_sub.add_parser("list", help="webhooks and their delivery counts").set_defaults(handler=_hooks_list)
    remove = hooks_sub.add_parser("delete", help="remove a webhook")
    remove.add_argument("webhook_id")
    remove.set_defaults(handler=_hooks_delete)


def _connect() -> Any:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    database = services.ensure_database(Settings())
    conn = storage.connect(database.url)
    storage.migrate(conn)
    return conn


def _run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from zhongdu import services, storage
    from zhongdu.alerts._evaluator import run_alerts
    from zhongdu.settings import Settings

    settings = Settings()
    url = services.ensure_database(settings).url
    settings = settings.model_copy(update={"database_url": url})
    with storage.connect(url) as conn:
        storage.migrate(conn)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("alerts: evaluating" + ("" if args.no_webhooks else " and delivering webhooks") + "; Ctrl-C stops")
    run_alerts(settings, stop, webhooks=not args.no_webhooks)
    return 0


def _list(args: argparse.Namespace) -> int:
    from zhongdu.alerts import list_incidents

    with _connect() as conn:
        items = list_incidents(conn, state=args.state, limit=args.limit)
    for item in items:
        if args.json:
            print(json.dumps(item, default=str, ensure_ascii=False))
            continue
        who = f" ack {item['acked_by']}" if item["acked_by"] else ""
        flag = " FLAPPING" if item["flapping"] else ""
        print(f"#{item['incident_id']} {item['state']:<12} {item['severity']:<8} "
              f"{item['opened_at']:%Y-%m-%d %H:%M:%S%z} {item['summary']}{who}{flag}")  # fmt: skip
    if not items:
        print("no incidents")
    return 0


def _change(args: argparse.Namespace) -> int:
    from zhongdu.alerts import acknowledge, resolve

    action = acknowledge if args.action == "ack" else resolve
    with _connect() as conn:
        item = action(conn, args.incident_id, by=args.by, note=args.note)
        conn.commit()
    print(f"#{item['incident_id']} {item['state']} by {args.by}")
    return 0


def _rules_list(_args: argparse.Namespace) -> int:
    from zhongdu.alerts._rules import load_rules

    with _connect() as conn:
        for rule in load_rules(conn):
            line = rule.threshold if rule.threshold is not None else rule.no_data_s
            state = "" if rule.enabled else " (disabled)"
            print(f"{rule.rule_id:<22} {rule.condition:<12} {rule.metric or '-':<12} {line!s:<8} "
                  f"for {rule.for_s:g} s  {rule.severity}{state}  {rule.name}")  # fmt: skip
    return 0


def _rules_set(args: argparse.Namespace) -> int:
    from zhongdu.alerts._rules import Rule, save_rule

    names = (
        "device_id", "device_kind", "area", "threshold", "clear_threshold", "no_data_s", "for_s",
        "clear_for_s", "active_hours", "severity", "escalate_after_s", "flap_window_s", "flap_count",
        "source_note", "metric",
    )  # fmt: skip
    fields = {k: getattr(args, k) for k in names}
    rule = Rule(
        args.rule_id, args.name, args.condition, enabled=not args.disabled, created_by="cli", **fields
    )
    with _connect() as conn:
        new = save_rule(conn, rule.validate())
        conn.commit()
    print(f"rule {rule.rule_id} {'created' if new else 'replaced'}")
    return 0


def _rules_delete(args: argparse.Namespace) -> int:
    from zhongdu.alerts._rules import delete_rule
    from zhongdu.errors import ConfigError

    with _connect() as conn:
        if not delete_rule(conn, args.rule_id):
            raise ConfigError(f"no rule {args.rule_id!r}")
        conn.commit()
    print(f"rule {args.rule_id} deleted")
    return 0


def _rules_defaults(_args: argparse.Namespace) -> int:
    from zhongdu.alerts._rules import install_defaults

    with _connect() as conn:
        added = install_defaults(conn)
        conn.commit()
    print(f"{added} default rules added")
    return 0


def _rules_backtest(args: argparse.Namespace) -> int:
    from zhongdu.alerts._backtest import backtest
    from zhongdu.alerts._rules import get_rule
    from zhongdu.errors import ConfigError

    end = _time(args.end) or datetime.now(UTC)
    start = _time(args.start) or end - timedelta(days=7)
    with _connect() as conn:
        rule = get_rule(conn, args.rule_id)
        if rule is None:
            raise ConfigError(f"no rule {args.rule_id!r}")
        result = backtest(conn, rule, start, end)
    print(f"{result['rule_id']}: {result['readings']} readings from {result['sources']} sources, "
          f"{len(result['incidents'])} incidents would have opened")  # fmt: skip
    for item in result["incidents"]:
        flag = " flapping" if item["flapping"] else ""
        print(f"  {item['source']}: {item['opened_at']} -> {item['resolved_at'] or 'still open'} "
              f"peak {item['peak']}{flag}")  # fmt: skip
    return 0


def _time(text: str | None) -> datetime | None:
    from zhongdu.errors import ConfigError

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"not an ISO time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _hooks_add(args: argparse.Namespace) -> int:
    from zhongdu.alerts._webhooks import add_webhook

    with _connect() as conn:
        hook = add_webhook(conn, args.webhook_id, args.url, fmt=args.format, min_severity=args.min_severity,
                           created_by="cli")  # fmt: skip
        conn.commit()
    print(f"webhook {hook['webhook_id']} -> {hook['url']} ({hook['format']})")
    print(f"secret (shown once; verify X-Zhongdu-Signature with it): {hook['secret']}")
    return 0


def _hooks_list(_args: argparse.Namespace) -> int:
    from zhongdu.alerts._webhooks import list_webhooks

    with _connect() as conn:
        for hook in list_webhooks(conn):
            counts = f"delivered {hook['delivered']}, pending {hook['pending']}, failed {hook['failed']}"
            print(f"{hook['webhook_id']:<16} {hook['format']:<12} {hook['url']}  {counts}")
    return 0


def _hooks_delete(args: argparse.Namespace) -> int:
    from zhongdu.alerts._webhooks import delete_webhook
    from zhongdu.errors import ConfigError

    with _connect() as conn:
        if not delete_webhook(conn, args.webhook_id):
            raise ConfigError(f"no webhook {args.webhook_id!r}")
        conn.commit()
    print(f"webhook {args.webhook_id} deleted")
    return 0
