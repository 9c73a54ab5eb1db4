"""The pure parser: SenML resolution (RFC 8428), base-station telemetry, status, every rejection code."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongdu.ingest import (
    DEVICE_KINDS,
    METRICS,
    STRING_VALUES,
    Accepted,
    Limits,
    Reason,
    Rejected,
    build_pack,
    guess_device_kind,
    parse_message,
    value_type,
)

NOW = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)
T0 = NOW.timestamp()
PARK = "zhongdu/v1/park/air-001/senml"
BS = "zhongdu/v1/bs/TC-0001/telemetry"


def parse(topic: str, payload: object, **kw: object) -> Accepted | Rejected:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_message(topic, data, received_at=NOW, **kw)  # type: ignore[arg-type]


def accepted(topic: str, payload: object) -> Accepted:
    result = parse(topic, payload)
    assert isinstance(result, Accepted), result
    return result


def reason(topic: str, payload: object, **kw: object) -> Reason:
    result = parse(topic, payload, **kw)
    assert isinstance(result, Rejected), result
    return result.reason


# --- the catalogue -------------------------------------------------------------------------------


def test_catalogue_units_are_senml_registry_names() -> None:
    # RFC 8428 / RFC 8798 primary units plus the RFC 8798 secondary units we document.
    registered = {
        "Cel", "%RH", "m/s", "W", "V", "A", "Hz", "W/m2", "dB", "count", "/", "%", "deg", "var",
        "ug/m3", "ppm", "hPa", "mm", "mm/h", "Wh",
    }  # fmt: skip
    for name, spec in METRICS.items():
        if value_type(name) == "v":
            assert spec.unit in registered, name
            assert spec.min is not None and spec.max is not None and spec.min < spec.max
        else:
            assert spec.unit is None and spec.min is None
    unit, lo, hi, description = METRICS["pm2_5"]  # a plain 4-tuple for callers
    assert (unit, lo) == ("ug/m3", 0) and hi > lo and description
    assert all(set(metrics) <= set(METRICS) for metrics in DEVICE_KINDS.values())
    assert guess_device_kind({"power_active", "voltage"}) == "meter"


# --- SenML resolution ------------------------------------------------------------------------------


def test_base_fields_relative_time_and_name_forms() -> None:
    pack = [
        {"bn": "urn:dev:zhongdu:air-001:", "bt": T0 - 10, "bu": "ug/m3", "bver": 10, "n": "pm2_5", "v": 12.5},
        {"n": "pm10", "v": 20.0, "t": 5},
        {"n": "temperature", "u": "Cel", "v": 24.0, "t": -50},
        {"bn": "air-001:", "bt": 0, "n": "humidity", "u": "%RH", "v": 60.0},  # short form; bt 0: now
        {"n": "co2", "u": "ppm", "v": 400, "t": -30},
    ]
    result = accepted(PARK, pack)
    rows = {(r[2]): r for r in result.readings}
    assert rows["pm2_5"][0] == NOW - timedelta(seconds=10)
    assert rows["pm10"][0] == NOW - timedelta(seconds=5)
    assert rows["temperature"][0:6] == (
        NOW - timedelta(seconds=60),
        "air-001",
        "temperature",
        24.0,
        "Cel",
        None,
    )
    assert rows["humidity"][0] == NOW
    assert rows["co2"][0] == NOW - timedelta(seconds=30) and rows["co2"][4] == "ppm"
    assert result.data_time == NOW
    assert result.status is not None and result.status.status == "online"
    assert result.metrics == {"pm2_5", "pm10", "temperature", "humidity", "co2"}
    # no u and no bu: the catalogue's unit
    assert accepted(PARK, [{"n": "air-001:co2", "v": 400}]).readings[0][4] == "ppm"


def test_base_value_base_sum_booleans_strings() -> None:
    pack = [
        {"bn": "ev-7:", "bt": T0, "bv": 1000, "n": "power", "v": 500},
        {"n": "energy", "bs": 100, "s": 23},  # a sum-only record stores the sum as its value
        {"n": "plugged", "vb": True},
        {"n": "charger_status", "vs": "charging"},
    ]
    result = accepted("zhongdu/v1/park/ev-7/senml", pack)
    values = {r[2]: (r[3], r[4], r[5]) for r in result.readings}
    assert values == {
        "power": (1500.0, "W", None),
        "energy": (123.0, "Wh", None),
        "plugged": (1.0, None, None),
        "charger_status": (None, None, "charging"),
    }


# --- SenML names as real devices and libraries write them (docs/mqtt-contract.md#senml-names) -----------------------


def _stored(topic: str, pack: object) -> list[tuple[object, ...]]:
    return [(r[0], r[1], r[2], r[3], r[4]) for r in accepted(topic, pack).readings]


def test_bare_names_are_the_topics_device() -> None:
    pack = [{"n": "temperature", "u": "Cel", "v": 24.3}, {"n": "humidity", "u": "%RH", "v": 61}]
    assert _stored(PARK, pack) == [
        (NOW, "air-001", "temperature", 24.3, "Cel"),
        (NOW, "air-001", "humidity", 61.0, "%RH"),
    ]
    # the same values under another device's topic belong to that device
    assert {r[1] for r in _stored("zhongdu/v1/park/wx-9/senml", pack)} == {"wx-9"}


def test_bt_with_relative_t_and_bver_without_bn() -> None:
    pack = [
        {"bver": 10, "bt": T0 - 120, "bu": "ug/m3", "n": "pm2_5", "v": 10.0, "t": 0},
        {"n": "pm2_5", "v": 11.0, "t": 60},
        {"n": "pm2_5", "v": 12.0, "t": 120},
        {"n": "pm10", "v": 20.0, "t": 120},
    ]
    assert _stored(PARK, pack) == [
        (NOW - timedelta(seconds=120), "air-001", "pm2_5", 10.0, "ug/m3"),
        (NOW - timedelta(seconds=60), "air-001", "pm2_5", 11.0, "ug/m3"),
        (NOW, "air-001", "pm2_5", 12.0, "ug/m3"),
        (NOW, "air-001", "pm10", 20.0, "ug/m3"),
    ]


@pytest.mark.parametrize(
    ("topic_id", "bn", "n"),
    [
        ("air-001", "urn:dev:zhongdu:air-001:", "pm2_5"),  # the project's own convention
        ("air-001", "air-001:", "pm2_5"),
        ("air-001", "air-001/", "pm2_5"),  # a path-style base name
        ("air-001", "", "air-001:pm2_5"),
        ("air-001", "", "air-001/pm2_5"),
        ("air-001", "zhongdu/park/air-001/", "pm2_5"),  # the id ends the device part
        ("0024befffe804ff1", "urn:dev:mac:0024befffe804ff1:", "pm2_5"),  # RFC 8428 / RFC 9039 forms
        ("10e2073a01080063", "urn:dev:ow:10e2073a01080063:", "pm2_5"),
        ("a:b", "urn:dev:zhongdu:a:b:", "pm2_5"),  # ids may contain ':'
        ("air-001", "urn:dev:zhongdu:air-001:pm", "2_5"),  # bn + n is what counts
        ("air-001", "site/" + "s" * 200 + "/air-001/", "pm2_5"),  # a long name: resolved, not cached
    ],
)
def test_names_carrying_the_topics_device_id(topic_id: str, bn: str, n: str) -> None:
    record: dict[str, object] = {"n": n, "v": 12.5}
    if bn:
        record["bn"] = bn
    assert _stored(f"zhongdu/v1/park/{topic_id}/senml", [record]) == [(NOW, topic_id, "pm2_5", 12.5, "ug/m3")]


def test_a_mismatch_says_which_id_the_name_carries() -> None:
    result = parse(PARK, [{"bn": "urn:dev:mac:0024befffe804ff1:", "n": "temperature", "v": 20}])
    assert isinstance(result, Rejected) and result.reason == Reason.DEVICE_MISMATCH
    assert "'0024befffe804ff1'" in result.detail and "'air-001'" in result.detail
    # a later bn re-bases the rest of the pack: one foreign record rejects the whole pack
    pack = [{"n": "pm10", "v": 1}, {"bn": "air-002:", "n": "pm10", "v": 2}]
    assert reason(PARK, pack) == Reason.DEVICE_MISMATCH


def test_build_pack_round_trips() -> None:
    values = {"power_active": -1200.5, "voltage": 229.9, "door_open": False, "charger_status": "faulted"}
    result = accepted("zhongdu/v1/park/m-1/senml", build_pack("m-1", values, time_s=T0 - 1))
    assert {r[2]: (r[3] if r[5] is None else r[5]) for r in result.readings} == {
        "power_active": -1200.5, "voltage": 229.9, "door_open": 0.0, "charger_status": "faulted",
    }  # fmt: skip
    assert all(r[0] == NOW - timedelta(seconds=1) for r in result.readings)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xff\xfe not json", Reason.BAD_JSON),
        (b"[1, 2", Reason.BAD_JSON),
        (b'[{"n": "air-001:pm2_5", "v": NaN}]', Reason.BAD_JSON),
        (b"[" * 50_000, Reason.BAD_JSON),
        (b'[{"n": "air-001:pm2_5", "v": Infinity}]', Reason.BAD_JSON),
        (b'[{"n": "air-001:pm2_5", "v": -Infinity}]', Reason.BAD_JSON),
        (b'[{"n": "air-001:pm2_5", "v": 1}] trailing', Reason.BAD_JSON),
        (b'[{"n": "air-001:pm2_5", "v": 1, "vs": "\\ud800"}]', Reason.BAD_JSON),  # lone surrogate
        (b'[{"n": "air-001:pm2_5", "v": 1' + b"0" * 30 + b"}]", Reason.OUT_OF_RANGE),  # a float
        (b'[{"n": "air-001:pm2_5", "v": 1}]\x00', Reason.BAD_JSON),
        ({"n": "air-001:pm2_5", "v": 1}, Reason.BAD_SENML),  # a record, not a pack
        ([], Reason.BAD_SENML),
        ([1], Reason.BAD_SENML),
        ([{"n": "air-001:pm2_5"}], Reason.BAD_SENML),  # no value
        ([{"n": "air-001:pm2_5", "v": 1, "vs": "x"}], Reason.BAD_SENML),  # two values
        ([{"n": "air-001:pm2_5", "v": "12"}], Reason.BAD_SENML),
        ([{"n": "air-001:pm2_5", "v": True}], Reason.BAD_SENML),
        ([{"n": "air-001:pm2_5", "v": 1, "bver": 11}], Reason.BAD_SENML),
        ([{"n": "air-001:pm2_5", "v": 1, "foo_": 1}], Reason.BAD_SENML),  # must-understand label
        ([{"n": "air-001:pm2_5", "v": 1, "t": "now"}], Reason.BAD_SENML),
        ([{"n": "other-9:pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),
        ([{"bn": "air-002/", "n": "pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),
        ([{"bn": "urn:dev:mac:0024befffe804ff1:", "n": "pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),
        ([{"bn": "urn:dev:zhongdu:air-001:", "n": "air-002:pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),
        ([{"n": "site/air-001/x/pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),  # the id must end the part
        ([{"n": "xair-001:pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),  # ... as a whole segment
        ([{"n": "s" * 300 + ":pm2_5", "v": 1}], Reason.DEVICE_MISMATCH),  # long names too
        ([{"n": "pm 2.5", "v": 1}], Reason.BAD_SENML),  # RFC 8428 name characters only
        ([{"bn": "air-001:", "n": 5, "v": 1}], Reason.BAD_SENML),
        ([{"n": "", "v": 1}], Reason.BAD_SENML),
        ([{"n": "3303/0/5700", "v": 1}], Reason.UNKNOWN_METRIC),  # LwM2M paths are not our metrics
        ([{"bn": "air-001", "n": "pm2_5", "v": 1}], Reason.UNKNOWN_METRIC),  # 'air-001pm2_5': no separator
        ([{"n": "air-001:pm3", "v": 1}], Reason.UNKNOWN_METRIC),
        ([{"n": "air-001:pm2_5", "v": 1, "u": "m"}], Reason.BAD_UNIT),  # no conversion to ug/m3
        ([{"n": "air-001:pm2_5", "v": 1, "u": "kg/m3"}], Reason.OUT_OF_RANGE),  # 1e9 ug/m3
        ([{"bu": "Cel", "n": "air-001:pm2_5", "v": 1}], Reason.BAD_UNIT),
        ([{"n": "air-001:door_open", "vb": True, "u": "count"}], Reason.BAD_UNIT),
        ([{"n": "air-001:door_open", "v": 1}], Reason.BAD_VALUE),
        ([{"n": "air-001:pm2_5", "vb": True}], Reason.BAD_VALUE),
        ([{"n": "air-001:pm2_5", "v": 1e308, "bv": 1e308}], Reason.BAD_VALUE),  # overflows to inf
        ([{"n": "air-001:pm2_5", "v": -0.1}], Reason.OUT_OF_RANGE),
        ([{"n": "air-001:humidity", "v": 100.5}], Reason.OUT_OF_RANGE),
        ([{"n": "air-001:charger_status", "vs": "exploded"}], Reason.OUT_OF_RANGE),
        ([{"n": "air-001:pm2_5", "v": 1, "t": 301}], Reason.FUTURE_TIMESTAMP),
        ([{"n": "air-001:pm2_5", "v": 1, "bt": T0 + 3600}], Reason.FUTURE_TIMESTAMP),
        ([{"n": "air-001:pm2_5", "v": 1, "bt": 1_000_000_000}], Reason.STALE_TIMESTAMP),
    ],
)
def test_senml_rejections(payload: object, expected: Reason) -> None:
    assert reason(PARK, payload) == expected


def test_one_bad_record_rejects_the_pack_and_keeps_the_payload() -> None:
    payload = json.dumps([{"n": "air-001:pm2_5", "v": 1}, {"n": "air-001:pm2_5", "v": -5}]).encode()
    result = parse_message(PARK, payload, received_at=NOW)
    assert isinstance(result, Rejected)
    assert result.reason == Reason.OUT_OF_RANGE and "record 1" in result.detail
    assert result.payload == payload and result.payload_size == len(payload)


def test_oversized_payload_is_capped_when_stored() -> None:
    limits = Limits(max_payload_bytes=1000, max_stored_payload=100)
    payload = b"x" * 5000
    result = parse_message(PARK, payload, received_at=NOW, limits=limits)
    assert isinstance(result, Rejected) and result.reason == Reason.PAYLOAD_TOO_LARGE
    assert result.payload == payload[:100] and result.payload_size == 5000


@pytest.mark.parametrize(
    "topic",
    [
        "", "zhongdu/v1/park/air-001", "zhongdu/v1/park/air-001/telemetry", "zhongdu/v1/bs/TC/senml",
        "zhongdu/v2/park/air-001/senml", "zhongdu/v1/car/x/senml", "zhongdu/v1/park//senml",
        "zhongdu/v1/park/a b/senml", "zhongdu/v1/park/" + "a" * 65 + "/senml", "zhongdu/v1/park/x/senml/more",
    ],
)  # fmt: skip
def test_bad_topics(topic: str) -> None:
    assert reason(topic, [{"n": "x:pm2_5", "v": 1}]) == Reason.BAD_TOPIC


# --- base-station telemetry and status ------------------------------------------------------------


def test_station_telemetry_rows() -> None:
    report = {
        "time": "2026-11-26T06:59:30Z",
        "status": "degraded",
        "sectors": [
            {"sector_id": "1", "prb_utilisation": 0.5, "active_users": 12, "tx_power_dbm": 43.0},
            {"sector_id": 2, "prb_utilisation": None, "active_users": 0},
        ],
        "vendor_extra": {"ignored": True},
    }
    result = accepted(BS, report)
    when = NOW - timedelta(seconds=30)
    assert result.telemetry == (
        (when, "TC-0001", "", "degraded", None, None, None),
        (when, "TC-0001", "1", "degraded", 0.5, 12, 43.0),
        (when, "TC-0001", "2", "degraded", None, 0, None),
    )
    assert result.status is not None and (result.status.status, result.status.observed_at) == (
        "degraded",
        when,
    )
    # epoch seconds and a status-only report
    only = accepted(BS, {"time": T0 - 5, "status": "down", "sectors": []})
    assert only.telemetry == ((NOW - timedelta(seconds=5), "TC-0001", "", "down", None, None, None),)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ([], Reason.BAD_TELEMETRY),
        ({"status": "up"}, Reason.BAD_TELEMETRY),
        ({"time": "yesterday", "status": "up"}, Reason.BAD_TELEMETRY),
        ({"time": "2026-11-26T06:59:30", "status": "up"}, Reason.BAD_TELEMETRY),  # no offset
        ({"time": T0, "status": "maybe"}, Reason.BAD_TELEMETRY),
        ({"time": T0, "status": "up", "sectors": {}}, Reason.BAD_TELEMETRY),
        ({"time": T0, "status": "up", "sectors": [{"sector_id": ""}]}, Reason.BAD_TELEMETRY),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1"}, {"sector_id": "1"}]},
            Reason.BAD_TELEMETRY,
        ),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1", "active_users": 1.5}]},
            Reason.BAD_TELEMETRY,
        ),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1", "prb_utilisation": "x"}]},
            Reason.BAD_TELEMETRY,
        ),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1", "prb_utilisation": 1.2}]},
            Reason.OUT_OF_RANGE,
        ),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1", "active_users": -1}]},
            Reason.OUT_OF_RANGE,
        ),
        (
            {"time": T0, "status": "up", "sectors": [{"sector_id": "1", "tx_power_dbm": 99}]},
            Reason.OUT_OF_RANGE,
        ),
        ({"time": T0 + 3600, "status": "up"}, Reason.FUTURE_TIMESTAMP),
        ({"time": "2020-01-01T00:00:00+08:00", "status": "up"}, Reason.STALE_TIMESTAMP),
    ],
)
def test_telemetry_rejections(report: object, expected: Reason) -> None:
    assert reason(BS, report) == expected


def test_status_topic() -> None:
    result = accepted("zhongdu/v1/bs/TC-0001/status", b"offline\n")
    assert result.status is not None
    assert (result.status.kind, result.status.connection, result.status.source) == ("bs", "offline", "status")
    assert accepted("zhongdu/v1/park/air-001/status", b"online").status is not None
    cleared = accepted("zhongdu/v1/park/air-001/status", b"")  # a cleared retained message
    assert cleared.status is None and cleared.datapoints == 0
    assert reason("zhongdu/v1/park/air-001/status", b"sleeping") == Reason.BAD_STATUS
    assert reason("zhongdu/v1/park/air-001/status", b"\xff") == Reason.BAD_STATUS


# --- properties -----------------------------------------------------------------------------------

topics = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda kind, ident, leaf: f"zhongdu/v1/{kind}/{ident}/{leaf}",
        st.sampled_from(["park", "bs", "x"]),
        st.from_regex(r"[A-Za-z0-9_.:-]{1,8}", fullmatch=True),
        st.sampled_from(["senml", "telemetry", "status", "other"]),
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
labels = st.sampled_from(
    ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "x_"]
)
senml_like = st.lists(st.dictionaries(labels, json_values, max_size=6), max_size=5)


def _check(result: Accepted | Rejected, payload: bytes) -> None:
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        assert result.reason != Reason.INTERNAL_ERROR, result.detail
        assert result.payload == payload[: len(result.payload)] and result.payload_size == len(payload)
    else:
        for row in result.readings:
            assert row[2] in METRICS and (row[3] is None or math.isfinite(row[3]))


@settings(max_examples=300, deadline=None)
@given(topic=topics, payload=st.binary(max_size=300))
def test_any_bytes_on_any_topic_give_rows_or_a_rejection(topic: str, payload: bytes) -> None:
    _check(parse_message(topic, payload, received_at=NOW), payload)


@settings(max_examples=300, deadline=None)
@given(
    leaf=st.sampled_from(["park/air-001/senml", "bs/TC-1/telemetry", "park/air-001/status"]),
    body=st.one_of(json_values, senml_like),
)
def test_any_json_gives_rows_or_a_rejection(leaf: str, body: object) -> None:
    payload = json.dumps(body).encode()
    _check(parse_message(f"zhongdu/v1/{leaf}", payload, received_at=NOW), payload)


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(sorted(DEVICE_KINDS)),
    fraction=st.floats(0, 1),
    age=st.floats(0, 86_400),
)
def test_in_range_values_from_the_catalogue_are_accepted(kind: str, fraction: float, age: float) -> None:
    values: dict[str, float | bool | str] = {}
    for metric in DEVICE_KINDS[kind]:
        spec = METRICS[metric]
        if value_type(metric) == "vb":
            values[metric] = fraction > 0.5
        elif value_type(metric) == "vs":
            values[metric] = sorted(STRING_VALUES[metric])[0]
        else:
            assert spec.min is not None and spec.max is not None
            values[metric] = min(spec.max, spec.min + fraction * (spec.max - spec.min))
    result = accepted(f"zhongdu/v1/park/{kind}-1/senml", build_pack(f"{kind}-1", values, time_s=T0 - age))
    assert len(result.readings) == len(values)


# --- the paho-mqtt speed-up ----------------------------------------------------------------------


def test_fast_properties_decode_like_paho() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from zhongdu.ingest._paho_speedups import FastProperties

    full = Properties(PacketTypes.PUBLISH)
    full.PayloadFormatIndicator = 1
    full.MessageExpiryInterval = 60
    full.ContentType = "application/senml+json"
    full.ResponseTopic = "zhongdu/v1/reply"
    full.CorrelationData = b"\x01\x02"
    full.UserProperty = [("site", "shuinan"), ("k", "v")]
    full.SubscriptionIdentifier = 2
    for buffer in (b"\x00", full.pack(), b"\x02\x0b\x01"):
        ours, theirs = FastProperties(PacketTypes.PUBLISH), Properties(PacketTypes.PUBLISH)
        a, used_a = ours.unpack(buffer)
        b, used_b = theirs.unpack(buffer)
        assert used_a == used_b and str(a) == str(b) and a.json() == b.json()
        assert hasattr(a, "SubscriptionIdentifier") == hasattr(b, "SubscriptionIdentifier")
        ours.clear()
        theirs.clear()
        assert str(ours) == str(theirs) and ours.isEmpty()


def _publish_body(topic: bytes, qos: int, mid: int, props: bytes | None, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    return body + (props if props is not None else b"") + payload


def _lean_vs_paho(protocol: int, header: int, body: bytes) -> None:
    """The lean decoder gives paho's message, or declines (None) and leaves it to paho."""
    import paho.mqtt.client as mqtt
    from paho.mqtt import _packet
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.exception import MalformedPacket

    from zhongdu.ingest import _paho_speedups

    assert _paho_speedups.install()
    client = _paho_speedups.FastClient(CallbackAPIVersion.VERSION2, protocol=protocol)
    framed = b"\x00junk" + body + b"next packet"  # the body sits inside a larger receive buffer
    ours = client._lean_publish(header, framed, 5, 5 + len(body))
    try:
        theirs = _packet.decode_publish(header, bytearray(body), protocol)
    except MalformedPacket:
        assert ours is None
        return
    qos = (header & 0x06) >> 1
    props_at = 2 + len(theirs.topic) + (2 if qos else 0)  # where the v5 property length sits
    common = (
        qos < 2
        and bool(theirs.topic)
        and (protocol != mqtt.MQTTv5 or (props_at < len(body) and body[props_at] == 0))
    )  # QoS 0/1, a topic, no properties: the packets the lean path exists for
    if ours is None:  # declining is always safe (paho decodes), but not for the common packets
        assert not common
        return
    assert (ours._topic, ours.mid, ours.qos, ours.dup, ours.retain) == (
        theirs.topic,
        theirs.mid,
        theirs.qos,
        theirs.dup,
        theirs.retain,
    )
    assert type(ours._topic) is bytes
    assert ours.payload == theirs.payload and type(ours.payload) is bytes
    if protocol == mqtt.MQTTv5:
        assert ours.properties is not None and ours.properties.isEmpty()
        assert not hasattr(ours.properties, "SubscriptionIdentifier")
    else:
        assert ours.properties is None


