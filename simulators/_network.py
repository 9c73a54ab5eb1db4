"""Many paho-mqtt clients driven by one thread: a `selectors` loop instead of a thread per client.

paho-mqtt supports external event loops (`on_socket_open/close/register_write/unregister_write`
with `loop_read`, `loop_write`, `loop_misc`). One thread serving every connection is what lets a
single process keep a connection, and so a last will, per device for thousands of devices.
Everything here runs in the thread that calls it; nothing is shared with other threads.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from zhongdu.errors import ZhongduError
from zhongdu.settings import mqtt_tls_context, parse_mqtt_url

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


class BrokerError(ZhongduError, ConnectionError):
    """The broker cannot be reached or refuses the simulator's connections."""


@dataclass(eq=False)
class Link:
    """One MQTT connection and the status topics it speaks for."""

    client_id: str
    will_topic: str | None  # set as the connection's last will (per-device connections)
    status_topics: list[str]  # retained `online` on every connect, `offline` on a clean stop
    client: mqtt.Client | None = None
    connected: bool = False
    ever_connected: bool = False
    failed: str | None = None
    reconnect_at: float | None = None
    backoff: float = 0.5
    status_mids: set[int] = field(default_factory=set)
    username: str | None = None  # this device's own credential (a secured broker); else the URL's
    password: str | None = None


