"""The writer: parsed messages -> one idempotent statement per batch, with registry and retries.

It owns one database connection (the TimescaleDB test server takes one at a time), a cache of
the registry, and the rule that nothing is acknowledged before it is committed: `write` returns
only once the batch is committed, retrying with backoff while the database is unreachable.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from zhongdu import storage
from zhongdu.errors import StorageError
from zhongdu.ingest._metrics_catalogue import guess_device_kind
from zhongdu.ingest._profiles import IngestConfig, load_config
from zhongdu.ingest._types import Accepted, Reason, Rejected
from zhongdu.settings import mask_url
from zhongdu.storage import telemetry as sql

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Item:
    """One received message on its way to the database."""

    generation: int  # broker connection it came in on: acks never cross a reconnect
    mid: int
    qos: int
    payload: bytes
    result: Accepted | Rejected


@dataclass(frozen=True, slots=True)
class WriteResult:
    counts: sql.BatchCounts
    rejected: list[Reason]  # reasons of the messages stored as rejected (including unknown_device)
    seconds: float  # time spent in the successful write (statement + commit)
    datapoints: int  # rows submitted for readings and station_telemetry (duplicates included)
    conflicts: int = 0  # readings kept as conflicting_value rejections instead of being stored
    #: readings and telemetry rows absorbed as identical replays of stored rows
    duplicates: int = field(default=0)


def _reject_row(result: Rejected) -> sql.RejectRow:
    return (
        result.received_at,
        result.topic,
        result.payload,
        result.payload_size,
        str(result.reason),
        result.detail,
    )


IDEMPOTENT_AFTER_DUPLICATE_S = 30.0


class Writer:
    """Turns batches of `Item`s into committed rows. Used from a single thread."""

    def __init__(
        self,
        database_url: str,
        *,
        schema: str | None = None,
        auto_register: bool = False,
        max_stored_payload: int = 8192,
        stop: threading.Event | None = None,
        on_db_error: Callable[[], None] | None = None,
    ) -> None:
        self._url = database_url
        self._schema = schema
        self._auto_register = auto_register
        self._max_stored = max_stored_payload
        self._stop = stop or threading.Event()
        self._on_db_error = on_db_error
        self._conn: psycopg.Connection | None = None
        # Batches are written optimistically (no ON CONFLICT) except for a while after one met a
        # duplicate: redeliveries come in bursts (a whole session's unacknowledged messages).
        self._idempotent_until = 0.0
        self.duplicate_batches = 0  # batches that met rows already stored (redeliveries)
        self._devices: set[str] = set()
        # devices this writer auto-registered before knowing their kind (first heard on the status
        # topic); their first readings name the kind
        self._kind_unknown: set[str] = set()
        self._stations: set[str] = set()
        # where each message's readings start in the last built batch (for conflicting values)
        self.reading_starts: list[int] = []
        self.reading_items: list[int] = []
        self._rollups: bool | None = None  # None: not tried yet; False: no rollups in this schema

    # -- connection ------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            # autocommit: each batch is one statement, hence one transaction, committed before
            # `write_batch` returns (no BEGIN/COMMIT round trips)
            self._conn = storage.connect(self._url, schema=self._schema, autocommit=True)
            self._devices, self._stations = sql.load_registry(self._conn)
            log.info(
                "writer connected to %s (%d devices, %d stations registered)",
                mask_url(self._url), len(self._devices), len(self._stations),
            )  # fmt: skip
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    # -- batches ---------------------------------------------------------------------------------

    def _unknown_rejection(self, item: Item, result: Accepted) -> Rejected:
        what = "device" if result.kind == "park" else "station"
        return Rejected(
            topic=result.topic,
            payload=item.payload[: self._max_stored],
            payload_size=len(item.payload),
            reason=Reason.UNKNOWN_DEVICE,
            detail=f"{what} {result.entity_id!r} is not registered and auto-registration is off",
            received_at=result.received_at,
        )

    def build(self, conn: psycopg.Connection, items: Sequence[Item]) -> tuple[sql.BatchRows, list[Reason]]:
        """The rows for `items`: registry check (one query, only for ids not cached), status merge."""
        unknown_devices = {
            r.entity_id for it in items if isinstance(r := it.result, Accepted) and r.kind == "park"
        }
        for it in items:  # devices a gateway's profile names (rare: one attribute test per message)
            if isinstance(r := it.result, Accepted) and r.other_devices:
                unknown_devices |= r.other_devices
        unknown_devices -= self._devices
        unknown_stations = {
            r.entity_id for it in items if isinstance(r := it.result, Accepted) and r.kind == "bs"
        } - self._stations
        if unknown_devices or unknown_stations:
            found_devices, found_stations = sql.registered(conn, unknown_devices, unknown_stations)
            self._devices |= found_devices
            self._stations |= found_stations
            unknown_devices -= found_devices
            unknown_stations -= found_stations

        rows = sql.BatchRows()
        reasons: list[Reason] = []
        telemetry_status: dict[tuple[str, str], tuple[str, datetime]] = {}
        connection: dict[tuple[str, str], tuple[str, datetime]] = {}
        new_device_metrics: dict[str, set[str]] = {}
        self.reading_starts = starts = []
        self.reading_items = owners = []
        for index, item in enumerate(items):
            result = item.result
            if isinstance(result, Accepted) and (
                (result.kind == "park" and result.entity_id in unknown_devices)
                or (result.kind == "bs" and result.entity_id in unknown_stations)
                or (result.other_devices and not result.other_devices.isdisjoint(unknown_devices))
            ):
                if not self._auto_register:
                    result = self._unknown_rejection(item, result)
                elif result.kind == "park":
                    for device in {result.entity_id, *result.other_devices} & unknown_devices:
                        new_device_metrics.setdefault(device, set()).update(result.metrics)
            elif isinstance(result, Accepted) and result.metrics and result.entity_id in self._kind_unknown:
                new_device_metrics.setdefault(result.entity_id, set()).update(result.metrics)
            if isinstance(result, Rejected):
                rows.rejected.append(_reject_row(result))
                reasons.append(result.reason)
                continue
            if result.readings:
                starts.append(len(rows.readings))
                owners.append(index)
                rows.readings.extend(result.readings)
            if result.telemetry:
                rows.telemetry.extend(result.telemetry)
            update = result.status
            if update is not None:
                key: tuple[str, str] = (update.kind, update.entity_id)
                if update.source == "telemetry":
                    previous = telemetry_status.get(key)
                    if previous is None or previous[1] < update.observed_at:
                        telemetry_status[key] = (update.status, update.observed_at)
                else:
                    connection[key] = (update.status, update.observed_at)  # arrival order: last wins
        for key in telemetry_status.keys() | connection.keys():
            status = telemetry_status.get(key)
            link = connection.get(key)
            if status is not None:
                rows.statuses.append((*key, status[0], link[0] if link else None, "telemetry", status[1]))
            elif link is not None:
                rows.statuses.append((*key, link[0], link[0], "status", link[1]))
        # One lock order for every batch: concurrent writers then cannot deadlock on these rows.
        rows.statuses.sort(key=lambda row: (row[0], row[1]))
        if self._auto_register:
            rows.new_devices = [(d, guess_device_kind(m)) for d, m in sorted(new_device_metrics.items())]
            # a device first heard on its status topic has no metrics yet
            rows.new_devices += [(d, "unknown") for d in sorted(unknown_devices - new_device_metrics.keys())]
            rows.new_stations = sorted(unknown_stations)
        return rows, reasons

    def write(self, items: Sequence[Item]) -> WriteResult | None:
        """Commit `items`; retry while the database is unreachable. None if stopped before commit."""
        delay = 0.25
        while True:
            try:
                conn = self._connection()
                rows, reasons = self.build(conn, items)
                started = time.perf_counter()
                counts = self._write_rows(conn, rows)
                seconds = time.perf_counter() - started
            except (psycopg.OperationalError, psycopg.InterfaceError, StorageError) as exc:
                log.warning(
                    "database write failed (%s); retrying in %.1f s, messages stay unacked", exc, delay
                )
                if self._on_db_error is not None:
                    self._on_db_error()
                self.close()
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 10.0)
                continue
            except psycopg.Error as exc:
                # The database refused the data itself (a constraint we did not foresee): find the
                # message(s) responsible and keep them as rejections instead of retrying forever.
                log.error("database refused a batch of %d messages: %s", len(items), exc)
                if self._on_db_error is not None:
                    self._on_db_error()
                return self._write_split(items, exc)
            if self._auto_register:
                self._devices.update(d for d, _ in rows.new_devices)
                self._kind_unknown.update(d for d, kind in rows.new_devices if kind == "unknown")
                self._kind_unknown.difference_update(d for d, kind in rows.new_devices if kind != "unknown")
                self._stations.update(rows.new_stations)
            submitted = len(rows.readings) + len(rows.telemetry)
            absorbed = submitted - counts.readings - counts.telemetry
            conflicts = 0
            if counts.readings < len(rows.readings):
                conflicts = self._keep_conflicts(items, rows)
                reasons.extend([Reason.CONFLICTING_VALUE] * conflicts)
            return WriteResult(counts, reasons, seconds, submitted, conflicts, absorbed - conflicts)

    def _keep_conflicts(self, items: Sequence[Item], rows: sql.BatchRows) -> int:
        """Store, as `conflicting_value` rejections, the readings that met another stored value.

        Runs after the batch committed and only when some readings were not inserted: the rows
        that then hold another value at the same (device, metric, time) are conflicts, the others
        identical replays. The stored (first) value stays. Should this fail, the batch is not
        acknowledged: its redelivery finds the same conflicts again.
        """
        while True:
            try:
                conn = self._connection()
                found = sql.conflicting_readings(conn, rows.readings)
                if not found:
                    return 0
                rejected = sql.BatchRows()
                for position, stored_value, stored_text in found:
                    item = items[self.reading_items[bisect.bisect_right(self.reading_starts, position) - 1]]
                    time_, device, metric, value, unit, text = rows.readings[position]
                    received = text if value is None else f"{value!r} {unit or ''}".strip()
                    stored = stored_text if stored_value is None else f"{stored_value!r} {unit or ''}".strip()
                    rejected.rejected.append(
                        (
                            item.result.received_at,
                            item.result.topic,
                            item.payload[: self._max_stored],
                            len(item.payload),
                            str(Reason.CONFLICTING_VALUE),
                            f"{device} {metric} at {time_.isoformat()}: received {received!s:.80}, "
                            f"stored {stored!s:.80}; the value stored first stays",
                        )
                    )
                sql.write_batch(conn, rejected)
                return len(found)
            except (psycopg.OperationalError, psycopg.InterfaceError, StorageError) as exc:
                log.warning("recording conflicting values failed (%s); retrying", exc)
                if self._on_db_error is not None:
                    self._on_db_error()
                self.close()
                if self._stop.wait(0.5):
                    return 0

    def refresh_rollups(self) -> int:
        """Recompute the plain-PostgreSQL rollups (readings, station load) of the minutes written lately.

        Returns the minutes recomputed (0 also while another session is at it); 0 on TimescaleDB, whose
        continuous aggregates refresh themselves, and after any error (the views stay exact anyway).
        """
        if self._rollups is False:
            return 0
        try:
            conn = self._connection()
            row = conn.execute("SELECT refresh_readings_rollups(), refresh_station_load_rollups()").fetchone()
            self._rollups = True
            return max(0, int(row[0])) + max(0, int(row[1])) if row else 0
        except psycopg.errors.UndefinedFunction:
            self._rollups = False  # TimescaleDB (or a schema before the rollups)
            return 0
        except (psycopg.Error, StorageError) as exc:
            log.warning("rollup refresh failed (%s); the views stay exact, only slower", exc)
            self.close()
            return 0

    def load_config(self, current: IngestConfig) -> IngestConfig:
        """The profiles and custom metrics, reloaded when their version moved; `current` on failure."""
        try:
            conn = self._connection()
            version = storage.profiles.config_version(conn)
            if version == current.version:
                return current
            config = load_config(conn, version)
        except (psycopg.Error, StorageError) as exc:
            log.warning("could not reload device profiles and custom metrics (%s); keeping the last", exc)
            self.close()
            return current
        log.info(
            "device profiles and custom metrics reloaded: %d profiles, %d custom metrics",
            len(config.all_profiles), len(config.custom_metrics),
        )  # fmt: skip
        return config

    def _write_rows(self, conn: psycopg.Connection, rows: sql.BatchRows) -> sql.BatchCounts:
        """One statement, without ON CONFLICT unless duplicates were met lately (see `write_batch`)."""
        if time.monotonic() >= self._idempotent_until:
            try:
                return sql.write_batch(conn, rows, optimistic=True)
            except psycopg.errors.UniqueViolation:
                # rows already stored: a redelivery; nothing was written, write idempotently
                self.duplicate_batches += 1
                self._idempotent_until = time.monotonic() + IDEMPOTENT_AFTER_DUPLICATE_S
        return sql.write_batch(conn, rows)

    def _write_split(self, items: Sequence[Item], error: psycopg.Error) -> WriteResult | None:
        if len(items) == 1:
            item = items[0]
            result = item.result
            rejected = Rejected(
                topic=result.topic,
                payload=item.payload[: self._max_stored],
                payload_size=len(item.payload),
                reason=Reason.INTERNAL_ERROR,
                detail=f"database refused the rows: {error}"[:500],
                received_at=result.received_at,
            )
            return self.write([Item(item.generation, item.mid, item.qos, item.payload, rejected)])
        middle = len(items) // 2
        first = self.write(items[:middle])
        second = self.write(items[middle:])
        if first is None or second is None:
            return None
        counts = sql.BatchCounts(
            **{
                name: getattr(first.counts, name) + getattr(second.counts, name)
                for name in sql.BatchCounts.__dataclass_fields__
            }
        )
        return WriteResult(
            counts,
            first.rejected + second.rejected,
            first.seconds + second.seconds,
            first.datapoints + second.datapoints,
            first.conflicts + second.conflicts,
            first.duplicates + second.duplicates,
        )
