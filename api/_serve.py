"""Run the API under uvicorn in a background thread (for `zhongdu demo` and tests).

`start_api(settings)` returns once the server accepts connections; `.stop()` shuts it down (the
app's lifespan then closes its pool and threads). In local mode without `ZHONGDU_ADMIN_API_KEY` a
random bootstrap admin key is made for this process and returned, for the caller to print.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from zhongdu.api._app import create_app
from zhongdu.api._live import LayoutFactory
from zhongdu.errors import ServiceError
from zhongdu.settings import Settings


def with_bootstrap_key(settings: Settings) -> tuple[Settings, str | None]:
    """Settings with an admin key: the configured one, or (local mode only) a fresh random one."""
    if settings.admin_api_key is not None:
        return settings, None
    if settings.env == "production":
        raise ServiceError("production mode needs ZHONGDU_ADMIN_API_KEY")
    key = f"local-admin-{secrets.token_urlsafe(24)}"
    return settings.model_copy(update={"admin_api_key": SecretStr(key)}), key


@dataclass
class RunningApi:
    url: str
    admin_key: str | None  # the generated bootstrap key, None when one was configured
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 30.0) -> None:
        close_streams(self.server.config.app)
        self.server.should_exit = True
        self.thread.join(timeout)


def close_streams(app: Any) -> None:
    """Ask the app's open event streams to end (within a second), so a stop need not cut them."""
    state = getattr(app.state, "zhongdu", None)
    if state is not None:
        state.closing.set()


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling, trusting only the configured proxies: uvicorn's default
    trusts any from loopback, so a client on the API's host could pick its rate-limit address."""
    trusted = settings.api_trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": ",".join(trusted) or None}


def make_server(config: Any) -> Any:
    """A uvicorn server whose Ctrl-C / SIGTERM first ends the event streams, then shuts down."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            close_streams(self.config.app)
            super().handle_exit(sig, frame)

    return Server(config)


def start_api(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    layout: LayoutFactory | None = None,
    timeout: float = 60.0,
    serve_metrics: bool = False,
) -> RunningApi:
    """Serve `create_app(settings)` on host:port (default: the settings') in a daemon thread."""
    import uvicorn

    settings, key = with_bootstrap_key(settings)
    host = host or settings.api_host
    port = port or settings.api_port
    app = create_app(settings, layout=layout, serve_metrics=serve_metrics)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        **proxy_options(settings),
        timeout_graceful_shutdown=5,  # open event streams (the page) must not hold a stop
    )
    server = make_server(config)
    thread = threading.Thread(target=server.run, name="zhongdu-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"the API did not start on {host}:{port} (port taken? database unreachable?)")
        time.sleep(0.05)
    return RunningApi(url=f"http://{host}:{port}", admin_key=key, server=server, thread=thread)