class AckCounting:
    """What both engines share: telemetry PUBACKs counted, and `flush` serving `poll` until all came.

    Engines count `acked` / `failed` as PUBACKs arrive and implement `poll(timeout)`.
    """

    acked: int  # telemetry PUBACKs
    failed: int  # telemetry PUBACKs with a failure reason code

    def poll(self, timeout: float) -> None:
        raise NotImplementedError

    def pending(self, sent: int) -> int:
        """Telemetry messages handed to the engine but not yet acknowledged by the broker."""
        return sent - self.acked - self.failed

    def flush(self, sent: int, timeout: float) -> bool:
        """Serve the sockets until every telemetry message is acknowledged (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while self.pending(sent) > 0 and time.monotonic() < deadline:
            self.poll(0.02)
        return self.pending(sent) <= 0


class Network(AckCounting):
    """A set of links to one broker, served by `poll()` from the caller's thread."""

    def __init__(
        self,
        url: str,
        links: list[Link],
        *,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        keepalive: int = 30,
        max_inflight: int = 100,
        statuses: bool = True,
        cafile: str | None = None,
    ) -> None:
        self.url = url
        self.host, self.port, self.username, self.password = parse_mqtt_url(url)
        self.tls = mqtt_tls_context(url, cafile)
        self.links = links
        self.protocol = protocol
        self.keepalive = keepalive
        self.max_inflight = max_inflight
        self.statuses = statuses
        self.selector = selectors.DefaultSelector()
        self.acked = 0  # telemetry PUBACKs
        self.failed = 0  # telemetry PUBACKs with a failure reason code
        self.status_sent = 0
        self.reconnects = 0
        self.closing = False
        self._last_misc = 0.0

    # -- callbacks (run inside loop_read / loop_write / loop_misc, in this thread) ----------------
    def _on_socket_open(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self.selector.register(sock, selectors.EVENT_READ, link)

    def _on_socket_close(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_register_write(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        try:
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, link)
        except (KeyError, ValueError):
            pass

    def _on_unregister_write(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        try:
            self.selector.modify(sock, selectors.EVENT_READ, link)
        except (KeyError, ValueError):
            pass

    def _on_connect(self, client: mqtt.Client, link: Link, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            link.failed = f"broker refused the connection: {rc}"
            return
        link.connected = True
        link.ever_connected = True
        link.failed = None
        link.backoff = 0.5
        if self.statuses:
            for topic in link.status_topics:
                info = client.publish(topic, ONLINE, qos=1, retain=True)
                link.status_mids.add(info.mid)
                self.status_sent += 1

    def _on_disconnect(self, client: mqtt.Client, link: Link, flags: Any, rc: ReasonCode, props: Any) -> None:
        link.connected = False
        if not link.ever_connected and link.failed is None:
            link.failed = f"the broker closed the connection before its CONNACK ({rc})"
            return
        if not self.closing:
            link.reconnect_at = time.monotonic() + link.backoff
            link.backoff = min(10.0, link.backoff * 2)

    def _on_publish(self, client: mqtt.Client, link: Link, mid: int, rc: ReasonCode, props: Any) -> None:
        if mid in link.status_mids:
            link.status_mids.discard(mid)
            return
        if rc.is_failure:
            self.failed += 1
        else:
            self.acked += 1

    # -- lifecycle ---------------------------------------------------------------------------------
    def _make_client(self, link: Link) -> mqtt.Client:
        kwargs: dict[str, Any] = {}
        if self.protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = True
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=link.client_id,
            protocol=self.protocol,
            userdata=link,
            **kwargs,
        )
        if link.username:
            client.username_pw_set(link.username, link.password)
        elif self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls is not None:
            client.tls_set_context(self.tls)
        if link.will_topic and self.statuses:
            client.will_set(link.will_topic, OFFLINE, qos=1, retain=True)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)  # unbounded: the publisher applies its own back-pressure
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        link.client = client
        return client

    def _connect(self, link: Link) -> None:
        client = link.client or self._make_client(link)
        try:
            if self.protocol == mqtt.MQTTv5:
                client.connect(self.host, self.port, self.keepalive, clean_start=True)
            else:
                client.connect(self.host, self.port, self.keepalive)
        except OSError as exc:
            raise BrokerError(
                f"cannot connect to the MQTT broker at {self.url} ({exc.strerror or exc}); "
                "start one (e.g. `mosquitto -d`) or pass --url / set ZHONGDU_MQTT_URL"
            ) from exc

    def connect_all(self, timeout: float = 30.0) -> None:
        """Open every link and wait for every CONNACK; raise `BrokerError` naming the URL otherwise."""
        for i, link in enumerate(self.links):
            self._connect(link)
            if i % 50 == 49:
                self.poll(0.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.02)
            refused = next((link for link in self.links if link.failed), None)
            if refused is not None:
                raise BrokerError(f"{self.url}: {refused.failed} (client {refused.client_id})")
            if all(link.connected for link in self.links):
                return
        waiting = sum(not link.connected for link in self.links)
        raise BrokerError(
            f"{waiting} of {len(self.links)} connections to {self.url} got no CONNACK in {timeout:.0f} s"
        )

    def poll(self, timeout: float) -> None:
        """Serve the sockets once: reads, pending writes, keep-alives and due reconnects."""
        for key, mask in self.selector.select(timeout):
            link: Link = key.data
            client = link.client
            if client is None:
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and link.client is not None:
                client.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= 0.5:
            self._last_misc = now
            for link in self.links:
                if link.client is None:
                    continue
                link.client.loop_misc()
                if not link.connected and link.reconnect_at is not None and now >= link.reconnect_at:
                    link.reconnect_at = None
                    try:
                        link.client.reconnect()
                        self.reconnects += 1
                    except OSError:
                        link.reconnect_at = now + link.backoff
                        link.backoff = min(10.0, link.backoff * 2)

    def publish(self, link: Link, topic: str, payload: bytes, qos: int = 1) -> None:
        assert link.client is not None
        link.client.publish(topic, payload, qos=qos)  # queued by paho while the link is down

    def drop(self, link: Link) -> None:
        """Cut the link without a DISCONNECT packet, as a failing device would (the will fires)."""
        client = link.client
        sock = client.socket() if client is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        link.connected = False

    def close(self, timeout: float = 10.0) -> None:
        """Publish retained `offline` for every status topic, then disconnect cleanly."""
        if self.statuses:
            for link in self.links:
                if link.client is not None and link.connected:
                    for topic in link.status_topics:
                        info = link.client.publish(topic, OFFLINE, qos=1, retain=True)
                        link.status_mids.add(info.mid)
                        self.status_sent += 1
            deadline = time.monotonic() + timeout
            while (
                any(link.status_mids and link.connected for link in self.links)
                and time.monotonic() < deadline
            ):
                self.poll(0.02)
        self.closing = True
        for link in self.links:
            if link.client is not None and link.connected:
                link.client.disconnect()
        deadline = time.monotonic() + timeout
        while any(link.connected for link in self.links) and time.monotonic() < deadline:
            self.poll(0.02)
        self.selector.close()
