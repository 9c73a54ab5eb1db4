"""Ingestion: MQTT telemetry from the park and the base stations into the database.

Pure parts (no I/O): the metric catalogue (`METRICS`, `DEVICE_KINDS`) and `parse_message`, which
turns any MQTT message into an `Accepted` (rows to write) or a `Rejected` (with a stable `Reason`).
"""

from zhongdu.ingest._metrics_catalogue import (
    BOOLEAN_METRICS,
    DEVICE_KINDS,
    METRICS,
    STRING_METRICS,
    STRING_VALUES,
    MetricSpec,
    guess_device_kind,
    value_type,
)
from zhongdu.ingest._parse import DEFAULT_LIMITS, TOPIC_ROOT, Limits, parse_message, split_topic
from zhongdu.ingest._senml import SENML_VERSION, URN_PREFIX, build_pack
from zhongdu.ingest._types import Accepted, IngestError, Reason, Rejected, StatusUpdate

__all__ = [
    "BOOLEAN_METRICS",
    "DEFAULT_LIMITS",
    "DEVICE_KINDS",
    "METRICS",
    "SENML_VERSION",
    "STRING_METRICS",
    "STRING_VALUES",
    "TOPIC_ROOT",
    "URN_PREFIX",
    "Accepted",
    "IngestError",
    "Limits",
    "MetricSpec",
    "Reason",
    "Rejected",
    "StatusUpdate",
    "build_pack",
    "guess_device_kind",
    "parse_message",
    "split_topic",
    "value_type",
]
