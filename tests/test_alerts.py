"""Alerts against real servers: readings published over Mosquitto, ingested into PostgreSQL, evaluated."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import storage
from zhongdu.alerts import Rule, acknowledge, clear_incident, raise_incident, resolve
from zhongdu.alerts._backtest import backtest
from zhongdu.alerts._evaluator import Evaluator, EvaluatorMetrics
from zhongdu.alerts._machine import Action, State, condition, step
from zhongdu.alerts._rules import DEFAULT_RULES, save_rule
from zhongdu.errors import ConfigError
from zhongdu.ingest import build_pack
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

from ._ingest_fixtures import publish_all, publisher

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]

Wait = Callable[..., bool]


@pytest.fixture
def db(pg_migrated: str) -> Iterator[str]:
    """The module's migrated database without telemetry, incidents or test rules."""
    with psycopg.connect(pg_migrated) as conn:
        conn.execute(
            "TRUNCATE readings, station_telemetry, entity_status, devices, stations, alert_incidents, "
            "alert_state, alert_cursors, alert_webhooks CASCADE"
        )
        conn.execute("DELETE FROM alert_rules WHERE rule_id LIKE 't-%'")
        conn.execute("UPDATE alert_rules SET enabled = false")  # the defaults stay out of the way
    yield pg_migrated


def settings(db_url: str, **kw: Any) -> Settings:
    return Settings(database_url=db_url, alerts_poll_interval_s=0.05, **kw)


_evaluators: list[Evaluator] = []


def evaluator(db_url: str) -> Evaluator:
    ev = Evaluator(settings(db_url), metrics=EvaluatorMetrics(CollectorRegistry()))
    _evaluators.append(ev)
    return ev


@pytest.fixture(autouse=True)
def _close_evaluators() -> Iterator[None]:
    yield
    while _evaluators:
        _evaluators.pop().close()


def add_rule(db_url: str, rule: Rule) -> None:
    with storage.connect(db_url) as conn:
        save_rule(conn, rule)
        conn.commit()


def incidents(db_url: str, rule_id: str) -> list[dict[str, Any]]:
    with storage.connect(db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM alert_incidents WHERE rule_id = %s ORDER BY incident_id", (rule_id,)
        ).fetchall()


def events(db_url: str, incident_id: int) -> list[str]:
    with storage.connect(db_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT kind FROM alert_events WHERE incident_id = %s ORDER BY event_id", (incident_id,)
        )]  # fmt: skip


@pytest.fixture
def ingester(db: str, mqtt_url: str) -> Iterator[Ingester]:
    s = Settings(
        database_url=db, mqtt_url=mqtt_url, auto_register=True,
        mqtt_share_group=f"a{uuid.uuid4().hex[:8]}", ingest_batch_interval_ms=20,
    )  # fmt: skip
    worker = Ingester(s, metrics=IngestMetrics(CollectorRegistry()), client_id=f"alerts-{uuid.uuid4().hex[:8]}",
                      session_expiry_s=30)  # fmt: skip
    worker.start()
    assert worker.wait_connected()
    yield worker
    worker.stop()


@pytest.fixture
def running_evaluator(db: str) -> Iterator[Evaluator]:
    """An evaluator loop in a thread (as `zhongdu alerts run` runs it)."""
    ev = evaluator(db)
    ev.run_once()  # sets the cursor: alerts start from now
    stop = threading.Event()
    thread = threading.Thread(target=ev.run, args=(stop,), daemon=True)
    thread.start()
    yield ev
    stop.set()
    thread.join(10)


def packs(
    device: str, metric: str, values: list[float], t0: float, dt: float = 1.0
) -> list[tuple[str, bytes]]:
    return [
        (
            f"zhongdu/v1/park/{device}/senml",
            json.dumps(build_pack(device, {metric: v}, time_s=t0 + i * dt)).encode(),
        )
        for i, v in enumerate(values)
    ]


