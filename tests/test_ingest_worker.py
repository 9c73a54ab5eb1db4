"""The ingest worker against real servers: Mosquitto (private tuned ones and the machine's), PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import services, storage
from zhongdu.ingest import Reason, build_pack
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

from ._ingest_fixtures import publish_all, publisher, scalar, senml_stream

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]

Wait = Callable[..., bool]


def make_ingester(db: str, broker: str, **kw: object) -> Ingester:
    settings = Settings(
        database_url=db,
        mqtt_url=broker,
        auto_register=bool(kw.pop("auto_register", True)),
        mqtt_share_group=str(kw.pop("group", f"g{uuid.uuid4().hex[:8]}")),
        ingest_batch_interval_ms=20,
    )
    kw.setdefault("client_id", f"test-{uuid.uuid4().hex[:8]}")
    return Ingester(settings, metrics=IngestMetrics(CollectorRegistry()), **kw)  # type: ignore[arg-type]


@pytest.fixture
def clean_db(pg_migrated: str) -> Iterator[str]:
    """The module's migrated database, emptied of telemetry before each test."""
    with psycopg.connect(pg_migrated) as conn:
        conn.execute(
            "TRUNCATE readings, station_telemetry, entity_status, rejected_messages, devices, stations CASCADE"
        )
    yield pg_migrated


def counter(ingester: Ingester, name: str, labels: dict[str, str] | None = None) -> float:
    registry = ingester.metrics.registry
    return registry.get_sample_value(name, labels or {}) or 0.0


