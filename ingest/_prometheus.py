"""Prometheus metrics of the ingester.

One `IngestMetrics` per registry: the default registry (what `zhongdu demo`'s API and the
`--metrics-port` server expose) gets one shared instance; tests pass their own registry so their
counts start at zero.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class IngestMetrics:
    """Counters and histograms, labelled where a breakdown helps an operator."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages = Counter(
            "zhongdu_ingest_messages_received",
            "MQTT messages received, by topic kind (park, bs, other)",
            ["kind"],
            registry=registry,
        )
        self.committed = Counter(
            "zhongdu_ingest_messages_committed", "messages whose rows are committed (then acknowledged)",
            registry=registry,
        )  # fmt: skip
        self.rows = Counter(
            "zhongdu_ingest_rows_written",
            "rows newly inserted, by table (redelivered duplicates are not counted)",
            ["table"],
            registry=registry,
        )
        self.rejected = Counter(
            "zhongdu_ingest_rejected", "messages rejected, by reason", ["reason"], registry=registry
        )
        self.duplicates = Counter(
            "zhongdu_ingest_duplicates",
            "rows absorbed as identical replays of stored rows (a different value is rejected instead, "
            "reason conflicting_value)",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "zhongdu_ingest_batch_seconds", "time to write and commit one batch",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.batch_messages = Histogram(
            "zhongdu_ingest_batch_messages", "messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000), registry=registry,
        )  # fmt: skip
        self.lag = Histogram(
            "zhongdu_ingest_lag_seconds", "commit time minus the latest data time of each message",
            buckets=_LAG_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "zhongdu_ingest_queue_depth", "parsed messages waiting for the writer", registry=registry
        )
        self.db_errors = Counter(
            "zhongdu_ingest_db_errors", "failed batch writes (retried; messages stay unacknowledged)",
            registry=registry,
        )  # fmt: skip
        self.connected = Gauge("zhongdu_ingest_broker_connected", "1 while connected", registry=registry)


_default: IngestMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> IngestMetrics:
    """The instance registered in prometheus_client's default registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = IngestMetrics(REGISTRY)
        return _default