def test_sustained_crossing_over_mqtt_opens_one_incident_and_clearing_resolves_it(
    db: str, mqtt_url: str, ingester: Ingester, running_evaluator: Evaluator, wait_until: Wait
) -> None:
    device = f"air-{uuid.uuid4().hex[:6]}"
    add_rule(db, Rule("t-pm", "PM2.5 high", "above", metric="pm2_5", device_kind="air", threshold=50.0,
                      clear_threshold=40.0, for_s=3.0, clear_for_s=2.0))  # fmt: skip
    t0 = time.time()
    with publisher(mqtt_url, "alerts-pub") as client:
        # a short spike (under the 3 s the rule asks for) opens nothing
        publish_all(client, packs(device, "pm2_5", [20, 80, 85, 20], t0))
        # two messages milliseconds apart, then a sustained crossing
        publish_all(client, packs(device, "pm2_5", [90, 91], t0 + 4, dt=0.002))
        publish_all(client, packs(device, "pm2_5", [90, 92, 95, 93, 91], t0 + 5))
        assert wait_until(lambda: len(incidents(db, "t-pm")) == 1)
        opened = incidents(db, "t-pm")[0]
        assert opened["state"] == "open" and opened["source"] == device
        assert opened["data_time"] >= datetime.fromtimestamp(t0 + 7, UTC)  # 3 s after t0 + 4
        # back under the clear line (45 stays inside the hysteresis band: no resolution)
        publish_all(client, packs(device, "pm2_5", [45, 45], t0 + 10))
        time.sleep(0.5)
        assert incidents(db, "t-pm")[0]["state"] == "open"
        publish_all(client, packs(device, "pm2_5", [30, 25, 20, 20], t0 + 12))
        assert wait_until(lambda: incidents(db, "t-pm")[0]["state"] == "resolved")
    found = incidents(db, "t-pm")
    assert len(found) == 1
    assert found[0]["resolved_by"] == "auto"
    assert events(db, found[0]["incident_id"]) == ["opened", "resolved"]


def test_a_flapping_value_opens_one_incident_flagged_flapping(
    db: str, mqtt_url: str, ingester: Ingester, running_evaluator: Evaluator, wait_until: Wait
) -> None:
    device = f"noise-{uuid.uuid4().hex[:6]}"
    add_rule(db, Rule("t-noise", "Noise", "above", metric="noise_laeq", threshold=65.0, clear_threshold=60.0,
                      clear_for_s=5.0, flap_count=4, flap_window_s=600))  # fmt: skip
    t0 = time.time()
    with publisher(mqtt_url, "alerts-pub") as client:
        publish_all(client, packs(device, "noise_laeq", [70, 50] * 6, t0))
        assert wait_until(
            lambda: len(incidents(db, "t-noise")) == 1 and incidents(db, "t-noise")[0]["flapping"]
        )
        time.sleep(0.5)
    found = incidents(db, "t-noise")
    assert len(found) == 1, found
    assert found[0]["state"] == "open" and found[0]["flaps"] >= 3
    kinds = events(db, found[0]["incident_id"])
    assert kinds.count("opened") == 1 and kinds.count("flapping") == 1


def test_acknowledging_records_who_and_rearms_when_the_condition_clears(db: str) -> None:
    device = "air-ack"
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, device, "air")
        conn.commit()
    add_rule(db, Rule("t-ack", "PM10", "above", metric="pm10", threshold=100.0))
    ev = evaluator(db)
    ev.run_once()
    t0 = time.time()

    def put(values: list[float], start: float) -> None:
        with storage.connect(db) as conn:
            conn.cursor().executemany(
                "INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), %s, 'pm10', %s)",
                [(start + i, device, v) for i, v in enumerate(values)],
            )
            conn.commit()

    put([150.0], t0)
    ev.run_once()
    [incident] = incidents(db, "t-ack")
    with storage.connect(db) as conn:
        acked = acknowledge(conn, incident["incident_id"], by="operator 王", note="crew sent")
        conn.commit()
        with pytest.raises(ConfigError, match="only an open one"):
            acknowledge(conn, incident["incident_id"], by="someone else")
    assert acked["acked_by"] == "operator 王" and acked["ack_note"] == "crew sent" and acked["acked_at"]
    put([150.0, 50.0], t0 + 1)
    ev.run_once()
    assert incidents(db, "t-ack")[0]["state"] == "resolved"
    put([160.0], t0 + 3)
    ev.run_once()
    found = incidents(db, "t-ack")
    assert [i["state"] for i in found] == ["resolved", "open"]  # re-armed: a new incident
    assert events(db, found[0]["incident_id"]) == ["opened", "acknowledged", "resolved"]


