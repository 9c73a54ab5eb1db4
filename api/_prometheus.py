"""Prometheus metrics of the API: request counts and latency per route template, live coverage.

A pure ASGI middleware (no per-request task or body buffering), with its own registry per app so
several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics", "MetricsMiddleware"]


class ApiMetrics:
    """The API's collectors, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zhongdu_api_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zhongdu_api_request_duration_seconds",
            "time to answer a request",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.coverage_share = Gauge(
            "zhongdu_live_coverage_share", "live share of the population covered", registry=self.registry
        )
        self.stations_serving = Gauge(
            "zhongdu_live_stations_serving", "stations serving in the live coverage", registry=self.registry
        )
        self.rate_limited = Counter(
            "zhongdu_api_rate_limited", "requests refused by the rate limit", registry=self.registry
        )
        self.scenarios_refused = Counter(
            "zhongdu_api_scenarios_refused",
            "scenarios refused because their estimated memory is above ZHONGDU_SCENARIO_MAX_MB",
            registry=self.registry,
        )
        self.scenario_peak_mb = Gauge(
            "zhongdu_api_scenario_worker_peak_megabytes",
            "peak memory of the child process that computed the last scenario",
            registry=self.registry,
        )
        self.candidate_files = Counter(
            "zhongdu_api_candidate_files",
            "planners' candidate files checked (POST /v1/scenarios/candidates), accepted or refused",
            ["outcome"],
            registry=self.registry,
        )
        self.indicator_entries = Counter(
            "zhongdu_indicator_entries", "plan indicator entries stored", ["via"], registry=self.registry
        )
        self.indicator_rows_rejected = Counter(
            "zhongdu_indicator_import_rejected_rows",
            "bad rows in refused indicator imports",
            registry=self.registry,
        )

    def watch(self, live: Any) -> None:
        """Read the live coverage's gauges at scrape time, wherever the metrics are served."""

        def summary(key: str) -> float:
            snapshot = live.snapshot if live is not None else None
            return float(snapshot.summary[key]) if snapshot is not None else float("nan")

        self.coverage_share.set_function(lambda: summary("share"))
        self.stations_serving.set_function(lambda: summary("stations_serving"))

    def serve(self, host: str, port: int) -> Any:
        """Serve this registry at http://host:port/metrics in a daemon thread; returns the server."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (e.g. `/v1/devices/{device_id}`)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
