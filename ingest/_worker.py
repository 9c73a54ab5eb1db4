"""The ingest worker: MQTT in (paho-mqtt 2.x), batched commits out, acknowledgement after commit.

Threads: paho's network loop runs `_on_message`, which only parses and puts the result on a
bounded queue; the writer thread batches the queue (by rows or by time), commits one statement
per batch, then acknowledges the batch's messages (`manual_ack`). A crash before the commit
leaves the messages unacknowledged in the broker's persistent session, so they come back; a crash
between commit and ack makes them come back too, and the natural keys absorb the duplicates.

Backpressure: the broker sends at most `receive_maximum` unacknowledged messages (MQTT v5; the
broker's own inflight limit under 3.1.1), and the queue is bounded, so a slow database slows the
intake instead of growing memory. Reconnects: paho retries the broker with backoff; the writer
retries the database with backoff and keeps the batch, unacknowledged, until it is committed.

MQTT v5 with a persistent session (`clean_start=False`, session expiry) and the shared
subscription `$share/<group>/zhongdu/v1/#` (plus a plain subscription to the status topics so
their retained values arrive at start), or with an empty group one plain subscription (a single
worker; Mosquitto 2.0 restores those after a broker restart, not shared ones); MQTT 3.1.1 with a
plain subscription where the broker refuses v5 (the embedded amqtt broker): then run a single worker.
"""

from __future__ import annotations

import gc
import logging
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from zhongdu import storage
from zhongdu.errors import ConfigError, StorageError
from zhongdu.ingest import _paho_speedups
from zhongdu.ingest._parse import Limits, parse_message
from zhongdu.ingest._profiles import DEFAULT_CONFIG, IngestConfig, load_config
from zhongdu.ingest._prometheus import IngestMetrics, default_metrics
from zhongdu.ingest._types import Accepted, IngestError
from zhongdu.ingest._writer import Item, Writer
from zhongdu.settings import Settings, mask_url, mqtt_tls_context, parse_mqtt_url

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86_400
KEEPALIVE_S = 30
TOPIC_FILTER = "zhongdu/v1/#"
STATUS_FILTER = "zhongdu/v1/+/+/status"
POLL_S = 0.002  # the writer polls the inbox: no per-message lock or wake-up in the network thread
IDLE_POLL_S = 0.005  # while the inbox is empty (adds at most 5 ms to a batch's latency)
SUB_STATUS = 2  # subscription identifier of the plain status subscription
UNSUPPORTED_PROTOCOL_VERSION = 0x84  # MQTT v5 CONNACK reason code


@dataclass
class IngestStats:
    """Plain counters (besides Prometheus), read by tests and the benchmark."""

    received: int = 0
    committed: int = 0  # messages committed (accepted or rejected) and then acknowledged
    datapoints: int = 0  # rows of accepted messages committed (including duplicates ignored)
    rows_written: int = 0  # rows newly inserted into readings and station_telemetry
    duplicates: int = 0  # rows absorbed as identical replays of stored rows
    conflicts: int = 0  # readings kept as conflicting_value rejections
    config_reloads: int = 0  # device profiles / custom metrics reloaded while running
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    connects: int = 0


@dataclass(frozen=True)
class CommitInfo:
    """Passed to `on_commit` after each batch (the benchmark measures latency with it)."""

    committed_at: float  # epoch seconds
    messages: int
    datapoints: int
    data_times: list[datetime]  # latest data time of each accepted message


def broker_accepts_mqtt5(
    host: str,
    port: int,
    timeout: float = 5.0,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """Probe the broker with an MQTT v5 CONNECT; False when it refuses v5 or drops the connection.

    A v5 CONNACK refusing the credentials still proves v5 (the real connection then reports them).
    """
    result: dict[str, bool] = {}
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"zhongdu-probe-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        result["ok"] = reason.value != UNSUPPORTED_PROTOCOL_VERSION
        done.set()

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _r: ReasonCode, _p: Any) -> None:
        result.setdefault("ok", False)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    if username:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise IngestError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return result.get("ok", False)