def test_state_survives_an_evaluator_restart(db: str) -> None:
    device = "air-restart"
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, device, "air")
        conn.commit()
    add_rule(db, Rule("t-restart", "PM2.5", "above", metric="pm2_5", threshold=50.0, for_s=10.0))
    first = evaluator(db)
    first.run_once()
    t0 = time.time()
    with storage.connect(db) as conn:
        conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), %s, 'pm2_5', 60)",
                     (t0, device))  # fmt: skip
        conn.commit()
    first.run_once()
    first.close()
    with storage.connect(db) as conn:
        pending = conn.execute(
            "SELECT extract(epoch FROM pending_since)::float8 FROM alert_state WHERE rule_id = 't-restart'"
        ).fetchone()
        assert pending is not None and abs(pending[0] - t0) < 0.01
        conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), %s, 'pm2_5', 61)",
                     (t0 + 11, device))  # fmt: skip
        conn.commit()
    second = evaluator(db)
    second.run_once()  # the pending condition from before the restart now completes its 10 s
    [incident] = incidents(db, "t-restart")
    assert incident["state"] == "open" and incident["value"] == 61


def test_one_open_incident_per_source_and_rule_is_enforced_by_the_database(db: str) -> None:
    """Sixteen connections raise the same incident at once: one incident, the others find it."""

    def raise_one(_: int) -> tuple[int, bool]:
        with storage.connect(db) as conn:
            opened = raise_incident(conn, "t-hotspot", "8a4b9c", summary="new hotspot", source_kind="hotspot")
            conn.commit()
            return opened.incident_id, opened.new

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(raise_one, range(16)))
    assert len({i for i, _ in results}) == 1
    assert sum(new for _, new in results) == 1
    with storage.connect(db) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO alert_incidents (rule_id, source, severity, summary) "
                         "VALUES ('t-hotspot', '8a4b9c', 'warning', 'twin')")  # fmt: skip
        conn.rollback()
        assert clear_incident(conn, "t-hotspot", "8a4b9c") == results[0][0]
        conn.commit()
        again = raise_incident(conn, "t-hotspot", "8a4b9c", summary="back", source_kind="hotspot")
        conn.commit()
    assert again.new and again.incident_id != results[0][0]


def test_no_data_escalation_and_station_outage(db: str) -> None:
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, "meter-quiet", "meter")
        storage.telemetry.register_device(conn, "meter-busy", "meter")
        storage.telemetry.register_station(conn, "TC-9")
        conn.execute("INSERT INTO entity_status (kind, entity_id, status, source, observed_at) "
                     "VALUES ('bs', 'TC-9', 'down', 'telemetry', now())")  # fmt: skip
        conn.commit()
    add_rule(db, Rule("t-silent", "Meter silent", "no_data", metric="energy", device_kind="meter", no_data_s=60,
                      escalate_after_s=30))  # fmt: skip
    add_rule(db, Rule("t-down", "Station down", "station_down"))
    ev = evaluator(db)
    now = time.time()
    with storage.connect(db) as conn:
        conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), 'meter-busy', 'energy', 5)",
                     (now,))  # fmt: skip
        conn.commit()
    ev.run_once(now=now + 30)
    assert incidents(db, "t-silent") == []
    with storage.connect(db) as conn:
        conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), 'meter-busy', 'energy', 6)",
                     (now + 100,))  # fmt: skip
        conn.commit()
    ev.run_once(now=now + 120)  # both registered at "now"; one reported 20 s ago
    silent = incidents(db, "t-silent")
    assert [i["source"] for i in silent] == ["meter-quiet"]
    [down] = incidents(db, "t-down")
    assert down["source"] == "TC-9" and down["source_kind"] == "station"
    with storage.connect(db) as conn:
        conn.execute(
            "UPDATE alert_incidents SET opened_at = now() - interval '1 minute' WHERE rule_id = 't-silent'"
        )
        conn.commit()
    ev.run_once(now=now + 121)
    assert incidents(db, "t-silent")[0]["escalation_level"] == 1
    assert events(db, silent[0]["incident_id"]) == ["opened", "escalated"]
    ev.run_once(now=now + 122)  # escalates again only after another 30 s
    assert incidents(db, "t-silent")[0]["escalation_level"] == 1
    with storage.connect(db) as conn:
        conn.execute("UPDATE entity_status SET status = 'up', observed_at = now() WHERE entity_id = 'TC-9'")
        resolve(conn, silent[0]["incident_id"], by="operator", note="meter replaced")
        conn.commit()
    ev.run_once(now=time.time())
    assert incidents(db, "t-down")[0]["state"] == "resolved"
    assert incidents(db, "t-silent")[0]["resolved_by"] == "operator"


