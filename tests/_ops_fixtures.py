"""Helpers for the operations page tests: Debian's chromium under Playwright, a page that records
console errors and refuses (and records) every request leaving loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebGL without a GPU: ANGLE on SwiftShader (software), which MapLibre needs
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str:
    """Debian's chromium (never a downloaded browser); fails with the fix when it is missing, as a
    missing server does."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on this machine: `apt-get install -y chromium` (CI's .ci/run does it)",
                pytrace=False)


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watched:
    """A page with what it logged and what it tried to fetch from outside loopback."""

    page: Any
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def watched_page(b: Any, *, width: int = 1440, height: int = 900) -> Watched:
    # bypass_csp: Playwright evaluates its waits as strings, which the page's CSP (no eval) refuses;
    # leaving loopback is checked by the route below instead
    context = b.new_context(viewport={"width": width, "height": height}, device_scale_factor=1, bypass_csp=True)
    page = context.new_page()
    watched = Watched(page)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            watched.errors.append(msg.text)

    def route(r: Any) -> None:
        url = r.request.url
        watched.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK:
            watched.outside.append(url)
            r.abort()
        else:
            r.continue_()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    context.route("**/*", route)
    return watched


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def api_serving(settings: Any, layout: Any, *, timeout: float = 60.0) -> Iterator[tuple[str, Any]]:
    """`zhongdu.api.start_api` on a free port, yielding (base URL, an httpx client) once
    `/v1/coverage` answers 200: the page tests start from a computed live snapshot."""
    import time

    import httpx

    from zhongdu.api import start_api
    from zhongdu.services import free_port

    api = start_api(settings, port=free_port(), layout=layout)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            deadline = time.monotonic() + timeout
            while http.get("/v1/coverage").status_code != 200:
                assert time.monotonic() < deadline, "live coverage did not start"
                time.sleep(0.1)
            yield api.url, http
    finally:
        api.stop()
