"""A faster `Properties` for the MQTT v5 packets paho-mqtt decodes (same behaviour, less work).

paho-mqtt 2.x builds, for every received v5 packet, a `Properties` object whose constructor
rebuilds a 27-entry lookup table and whose `unpack` first scans all 27 names with `hasattr`:
~50 µs per PUBLISH even when the packet has no properties at all, measured here. At 5,000
messages/s that is a quarter of a core, so MQTT v5 received about 40 % fewer messages per second
than 3.1.1 (5,000 vs 8,000+/s, bare subscribers). `install()` points paho's packet decoder at a
subclass that shares those tables between instances and skips the scan for a fresh object;
decoding with properties present still runs paho's own code. Process-wide but semantically
identical (tests compare both on real packets); `uninstall()` restores paho's class.

Both speed-ups lean on paho's private names (`_packet.Properties`, `Client._packet_read`, ...), so
they run only on the paho-mqtt releases they were tested on (`TESTED_PAHO`, pinned the same way in
pyproject.toml); on any other, `install()` warns once and returns False, and the ingester uses
paho's own client. tests/test_paho_speedups.py fails loudly when a private name changes.
Measured gain: docs/performance.md (benchmarks/bench_paho_speedups.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_packet_module: Any
try:
    from paho.mqtt import _packet as _packet_module
except ImportError:  # not a paho this was written for: install() declines
    _packet_module = None

log = logging.getLogger(__name__)

#: paho-mqtt releases (major.minor) whose private names these speed-ups were checked against.
TESTED_PAHO = ("2.2",)
#: paho's private `Client` methods that `FastClient` overrides or calls.
_CLIENT_PRIVATES = (
    "_create_socket", "_packet_read", "_packet_handle", "_handle_on_message", "_send_puback", "_easy_log",
)  # fmt: skip

_packet: Any = _packet_module  # paho's decoder module (its `Properties` is not re-exported)
_ORIGINAL = getattr(_packet, "Properties", None)
_TEMPLATE = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_PRIVATE = frozenset({"packetType", "types", "names", "properties"})
_lock = threading.Lock()


class FastProperties(Properties):
    """`Properties` with shared lookup tables; attributes and methods behave as paho's."""

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TEMPLATE.types)
        object.__setattr__(self, "names", _TEMPLATE.names)
        object.__setattr__(self, "properties", _TEMPLATE.properties)

    def clear(self) -> None:
        for name in [n for n in self.__dict__ if n not in _PRIVATE]:
            delattr(self, name)

    def unpack(self, buffer: Any) -> Any:
        if buffer[:1] == b"\x00" and len(self.__dict__) == len(_PRIVATE):
            return self, 1  # no properties (the common case), nothing to clear
        return super().unpack(buffer)  # type: ignore[no-untyped-call]


_warned = False


def supported() -> bool:
    """This paho-mqtt is a tested release and has the private names the speed-ups use."""
    version = ".".join(str(paho.mqtt.__version__).split(".")[:2])
    return (
        version in TESTED_PAHO
        and _packet is not None
        and getattr(_packet, "Properties", None) in (Properties, FastProperties)
        and isinstance(getattr(_TEMPLATE, "properties", None), dict)
        and all(callable(getattr(mqtt.Client, name, None)) for name in _CLIENT_PRIVATES)
    )


def install() -> bool:
    """Use `FastProperties` in paho's packet decoder (and allow `FastClient`); False, with a
    warning, if this paho-mqtt is not one the speed-ups were tested on."""
    global _warned
    with _lock:
        if not supported():
            if not _warned:
                _warned = True
                log.warning(
                    "paho-mqtt %s is not a tested release (%s): MQTT speed-ups off, paho's own client used",
                    paho.mqtt.__version__, ", ".join(f"{v}.x" for v in TESTED_PAHO),
                )  # fmt: skip
            return False
        _packet.Properties = FastProperties
        return True


def uninstall() -> None:
    with _lock:
        if _packet is not None:
            _packet.Properties = _ORIGINAL