@pytest.mark.parametrize("protocol", [5, 4])
@pytest.mark.parametrize(
    ("header", "qos", "props"),
    [(0x30, 0, b"\x00"), (0x32, 1, b"\x00"), (0x3B, 1, b"\x00"), (0x31, 0, b"\x00"),
     (0x34, 2, b"\x00"), (0x32, 1, b"\x02\x0b\x02"), (0x32, 1, b"\x05\x02\x00\x00\x00\x3c")],
)  # fmt: skip
def test_lean_publish_decoder_matches_paho(protocol: int, header: int, qos: int, props: bytes) -> None:
    topic = b"zhongdu/v1/park/air-001/senml"
    payload = b'[{"bn":"urn:dev:zhongdu:air-001:","n":"pm2_5","v":12}]'
    _lean_vs_paho(protocol, header, _publish_body(topic, qos, 513, props if protocol == 5 else None, payload))
    _lean_vs_paho(protocol, header, _publish_body(b"", qos, 7, props if protocol == 5 else None, payload))
    _lean_vs_paho(protocol, header, _publish_body(topic, qos, 65_535, props if protocol == 5 else None, b""))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([5, 4]), st.integers(0x30, 0x3F), st.binary(max_size=40))
def test_lean_publish_decoder_on_any_bytes(protocol: int, header: int, body: bytes) -> None:
    _lean_vs_paho(protocol, header, body)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([5, 4]),
    st.integers(0x30, 0x3F),
    st.binary(max_size=12),
    st.integers(0, 65_535),
    st.one_of(st.just(b"\x00"), st.binary(max_size=6)),
    st.binary(max_size=30),
    st.integers(0, 3),
)
def test_lean_publish_decoder_on_well_framed_packets(
    protocol: int, header: int, topic: bytes, mid: int, props: bytes, payload: bytes, cut: int
) -> None:
    """Packets built field by field (any topic bytes, any properties), sometimes truncated."""
    qos = min((header & 0x06) >> 1, 1)
    body = _publish_body(topic, qos, mid, props if protocol == 5 else None, payload)
    _lean_vs_paho(protocol, header, body[: len(body) - cut] if cut else body)
