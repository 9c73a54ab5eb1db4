"""Ingestion: MQTT telemetry from the park and the base stations into the database.

Pure parts (no I/O): the metric catalogue (`METRICS`, `DEVICE_KINDS`), `build_pack` and
`parse_message`, which turns any MQTT message into an `Accepted` (rows to write) or a `Rejected`
(with a stable `Reason`). The worker: `Ingester` (start/stop) and `run_ingester(settings, stop_event)`.
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports
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

if TYPE_CHECKING:
    from zhongdu.ingest._worker import CommitInfo, Ingester, IngestStats, broker_accepts_mqtt5, run_ingester

# The worker (paho-mqtt, psycopg) loads on first use: the catalogue and parser stay light.
__getattr__, __dir__ = lazy_exports(
    __name__,
    dict.fromkeys(
        ("CommitInfo", "Ingester", "IngestStats", "broker_accepts_mqtt5", "run_ingester"), "._worker"
    ),
)


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
    "CommitInfo",
    "IngestError",
    "IngestStats",
    "Ingester",
    "Limits",
    "MetricSpec",
    "Reason",
    "Rejected",
    "StatusUpdate",
    "broker_accepts_mqtt5",
    "build_pack",
    "guess_device_kind",
    "parse_message",
    "run_ingester",
    "split_topic",
    "value_type",
]
