"""A minimal MQTT publisher for the fixed-count fast path: CONNECT, PUBLISH QoS 1, PUBACK, DISCONNECT.

paho-mqtt spends most of a QoS 1 publish in Python bookkeeping (and, over MQTT v5, in building
property objects for every PUBACK), and writes each packet with its own `send`. For the ingestion
benchmark the simulator must outrun the ingester, so this path builds each PUBLISH packet from
cached topic bytes, writes them in batches, and only counts PUBACKs. It keeps the broker's
receive maximum (MQTT v5) and a window of packet ids in flight, so nothing is ever dropped.

What it does not do: wills (so a crash leaves statuses `online`), reconnects, or anything but
QoS 1 publishing. `Network` (paho) is the default; this is `engine="raw"`.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

from zhongdu.settings import parse_mqtt_url
from zhongdu.simulators._network import OFFLINE, ONLINE, AckCounting, BrokerError, Link


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return len(data).to_bytes(2, "big") + data


@dataclass(eq=False)
class _Conn:
    link: Link
    sock: socket.socket
    window: int
    out: list[bytes] = field(default_factory=list)
    out_bytes: int = 0
    inflight: int = 0
    next_mid: int = 1
    status_mids: set[int] = field(default_factory=set)
    inbuf: bytearray = field(default_factory=bytearray)
    last_io: float = field(default_factory=time.monotonic)


class RawNetwork(AckCounting):
    """Same interface as `Network` (connect_all, publish, poll, pending, flush, close), faster and simpler."""

    def __init__(
        self, url: str, links: list[Link], *, protocol: int = 5, window: int = 1000, statuses: bool = True
    ) -> None:
        if protocol not in (4, 5):
            raise ValueError("protocol is 4 (MQTT 3.1.1) or 5")
        self.url = url
        self.host, self.port, self.username, self.password = parse_mqtt_url(url)
        self.links = links
        self.protocol = protocol
        self.window = window
        self.statuses = statuses
        self.conns: dict[int, _Conn] = {}  # id(link) -> connection
        self.acked = 0
        self.failed = 0
        self.status_sent = 0
        self.reconnects = 0
        self._topics: dict[str, bytes] = {}
        self._props = b"\x00" if protocol == 5 else b""

    # -- connection ------------------------------------------------------------------------------
    def _connect_packet(
        self, client_id: str, username: str | None = None, password: str | None = None
    ) -> bytes:
        flags = 0x02  # clean session / clean start
        payload = _string(client_id)
        username, password = (username, password) if username else (self.username, self.password)
        if username:
            flags |= 0x80
            payload += _string(username)
            if password is not None:
                flags |= 0x40
                payload += _string(password)
        variable = _string("MQTT") + bytes([self.protocol, flags]) + (60).to_bytes(2, "big") + self._props
        body = variable + payload
        return b"\x10" + _varint(len(body)) + body

    def connect_all(self, timeout: float = 30.0) -> None:
        for link in self.links:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except OSError as exc:
                raise BrokerError(
                    f"cannot connect to the MQTT broker at {self.url} ({exc.strerror or exc}); "
                    "start one (e.g. `mosquitto -d`) or pass --url / set ZHONGDU_MQTT_URL"
                ) from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(self._connect_packet(link.client_id, link.username, link.password))
            window = self._read_connack(sock, link, timeout)
            sock.setblocking(False)
            conn = _Conn(link, sock, window)
            self.conns[id(link)] = conn
            link.connected = True
            if self.statuses:
                for topic in link.status_topics:
                    conn.status_mids.add(self._queue(conn, topic, ONLINE, retain=True))
                    self.status_sent += 1
        self.poll(0.0)

    def _read_connack(self, sock: socket.socket, link: Link, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while True:
            packet = self._take_packet(buf)
            if packet is not None:
                break
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.url}: no CONNACK for {link.client_id} within {timeout:.0f} s")
            chunk = sock.recv(4096)
            if not chunk:
                version = "5" if self.protocol == 5 else "3.1.1"
                raise BrokerError(f"{self.url} closed the connection on CONNECT (MQTT {version})")
            buf += chunk
        kind, body = packet
        if kind != 0x20 or len(body) < 2:
            raise BrokerError(f"{self.url}: expected CONNACK, got packet type {kind >> 4}")
        if body[1] != 0:
            raise BrokerError(f"{self.url}: broker refused the connection (return code {body[1]})")
        window = self.window
        if self.protocol == 5 and len(body) > 2:
            props = bytes(body[2:])
            length, used = self._read_varint(props, 0)
            i, end = used, used + length
            while i < end:  # only Receive Maximum (0x21) matters here; skip the rest by type
                pid = props[i]
                i += 1
                if pid == 0x21:
                    window = min(window, int.from_bytes(props[i : i + 2], "big"))
                    i += 2
                elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A):  # byte properties
                    i += 1
                elif pid in (0x13, 0x22):  # two-byte integers
                    i += 2
                elif pid in (0x11, 0x27):  # four-byte integers
                    i += 4
                elif pid == 0x26:  # user property: two strings
                    for _ in range(2):
                        i += 2 + int.from_bytes(props[i : i + 2], "big")
                elif pid in (0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):  # strings and binary data
                    i += 2 + int.from_bytes(props[i : i + 2], "big")
                else:
                    break
        return max(1, window)

    @staticmethod
    def _read_varint(data: bytes | bytearray, i: int) -> tuple[int, int]:
        value, shift, used = 0, 0, 0
        while True:
            byte = data[i + used]
            value |= (byte & 0x7F) << shift
            used += 1
            if not byte & 0x80:
                return value, used
            shift += 7

    @staticmethod
    def _take_packet(buf: bytearray) -> tuple[int, bytes] | None:
        """Remove and return one complete packet (type byte, body) from `buf`, if there is one."""
        if len(buf) < 2:
            return None
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buf):
                return None
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if not byte & 0x80:
                break
            shift += 7
        if len(buf) < i + length:
            return None
        packet = (buf[0] & 0xF0, bytes(buf[i : i + length]))
        del buf[: i + length]
        return packet

    # -- publishing --------------------------------------------------------------------------------
    def _queue(self, conn: _Conn, topic: str, payload: bytes, retain: bool = False) -> int:
        head = self._topics.get(topic)
        if head is None:
            head = self._topics[topic] = _string(topic)
        mid = conn.next_mid
        conn.next_mid = mid % 65535 + 1
        remaining = len(head) + 2 + len(self._props) + len(payload)
        conn.out.append(
            (b"\x33" if retain else b"\x32")
            + _varint(remaining)
            + head
            + mid.to_bytes(2, "big")
            + self._props
        )
        conn.out.append(payload)
        conn.out_bytes += remaining + 5
        conn.inflight += 1
        return mid

    def publish(self, link: Link, topic: str, payload: bytes, qos: int = 1) -> None:
        conn = self.conns[id(link)]
        while conn.inflight >= conn.window:
            self.poll(0.01)
        self._queue(conn, topic, payload)
        if conn.out_bytes >= 65536:
            self._send(conn)

    def _send(self, conn: _Conn) -> None:
        if not conn.out:
            return
        data = b"".join(conn.out)
        conn.out.clear()
        conn.out_bytes = 0
        view = memoryview(data)
        while view:
            try:
                sent = conn.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                self._read(conn, wait=0.01)  # the broker may be waiting for us to read its acks
        conn.last_io = time.monotonic()

    def _read(self, conn: _Conn, wait: float = 0.0) -> None:
        if wait:
            select.select([conn.sock], [], [], wait)
        try:
            chunk = conn.sock.recv(262144)
        except BlockingIOError:
            return
        if not chunk:
            conn.link.connected = False
            raise BrokerError(f"{self.url} closed the connection of {conn.link.client_id}")
        conn.inbuf += chunk
        while True:
            packet = self._take_packet(conn.inbuf)
            if packet is None:
                return
            kind, body = packet
            if kind == 0x40:  # PUBACK
                mid = int.from_bytes(body[:2], "big")
                conn.inflight -= 1
                if mid in conn.status_mids:
                    conn.status_mids.discard(mid)
                elif len(body) > 2 and body[2] >= 0x80:
                    self.failed += 1
                else:
                    self.acked += 1
            elif kind == 0xE0:
                conn.link.connected = False
                raise BrokerError(f"{self.url} disconnected {conn.link.client_id} (reason {body[:1].hex()})")

    def poll(self, timeout: float) -> None:
        socks = []
        now = time.monotonic()
        for conn in self.conns.values():
            if not conn.out and now - conn.last_io > 20.0:
                conn.out.append(b"\xc0\x00")  # PINGREQ keeps an idle, paced link alive
            self._send(conn)
            socks.append(conn.sock)
        if not socks:
            return
        readable, _, _ = select.select(socks, [], [], timeout)
        by_sock = {c.sock: c for c in self.conns.values()}
        for sock in readable:
            self._read(by_sock[sock])

    def drop(self, link: Link) -> None:
        raise BrokerError("the raw engine does not cut connections; use the default engine for `drop` faults")

    def close(self, timeout: float = 10.0) -> None:
        try:
            if self.statuses:
                for conn in self.conns.values():
                    if conn.link.connected:
                        for topic in conn.link.status_topics:
                            conn.status_mids.add(self._queue(conn, topic, OFFLINE, retain=True))
                            self.status_sent += 1
                deadline = time.monotonic() + timeout
                while any(c.status_mids and c.link.connected for c in self.conns.values()):
                    if time.monotonic() > deadline:
                        break
                    self.poll(0.02)
            for conn in self.conns.values():
                if conn.link.connected:
                    conn.out.append(b"\xe0\x00")  # DISCONNECT (normal)
                    self._send(conn)
        except (BrokerError, OSError):
            pass
        finally:
            for conn in self.conns.values():
                conn.link.connected = False
                conn.sock.close()
