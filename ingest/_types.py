"""What the parser returns: an `Accepted` message (rows to write) or a `Rejected` one (and why).

Both are plain, immutable values so that the MQTT callback can hand them to the writer thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple

from zhongdu.errors import ZhongduError

EntityKind = Literal["park", "bs"]

#: (time, device_id, metric, value, unit, value_text): one row of `readings`.
ReadingRow = tuple[datetime, str, str, float | None, str | None, str | None]
#: (time, station_id, sector_id, status, prb_utilisation, active_users, tx_power_dbm).
TelemetryRow = tuple[datetime, str, str, str, float | None, int | None, float | None]


class Reason(StrEnum):
    """Stable, machine-readable rejection codes (stored in `rejected_messages.reason`)."""

    BAD_TOPIC = "bad_topic"  # not zhongdu/v1/{park|bs}/{id}/{senml|telemetry|status}
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_JSON = "bad_json"  # not UTF-8 JSON, or NaN/Infinity, or nested too deep
    BAD_CBOR = "bad_cbor"  # sent as SenML CBOR (content type or topic) but not one CBOR data item
    BAD_SENML = "bad_senml"  # JSON but not a valid SenML pack (RFC 8428)
    DEVICE_MISMATCH = "device_mismatch"  # SenML name names another device than the topic
    UNKNOWN_METRIC = "unknown_metric"
    BAD_UNIT = "bad_unit"
    BAD_VALUE = "bad_value"  # wrong value type for the metric, or not finite
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"  # older than the limits' max age (raw retention)
    UNKNOWN_DEVICE = "unknown_device"  # registry step: not registered and auto-register off
    BAD_TELEMETRY = "bad_telemetry"  # base-station JSON object does not fit the schema
    BAD_STATUS = "bad_status"  # status topic payload other than online/offline
    CONFLICTING_VALUE = "conflicting_value"  # same device, metric and time as a stored row, other value
    INTERNAL_ERROR = "internal_error"  # a parser bug; the message is still kept, never lost


class StatusUpdate(NamedTuple):
    """A change to `entity_status`: from telemetry (status) or the status topic (connection)."""

    kind: EntityKind
    entity_id: str
    status: str  # up/degraded/down (stations), online (park device sending readings), online/offline
    connection: str | None  # online/offline, from the status topic only
    source: Literal["telemetry", "status"]
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid message and the rows it produces (any of the tuples may be empty)."""

    topic: str
    kind: EntityKind
    entity_id: str
    received_at: datetime
    readings: tuple[ReadingRow, ...] = ()
    telemetry: tuple[TelemetryRow, ...] = ()
    status: StatusUpdate | None = None
    #: latest data time in the message (for the lag metric); None for status messages
    data_time: datetime | None = None
    #: metric names seen (park), to guess a device kind when auto-registering
    metrics: frozenset[str] = field(default_factory=frozenset)
    #: devices other than `entity_id` that a profile assigned readings to (a gateway's)
    other_devices: frozenset[str] = field(default_factory=frozenset)

    @property
    def datapoints(self) -> int:
        return len(self.readings) + len(self.telemetry)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid message, kept with its (capped) payload, size and reason."""

    topic: str
    payload: bytes
    payload_size: int
    reason: Reason
    detail: str
    received_at: datetime


class IngestError(ZhongduError, RuntimeError):
    """The ingester cannot run (broker or database refused for good, bad configuration)."""
