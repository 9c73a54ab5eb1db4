"""Outgoing webhooks: every incident event, signed, retried with backoff, delivered once per hook.

The outbox is the database: each (event, webhook) pair gets a row in `alert_deliveries` when the
dispatcher first sees the event, and the row records attempts, the next try and the outcome, so a
restart neither loses nor repeats a delivery that the receiver acknowledged with a 2xx.

Signature (the `zhongdu` and `alertmanager` formats alike): header
`X-Zhongdu-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`; the receiver
recomputes it over the raw body and rejects stale `t` (replays). `X-Zhongdu-Delivery` is the
event id: a receiver that saw it already can ignore a retry whose answer it sent but we lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from psycopg.rows import dict_row

from zhongdu import storage
from zhongdu.alerts._incidents import get_incident
from zhongdu.errors import ConfigError, StorageError
from zhongdu.settings import Settings

log = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
CURSOR = "webhooks"
MAX_BACKOFF_S = 600.0
BATCH = 200


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Zhongdu-Signature` header value for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """What a receiver does: recompute the signature and refuse an old timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# -- registry of hooks -------------------------------------------------------------------------------


def add_webhook(
    conn: psycopg.Connection[Any],
    webhook_id: str,
    url: str,
    *,
    secret: str | None = None,
    fmt: str = "zhongdu",
    min_severity: str = "info",
    created_by: str = "system",
) -> dict[str, Any]:
    """Register a hook; it receives the events that happen from now on. Returns it with its secret."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError("a webhook URL must start with http:// or https://")
    if fmt not in ("zhongdu", "alertmanager"):
        raise ConfigError("format must be 'zhongdu' or 'alertmanager'")
    if min_severity not in SEVERITY_RANK:
        raise ConfigError(f"min_severity must be one of {', '.join(SEVERITY_RANK)}")
    secret = secret or new_secret()
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """INSERT INTO alert_webhooks
                   (webhook_id, url, secret, format, min_severity, created_by, start_after)
               VALUES (%s, %s, %s, %s, %s, %s, (SELECT coalesce(max(event_id), 0) FROM alert_events))
               ON CONFLICT (webhook_id) DO NOTHING
               RETURNING webhook_id, url, secret, format, min_severity, enabled, created_at""",
            (webhook_id, url, secret, fmt, min_severity, created_by),
        ).fetchone()
    if row is None:
        raise ConfigError(f"webhook {webhook_id!r} exists already; delete it first")
    return row


def list_webhooks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The hooks without their secrets, with delivery counts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT w.webhook_id, w.url, w.format, w.min_severity, w.enabled, w.created_at,
                      count(d.delivered_at)::int AS delivered,
                      count(d.event_id) FILTER (WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL)::int
                          AS pending,
                      count(d.gave_up_at)::int AS failed
               FROM alert_webhooks w LEFT JOIN alert_deliveries d USING (webhook_id)
               GROUP BY w.webhook_id ORDER BY w.webhook_id"""
        ).fetchall()


def delete_webhook(conn: psycopg.Connection[Any], webhook_id: str) -> bool:
    return conn.execute("DELETE FROM alert_webhooks WHERE webhook_id = %s", (webhook_id,)).rowcount > 0


# -- payloads ----------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def zhongdu_payload(event: dict[str, Any], incident: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event["event_id"],
        "event": event["kind"],
        "at": _iso(event["at"]),
        "actor": event["actor"],
        "note": event["note"],
        "incident": {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in incident.items()},
    }