def test_backtest_replays_history_with_the_live_machine(db: str) -> None:
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, "air-hist", "air")
        base = datetime(2026, 1, 10, tzinfo=UTC)
        values = [10.0] * 30 + [80.0] * 70 + [10.0] * 20 + [80.0, 10.0] * 10 + [10.0] * 30
        conn.cursor().executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, 'air-hist', 'pm2_5', %s)",
            [(base + timedelta(minutes=i), v) for i, v in enumerate(values)],
        )
        conn.commit()
        rule = Rule("t-bt", "PM2.5", "above", metric="pm2_5", threshold=50.0, clear_threshold=40.0,
                    for_s=3600, clear_for_s=300, flap_window_s=3600, flap_count=4)  # fmt: skip
        result = backtest(conn, rule, base, base + timedelta(days=1))
    assert result["readings"] == len(values)
    [first] = result["incidents"]  # the 20-minute flapping stretch never sustains an hour
    assert first["opened_at"] == (base + timedelta(minutes=90)).isoformat()
    assert first["resolved_at"] == (base + timedelta(minutes=105)).isoformat()
    assert first["peak"] == 80.0


def test_machine_hysteresis_and_active_hours() -> None:
    rule = Rule("t-h", "h", "above", metric="pm2_5", threshold=50.0, clear_threshold=40.0)
    state = State()
    actions = []
    for t, value in enumerate([49, 51, 49, 51, 45, 39, 41]):
        cond = condition(rule, state, float(t), float(value))
        assert cond is not None
        actions.append(step(state, rule, float(t), cond))
    assert actions == [None, Action.FIRE, None, None, None, Action.CLEAR, None]
    night = Rule("t-n", "n", "above", metric="noise_laeq", threshold=55.0, active_hours="23-07")
    at_noon = datetime(2026, 1, 10, 4, tzinfo=UTC).timestamp()  # 12:00 in Taipei
    at_midnight = datetime(2026, 1, 10, 16, tzinfo=UTC).timestamp()  # 00:00 in Taipei
    assert condition(night, State(), at_noon, 60.0) is False
    assert condition(night, State(), at_midnight, 60.0) is True


def test_defaults_are_installed_with_their_sources(db: str) -> None:
    with storage.connect(db) as conn:
        rows = {r[0]: r for r in conn.execute("SELECT rule_id, threshold, source_note FROM alert_rules")}
    for rule in DEFAULT_RULES:
        assert rule.rule_id in rows and rows[rule.rule_id][2]
    assert rows["aqi-pm2_5"][1] == 35.5 and rows["noise-night"][1] == 55.0
    with pytest.raises(ConfigError, match="not in the catalogue"):
        Rule("t-bad", "bad", "above", metric="pm25", threshold=1).validate()
    with pytest.raises(ConfigError, match="use condition 'event'"):
        Rule("t-bad", "bad", "above", metric="intrusion", threshold=1).validate()


def test_a_row_committed_late_by_another_worker_is_evaluated_once(db: str) -> None:
    """Two workers commit out of data-time order: device A's reading lands after device B's newer
    one moved the cursor; the overlap finds it, through the primary key, and only once."""
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, "sec-a", "security")
        storage.telemetry.register_device(conn, "sec-b", "security")
        conn.commit()
    add_rule(db, Rule("t-late", "Intrusion", "event", metric="intrusion", threshold=1.0))
    ev = evaluator(db)
    ev.run_once()
    t0 = time.time()

    def put(device: str, t: float, value: float) -> None:
        with storage.connect(db) as conn:
            conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), %s, "
                         "'intrusion', %s)", (t, device, value))  # fmt: skip
            conn.commit()

    put("sec-a", t0, 0.0)
    put("sec-b", t0, 0.0)
    ev.run_once()  # both devices known from here on
    put("sec-b", t0 + 1.5, 0.0)
    ev.run_once()  # the cursor is at t0 + 1.5
    put("sec-a", t0 + 1.0, 1.0)  # committed late by the other worker
    first = ev.run_once()
    second = ev.run_once()
    [incident] = incidents(db, "t-late")
    assert incident["source"] == "sec-a" and incident["value"] == 1.0
    assert (first.readings, first.reread) == (1, 1) and second.readings == 0


