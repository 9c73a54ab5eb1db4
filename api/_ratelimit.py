"""Per-client rate limit (token bucket): by API key id when a key is presented, else by address.

Configured by `ZHONGDU_RATE_LIMIT_PER_MINUTE` (0 turns it off). The key id is read from the key's
public prefix without verifying it, so limiting costs no hashing; an invalid key is then refused
by authentication anyway. `/healthz` and `/metrics` are exempt (probes and scrapers).
"""

from __future__ import annotations

import json
import math
import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from zhongdu.api._prometheus import ApiMetrics
from zhongdu.api._security import key_id_of

EXEMPT = ("/healthz", "/metrics")


class TokenBuckets:
    """`rate_per_minute` tokens a minute per client, bursts up to the same number."""

    def __init__(self, rate_per_minute: int, *, max_clients: int = 100_000) -> None:
        self.capacity = float(rate_per_minute)
        self.rate = rate_per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_clients = max_clients

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may pass, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self._max_clients and client not in self._buckets:
                    self._buckets.clear()  # crude but bounded memory under address churn
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate


def client_identity(scope: Scope) -> str:
    """`key:<key_id>` for a well-formed presented key, else `addr:<client address>`."""
    for name, value in scope.get("headers", ()):
        if name in (b"x-api-key", b"authorization"):
            text = value.decode("latin-1").strip()
            if text.lower().startswith("bearer "):
                text = text[7:].strip()
            key_id = key_id_of(text)
            if key_id:
                return f"key:{key_id}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, rate_per_minute: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_minute)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_identity(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        self.metrics.rate_limited.inc()
        retry = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "detail": f"rate limit of {int(self.buckets.capacity)} requests/minute exceeded; "
                f"retry in {retry} s"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