def alertmanager_payload(incident: dict[str, Any], generator_url: str = "") -> list[dict[str, Any]]:
    """Prometheus Alertmanager's `POST /api/v2/alerts` body: one alert, `endsAt` once resolved."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": incident["rule_id"],
            "source": incident["source"],
            "source_kind": incident["source_kind"],
            "severity": incident["severity"],
            "incident_id": str(incident["incident_id"]),
            "service": "zhongdu",
        },
        "annotations": {
            "summary": incident["summary"],
            "state": incident["state"],
            "acknowledged_by": incident["acked_by"] or "",
            "flapping": str(incident["flapping"]).lower(),
            "escalation_level": str(incident["escalation_level"]),
        },
        "startsAt": _iso(incident["opened_at"]),
        "generatorURL": generator_url or f"/v1/alerts/{incident['incident_id']}",
    }
    if incident["resolved_at"] is not None:
        alert["endsAt"] = _iso(incident["resolved_at"])
    return [alert]


# -- dispatcher --------------------------------------------------------------------------------------


class DispatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "zhongdu_alerts_webhook_attempts", "webhook requests, by outcome (delivered, failed, gave_up)",
            ["outcome"], registry=registry,
        )  # fmt: skip


_default: DispatchMetrics | None = None
_lock = threading.Lock()


def default_metrics() -> DispatchMetrics:
    global _default
    with _lock:
        if _default is None:
            _default = DispatchMetrics(REGISTRY)
        return _default


class Dispatcher:
    """Queues new events for every matching hook and sends what is due; `run_once` is one round."""

    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str | None = None,
        schema: str | None = None,
        metrics: DispatchMetrics | None = None,
    ) -> None:
        url = database_url or settings.database_url
        if not url:
            raise StorageError("the webhook dispatcher needs a database: set ZHONGDU_DATABASE_URL")
        self.url, self.schema, self.settings = url, schema, settings
        self.metrics = metrics or default_metrics()
        self._conn: psycopg.Connection[Any] | None = None
        self._http = httpx.Client(timeout=settings.alerts_webhook_timeout_s)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = storage.connect(self.url, schema=self.schema)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self._http.close()

    def enqueue(self, conn: psycopg.Connection[Any]) -> int:
        """One delivery row per new event and matching hook (events after the hook was added)."""
        row = conn.execute(
            "SELECT event_id FROM alert_cursors WHERE name = %s FOR UPDATE", (CURSOR,)
        ).fetchone()
        after = int(row[0]) if row is not None and row[0] is not None else 0
        top = conn.execute("SELECT coalesce(max(event_id), 0) FROM alert_events").fetchone()
        newest = int(top[0]) if top else 0
        added = conn.execute(
            """INSERT INTO alert_deliveries (event_id, webhook_id)
               SELECT e.event_id, w.webhook_id
               FROM alert_events e JOIN alert_incidents i USING (incident_id)
               JOIN alert_webhooks w ON w.enabled AND e.event_id > w.start_after
               WHERE e.event_id > %s AND e.event_id <= %s
                 AND (CASE i.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)
                     >= (CASE w.min_severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)
               ON CONFLICT DO NOTHING""",
            (after, newest),
        ).rowcount
        conn.execute(
            """INSERT INTO alert_cursors (name, event_id) VALUES (%s, %s)
               ON CONFLICT (name) DO UPDATE SET event_id = EXCLUDED.event_id""",
            (CURSOR, newest),
        )
        return added

    def run_once(self) -> dict[str, int]:
        """Enqueue new events, then try every due delivery once (oldest first)."""
        conn = self._connection()
        outcome = {"delivered": 0, "failed": 0, "gave_up": 0}
        try:
            self.enqueue(conn)
            conn.commit()
            with conn.cursor(row_factory=dict_row) as cur:
                due = cur.execute(
                    """SELECT d.event_id, d.webhook_id, d.attempts, w.url, w.secret, w.format,
                              e.kind, e.at, e.actor, e.note, e.incident_id
                       FROM alert_deliveries d JOIN alert_webhooks w USING (webhook_id)
                       JOIN alert_events e USING (event_id)
                       WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt_at <= now()
                       ORDER BY d.event_id LIMIT %s FOR UPDATE OF d SKIP LOCKED""",
                    (BATCH,),
                ).fetchall()
                for item in due:
                    incident = get_incident(conn, item["incident_id"])
                    result = self._send(item, incident)
                    outcome[result] += 1
                    self.metrics.deliveries.labels(result).inc()
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        return outcome

    def _send(self, item: dict[str, Any], incident: dict[str, Any] | None) -> str:
        conn = self._connection()
        if incident is None:  # deleted with its rule
            conn.execute(
                "UPDATE alert_deliveries SET gave_up_at = now(), last_error = 'incident deleted' "
                "WHERE event_id = %s AND webhook_id = %s", (item["event_id"], item["webhook_id"]),
            )  # fmt: skip
            return "gave_up"
        event = {k: item[k] for k in ("event_id", "kind", "at", "actor", "note")}
        payload: Any = (
            alertmanager_payload(incident)
            if item["format"] == "alertmanager"
            else zhongdu_payload(event, incident)
        )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "zhongdu-alerts/1",
            "X-Zhongdu-Signature": sign(item["secret"], body),
            "X-Zhongdu-Delivery": str(item["event_id"]),
            "X-Zhongdu-Event": item["kind"],
        }
        error = None
        try:
            answer = self._http.post(item["url"], content=body, headers=headers)
            if 200 <= answer.status_code < 300:
                conn.execute(
                    "UPDATE alert_deliveries SET attempts = attempts + 1, delivered_at = now(), "
                    "last_error = NULL WHERE event_id = %s AND webhook_id = %s",
                    (item["event_id"], item["webhook_id"]),
                )
                return "delivered"
            error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempts = int(item["attempts"]) + 1
        if attempts >= self.settings.alerts_webhook_max_attempts:
            conn.execute(
                "UPDATE alert_deliveries SET attempts = %s, gave_up_at = now(), last_error = %s "
                "WHERE event_id = %s AND webhook_id = %s",
                (attempts, error, item["event_id"], item["webhook_id"]),
            )
            log.warning("webhook %s gave up on event %s: %s", item["webhook_id"], item["event_id"], error)
            return "gave_up"
        backoff = min(MAX_BACKOFF_S, 2.0**attempts)
        conn.execute(
            """UPDATE alert_deliveries SET attempts = %s, last_error = %s,
                      next_attempt_at = now() + make_interval(secs => %s)
               WHERE event_id = %s AND webhook_id = %s""",
            (attempts, error, backoff, item["event_id"], item["webhook_id"]),
        )
        log.info(
            "webhook %s failed for event %s (%s); retry in %.0f s",
            item["webhook_id"],
            item["event_id"],
            error,
            backoff,
        )
        return "failed"

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                self.run_once()
                delay = 1.0
            except (psycopg.OperationalError, psycopg.InterfaceError, StorageError) as exc:
                log.warning("webhook dispatch failed (%s); retrying in %.0f s", exc, delay)
                if self._conn is not None:
                    self._conn.close()
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            stop.wait(interval_s)
        self.close()
