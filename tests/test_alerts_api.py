"""Alerts through the API (real PostgreSQL) and webhooks delivered to a receiver this test starts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import storage
from zhongdu.alerts import raise_incident
from zhongdu.alerts._webhooks import Dispatcher, DispatchMetrics, add_webhook, verify
from zhongdu.settings import Settings

from ._api_fixtures import ADMIN_KEY, api_settings, make_key, running_app

pytestmark = [pytest.mark.postgres]

ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def client(pg_migrated: str) -> Iterator[Any]:
    with running_app(api_settings(pg_migrated, None), live=False) as client:
        yield client


@pytest.fixture
def db(pg_migrated: str) -> str:
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE alert_incidents, alert_webhooks, alert_cursors, readings, devices CASCADE")
        conn.execute("DELETE FROM alert_rules WHERE condition = 'external' OR rule_id LIKE 't-%'")
    return pg_migrated


def _raise(db: str, source: str, rule_id: str = "hotspot-new", severity: str = "warning") -> int:
    with storage.connect(db) as conn:
        opened = raise_incident(conn, rule_id, source, summary=f"new hotspot at {source}", severity=severity,
                                source_kind="hotspot")  # fmt: skip
        conn.commit()
    return opened.incident_id


def test_list_ack_resolve_and_roles(client: Any, db: str) -> None:
    first = _raise(db, "cell-1")
    second = _raise(db, "cell-2")
    listed = client.get("/v1/alerts", params={"state": "open"}).json()
    assert {i["incident_id"] for i in listed["items"]} == {first, second}
    assert listed["counts"] == {"open": 2, "acknowledged": 0}
    assert client.post(f"/v1/alerts/{first}/ack", json={"note": "looking"}).status_code == 401
    viewer = make_key(client, "viewer")
    assert client.post(f"/v1/alerts/{first}/ack", headers={"X-API-Key": viewer}).status_code == 403
    operator = make_key(client, "operator", name="ops-console")
    answer = client.post(f"/v1/alerts/{first}/ack", json={"note": "crew dispatched", "by": "陳小姐"},
                         headers={"X-API-Key": operator})  # fmt: skip
    assert answer.status_code == 200, answer.text
    acked = answer.json()
    assert acked["state"] == "acknowledged" and acked["acked_by"] == "陳小姐"
    assert acked["ack_note"] == "crew dispatched" and acked["acked_at"] is not None
    again = client.post(f"/v1/alerts/{first}/ack", headers={"X-API-Key": operator})
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    assert client.post("/v1/alerts/999999/ack", headers={"X-API-Key": operator}).status_code == 404
    no_name = client.post(f"/v1/alerts/{second}/ack", headers={"X-API-Key": operator}).json()
    assert no_name["acked_by"] == "ops-console"  # the key's name when no person is given
    assert client.get("/v1/alerts", params={"state": "acknowledged"}).json()["counts"]["acknowledged"] == 2
    resolved = client.post(
        f"/v1/alerts/{first}/resolve", json={"note": "cleared"}, headers={"X-API-Key": operator}
    )
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_by"] == "ops-console"
    assert client.get(f"/v1/alerts/{first}").json()["state"] == "resolved"
    assert client.get("/v1/alerts", params={"state": "bogus"}).status_code == 422


def test_rules_are_managed_with_an_operator_key(client: Any, db: str) -> None:
    operator = make_key(client, "operator")
    rule = {"rule_id": "t-co2", "name": "CO2 high", "condition": "above", "metric": "co2", "threshold": 1500,
            "clear_threshold": 1200, "for_s": 300, "device_kind": "air", "source_note": "indoor guideline"}  # fmt: skip
    assert client.put("/v1/alerts/rules/t-co2", json=rule).status_code == 401
    answer = client.put("/v1/alerts/rules/t-co2", json=rule, headers={"X-API-Key": operator})
    assert answer.status_code == 200, answer.text
    assert answer.json()["for_s"] == 300
    bad = client.put(
        "/v1/alerts/rules/t-co2", json={**rule, "clear_threshold": 2000}, headers={"X-API-Key": operator}
    )
    assert bad.status_code == 422 and "clear_threshold" in bad.json()["detail"]
    unknown = client.put(
        "/v1/alerts/rules/t-co2", json={**rule, "metric": "co3"}, headers={"X-API-Key": operator}
    )
    assert unknown.status_code == 422 and "catalogue" in unknown.json()["detail"]
    ids = [r["rule_id"] for r in client.get("/v1/alerts/rules").json()["items"]]
    assert "t-co2" in ids and "aqi-pm2_5" in ids
    base = datetime(2026, 2, 1, tzinfo=UTC)
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO devices (device_id, kind) VALUES ('air-bt', 'air')")
        conn.cursor().executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, 'air-bt', 'co2', %s)",
            [(base + timedelta(minutes=i), 2000.0 if 10 <= i < 30 else 500.0) for i in range(60)],
        )
    result = client.post("/v1/alerts/rules/t-co2/backtest",
                         json={"from": base.isoformat(), "to": (base + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert result.status_code == 200, result.text
    [would] = result.json()["incidents"]
    assert would["opened_at"].startswith("2026-02-01T00:15:00") and would["peak"] == 2000.0
    assert client.delete("/v1/alerts/rules/t-co2", headers={"X-API-Key": operator}).status_code == 204
    assert client.delete("/v1/alerts/rules/t-co2", headers={"X-API-Key": operator}).status_code == 404


def test_the_stream_carries_new_alerts_and_counts(client: Any, db: str) -> None:
    names: list[tuple[str, Any]] = []
    with client.stream("GET", "/v1/alerts/stream", params={"max_seconds": 4}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                names.append((name, json.loads(line[6:])))
                if len(names) == 1:  # connected: now an incident opens elsewhere
                    threading.Thread(target=_raise, args=(db, "cell-live")).start()
    assert names[0] == ("counts", {"open": 0, "acknowledged": 0})
    alerts = [body for n, body in names if n == "alert"]
    assert len(alerts) == 1 and alerts[0]["event"] == "opened"
    assert alerts[0]["incident"]["source"] == "cell-live"
    assert names[-1] == ("counts", {"open": 1, "acknowledged": 0})
    # a client reconnecting with the last id it saw gets what it missed, then the counts
    _raise(db, "cell-missed")
    with client.stream(
        "GET",
        "/v1/alerts/stream",
        params={"max_seconds": 0.5},
        headers={"Last-Event-ID": str(alerts[0]["event_id"])},
    ) as answer:
        text = "".join(answer.iter_text())
    assert text.count("event: alert") == 1 and "cell-missed" in text and "cell-live" not in text


class Receiver:
    """An HTTP server that records what it is sent and fails the first `fail` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail > 0:
                    outer.fail -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_receives_each_event_once_signed_and_retried_after_a_failure(db: str) -> None:
    receiver = Receiver(fail=1)
    alertmanager = Receiver(fail=0)
    settings = Settings(database_url=db, alerts_webhook_timeout_s=5)
    dispatcher = Dispatcher(settings, metrics=DispatchMetrics(CollectorRegistry()))
    try:
        with storage.connect(db) as conn:
            hook = add_webhook(conn, "city", receiver.url)
            add_webhook(conn, "am", alertmanager.url, fmt="alertmanager", min_severity="critical")
            conn.commit()
        first = _raise(db, "cell-a")
        second = _raise(db, "cell-b", severity="critical")
        assert dispatcher.run_once() == {"delivered": 2, "failed": 1, "gave_up": 0}  # cell-a to "city" failed
        assert [json.loads(b)["incident"]["incident_id"] for _, b in receiver.received] == [second]
        assert dispatcher.run_once()["delivered"] == 0  # the retry waits its backoff (2 s)
        with psycopg.connect(db) as conn:
            conn.execute("UPDATE alert_deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL")
        assert dispatcher.run_once() == {"delivered": 1, "failed": 0, "gave_up": 0}
        for _ in range(3):
            dispatcher.run_once()
        ids = sorted(json.loads(b)["incident"]["incident_id"] for _, b in receiver.received)
        assert ids == [first, second]  # each once
        for headers, body in receiver.received:
            assert verify(hook["secret"], body, headers["X-Zhongdu-Signature"])
            assert not verify("wrong-secret", body, headers["X-Zhongdu-Signature"])
            assert headers["X-Zhongdu-Event"] == "opened"
        [(_, am_body)] = alertmanager.received  # only the critical one
        [alert] = json.loads(am_body)
        assert alert["labels"]["alertname"] == "hotspot-new" and alert["labels"]["severity"] == "critical"
        assert alert["startsAt"] and "endsAt" not in alert
        with storage.connect(db) as conn:
            from zhongdu.alerts import clear_incident

            clear_incident(conn, "hotspot-new", "cell-b")
            conn.commit()
        dispatcher.run_once()
        resolved = json.loads(alertmanager.received[-1][1])[0]
        assert resolved["endsAt"] and resolved["annotations"]["state"] == "resolved"
        with psycopg.connect(db) as conn:
            attempts = conn.execute(
                "SELECT attempts FROM alert_deliveries WHERE webhook_id = 'city' ORDER BY event_id"
            )
            assert [r[0] for r in attempts] == [2, 1, 1]
    finally:
        dispatcher.close()
        receiver.close()
        alertmanager.close()