class Ingester:
    """MQTT -> database. `start()` returns at once; `stop()` drains, commits, acks, disconnects.

    `run(stop_event)` does both for a thread (what `zhongdu demo` and `zhongdu ingest` use).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str | None = None,
        mqtt_url: str | None = None,
        schema: str | None = None,
        client_id: str | None = None,
        mqtt5: bool | None = None,
        migrate: bool = True,
        metrics: IngestMetrics | None = None,
        on_commit: Callable[[CommitInfo], None] | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        speedups: bool = True,
        writers: int = 1,
    ) -> None:
        self.settings = settings
        self.database_url = database_url or settings.database_url
        self.mqtt_url = mqtt_url or settings.mqtt_url
        if not self.database_url:
            raise ConfigError(
                "the ingester needs a database: set ZHONGDU_DATABASE_URL (or run `zhongdu demo`)"
            )
        if not self.mqtt_url:
            raise ConfigError("the ingester needs a broker: set ZHONGDU_MQTT_URL (or run `zhongdu demo`)")
        self.schema = schema
        # A secured broker binds each credential to one client id, its username (each worker has its
        # own): any other id would be refused, so the username wins over a configured id.
        url_user = parse_mqtt_url(self.mqtt_url)[2]
        self.client_id = url_user or client_id or settings.mqtt_client_id
        self._mqtt5 = mqtt5
        self._migrate = migrate
        self.metrics = metrics or default_metrics()
        self._on_commit = on_commit
        self._session_expiry_s = session_expiry_s
        self._speedups = speedups
        self.limits = Limits.from_settings(settings)
        self.stats = IngestStats()
        self._stats_lock = threading.Lock()
        # A deque, not queue.Queue: appends and pops are atomic without a Python lock, so the
        # network thread never waits on a mutex the writer holds (a lock convoy measured here).
        self._inbox: deque[Item] = deque()
        self._inbox_limit = settings.ingest_max_inflight + 1000
        self._stopping = threading.Event()
        self._writer_done = threading.Event()
        self._generation = 0  # bumped on every connect and disconnect; acks never cross one
        self._ack_lock = threading.Lock()
        self._connected = threading.Event()  # connected AND every subscription acknowledged
        self._pending_subscriptions: set[int] = set()
        self._client: mqtt.Client | None = None
        self._writer_threads: list[threading.Thread] = []
        if writers < 1:
            raise ConfigError(f"writers must be at least 1, got {writers}")
        self._writers = [
            Writer(
                self.database_url,
                schema=schema,
                auto_register=settings.auto_register,
                max_stored_payload=self.limits.max_stored_payload,
                stop=self._stopping,
                on_db_error=self.metrics.db_errors.inc,
            )
            for _ in range(writers)
        ]
        self._received = {k: self.metrics.messages.labels(k) for k in ("park", "bs", "other")}
        self.protocol: str = "unknown"
        self._two_subscriptions = False
        # Read by the network thread for every message, replaced whole by writer 0 on a change.
        self.config: IngestConfig = DEFAULT_CONFIG
        self._config_checked = 0.0
        self._rollups_refreshed = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, retry_until: threading.Event | None = None) -> bool:
        """Migrate the schema, connect to the broker and start the writer thread.

        With `retry_until`, a database or broker that does not answer yet is retried with backoff
        until it does (True) or the event is set (False); without it the error is raised.
        """
        fast_paho = self._speedups and _paho_speedups.install()
        if self._speedups:
            tune_gc()
        host, port, username, password = parse_mqtt_url(self.mqtt_url)  # type: ignore[arg-type]
        tls = mqtt_tls_context(self.mqtt_url, self.settings.mqtt_cafile)  # type: ignore[arg-type]
        use_v5 = self._mqtt5
        delay = 1.0
        while True:
            try:
                with storage.connect(self.database_url, schema=self.schema) as conn:  # type: ignore[arg-type]
                    if self._migrate:
                        storage.migrate(conn)
                    self.config = self._initial_config(conn)
                if use_v5 is None:
                    use_v5 = broker_accepts_mqtt5(host, port, username=username, password=password, tls=tls)
                break
            except (StorageError, IngestError) as exc:
                if retry_until is None:
                    raise
                log.warning("%s; retrying in %.0f s", exc, delay)
                if retry_until.wait(delay):
                    return False
                delay = min(delay * 2, 30.0)
        self.protocol = "5" if use_v5 else "3.1.1"
        # v5 with a group: the shared subscription plus a plain one for retained statuses
        self._two_subscriptions = bool(use_v5 and self.settings.mqtt_share_group)
        # The fast reader takes whole packets off a plain socket; TLS goes through paho's own.
        client_class = _paho_speedups.FastClient if fast_paho and tls is None else mqtt.Client
        client = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if use_v5 else mqtt.MQTTv311,
            clean_session=None if use_v5 else False,
            manual_ack=True,
        )
        client.suppress_exceptions = True  # a bug in a callback must not stop the network loop
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if username:
            client.username_pw_set(username, password)
        if tls is not None:
            client.tls_set_context(tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        properties = None
        if use_v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
            properties.ReceiveMaximum = min(65_535, self.settings.ingest_max_inflight)
        self._client = client
        self._writer_threads = [
            threading.Thread(target=self._writer_loop, args=(writer,), name=f"ingest-writer-{k}", daemon=True)
            for k, writer in enumerate(self._writers)
        ]
        for thread in self._writer_threads:
            thread.start()
        client.connect_async(
            host,
            port,
            keepalive=KEEPALIVE_S,
            clean_start=False if use_v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        client.loop_start()
        log.info(
            "ingesting from %s (MQTT %s, client %s, group %s) into %s",
            mask_url(self.mqtt_url), self.protocol, self.client_id, self.settings.mqtt_share_group,
            mask_url(self.database_url),
        )  # fmt: skip
        return True

    @staticmethod
    def _initial_config(conn: Any) -> IngestConfig:
        try:
            return load_config(conn)
        except psycopg.Error as exc:  # a schema without the profile tables (not migrated)
            conn.rollback()
            log.warning("no device profiles or custom metrics loaded: %s", exc)
            return DEFAULT_CONFIG

    def wait_connected(self, timeout: float = 15.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, commit and ack what was taken, disconnect."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._writer_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        for writer in self._writers:
            writer.close()

    def run(self, stop_event: threading.Event) -> None:
        """Run until `stop_event` is set (for a thread or the CLI); waits for servers to answer."""
        if not self.start(retry_until=stop_event):
            return
        try:
            while not stop_event.wait(0.5):
                if self._writer_done.is_set():
                    raise IngestError("the ingest writer stopped unexpectedly; see the log")
        finally:
            self.stop()

    # -- MQTT callbacks (network thread: keep them short) -----------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._generation += 1
        with self._stats_lock:
            self.stats.connects += 1
        self.metrics.connected.set(1)
        group = self.settings.mqtt_share_group
        # `wait_connected` returns once the broker has acknowledged every subscription: before
        # that, a new session's messages would not be queued for this worker.
        if self.protocol == "5" and group:
            # Only the plain status subscription carries an identifier: the shared one (all the
            # traffic) then has no properties to decode, and the two copies can be told apart.
            _, shared = client.subscribe(f"$share/{group}/{TOPIC_FILTER}", options=SubscribeOptions(qos=1))
            properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            properties.SubscriptionIdentifier = SUB_STATUS
            _, status = client.subscribe(
                STATUS_FILTER, options=SubscribeOptions(qos=1), properties=properties
            )
            mids = {mid for mid in (shared, status) if mid is not None}
        else:
            _, mid = client.subscribe(TOPIC_FILTER, qos=1)
            mids = {mid} if mid is not None else set()
        with self._stats_lock:
            self._pending_subscriptions = mids
        if not mids:
            self._connected.set()
        present = getattr(flags, "session_present", "?")
        log.info("connected to the broker (session present: %s)", present)
        if present is True and self.stats.connects == 1:
            log.info(
                "resumed the MQTT session of client id %r: messages queued for it while no worker "
                "held it are delivered now, into %s; a client id names a session, so give each "
                "worker of each database its own",
                self.client_id, mask_url(self.database_url),
            )  # fmt: skip

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused a subscription: %s", ", ".join(str(r) for r in refused))
            return
        with self._stats_lock:
            self._pending_subscriptions.discard(mid)
            done = not self._pending_subscriptions
        if done:
            self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        with self._ack_lock:  # acks still queued for the lost connection are now skipped
            self._generation += 1
        self._connected.clear()
        self.metrics.connected.set(0)
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        if self._two_subscriptions and message.properties is not None:  # keep one copy of each
            from_status_sub = hasattr(message.properties, "SubscriptionIdentifier")
            if message.retain != from_status_sub:
                # Live messages count through the shared subscription, retained values (sent on
                # subscribing) through the plain status one; any other copy is a duplicate.
                if message.qos:
                    _client.ack(message.mid, message.qos)
                return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        payload = bytes(message.payload)
        properties = message.properties
        content_type = getattr(properties, "ContentType", None) if properties is not None else None
        result = parse_message(
            topic, payload, received_at=datetime.now(UTC), limits=self.limits,
            content_type=content_type, config=self.config,
        )  # fmt: skip
        kind = result.kind if isinstance(result, Accepted) else "other"
        self._received[kind].inc()
        self.stats.received += 1  # only this thread writes it
        # Bounded: the broker sends at most receive_maximum unacknowledged messages, so this only
        # waits for QoS 0 floods or brokers without the limit (then TCP pushes back on the sender).
        while len(self._inbox) >= self._inbox_limit and not self._stopping.is_set():
            time.sleep(POLL_S)
        self._inbox.append(Item(self._generation, message.mid, message.qos, payload, result))

    # -- writer thread -----------------------------------------------------------------------------

    def _collect(self) -> list[Item]:
        """Up to `ingest_batch_size` rows, waiting at most the batch interval after the first item."""
        inbox = self._inbox
        idle_until = time.monotonic() + 0.2
        while not inbox:
            if time.monotonic() > idle_until:
                return []
            time.sleep(IDLE_POLL_S)
        items: list[Item] = []
        rows = 0
        limit = self.settings.ingest_batch_size
        deadline = time.monotonic() + self.settings.ingest_batch_interval_ms / 1000
        while True:
            while rows < limit:
                try:
                    item = inbox.popleft()  # atomic: several writer threads may take turns
                except IndexError:
                    break
                items.append(item)
                rows += max(1, _rows(item))
            if rows >= limit or time.monotonic() >= deadline:
                return items
            time.sleep(POLL_S)

    def _refresh_config(self, writer: Writer) -> None:
        """Reload profiles and custom metrics when they changed (writer 0, between batches)."""
        now = time.monotonic()
        if now - self._config_checked < self.settings.ingest_config_refresh_s:
            return
        self._config_checked = now
        config = writer.load_config(self.config)
        if config is not self.config:
            self.config = config
            with self._stats_lock:
                self.stats.config_reloads += 1

    def _refresh_rollups(self, writer: Writer) -> None:
        """Plain PostgreSQL: fold the hours written lately into the 1-minute and 1-hour rollups."""
        now = time.monotonic()
        if now - self._rollups_refreshed < self.settings.ingest_rollup_refresh_s:
            return
        self._rollups_refreshed = now
        hours = writer.refresh_rollups()
        if hours > 0:
            log.debug("rollups refreshed for %d hours", hours)

    def _writer_loop(self, writer: Writer) -> None:
        try:
            while True:
                if writer is self._writers[0]:
                    self._refresh_config(writer)
                    self._refresh_rollups(writer)
                items = self._collect()
                self.metrics.queue_depth.set(len(self._inbox))
                if not items:
                    if self._stopping.is_set():
                        return
                    continue
                if not self._commit(writer, items):
                    return  # stopped while the database was unreachable: nothing acked
        except Exception:
            log.exception("the ingest writer failed")
            raise
        finally:
            self._writer_done.set()

    def _commit(self, writer: Writer, items: list[Item]) -> bool:
        result = writer.write(items)
        if result is None:
            return False
        committed_at = time.time()
        client = self._client
        if client is not None:
            with self._ack_lock:  # a reconnect cannot slip between the check and the send
                generation = self._generation
                send_acks(client, [it.mid for it in items if it.qos and it.generation == generation])
        m = self.metrics
        counts = result.counts
        m.batch_seconds.observe(result.seconds)
        m.batch_messages.observe(len(items))
        m.committed.inc(len(items))
        if counts.readings:
            m.rows.labels("readings").inc(counts.readings)
        if counts.telemetry:
            m.rows.labels("station_telemetry").inc(counts.telemetry)
        for reason in result.rejected:
            m.rejected.labels(str(reason)).inc()
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        data_times = [
            r.data_time for it in items if isinstance(r := it.result, Accepted) and r.data_time is not None
        ]
        for data_time in data_times:
            m.lag.observe(max(0.0, committed_at - data_time.timestamp()))
        datapoints = result.datapoints
        with self._stats_lock:
            stats = self.stats
            stats.committed += len(items)
            stats.batches += 1
            stats.rows_written += counts.readings + counts.telemetry
            stats.datapoints += datapoints
            stats.duplicates += result.duplicates
            stats.conflicts += result.conflicts
            for reason in result.rejected:
                stats.rejected[str(reason)] = stats.rejected.get(str(reason), 0) + 1
        if self._on_commit is not None:
            self._on_commit(CommitInfo(committed_at, len(items), datapoints, data_times))
        return True


_PUBACK = struct.Struct("!BBH")


def send_acks(client: mqtt.Client, mids: list[int]) -> None:
    """Acknowledge QoS 1 messages: one packet write for the whole batch where paho allows.

    `client.ack` queues one PUBACK, one wake-up of the network thread and one `send` per
    message; here all PUBACKs of a batch travel as one buffer through paho's own packet queue
    (the bytes are exactly the PUBACKs `ack` would send). Falls back to `ack` if paho changes.
    """
    if not mids:
        return
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None or len(mids) == 1:
        for mid in mids:
            client.ack(mid, 1)
        return
    packet = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
    queue_packet(0x40, packet, 0, 1)


def _rows(item: Item) -> int:
    result = item.result
    return result.datapoints if isinstance(result, Accepted) else 1


GC_THRESHOLDS = (50_000, 20, 50)


def tune_gc() -> None:
    """Collect the young generation every 50,000 allocations instead of 700 (process-wide).

    Every message leaves a few dozen container objects (rows, tuples, results) alive in the inbox
    until its batch commits, so CPython's default thresholds run a collection every ~20 messages
    and a full one over the whole inbox every few hundred: 4 of ~25 µs of parsing per message,
    measured on the benchmark packs. Objects alive at start-up are frozen out of the collector.
    Memory stays bounded: the inbox is, and the thresholds only delay collecting cycles.
    """
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


def default_client_id(settings: Settings, index: int | None = None) -> str:
    """`<mqtt_client_id>-<host>[-<index>]`: stable across restarts, distinct per worker."""
    base = f"{settings.mqtt_client_id}-{socket.gethostname()}"
    return base if index is None else f"{base}-{index}"


def run_ingester(settings: Settings, stop_event: threading.Event, **options: Any) -> None:
    """Run one ingest worker until `stop_event` is set (for a thread in `zhongdu demo`).

    `options` go to `Ingester` (e.g. `database_url=`, `mqtt_url=`, `mqtt5=service.mqtt5`,
    `client_id=`). Raises `IngestError` if the writer dies; input never stops it.
    """
    Ingester(settings, **options).run(stop_event)
