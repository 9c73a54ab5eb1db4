"""HTTP behaviour every route shares: HEAD, validators (ETag, Last-Modified, 304), compression and
security headers, as pure ASGI middleware so no route has to remember them.

Why not Starlette's GZipMiddleware: it stamps the current time into every gzip header, so the same
body compresses to different bytes each second and cannot carry a strong ETag (RFC 9110 §8.8.3
asks a strong validator to change with the content coding). Here a body is hashed once, its gzip
form is deterministic (mtime 0) and kept in a small cache under that hash, and the gzip
representation gets an ETag of its own. Event streams pass through untouched, never buffered.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections import OrderedDict
from email.utils import formatdate, parsedate_to_datetime

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP",
    "ConditionalGzipMiddleware",
    "GeoJSONResponse",
    "HeadMiddleware",
    "SecurityHeadersMiddleware",
]

#: The page may load nothing from elsewhere: a wall screen on a closed network shows the same page.
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'self'"
)
MIN_GZIP_BYTES = 500  # below this the gzip header and a round of CPU cost more than they save
_COMPRESSIBLE = (
    "application/json",
    "application/geo+json",
    "application/problem+json",
    "application/javascript",
    "text/javascript",
    "application/vnd.mapbox-vector-tile",
    "image/svg+xml",
    "text/",
)
_NEVER_BUFFER = ("text/event-stream",)


class GeoJSONResponse(JSONResponse):
    """RFC 7946's media type; as a route's `response_class` it also puts it in the OpenAPI schema."""

    media_type = "application/geo+json"


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _accepts_gzip(request_headers: Headers) -> bool:
    """True when Accept-Encoding names gzip (or *) without q=0."""
    for part in request_headers.get("accept-encoding", "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def _tags(header: str) -> set[str]:
    """Entity tags of an If-None-Match header, compared weakly (RFC 9110 §13.1.2)."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


class HeadMiddleware:
    """HEAD on every GET route (RFC 9110 §9.3.2): run the GET, send its headers, drop its body.

    GDAL (and so QGIS) probes a URL with HEAD before reading it. Once the headers are out the app
    is told the client left, so an event stream ends instead of running on unseen.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = False
        finished = False

        async def head_receive() -> Message:
            if started:
                return {"type": "http.disconnect"}
            return await receive()

        async def head_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                await send(message)
            elif message["type"] == "http.response.body" and not finished:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, head_receive, head_send)


class _GzipCache:
    """Compressed bodies by their hash: large, unchanged bodies (cells, sites) compress once."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str, body: bytes) -> bytes:
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            return hit
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        if len(packed) <= self.max_bytes // 4:
            self.items[key] = packed
            self.size += len(packed)
            while self.size > self.max_bytes:
                _, old = self.items.popitem(last=False)
                self.size -= len(old)
        return packed


class _FirstSeen:
    """When each (URL, ETag) was first served: an honest Last-Modified for computed bodies."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def since(self, url: str, etag: str) -> float:
        now = time.time()
        seen = self.items.get(url)
        if seen is None or seen[0] != etag:
            seen = (etag, now)
        self.items[url] = seen
        self.items.move_to_end(url)
        if len(self.items) > self.max_entries:
            self.items.popitem(last=False)
        return seen[1]


class ConditionalGzipMiddleware:
    """Strong ETag, Last-Modified, 304 on If-None-Match / If-Modified-Since, and gzip, for every
    successful GET whose body is complete (not an event stream)."""

    def __init__(self, app: ASGIApp, *, min_gzip_bytes: int = MIN_GZIP_BYTES) -> None:
        self.app = app
        self.min_gzip_bytes = min_gzip_bytes
        self.gzipped = _GzipCache()
        self.first_seen = _FirstSeen()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def buffered_send(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                if message["status"] != 200 or _media_type(headers) in _NEVER_BUFFER:
                    passthrough = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                assert start is not None
                await self._finish(scope, request_headers, start, b"".join(chunks), send)

        await self.app(scope, receive, buffered_send)

    async def _finish(
        self, scope: Scope, request_headers: Headers, start: Message, body: bytes, send: Send
    ) -> None:
        headers = MutableHeaders(raw=list(start["headers"]))
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        suffix = ""
        encoded = "content-encoding" in headers
        compress = (
            not encoded
            and len(body) >= self.min_gzip_bytes
            and _media_type(headers).startswith(_COMPRESSIBLE)
        )
        if compress or encoded:
            headers.add_vary_header("Accept-Encoding")
        if compress and _accepts_gzip(request_headers):
            body = self.gzipped.get(digest, body)
            headers["content-encoding"] = "gzip"
            suffix = "-gzip"
        app_etag = headers.get("etag")  # e.g. a static file's: kept, marked when we compress
        etag = f'"{digest}{suffix}"' if app_etag is None else app_etag[:-1] + suffix + app_etag[-1]
        headers["etag"] = etag
        if "last-modified" not in headers:
            url = scope.get("raw_path", b"").decode("latin-1") + "?" + scope.get("query_string", b"").decode()
            headers["last-modified"] = formatdate(self.first_seen.since(url, etag), usegmt=True)
        if self._not_modified(request_headers, etag, headers["last-modified"]):
            for name in ("content-length", "content-type", "content-encoding"):
                if name in headers:
                    del headers[name]
            await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        headers["content-length"] = str(len(body))
        await send({**start, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    def _not_modified(request_headers: Headers, etag: str, last_modified: str) -> bool:
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None:  # takes precedence over If-Modified-Since (RFC 9110 §13.2.2)
            tags = _tags(if_none_match)
            return "*" in tags or etag.removeprefix("W/") in tags
        if_modified_since = request_headers.get("if-modified-since")
        if if_modified_since:
            try:
                return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
        return False


class SecurityHeadersMiddleware:
    """The same protective headers on every response; the page's CSP on every HTML response
    (the page served as /static/index.html included)."""

    def __init__(self, app: ASGIApp, *, csp: str = CSP) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if _media_type(headers) == "text/html":
                    headers.setdefault("Content-Security-Policy", self.csp)
            await send(message)

        await self.app(scope, receive, secured_send)