def test_webhooks_api_keeps_the_secret_out_of_listings(client: Any, db: str) -> None:
    body = {"webhook_id": "t-city", "url": "http://127.0.0.1:9/hook", "format": "alertmanager"}
    operator = make_key(client, "operator")
    assert client.post("/v1/alerts/webhooks", json=body, headers={"X-API-Key": operator}).status_code == 403
    created = client.post("/v1/alerts/webhooks", json=body, headers=ADMIN)
    assert created.status_code == 201 and len(created.json()["secret"]) >= 32
    assert client.post("/v1/alerts/webhooks", json=body, headers=ADMIN).status_code == 409
    listed = client.get("/v1/alerts/webhooks", headers=ADMIN).json()["items"]
    assert listed[0]["webhook_id"] == "t-city" and "secret" not in listed[0]
    bad = client.post(
        "/v1/alerts/webhooks", json={**body, "webhook_id": "x2", "url": "ftp://x"}, headers=ADMIN
    )
    assert bad.status_code == 422
    assert client.delete("/v1/alerts/webhooks/t-city", headers=ADMIN).status_code == 204


def test_cli_manages_rules_and_lists_incidents(db: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from zhongdu.cli import main

    monkeypatch.setenv("ZHONGDU_DATABASE_URL", db)
    assert main(["alerts", "rules", "set", "t-cli", "--name", "CO2", "--condition", "above", "--metric", "co2",
                 "--threshold", "1500", "--clear-threshold", "1200", "--for", "300"]) == 0  # fmt: skip
    assert (
        main(["alerts", "rules", "set", "t-bad", "--name", "x", "--condition", "above", "--metric", "co3"])
        == 2
    )
    incident = _raise(db, "cell-cli")
    assert main(["alerts", "ack", str(incident), "--by", "林先生", "--note", "on site"]) == 0
    assert main(["alerts", "list", "--state", "acknowledged"]) == 0
    out = capsys.readouterr()
    assert "rule t-cli created" in out.out and "not in the catalogue" in out.err
    assert f"#{incident} acknowledged" in out.out and "ack 林先生" in out.out
    assert main(["alerts", "webhooks", "add", "t-hook", "http://127.0.0.1:9/x"]) == 0
    assert main(["alerts", "webhooks", "list"]) == 0
    assert "delivered 0, pending 0, failed 0" in capsys.readouterr().out
