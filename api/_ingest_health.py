"""The ingester's health for the operations page, read from its Prometheus metrics.

Where the metrics come from: `ZHONGDU_INGEST_METRICS_URL` (an ingester started with
`zhongdu ingest --metrics-port N` serves http://127.0.0.1:N/metrics), else this process's
default registry, where `zhongdu demo` runs its ingester. Rates (messages/s) are the difference
between two reads, so the first read after start reports none.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

PREFIX = "zhongdu_ingest_"


@dataclass
class _Sample:
    at: float
    received: float
    committed: float


@dataclass
class IngestHealth:
    """Reads and summarises the ingester's metrics; keeps the previous read for rates."""

    metrics_url: str | None
    timeout_s: float = 2.0
    _previous: _Sample | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _text(self) -> tuple[str | None, str]:
        if self.metrics_url:
            import httpx

            try:
                answer = httpx.get(self.metrics_url, timeout=self.timeout_s)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                return None, f"{self.metrics_url}: {type(exc).__name__}: {exc}"
            return answer.text, self.metrics_url
        return generate_latest(REGISTRY).decode(), "this process (the ingester of `zhongdu demo`)"

    def read(self) -> dict[str, Any]:
        """A JSON-ready summary; `available` false (with `detail`) when there is nothing to read."""
        text, source = self._text()
        if text is None:
            return {"available": False, "source": "url", "detail": source}
        summary = summarise(text)
        if summary is None:
            return {
                "available": False,
                "source": source,
                "detail": "no ingester metrics there; set ZHONGDU_INGEST_METRICS_URL to the ingester's "
                "/metrics (zhongdu ingest --metrics-port N)",
            }
        now = time.monotonic()
        with self._lock:
            previous, self._previous = self._previous, _Sample(now, summary["received"], summary["committed"])
        rate = commit_rate = None
        if previous is not None and now > previous.at and summary["received"] >= previous.received:
            rate = (summary["received"] - previous.received) / (now - previous.at)
            commit_rate = (summary["committed"] - previous.committed) / (now - previous.at)
        return {
            "available": True,
            "source": source,
            "detail": None,
            "messages_per_s": rate,
            "committed_per_s": commit_rate,
            **summary,
        }


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile q (Prometheus' cumulative buckets)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    want = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= want:
            return bound if math.isfinite(bound) else None
    return None


def summarise(text: str) -> dict[str, Any] | None:
    """Totals, rejects by reason, lag (mean, p95 bucket bound), queue depth; None without ingester data."""
    values: dict[str, float] = {}
    rejected: dict[str, float] = {}
    by_kind: dict[str, float] = {}
    lag_buckets: list[tuple[float, float]] = []
    found = False
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(PREFIX):
            continue
        found = True
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == PREFIX + "rejected_total":
                rejected[labels.get("reason", "?")] = value
            elif name == PREFIX + "messages_received_total":
                by_kind[labels.get("kind", "?")] = value
            elif name == PREFIX + "lag_seconds_bucket":
                lag_buckets.append((float(labels["le"]), value))
            elif not name.endswith("_created"):
                values[name] = values.get(name, 0.0) + value
    if not found:
        return None
    lag_count = values.get(PREFIX + "lag_seconds_count", 0.0)
    lag_buckets.sort()
    return {
        "received": sum(by_kind.values()),
        "received_by_kind": by_kind,
        "committed": values.get(PREFIX + "messages_committed_total", 0.0),
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
        "lag_mean_s": values.get(PREFIX + "lag_seconds_sum", 0.0) / lag_count if lag_count else None,
        "lag_p95_s": _quantile(lag_buckets, 0.95),
        "queue_depth": values.get(PREFIX + "queue_depth"),
        "db_errors": values.get(PREFIX + "db_errors_total", 0.0),
        "duplicates": values.get(PREFIX + "duplicates_total", 0.0),
        "conflicting_values": rejected.get("conflicting_value", 0.0),
        "broker_connected": values.get(PREFIX + "broker_connected"),
    }