class _BufferedSocket:
    """A TCP socket that reads up to 64 KiB per `recv` and serves paho's small reads from that.

    paho reads every packet with three `recv` calls (1 byte, remaining length, body) and then goes
    back to `select` and its housekeeping: four system calls and a loop turn per message. This
    wrapper reports its unread bytes through `pending()` (the hook paho already uses for TLS), so
    paho keeps reading without waiting in `select`; everything else is the wrapped socket's.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            data: bytes = self._sock.recv(max(bufsize, RECV_BYTES))  # BlockingIOError passes through
            if len(data) <= bufsize:
                return data  # b"" (connection closed) included
            self._buf, pos = data, 0
        end = pos + bufsize
        self._pos = end
        return self._buf[pos:end]

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def fill(self) -> bool:
        """Append what the socket holds now to the unread bytes; False if nothing came.

        Errors and end of stream are left for paho's next read, which meets them again.
        """
        try:
            data = self._sock.recv(RECV_BYTES)
        except OSError:  # BlockingIOError (nothing yet) included
            return False
        if not data:
            return False
        self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def publish_is_next(self) -> bool:
        """The unread bytes start a PUBLISH packet (whole or not)."""
        return self._pos < len(self._buf) and self._buf[self._pos] & 0xF0 == _PUBLISH

    def take_publish(self) -> tuple[int, bytes, int, int] | None:
        """A PUBLISH packet held whole in the buffer: (first byte, buffer, body start, body end).

        None (nothing taken) when the next packet is not a PUBLISH or not whole yet. The body is
        not copied: `buffer[start:end]` is it.
        """
        buf, pos = self._buf, self._pos
        size = len(buf)
        if size - pos < 2 or buf[pos] & 0xF0 != _PUBLISH:
            return None
        length = 0
        shift = 0
        index = pos + 1
        while True:
            if index >= size or index - pos > 4:
                return None  # incomplete, or a length paho itself must refuse
            byte = buf[index]
            index += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        end = index + length
        if end > size:
            return None
        self._pos = end
        return buf[pos], buf, index, end

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


_new_message = mqtt.MQTTMessage.__new__
# Received messages never wait for a publish acknowledgement: one finished info object serves all.
_RECEIVED_INFO = mqtt.MQTTMessageInfo(0)
_RECEIVED_INFO.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
_RECEIVED_INFO._published = True

RECV_BYTES = 65_536
_PUBLISH = 0x30
MAX_PACKETS_PER_READ = 256  # then paho's loop turns once (acks out, keepalive) before reading on


class FastClient(mqtt.Client):
    """paho's `Client` with buffered reads, several packets per loop turn and a direct `on_message`.

    Same protocol behaviour: only how bytes are fetched from the socket and how often paho's loop
    goes through `select` change. TLS and websocket connections keep paho's own reads.
    """

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._ssl or self._transport == "websockets":
            return sock
        return _BufferedSocket(sock)

    def _packet_read(self) -> MQTTErrorCode:
        """A PUBLISH already whole in the buffer is handled at once; anything else by paho."""
        sock = self._sock
        if type(sock) is _BufferedSocket and self._in_packet["command"] == 0:
            if not sock.pending():
                sock.fill()  # select said readable: read here, not through paho's 1-byte read
            taken = sock.take_publish()
            # A packet cut by the end of the last read: complete it from the socket instead of
            # paho's three small reads (one message in eight at full load, measured).
            while taken is None and sock.publish_is_next() and sock.fill():
                taken = sock.take_publish()
            if taken is not None:
                message = self._lean_publish(*taken)
                if message is not None:
                    rc = self._deliver(message)
                else:  # paho's own decoder: QoS 2, properties, logging on, or malformed
                    header, buf, start, end = taken
                    in_packet = self._in_packet
                    in_packet["command"] = header
                    in_packet["packet"] = bytearray(buf[start:end])  # paho's own type for a body
                    in_packet["remaining_length"] = end - start
                    in_packet["have_remaining"] = 1
                    try:
                        rc = self._packet_handle()
                    except MalformedPacket as exc:
                        self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                        rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                    self._in_packet = {
                        "command": 0,
                        "have_remaining": 0,
                        "remaining_count": [],
                        "remaining_mult": 1,
                        "remaining_length": 0,
                        "packet": bytearray(b""),
                        "to_process": 0,
                        "pos": 0,
                    }
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()
                return rc
        return super()._packet_read()

    def _lean_publish(self, header: int, buf: bytes, start: int, end: int) -> mqtt.MQTTMessage | None:
        """The message of a QoS 0/1 PUBLISH without properties, as paho would build it; else None.

        paho's `_handle_publish` unpacks with format strings, copies the body twice, builds a
        `MQTTMessageInfo` (with a `threading.Condition`) that nothing reads for a received
        message, and formats a debug line: ~5 µs per message. This slices the same fields out
        of the receive buffer (`buf[start:end]` is the packet body).
        """
        qos = (header & 0x06) >> 1
        if qos == 2 or self.on_log is not None or self._logger is not None:
            return None
        if end - start < 2:
            return None
        topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
        if topic_end == start + 2:
            return None  # empty topic: a topic alias (v5) or malformed (3.1.1), paho decides
        mid = 0
        payload_start = topic_end
        if qos:
            payload_start += 2
            if payload_start > end:
                return None
            mid = (buf[topic_end] << 8) | buf[topic_end + 1]
        properties: Properties | None = None
        if self._protocol == mqtt.MQTTv5:
            if payload_start >= end or buf[payload_start] != 0 or _packet.Properties is not FastProperties:
                return None  # properties present (or truncated): paho's decoder
            properties = FastProperties(PacketTypes.PUBLISH)
            payload_start += 1
        elif payload_start > end:
            return None
        message = _new_message(mqtt.MQTTMessage)
        message._topic = buf[start + 2 : topic_end]
        message.mid = mid
        message.qos = qos
        message.dup = bool(header & 0x08)
        message.retain = bool(header & 0x01)
        message.properties = properties
        message.payload = buf[payload_start:end]
        message.state = mqtt.mqtt_ms_invalid
        message.info = _RECEIVED_INFO
        message.timestamp = mqtt.time_func()
        return message

    def _deliver(self, message: mqtt.MQTTMessage) -> MQTTErrorCode:
        """What paho's `_handle_publish` does with a decoded QoS 0/1 message."""
        self._handle_on_message(message)
        if message.qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None or not isinstance(sock, _BufferedSocket):
                break
            if not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        root = self._on_message_filtered._root
        if root._children or root._content is not None:  # per-topic callbacks: paho's dispatch
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise
