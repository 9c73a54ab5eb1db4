"""Steady QoS 1 publishers that remember which messages the broker acknowledged, and the check
that every acknowledged message is stored exactly once (the fault tests' common yardstick)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from zhongdu.ingest import build_pack
from zhongdu.settings import parse_mqtt_url


class SteadyPublisher(threading.Thread):
    """One device publishing a pack a tick at `rate`/s, reconnecting by itself whatever happens.

    Message `seq` carries one pm2_5 datapoint at `t0 + seq/1000` s: its row key tells which message
    it was. PUBACKs are recorded by packet id (paho resends what was in flight after a reconnect, so
    a PUBACK may come late, for the resent copy); ids stay below 65,536 in these short runs.
    """

    def __init__(
        self, url: str, device: str, *, rate: float, t0: float, username: str | None = None,
        password: str | None = None, v5: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(name=f"pub-{device}", daemon=True)
        self.device, self.rate, self.t0 = device, rate, t0
        self.topic = f"zhongdu/v1/park/{device}/senml"
        host, port, user, pw = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # a secured broker binds a credential to one client id: its username
            client_id=username or user or f"{device}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            **({} if v5 else {"clean_session": True}),
        )
        if username or user:
            self.client.username_pw_set(username or user, password if username else pw)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect_async(host, port, keepalive=5)
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self._acked_mids: list[int] = []  # appended by paho's thread; list.append is atomic
        self.client.on_publish = self._on_publish
        self.stop = threading.Event()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", False):
            self._acked_mids.append(mid)

    def run(self) -> None:
        self.client.loop_start()
        started = time.monotonic()
        seq = 0
        while not self.stop.is_set():
            delay = started + seq / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pack = build_pack(self.device, {"pm2_5": float(seq % 500)}, time_s=self.t0 + seq / 1000)
            self.infos.append(self.client.publish(self.topic, json.dumps(pack).encode(), qos=1))
            seq += 1

    def acked(self) -> set[int]:
        seq_of = {info.mid: seq for seq, info in enumerate(list(self.infos))}
        assert len(seq_of) == len(self.infos), "a packet id was reused: run shorter or slower"
        return {seq_of[mid] for mid in list(self._acked_mids) if mid in seq_of}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Tally:
    published: int = 0
    acked: int = 0
    stored: int = 0  # distinct (device, time) rows
    rows: int = 0  # all rows (a duplicate would show here: the primary key forbids it)
    lost: list[tuple[str, int]] = field(default_factory=list)  # acked, not stored
    unacked_stored: int = 0  # at-least-once: sent, ack lost with the connection, stored anyway
    rejected: int = 0

    def line(self, fault: str) -> str:
        return (
            f"{fault}: published {self.published}, acked {self.acked}, stored {self.stored} rows "
            f"({self.unacked_stored} of them never acked), lost {len(self.lost)}, duplicates "
            f"{self.rows - self.stored}, rejected {self.rejected}"
        )


def tally(database_url: str, publishers: list[SteadyPublisher]) -> Tally:
    """Compare what the broker acknowledged with what the database holds, message by message."""
    result = Tally()
    with psycopg.connect(database_url) as conn:
        for pub in publishers:
            rows = conn.execute(
                "SELECT round((extract(epoch FROM time) - %s) * 1000)::int FROM readings WHERE device_id = %s",
                (pub.t0, pub.device),
            ).fetchall()
            stored = {int(r[0]) for r in rows}
            acked = pub.acked()
            result.published += len(pub.infos)
            result.acked += len(acked)
            result.stored += len(stored)
            result.rows += len(rows)
            result.lost += [(pub.device, seq) for seq in sorted(acked - stored)]
            result.unacked_stored += len(stored - acked)
            row = conn.execute(
                "SELECT count(*) FROM rejected_messages WHERE topic = %s", (pub.topic,)
            ).fetchone()
            result.rejected += int(row[0]) if row else 0
    return result


def wait_acked(publishers: list[SteadyPublisher], timeout: float = 60.0) -> None:
    """Let paho deliver what it queued while the broker was away."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(p.acked()) == len(p.infos) for p in publishers):
            return
        time.sleep(0.1)


def wait_stored(database_url: str, publishers: list[SteadyPublisher], timeout: float = 90.0) -> Tally:
    """Poll until every acked message is stored (or the time is up) and the count stops moving."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        now = tally(database_url, publishers)
        if not now.lost and now.stored == last:
            return now
        last = now.stored
        time.sleep(1.0)
    return tally(database_url, publishers)
