"""Device profiles, custom metrics, unit conversion, SenML CBOR and conflicting values.

The pure parts run on the parser; RFC 8428 section 5.1's example packs and the conflicting values
go through a real Mosquitto into PostgreSQL and are checked row by row.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import cbor2
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from zhongdu import services, storage
from zhongdu.ingest import METRICS, Accepted, Limits, Reason, Rejected, _senml_cbor, parse_message
from zhongdu.ingest._profiles import CustomMetric, IngestConfig, Profile, ProfileError
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._units import conversion
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

from ._ingest_fixtures import publish_all, publisher, scalar
from ._rfc8428_examples import (
    BASES,
    CUSTOM_METRICS,
    DEVICES,
    EX3_CBOR_HEX,
    EX3_JSON,
    PROFILES,
    examples,
)

Wait = Callable[..., bool]
NOW = datetime.now(UTC)
CBOR = "application/senml+cbor"


@functools.cache
def _config() -> IngestConfig:
    metrics = [CustomMetric(**m) for m in CUSTOM_METRICS]
    known = set(METRICS) | {m.metric for m in metrics}
    profiles = [Profile.from_json(p, known) for p in PROFILES]
    return IngestConfig.build(metrics, profiles, dict(DEVICES), (1, 0))


def _parse(device: str, pack: object, **kw: object) -> Accepted | Rejected:
    payload = kw.pop("payload", None) or json.dumps(pack).encode()
    return parse_message(f"zhongdu/v1/park/{device}/senml", payload, received_at=NOW, **kw)  # type: ignore[arg-type]


# -- units -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "target", "value", "expected"),
    [
        ("K", "Cel", 296.25, 23.1),
        ("degF", "Cel", 73.58, 23.1),
        ("Pa", "hPa", 101_325, 1013.25),
        ("km/h", "m/s", 36, 10),
        ("kW", "W", 1.5, 1500),
        ("kWh", "Wh", 2, 2000),
        ("mV", "V", 230_000, 230),
        ("Cel", "Cel", 5, 5),
    ],
)
def test_conversion_table(unit: str, target: str, value: float, expected: float) -> None:
    factors = conversion(unit, target)
    assert factors is not None
    scale, offset = factors
    assert value * scale + offset == pytest.approx(expected)


def test_units_convert_on_the_way_in_and_others_are_refused() -> None:
    pack = [
        {"n": "temperature", "u": "K", "v": 296.25},
        {"n": "pressure", "u": "Pa", "v": 101_325},
        {"n": "wind_speed", "u": "km/h", "v": 36},
    ]
    result = _parse("wx-1", pack)
    assert isinstance(result, Accepted)
    got = {r[2]: (r[3], r[4]) for r in result.readings}
    assert got["temperature"] == (pytest.approx(23.1), "Cel")
    assert got["pressure"] == (pytest.approx(1013.25), "hPa")
    assert got["wind_speed"] == (pytest.approx(10.0), "m/s")
    refused = _parse("wx-1", [{"n": "temperature", "u": "hPa", "v": 3}])
    assert isinstance(refused, Rejected) and refused.reason == Reason.BAD_UNIT
    assert "no conversion" in refused.detail
    hot = _parse("wx-1", [{"n": "temperature", "u": "K", "v": 400}])  # 126.85 Cel: range after conversion
    assert isinstance(hot, Rejected) and hot.reason == Reason.OUT_OF_RANGE


# -- profiles ------------------------------------------------------------------------------------------


def test_without_a_profile_the_rfc_names_are_refused_with_a_pointer_to_profiles() -> None:
    for label, device, pack, _ in examples(time.time() - 9000):
        if label.startswith(("5.1.1", "5.1.3", "5.1.5", "5.1.7")):
            result = _parse(device, pack)
            assert isinstance(result, Rejected), label
            assert result.reason in {Reason.UNKNOWN_METRIC, Reason.DEVICE_MISMATCH}, label
            assert "profile" in result.detail, label


def test_kpn_style_glued_base_name_and_aliases() -> None:
    profile = Profile.from_json(
        {
            "profile_id": "kpn",
            "devices": ["kpn001"],
            "prefixes": ["kpn001"],
            "aliases": {"temp": "temperature"},
        }
    )
    config = IngestConfig.build(profiles=[profile])
    pack = [{"bn": "kpn001", "n": "temperature", "u": "Cel", "v": 21}, {"n": "temp", "u": "Cel", "v": 21.5}]
    result = _parse("kpn001", pack, config=config)
    assert isinstance(result, Accepted)
    assert [(r[1], r[2], r[3]) for r in result.readings] == [
        ("kpn001", "temperature", 21),
        ("kpn001", "temperature", 21.5),
    ]
    other = _parse("kpn002", pack, config=config)  # the profile is kpn001's only
    assert isinstance(other, Rejected) and other.reason == Reason.UNKNOWN_METRIC


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"profile_id": "x", "names": [{"name": "a", "metric": "pm3"}]}, "unknown metrics pm3"),
        ({"profile_id": "x", "names": [{"name": "bad name!", "metric": "pm10"}]}, "SenML name"),
        ({"profile_id": "x", "prefixes": [{"prefix": "p", "device": "no/slash"}]}, "device id"),
        ({"profile_id": "x", "colour": "red"}, "unknown profile fields: colour"),
        ({"profile_id": ""}, "profile_id"),
        ({"profile_id": "x", "aliases": {"t": "Temperature"}}, "metric name"),
    ],
)
def test_bad_profiles_are_refused_with_a_reason(document: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile.from_json(document, set(METRICS))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "pm10", "value_type": "number", "unit": "ug/m3"}, "catalogue metric"),
        ({"metric": "Bad", "value_type": "text"}, "must match"),
        ({"metric": "x", "value_type": "number"}, "needs a SenML unit"),
        ({"metric": "x", "value_type": "text", "unit": "m"}, "takes no unit"),
        ({"metric": "x", "value_type": "number", "unit": "m", "min": 5, "max": 1}, "above max"),
        ({"metric": "x", "value_type": "blob"}, "value type"),
    ],
)
def test_bad_custom_metrics_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        CustomMetric(**fields)  # type: ignore[arg-type]


def test_custom_metric_kinds_are_checked() -> None:
    config = _config()
    # custom metrics extend the catalogue for every device, with or without a profile
    assert isinstance(_parse("air-7", [{"n": "label", "vs": "x"}], config=config), Accepted)
    ow = "ow-10e2073a01080063"
    urn = "urn:dev:ow:10e2073a01080063:"
    cases = [
        ([{"n": urn + "label", "v": 3}], Reason.BAD_VALUE),
        ([{"n": urn + "nfc-reader", "vd": "not base64!"}], Reason.BAD_SENML),
        ([{"n": urn + "heat", "u": "/", "v": 2}], Reason.OUT_OF_RANGE),
        ([{"bn": urn}], Reason.BAD_SENML),  # base fields only: nothing to store
    ]
    for pack, reason in cases:
        result = _parse(ow, pack, config=config)
        assert isinstance(result, Rejected) and result.reason == reason, pack


# -- CBOR ------------------------------------------------------------------------------------------------


def test_rfc_cbor_example_resolves_exactly_as_its_json() -> None:
    received = datetime.fromtimestamp(1.276020076001e09 + 1, UTC)
    limits = Limits(max_age_s=1e10)
    topic = "zhongdu/v1/park/ow-10e2073a0108006/senml"
    config = _config()
    from_json = parse_message(
        topic, json.dumps(EX3_JSON).encode(), received_at=received, limits=limits, config=config
    )
    cbor = bytes.fromhex(EX3_CBOR_HEX)
    by_type = parse_message(
        topic, cbor, received_at=received, limits=limits, config=config, content_type="application/senml+cbor"
    )
    by_topic = parse_message(
        topic.replace("/senml", "/senml-cbor"), cbor, received_at=received, limits=limits, config=config
    )
    assert (
        isinstance(from_json, Accepted) and isinstance(by_type, Accepted) and isinstance(by_topic, Accepted)
    )
    assert len(from_json.readings) == 7
    assert by_type.readings == from_json.readings == by_topic.readings


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"\x87\xa7\x21", "malformed CBOR"),  # truncated
        (bytes.fromhex("81a10262686900"), "trailing data"),  # a pack and one byte more
        (b"\xff", "malformed CBOR"),
        (b'[{"n": "temperature", "v": 1}]', "malformed CBOR"),  # JSON sent as CBOR
    ],
)
def test_malformed_cbor_is_rejected_with_a_clear_reason(payload: bytes, detail: str) -> None:
    result = _parse("air-1", None, payload=payload, content_type="application/senml+cbor")
    assert isinstance(result, Rejected) and result.reason == Reason.BAD_CBOR
    assert detail in result.detail


def test_cbor_without_its_content_type_says_how_to_send_it() -> None:
    payload = _senml_cbor.dumps([{"n": "temperature", "u": "Cel", "v": 20}])
    result = _parse("air-1", None, payload=payload)
    assert isinstance(result, Rejected) and result.reason == Reason.BAD_JSON
    assert "application/senml+cbor" in result.detail and "senml-cbor" in result.detail
    telemetry = parse_message(
        "zhongdu/v1/bs/TC-1/telemetry", payload, received_at=NOW, content_type="application/senml+cbor"
    )
    assert isinstance(telemetry, Rejected) and telemetry.reason == Reason.BAD_CBOR


# -- through the broker into the database ------------------------------------------------------------


def make_ingester(db: str, broker: str) -> Ingester:
    settings = Settings(
        database_url=db,
        mqtt_url=broker,
        auto_register=True,
        mqtt_share_group=f"g{uuid.uuid4().hex[:8]}",
        ingest_batch_interval_ms=20,
        ingest_config_refresh_s=0.2,
    )
    return Ingester(
        settings, metrics=IngestMetrics(CollectorRegistry()), client_id=f"test-{uuid.uuid4().hex[:8]}"
    )


@pytest.fixture
def clean_db(pg_migrated: str) -> Iterator[str]:
    with psycopg.connect(pg_migrated) as conn:
        conn.execute(
            "TRUNCATE readings, station_telemetry, entity_status, rejected_messages, devices, stations,"
            " custom_metrics, device_profiles CASCADE"
        )
    yield pg_migrated


def _setup_profiles(db: str) -> None:
    with storage.connect(db) as conn:
        for device, kind in DEVICES:
            storage.telemetry.register_device(conn, device, kind)
        for metric in CUSTOM_METRICS:
            storage.profiles.put_custom_metric(conn, CustomMetric(**metric).as_json())
        known = set(METRICS) | {m["metric"] for m in CUSTOM_METRICS}
        for document in PROFILES:
            storage.profiles.put_profile(conn, Profile.from_json(document, known).as_json())


@pytest.mark.postgres
@pytest.mark.mqtt
def test_rfc8428_examples_through_the_broker_row_by_row(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    _setup_profiles(clean_db)
    ingester = make_ingester(clean_db, tuned_broker.url)
    ingester.start()
    base = float(int(time.time()) - 9000)
    cases = examples(base)
    try:
        assert ingester.wait_connected()
        assert len(ingester.config.all_profiles) == 3
        started = datetime.now(UTC)
        with publisher(tuned_broker.url, "pub-rfc8428") as client:
            for index, (label, device, pack, _) in enumerate(cases):
                # alternate the encodings: SenML JSON, CBOR by content type, CBOR by topic
                topic = f"zhongdu/v1/park/{device}/senml"
                if index % 3 == 0:
                    publish_all(client, [(topic, json.dumps(pack).encode())])
                elif index % 3 == 1:
                    from paho.mqtt.packettypes import PacketTypes
                    from paho.mqtt.properties import Properties

                    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    properties.ContentType = "application/senml+cbor"
                    info = client.publish(topic, _senml_cbor.dumps(pack), qos=1, properties=properties)
                    info.wait_for_publish(30)
                else:
                    publish_all(client, [(topic + "-cbor", _senml_cbor.dumps(pack))])
                # one at a time: 5.1.4 must come after 5.1.3 to be a replay, and "now" differs
                assert wait_until(lambda n=index + 1: ingester.stats.committed >= n, timeout=30), label
        finished = datetime.now(UTC)
        with psycopg.connect(clean_db) as conn:
            rejected = conn.execute("SELECT reason, detail FROM rejected_messages").fetchall()
            stored = conn.execute(
                "SELECT time, device_id, metric, value, unit, value_text FROM readings ORDER BY time, device_id, metric"
            ).fetchall()
            registered = {r[0] for r in conn.execute("SELECT device_id FROM devices").fetchall()}
        assert rejected == []
        expected_count = sum(len(rows) for *_, rows in cases)
        assert len(stored) == expected_count
        remaining = list(stored)
        for label, _, _, rows in cases:
            offset = BASES.get(label)
            for device, metric, t, value, unit, text in rows:
                match = [
                    r
                    for r in remaining
                    if r[1] == device and r[2] == metric and r[4] == unit and r[5] == text
                    and (r[3] == pytest.approx(value) if value is not None else r[3] is None)
                    and (
                        started <= r[0] <= finished
                        if t is None
                        else abs(r[0].timestamp() - (base + (offset or 0) + t)) < 1e-5
                    )
                ]  # fmt: skip
                assert match, f"{label}: no row {device} {metric} {t} {value} {unit} {text}"
                remaining.remove(match[0])
        assert remaining == []
        assert {"lab-1", "light-3", "light-4"} <= registered  # auto-registered from the profiles' devices
        assert ingester.stats.duplicates == 13  # 5.1.4 repeats 5.1.3's rows: absorbed and counted
        registry = ingester.metrics.registry
        assert registry.get_sample_value("zhongdu_ingest_duplicates_total") == 13
    finally:
        ingester.stop()


@pytest.mark.postgres
@pytest.mark.mqtt
def test_conflicting_values_are_kept_and_the_first_wins(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    with storage.connect(clean_db) as conn:
        storage.telemetry.register_device(conn, "wx-9", "weather")
    ingester = make_ingester(clean_db, tuned_broker.url)
    ingester.start()
    t = float(int(time.time()) - 60)
    topic = "zhongdu/v1/park/wx-9/senml"
    within = json.dumps([{"bt": t, "n": "temperature", "u": "Cel", "v": 20}, {"n": "temperature", "v": 21}])
    later = json.dumps(
        [{"bt": t, "n": "temperature", "u": "Cel", "v": 22}, {"n": "humidity", "u": "%RH", "v": 50}]
    )
    replay = json.dumps([{"bt": t, "n": "temperature", "u": "K", "v": 293.15}])  # 20 Cel: identical
    try:
        assert ingester.wait_connected()
        with publisher(tuned_broker.url, "pub-conflict") as client:
            for k, payload in enumerate((within, later, replay)):
                publish_all(client, [(topic, payload.encode())])
                assert wait_until(lambda n=k + 1: ingester.stats.committed >= n, timeout=30)
        with psycopg.connect(clean_db) as conn:
            stored = conn.execute("SELECT metric, value FROM readings ORDER BY metric").fetchall()
            kept = conn.execute(
                "SELECT reason, detail, convert_from(payload, 'UTF8') FROM rejected_messages ORDER BY id"
            ).fetchall()
        assert stored == [("humidity", 50.0), ("temperature", 20.0)]  # the first value stays
        assert [k[0] for k in kept] == ["conflicting_value", "conflicting_value"]
        assert "received 21.0 Cel" in kept[0][1] and "stored 20.0 Cel" in kept[0][1]
        assert "received 22.0 Cel" in kept[1][1] and "stored 20.0 Cel" in kept[1][1]
        assert kept[0][2] == within and kept[1][2] == later  # the whole message, to replay by hand
        registry = ingester.metrics.registry
        assert (
            registry.get_sample_value("zhongdu_ingest_rejected_total", {"reason": "conflicting_value"}) == 2
        )
        assert registry.get_sample_value("zhongdu_ingest_duplicates_total") == 1  # the Kelvin replay
        assert ingester.stats.conflicts == 2
        assert scalar(clean_db, "SELECT count(*) FROM readings") == 2
    finally:
        ingester.stop()


@pytest.mark.postgres
@pytest.mark.mqtt
def test_profile_changes_apply_to_a_running_ingester(
    clean_db: str, tuned_broker: services.Service, wait_until: Wait
) -> None:
    with storage.connect(clean_db) as conn:
        storage.telemetry.register_device(conn, "kpn001", "weather")
    ingester = make_ingester(clean_db, tuned_broker.url)
    ingester.start()
    topic = "zhongdu/v1/park/kpn001/senml"
    pack = json.dumps([{"bn": "kpn001", "n": "lux", "u": "lx", "v": 300}]).encode()
    try:
        assert ingester.wait_connected()
        with publisher(tuned_broker.url, "pub-reload") as client:
            publish_all(client, [(topic, pack)])
            assert wait_until(lambda: ingester.stats.committed >= 1, timeout=30)
            with storage.connect(clean_db) as conn:
                storage.profiles.put_custom_metric(
                    conn, CustomMetric("lux", "number", "lx", 0, 200_000, "illuminance").as_json()
                )
                storage.profiles.put_profile(
                    conn,
                    Profile.from_json(
                        {"profile_id": "kpn", "devices": ["kpn001"], "prefixes": ["kpn001"]}
                    ).as_json(),
                )
            assert wait_until(lambda: "lux" in ingester.config.specs, timeout=10)
            publish_all(client, [(topic, pack)])
            assert wait_until(lambda: ingester.stats.committed >= 2, timeout=30)
        assert scalar(clean_db, "SELECT count(*) FROM rejected_messages WHERE reason = 'unknown_metric'") == 1
        assert scalar(clean_db, "SELECT count(*) FROM readings WHERE metric = 'lux' AND value = 300") == 1
        assert ingester.stats.config_reloads >= 1
    finally:
        ingester.stop()


@pytest.mark.postgres
def test_profiles_and_custom_metrics_over_the_api(pg_migrated: str) -> None:
    from ._api_fixtures import api_settings, make_key, running_app

    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE custom_metrics, device_profiles")
    with running_app(api_settings(pg_migrated, None), live=False) as client:
        operator = {"X-API-Key": make_key(client, "operator")}
        viewer = {"X-API-Key": make_key(client, "viewer")}
        assert client.get("/v1/device-profiles").status_code == 401
        assert client.get("/v1/device-profiles", headers=viewer).status_code == 403
        lux = {"value_type": "number", "unit": "lx", "min": 0, "max": 200000, "description": "illuminance"}
        answer = client.put("/v1/custom-metrics/lux", json=lux, headers=operator)
        assert answer.status_code == 200, answer.text
        bad = client.put("/v1/custom-metrics/lux2", json={"value_type": "number"}, headers=operator)
        assert bad.status_code == 422 and "needs a SenML unit" in bad.json()["detail"]
        profile = {"devices": ["kpn001"], "prefixes": ["kpn001"], "aliases": {"light": "lux"}}
        answer = client.put("/v1/device-profiles/kpn", json=profile, headers=operator)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prefixes"] == [{"prefix": "kpn001"}]
        unknown = client.put(
            "/v1/device-profiles/x", json={"names": [{"name": "a", "metric": "pm3"}]}, headers=operator
        )
        assert unknown.status_code == 422 and "unknown metrics pm3" in unknown.json()["detail"]
        listed = client.get("/v1/device-profiles", headers=operator).json()["items"]
        assert [p["profile_id"] for p in listed] == ["kpn"]
        assert [m["metric"] for m in client.get("/v1/custom-metrics", headers=operator).json()["items"]] == [
            "lux"
        ]
        with storage.connect(pg_migrated) as conn:
            from zhongdu.ingest._profiles import load_config

            config = load_config(conn)
        result = parse_message(
            "zhongdu/v1/park/kpn001/senml", b'[{"bn": "kpn001", "n": "light", "u": "lx", "v": 5}]',
            received_at=NOW, config=config,
        )  # fmt: skip
        assert isinstance(result, Accepted) and result.readings[0][2:5] == ("lux", 5, "lx")
        assert client.delete("/v1/device-profiles/kpn", headers=operator).status_code == 204
        assert client.delete("/v1/device-profiles/kpn", headers=operator).status_code == 404
        assert client.delete("/v1/custom-metrics/lux", headers=operator).status_code == 204


@pytest.mark.postgres
def test_cli_sets_lists_and_deletes_profiles_and_metrics(pg_migrated: str) -> None:
    import os
    import subprocess
    import sys

    with psycopg.connect(pg_migrated) as conn:
        conn.execute("TRUNCATE custom_metrics, device_profiles")
    env = dict(os.environ, ZHONGDU_DATABASE_URL=pg_migrated)

    def zhongdu(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zhongdu.cli", *args],
            env=env, input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    added = zhongdu(
        "devices", "metric", "set", "battery_level", "--type", "number", "--unit", "%EL", "--max", "100"
    )
    assert added.returncode == 0 and "stored custom metric battery_level" in added.stdout, added.stderr
    document = {
        "profile_id": "ow",
        "kinds": ["onewire"],
        "names": [{"name": "x1", "metric": "battery_level"}],
    }
    stored = zhongdu("devices", "profile", "set", "-", stdin=json.dumps(document))
    assert stored.returncode == 0 and "stored profile ow for kind onewire" in stored.stdout, stored.stderr
    refused = zhongdu(
        "devices", "profile", "set", "-", stdin=json.dumps({**document, "aliases": {"a": "nope"}})
    )
    assert refused.returncode != 0 and "unknown metrics nope" in refused.stderr
    listed = json.loads(zhongdu("devices", "profile", "list").stdout)
    assert [p["profile_id"] for p in listed] == ["ow"]
    assert json.loads(zhongdu("devices", "metric", "list").stdout)[0]["unit"] == "%EL"
    assert zhongdu("devices", "profile", "delete", "ow").returncode == 0
    assert zhongdu("devices", "profile", "delete", "ow").returncode == 1


@pytest.mark.timescale
@pytest.mark.mqtt
def test_profiles_and_conflicts_on_timescaledb(
    timescale_schema: tuple[str, str], tuned_broker: services.Service, wait_until: Wait
) -> None:
    url, schema = timescale_schema
    with storage.connect(url, schema=schema) as conn:
        storage.migrate(conn)
        storage.telemetry.register_device(conn, "kpn001", "weather")
        storage.profiles.put_custom_metric(conn, CustomMetric("lux", "number", "lx", 0, 200_000).as_json())
        document = {"profile_id": "kpn", "devices": ["kpn001"], "prefixes": ["kpn001"]}
        storage.profiles.put_profile(conn, Profile.from_json(document).as_json())
    settings = Settings(
        database_url=url, mqtt_url=tuned_broker.url, auto_register=False, ingest_batch_interval_ms=50,
        mqtt_share_group=f"g{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    ingester = Ingester(
        settings,
        schema=schema,
        client_id=f"ts-{uuid.uuid4().hex[:6]}",
        metrics=IngestMetrics(CollectorRegistry()),
    )
    ingester.start()
    t = float(int(time.time()) - 120)
    topic = "zhongdu/v1/park/kpn001/senml"
    packs = [
        [
            {"bn": "kpn001", "bt": t, "n": "lux", "u": "lx", "v": 300},
            {"n": "temperature", "u": "K", "v": 293.15},
        ],
        [{"bn": "kpn001", "bt": t, "n": "lux", "u": "lx", "v": 300}],  # identical replay
        [{"bn": "kpn001", "bt": t, "n": "temperature", "u": "Cel", "v": 25}],  # conflict
    ]
    try:
        assert ingester.wait_connected()
        with publisher(tuned_broker.url, "pub-ts-profiles") as client:
            for k, pack in enumerate(packs):
                publish_all(client, [(topic, json.dumps(pack).encode())])
                assert wait_until(lambda n=k + 1: ingester.stats.committed >= n, timeout=60)
    finally:
        ingester.stop()
    with storage.connect(url, schema=schema) as conn:
        stored = conn.execute("SELECT metric, value, unit FROM readings ORDER BY metric").fetchall()
        kept = conn.execute("SELECT reason, detail FROM rejected_messages").fetchall()
    assert stored == [("lux", 300.0, "lx"), ("temperature", pytest.approx(20.0), "Cel")]
    assert len(kept) == 1 and kept[0][0] == "conflicting_value" and "received 25.0 Cel" in kept[0][1]
    assert ingester.stats.duplicates == 1 and ingester.stats.conflicts == 1


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(-8, 12) | st.text(max_size=4), inner)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200))
def test_any_bytes_as_cbor_give_rows_or_a_rejection(payload: bytes) -> None:
    result = _parse("ow-10e2073a01080063", None, payload=payload, content_type=CBOR, config=_config())
    assert isinstance(result, Accepted) or result.reason != Reason.INTERNAL_ERROR, result


senml_cbor = st.lists(
    st.dictionaries(st.sampled_from(list(range(-6, 10))), cbor_values, max_size=6), max_size=5
)


@settings(max_examples=200, deadline=None)
@given(body=cbor_values | senml_cbor)
def test_any_cbor_value_gives_rows_or_a_rejection(body: object) -> None:
    payload = cbor2.dumps(body)
    result = _parse("ow-10e2073a01080063", None, payload=payload, content_type=CBOR, config=_config())
    assert isinstance(result, Accepted) or result.reason != Reason.INTERNAL_ERROR, result


def test_ingest_health_shows_duplicates_and_conflicting_values() -> None:
    from prometheus_client import generate_latest

    from zhongdu.api._ingest_health import summarise

    metrics = IngestMetrics(CollectorRegistry())
    metrics.messages.labels("park").inc(5)
    metrics.duplicates.inc(3)
    metrics.rejected.labels("conflicting_value").inc(2)
    summary = summarise(generate_latest(metrics.registry).decode())
    assert summary is not None
    assert summary["duplicates"] == 3 and summary["conflicting_values"] == 2
    assert summary["rejected"] == {"conflicting_value": 2}