def test_no_data_waits_while_a_backlog_is_worked_off(db: str) -> None:
    """After a long stop the evaluator reads its backlog in passes; until it has caught up, devices
    whose newer readings are still unread are not called silent."""
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, "meter-b", "meter")
        conn.commit()
    add_rule(db, Rule("t-gap", "Meter silent", "no_data", metric="energy", no_data_s=60))
    ev = Evaluator(settings(db), metrics=EvaluatorMetrics(CollectorRegistry()), batch_limit=5)
    _evaluators.append(ev)
    ev.run_once()
    t0 = time.time()
    with storage.connect(db) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), 'meter-b', 'energy', %s)",
            [(t0 + i, float(i)) for i in range(12)],
        )
        conn.commit()
    ev.run_once(now=t0 + 100)  # reads 5 of 12: the device's newest known reading is 96 s old
    assert incidents(db, "t-gap") == []
    ev.run_once(now=t0 + 100)
    ev.run_once(now=t0 + 100)  # caught up: the last reading (t0 + 11) is 89 s old, over 60
    assert [i["source"] for i in incidents(db, "t-gap")] == ["meter-b"]


def test_an_intrusion_stays_open_until_a_person_resolves_it(db: str) -> None:
    with storage.connect(db) as conn:
        storage.telemetry.register_device(conn, "sec-gate", "security")
        conn.execute("UPDATE alert_rules SET enabled = true WHERE rule_id = 'intrusion'")
        conn.commit()
    ev = evaluator(db)
    ev.run_once()
    t0 = time.time()
    with storage.connect(db) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), 'sec-gate', 'intrusion', %s)",
            [(t0, 1.0), (t0 + 30, 0.0), (t0 + 60, 1.0), (t0 + 90, 0.0)],
        )
        conn.commit()
    ev.run_once()
    [incident] = incidents(db, "intrusion")  # the detector reset twice: still one, still open
    assert incident["state"] == "open" and incident["severity"] == "critical"
    with storage.connect(db) as conn:
        resolve(conn, incident["incident_id"], by="guard 李", note="false alarm, cat")
        conn.commit()
        conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (to_timestamp(%s), 'sec-gate', "
                     "'intrusion', 1)", (t0 + 120,))  # fmt: skip
        conn.commit()
    ev.run_once()
    assert [i["state"] for i in incidents(db, "intrusion")] == ["resolved", "open"]  # re-armed


def test_two_ingest_workers_sharing_the_stream_still_open_one_incident(
    db: str, mqtt_url: str, running_evaluator: Evaluator, wait_until: Wait
) -> None:
    """The device's messages are split between two workers of one shared subscription, committed
    in two orders; the evaluator sees them through the database and opens one incident."""
    group = f"a{uuid.uuid4().hex[:8]}"
    workers = []
    for _ in range(2):
        s = Settings(database_url=db, mqtt_url=mqtt_url, auto_register=True, mqtt_share_group=group,
                     ingest_batch_interval_ms=20)  # fmt: skip
        worker = Ingester(s, metrics=IngestMetrics(CollectorRegistry()), client_id=f"alerts2-{uuid.uuid4().hex[:8]}",
                          session_expiry_s=30)  # fmt: skip
        worker.start()
        assert worker.wait_connected()
        workers.append(worker)
    try:
        device = f"air-{uuid.uuid4().hex[:6]}"
        add_rule(db, Rule("t-two", "PM10 high", "above", metric="pm10", threshold=100.0, for_s=2.0))
        t0 = time.time()
        with publisher(mqtt_url, "alerts-pub2") as client:
            publish_all(client, packs(device, "pm10", [150.0] * 20, t0, dt=0.25))
            assert wait_until(lambda: len(incidents(db, "t-two")) == 1)
            time.sleep(1.0)  # a few more passes: still one
        assert sum(w.stats.committed for w in workers) >= 20
        assert all(w.stats.committed > 0 for w in workers)  # both took a share
        [incident] = incidents(db, "t-two")
        assert incident["state"] == "open" and incident["source"] == device
    finally:
        for worker in workers:
            worker.stop()
