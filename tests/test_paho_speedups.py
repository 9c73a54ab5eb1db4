"""The paho-mqtt speed-ups against the paho they were written for: fail loudly when paho changes.

`ingest/_paho_speedups.py` replaces paho's private `Properties` and overrides private `Client`
methods. These tests pin what it relies on (the release, the private names and their signatures)
and run both clients on the same bytes, paho's own packets, over a socket pair: the messages
delivered and every byte written back (the PUBACKs) must be paho's own.
"""

from __future__ import annotations

import inspect
import logging
import socket
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zhongdu.ingest import _paho_speedups


def test_installed_paho_is_a_tested_release_and_pyproject_pins_the_same() -> None:
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    assert _paho_speedups.supported(), paho.mqtt.__version__
    (pin,) = [Requirement(r) for r in requires("zhongdu") or [] if r.startswith("paho-mqtt")]
    tested = {tuple(map(int, v.split("."))) for v in _paho_speedups.TESTED_PAHO}
    for major, minor in {(2, m) for m in range(12)} | {(3, 0), (1, 6)}:
        for patch in (0, 9):
            allowed = pin.specifier.contains(f"{major}.{minor}.{patch}")
            assert allowed == ((major, minor) in tested), (str(pin), major, minor, patch)


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_create_socket", ["self"]),
        ("_packet_read", ["self"]),
        ("_packet_handle", ["self"]),
        ("_handle_on_message", ["self", "message"]),
        ("_send_puback", ["self", "mid"]),
        ("_easy_log", ["self", "level", "fmt", "args"]),
        ("loop_read", ["self", "max_packets"]),
    ],
)
def test_private_client_methods_keep_their_signatures(name: str, parameters: list[str]) -> None:
    assert list(inspect.signature(getattr(mqtt.Client, name)).parameters) == parameters


def test_private_state_the_fast_client_reads_and_writes_exists() -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for attribute in ("_sock", "_ssl", "_transport", "_msgtime_mutex", "_last_bytes_received", "_logger",
                      "_protocol", "_in_callback_mutex", "_userdata", "_manual_ack", "suppress_exceptions"):  # fmt: skip
        assert hasattr(client, attribute), attribute
    assert set(client._in_packet) == {
        "command", "have_remaining", "remaining_count", "remaining_mult", "remaining_length", "packet",
        "to_process", "pos",
    }  # fmt: skip
    root = client._on_message_filtered._root
    assert hasattr(root, "_children") and hasattr(root, "_content")
    assert hasattr(mqtt, "time_func") and hasattr(mqtt, "mqtt_ms_invalid")
    assert hasattr(mqtt.MQTTMessageInfo(0), "_published")
    template = Properties(PacketTypes.PUBLISH)
    assert {"packetType", "types", "names", "properties"} <= set(vars(template))
    assert _packet.Properties in (Properties, _paho_speedups.FastProperties)


def test_an_untested_paho_turns_the_speed_ups_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(paho.mqtt, "__version__", "9.9.0")
    monkeypatch.setattr(_paho_speedups, "_warned", False)
    _paho_speedups.uninstall()
    with caplog.at_level(logging.WARNING, logger=_paho_speedups.__name__):
        assert _paho_speedups.install() is False
    assert _packet.Properties is Properties  # paho's own decoder stays
    assert "9.9.0 is not a tested release" in caplog.text


def _paho_publish_bytes() -> bytes:
    """PUBLISH packets as paho's own client encodes them (QoS 0/1/2, with and without properties)."""
    ours, theirs = socket.socketpair()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)  # all on the wire now, none held back for acks
    client._sock = ours
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/senml+json"
    props.UserProperty = [("site", "shuinan")]
    payload = b'[{"bn":"urn:dev:zhongdu:air-001:","n":"pm2_5","v":12}]'
    for k in range(40):
        client.publish(f"zhongdu/v1/park/air-{k:03d}/senml", payload * (1 + k % 3), qos=k % 2,
                       retain=k % 7 == 0, properties=props if k % 5 == 0 else None)  # fmt: skip
    client.publish("zhongdu/v1/park/air-999/senml", payload, qos=2)
    client.publish("zhongdu/v1/park/air-998/senml", b"", qos=1)
    ours.close()
    stream = b""
    while chunk := theirs.recv(65_536):
        stream += chunk
    theirs.close()
    return stream


def _receive(client_class: type[mqtt.Client], stream: bytes) -> tuple[list[tuple[Any, ...]], bytes]:
    """Feed `stream` to a client as its broker would; what it delivered and what it sent back."""
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client = client_class(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    delivered: list[tuple[Any, ...]] = []
    client.on_message = lambda _c, _u, m: delivered.append(
        (m.topic, m.payload, m.qos, m.mid, m.retain, m.dup, str(m.properties))
    )
    client._sock = _paho_speedups._BufferedSocket(ours) if client_class is not mqtt.Client else ours
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    broker.sendall(stream)
    for _ in range(500):  # nothing left to read returns success at once (non-blocking socket)
        assert client.loop_read() == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    broker.setblocking(False)
    sent = b""
    try:
        while chunk := broker.recv(65_536):
            sent += chunk
    except BlockingIOError:
        pass
    ours.close()
    broker.close()
    return delivered, sent


def test_fast_client_delivers_paho_s_messages_and_sends_paho_s_bytes() -> None:
    stream = _paho_publish_bytes()
    _paho_speedups.uninstall()
    theirs = _receive(mqtt.Client, stream)
    assert _paho_speedups.install()
    try:
        ours = _receive(_paho_speedups.FastClient, stream)
    finally:
        _paho_speedups.uninstall()
    # QoS 0/1 delivered at once; the QoS 2 message waits for the broker's PUBREL (PUBREC sent)
    assert len(theirs[0]) == 41 and theirs[1], theirs
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]  # PUBACK/PUBREC bytes, byte for byte
