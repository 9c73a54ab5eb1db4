"""Helpers for the ingestion tests: a QoS 1 publisher that waits for the broker's acks, and queries."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from zhongdu.ingest import build_pack


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


@contextmanager
def publisher(url: str, name: str, *, mqtt5: bool = True) -> Iterator[mqtt.Client]:
    """A connected QoS 1 publisher. Its client id is `name` plus a random suffix: a client id names
    an MQTT session, and parallel test runs (or other test suites on the broker) must never share one."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(
    client: mqtt.Client,
    messages: Iterable[tuple[str, bytes]],
    *,
    rate: float | None = None,
    retain: bool = False,
) -> int:
    """Publish at QoS 1 (optionally paced to `rate` per second); return once the broker acked all."""
    infos = []
    started = time.monotonic()
    for index, (topic, payload) in enumerate(messages):
        if rate:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        infos.append(client.publish(topic, payload, qos=1, retain=retain))
    for info in infos:
        info.wait_for_publish(60)
        assert info.is_published()
    return len(infos)


def senml_stream(devices: int, count: int, t0: float, *, prefix: str = "dev") -> list[tuple[str, bytes]]:
    """`count` packs of 3 datapoints, spread over `devices` devices, with unique times per device."""
    out = []
    for i in range(count):
        device = f"{prefix}-{i % devices}"
        values = {"pm2_5": float(i % 500), "pm10": float(i % 900), "temperature": 20.0 + (i % 10)}
        pack = build_pack(device, values, time_s=t0 + i * 0.001)
        out.append((f"zhongdu/v1/park/{device}/senml", json.dumps(pack).encode()))
    return out


def scalar(url: str, query: str, params: tuple[object, ...] = ()) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])