def test_end_to_end_rows_status_and_every_rejection(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    with storage.connect(clean_db) as conn:
        storage.telemetry.register_device(conn, "air-1", "air")
        storage.telemetry.register_station(conn, "TC-1")
        storage.telemetry.register_station(conn, "TC-RET")
    with publisher(tuned_broker.url, "pub-retained") as client:  # a will/birth retained before we start
        publish_all(client, [("zhongdu/v1/bs/TC-RET/status", b"offline")], retain=True)
    ingester = make_ingester(clean_db, tuned_broker.url, auto_register=False)
    ingester.start()
    try:
        assert ingester.wait_connected() and ingester.protocol == "5"
        now = time.time()
        good = [
            (
                "zhongdu/v1/park/air-1/senml",
                json.dumps(build_pack("air-1", {"pm2_5": 9.5, "co2": 420}, time_s=now)),
            ),
            (
                "zhongdu/v1/bs/TC-1/telemetry",
                json.dumps(
                    {
                        "time": now - 1,
                        "status": "degraded",
                        "sectors": [
                            {"sector_id": "1", "prb_utilisation": 0.9, "active_users": 40, "tx_power_dbm": 43}
                        ],
                    }
                ),
            ),
            ("zhongdu/v1/bs/TC-1/status", "online"),
        ]
        bad: dict[Reason, tuple[str, str | bytes]] = {
            Reason.BAD_TOPIC: ("zhongdu/v1/park/air-1/nonsense", "[]"),
            Reason.PAYLOAD_TOO_LARGE: ("zhongdu/v1/park/air-1/senml", "x" * 70_000),
            Reason.BAD_JSON: ("zhongdu/v1/park/air-1/senml", b"\xff{"),
            Reason.BAD_SENML: ("zhongdu/v1/park/air-1/senml", "{}"),
            Reason.DEVICE_MISMATCH: ("zhongdu/v1/park/air-1/senml", '[{"n": "air-2:pm10", "v": 1}]'),
            Reason.UNKNOWN_METRIC: ("zhongdu/v1/park/air-1/senml", '[{"n": "air-1:pm3", "v": 1}]'),
            Reason.BAD_UNIT: ("zhongdu/v1/park/air-1/senml", '[{"n": "air-1:pm10", "v": 1, "u": "Cel"}]'),
            Reason.BAD_VALUE: ("zhongdu/v1/park/air-1/senml", '[{"n": "air-1:pm10", "vs": "1"}]'),
            Reason.OUT_OF_RANGE: ("zhongdu/v1/park/air-1/senml", '[{"n": "air-1:humidity", "v": 140}]'),
            Reason.FUTURE_TIMESTAMP: (
                "zhongdu/v1/park/air-1/senml",
                '[{"n": "air-1:pm10", "v": 1, "t": 9000}]',
            ),
            Reason.STALE_TIMESTAMP: (
                "zhongdu/v1/park/air-1/senml",
                '[{"n": "air-1:pm10", "v": 1, "bt": 1e9}]',
            ),
            Reason.UNKNOWN_DEVICE: ("zhongdu/v1/park/ghost-9/senml", '[{"n": "ghost-9:pm10", "v": 1}]'),
            Reason.BAD_TELEMETRY: ("zhongdu/v1/bs/TC-1/telemetry", '{"status": "up"}'),
            Reason.BAD_STATUS: ("zhongdu/v1/park/air-1/status", "napping"),
        }
        messages = [(t, p.encode() if isinstance(p, str) else p) for t, p in [*good, *bad.values()]]
        with publisher(tuned_broker.url, "pub-e2e") as client:
            publish_all(client, messages)
        total = len(messages) + 1  # and the retained status, sent on subscribing
        assert wait_until(lambda: ingester.stats.committed >= total, timeout=30)
        assert wait_until(lambda: ingester.stats.committed > total, timeout=0.5) is False  # no doubles
        assert scalar(clean_db, "SELECT count(*) FROM readings WHERE device_id = 'air-1'") == 2
        assert scalar(clean_db, "SELECT count(*) FROM station_telemetry WHERE station_id = 'TC-1'") == 2
        with psycopg.connect(clean_db) as conn:
            stored = dict(
                conn.execute("SELECT reason, count(*) FROM rejected_messages GROUP BY 1").fetchall()
            )
            status = conn.execute(
                "SELECT status, connection, source FROM entity_status WHERE kind = 'bs' AND entity_id = 'TC-1'"
            ).fetchone()
            big = conn.execute(
                "SELECT length(payload), payload_size FROM rejected_messages WHERE reason = 'payload_too_large'"
            ).fetchone()
            devices = conn.execute("SELECT count(*) FROM devices").fetchone()
        assert stored == {str(reason): 1 for reason in bad}
        assert status == ("degraded", "online", "telemetry")
        assert scalar(clean_db, "SELECT count(*) FROM entity_status WHERE connection = 'offline'") == 1
        assert big == (8192, 70_000)  # capped when stored, true size kept
        assert devices == (1,)  # auto-registration is off: ghost-9 was rejected, not registered
        for reason in bad:
            assert counter(ingester, "zhongdu_ingest_rejected_total", {"reason": str(reason)}) == 1
        assert counter(ingester, "zhongdu_ingest_rows_written_total", {"table": "readings"}) == 2
        assert counter(ingester, "zhongdu_ingest_lag_seconds_count") >= 2
    finally:
        ingester.stop()


def test_auto_register_and_registry_changes_while_running(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    ingester = make_ingester(clean_db, tuned_broker.url, auto_register=False)
    ingester.start()
    try:
        assert ingester.wait_connected()
        now = time.time()
        pack = json.dumps(build_pack("late-1", {"noise_laeq": 55.0}, time_s=now)).encode()
        with publisher(tuned_broker.url, "pub-reg") as client:
            publish_all(client, [("zhongdu/v1/park/late-1/senml", pack)])
            assert wait_until(lambda: ingester.stats.committed >= 1)
            assert ingester.stats.rejected == {"unknown_device": 1}
            with storage.connect(clean_db) as conn:  # registered by an operator while running
                storage.telemetry.register_device(conn, "late-1", "noise")
            publish_all(client, [("zhongdu/v1/park/late-1/senml", pack)])
            assert wait_until(lambda: ingester.stats.committed >= 2)
        assert scalar(clean_db, "SELECT count(*) FROM readings WHERE device_id = 'late-1'") == 1
    finally:
        ingester.stop()

    auto = make_ingester(clean_db, tuned_broker.url, auto_register=True)
    auto.start()
    try:
        assert auto.wait_connected()
        report = json.dumps({"time": time.time(), "status": "up", "sectors": []}).encode()
        pack = json.dumps(build_pack("new-ev", {"power": 7000.0, "plugged": True}, time_s=time.time()))
        with publisher(tuned_broker.url, "pub-auto") as client:
            publish_all(
                client,
                [("zhongdu/v1/bs/TC-NEW/telemetry", report), ("zhongdu/v1/park/new-ev/senml", pack.encode())],
            )
        assert wait_until(lambda: auto.stats.committed >= 2)
        with psycopg.connect(clean_db) as conn:
            assert conn.execute(
                "SELECT kind, auto_registered FROM devices WHERE device_id = 'new-ev'"
            ).fetchone() == (
                "ev_charger",
                True,
            )
            assert conn.execute(
                "SELECT auto_registered FROM stations WHERE station_id = 'TC-NEW'"
            ).fetchone() == (True,)
    finally:
        auto.stop()


def test_newer_status_wins_and_connection_follows_the_status_topic(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    ingester = make_ingester(clean_db, tuned_broker.url)
    ingester.start()
    try:
        assert ingester.wait_connected()
        now = time.time()
        reports = [
            ("zhongdu/v1/bs/TC-9/status", b"online"),
            ("zhongdu/v1/bs/TC-9/telemetry", json.dumps({"time": now - 10, "status": "up"}).encode()),
            (
                "zhongdu/v1/bs/TC-9/telemetry",
                json.dumps({"time": now - 30, "status": "down"}).encode(),
            ),  # older
        ]
        with publisher(tuned_broker.url, "pub-status") as client:
            for message in reports:  # one by one: each in its own batch, the older report last
                done = ingester.stats.committed
                publish_all(client, [message])
                assert wait_until(lambda done=done: ingester.stats.committed > done)
            publish_all(client, [("zhongdu/v1/bs/TC-9/status", b"offline")])
            assert wait_until(
                lambda: (
                    scalar(clean_db, "SELECT count(*) FROM entity_status WHERE connection = 'offline'") == 1
                )
            )
        with psycopg.connect(clean_db) as conn:
            row = conn.execute("SELECT status, connection, observed_at FROM entity_status").fetchone()
        assert (
            row is not None and row[:2] == ("up", "offline") and abs(row[2].timestamp() - (now - 10)) < 1e-3
        )
    finally:
        ingester.stop()


def test_database_connection_lost_mid_stream_loses_nothing(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    ingester = make_ingester(clean_db, tuned_broker.url, writers=2)  # two connections, both killed
    ingester.start()
    stream = senml_stream(20, 3000, time.time() - 600, prefix="dbd")
    try:
        assert ingester.wait_connected()
        with publisher(tuned_broker.url, "pub-dbdown") as client:
            publish_all(client, stream[:1000], rate=2000)
            assert wait_until(lambda: ingester.stats.committed >= 1000)
            # kill the writer's server process: its next batch fails and is retried on a new connection
            with psycopg.connect(clean_db, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
                ).fetchone()
            assert killed is not None and killed[0] >= 1
            publish_all(client, stream[1000:], rate=2000)
        assert wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM readings") == 9000, timeout=60)
        assert counter(ingester, "zhongdu_ingest_db_errors_total") >= 1
    finally:
        ingester.stop()


def test_packs_as_real_devices_write_them_are_stored(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    """Bare names, a path-style bn, bt with relative t, bver and a MAC URN base name, through the
    broker into the database; a MAC URN naming another device than the topic is rejected."""
    now = int(time.time())
    wx, mac = "wx-1", "0024befffe804ff1"
    packs = [
        (wx, [{"n": "temperature", "u": "Cel", "v": 24.3}, {"n": "humidity", "u": "%RH", "v": 61}]),
        (wx, [{"bn": f"{wx}/", "n": "pressure", "u": "hPa", "v": 1013.2}, {"n": "wind_speed", "v": 3.4}]),
        (wx, [{"bt": now - 300, "n": "temperature", "v": 23.1, "t": -60},
              {"n": "temperature", "v": 23.4, "t": 0}, {"n": "rain", "u": "mm", "v": 0.2, "t": 0}]),
        (mac, [{"bver": 10, "bn": f"urn:dev:mac:{mac}:", "bt": now - 5, "n": "temperature", "u": "Cel", "v": 22}]),
        (wx, [{"bn": f"urn:dev:mac:{mac}:", "n": "temperature", "v": 22}]),  # another device's name
    ]  # fmt: skip
    ingester = make_ingester(clean_db, tuned_broker.url)  # auto-registers the two devices
    ingester.start()
    try:
        assert ingester.wait_connected()
        messages = [(f"zhongdu/v1/park/{d}/senml", json.dumps(p).encode()) for d, p in packs]
        with publisher(tuned_broker.url, "pub-real") as client:
            publish_all(client, messages)
        assert wait_until(lambda: ingester.stats.committed >= len(messages), timeout=30)
    finally:
        ingester.stop()
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute(
            "SELECT device_id, metric, value, unit, extract(epoch FROM time)::bigint FROM readings"
        ).fetchall()
        rejected = conn.execute("SELECT reason, topic, detail FROM rejected_messages").fetchall()
    assert len(rows) == 8
    assert sorted((d, m, v, u) for d, m, v, u, _ in rows) == [
        (mac, "temperature", 22.0, "Cel"),
        (wx, "humidity", 61.0, "%RH"),
        (wx, "pressure", 1013.2, "hPa"),
        (wx, "rain", 0.2, "mm"),
        (wx, "temperature", 23.1, "Cel"),
        (wx, "temperature", 23.4, "Cel"),
        (wx, "temperature", 24.3, "Cel"),
        (wx, "wind_speed", 3.4, "m/s"),
    ]
    times = {(m, v): t for _, m, v, _, t in rows}
    assert times[("temperature", 23.1)] == now - 360 and times[("temperature", 23.4)] == now - 300
    assert times[("temperature", 22.0)] == now - 5
    assert abs(times[("temperature", 24.3)] - now) <= 60  # no time: the time of receipt
    assert len(rejected) == 1 and rejected[0][:2] == ("device_mismatch", f"zhongdu/v1/park/{wx}/senml")
    assert mac in rejected[0][2]


def test_two_workers_split_a_shared_subscription(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    workers = [
        make_ingester(clean_db, tuned_broker.url, group=group, client_id=f"w{i}-{group}") for i in (1, 2)
    ]
    for worker in workers:
        worker.start()
    try:
        assert all(w.wait_connected() for w in workers)
        stream = senml_stream(50, 4000, time.time() - 900, prefix="sh")
        with publisher(tuned_broker.url, "pub-shared") as client:
            publish_all(client, stream, rate=3000)
        assert wait_until(lambda: sum(w.stats.committed for w in workers) >= len(stream), timeout=60)
        shares = [w.stats.committed for w in workers]
        assert sum(shares) == len(stream)  # each message went to exactly one worker
        assert min(shares) > len(stream) // 5, shares  # and both got a real share
        assert sum(w.stats.rows_written for w in workers) == 3 * len(stream)  # no duplicates at all
        assert scalar(clean_db, "SELECT count(*) FROM readings") == 3 * len(stream)
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.slow
def test_falls_back_to_mqtt311_on_a_broker_without_v5(clean_db: str, wait_until: Wait) -> None:
    broker = services.start_amqtt()
    try:
        ingester = make_ingester(clean_db, broker.url)
        ingester.start()
        try:
            assert ingester.wait_connected() and ingester.protocol == "3.1.1"
            stream = senml_stream(3, 30, time.time() - 60, prefix="amq")
            with publisher(broker.url, "pub-amqtt", mqtt5=False) as client:
                publish_all(client, stream)
            assert wait_until(lambda: ingester.stats.committed >= 30)
            assert scalar(clean_db, "SELECT count(*) FROM readings WHERE device_id LIKE %s", ("amq-%",)) == 90
        finally:
            ingester.stop()
    finally:
        broker.stop()


def test_machine_broker_end_to_end(clean_db: str, mqtt_url: str, wait_until: Wait) -> None:
    """The machine's Mosquitto (Debian defaults): a short-lived session and a private group."""
    tag = uuid.uuid4().hex[:6]
    ingester = make_ingester(clean_db, mqtt_url, group=f"t{tag}", session_expiry_s=30)
    ingester.start()
    try:
        assert ingester.wait_connected()
        stream = senml_stream(2, 20, time.time() - 60, prefix=f"m{tag}")
        with publisher(mqtt_url, f"pub-{tag}") as client:
            publish_all(client, stream)
        assert wait_until(
            lambda: (
                scalar(clean_db, "SELECT count(*) FROM readings WHERE device_id LIKE %s", (f"m{tag}-%",))
                == 60
            )
        )
    finally:
        ingester.stop()


def test_slow_database_slows_intake_instead_of_growing_memory(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    settings = Settings(
        database_url=clean_db,
        mqtt_url=tuned_broker.url,
        auto_register=True,
        mqtt_share_group=f"g{uuid.uuid4().hex[:8]}",
        ingest_max_inflight=100,  # the broker may send at most 100 unacknowledged messages
        ingest_batch_interval_ms=20,
    )
    ingester = Ingester(
        settings, client_id=f"bp-{uuid.uuid4().hex[:6]}", metrics=IngestMetrics(CollectorRegistry())
    )
    ingester.start()
    stream = senml_stream(10, 2000, time.time() - 1200, prefix="bp")
    try:
        assert ingester.wait_connected()
        with psycopg.connect(clean_db) as blocker:
            blocker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")  # the database stalls
            with publisher(tuned_broker.url, "pub-bp") as client:
                publish_all(client, stream, rate=4000)
            depth = []
            for _ in range(40):  # 2 s with the database stalled
                depth.append(len(ingester._inbox))
                time.sleep(0.05)
            held = ingester.stats.received
            assert held <= 100  # the rest waits in the broker, not in our memory
            assert max(depth) <= 100 and ingester.stats.committed == 0
            blocker.rollback()  # the database is back
        assert wait_until(
            lambda: scalar(clean_db, "SELECT count(*) FROM readings") == 3 * len(stream), timeout=60
        )
    finally:
        ingester.stop()


def test_committed_messages_are_acknowledged_and_not_redelivered(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, group = f"ack-{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    first = make_ingester(clean_db, tuned_broker.url, client_id=client_id, group=group)
    first.start()
    try:
        assert first.wait_connected()
        with publisher(tuned_broker.url, "pub-ack") as client:
            publish_all(client, senml_stream(5, 500, time.time() - 300, prefix="ack"), rate=2000)
        assert wait_until(lambda: first.stats.committed >= 500)
    finally:
        first.stop()
    caplog.set_level("INFO", logger="zhongdu.ingest._worker")
    again = make_ingester(clean_db, tuned_broker.url, client_id=client_id, group=group)  # same session
    again.start()
    try:
        assert again.wait_connected()
        assert wait_until(lambda: again.stats.received > 0, timeout=1.5) is False  # nothing came back
    finally:
        again.stop()
    assert f"resumed the MQTT session of client id '{client_id}'" in caplog.text  # the user is told
    assert scalar(clean_db, "SELECT count(*) FROM readings") == 1500


def test_ingest_help_says_the_client_id_names_a_session() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "ingest", "--help"], capture_output=True, text=True, timeout=60
    )
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "The client id names a persistent MQTT session" in text
    assert "distinct per worker and per database" in text
