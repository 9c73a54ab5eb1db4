"""Fixtures for tests against real servers: PostgreSQL, the TimescaleDB test server, Mosquitto.

Where to find them comes from the environment (defaults: this machine's services):
- ZHONGDU_TEST_DATABASE_URL   PostgreSQL 15, default postgresql://postgres@127.0.0.1:5432/postgres
- ZHONGDU_TEST_TIMESCALE_URL  TimescaleDB test server; unset: started here from infra/timescale-test
- ZHONGDU_TEST_MQTT_URL       the machine's Mosquitto, default mqtt://127.0.0.1:1883
A missing server fails the tests that need it with a message saying how to start it; nothing is
skipped silently. Each test module gets its own database (PostgreSQL) or schema (TimescaleDB).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from zhongdu import services, storage
from zhongdu.errors import StorageError

PG_URL = os.environ.get("ZHONGDU_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("ZHONGDU_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
REPO_ROOT = Path(__file__).resolve().parents[1]
TIMESCALE_DIR = REPO_ROOT / "infra" / "timescale-test"


def _module_tag(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return f"zt_{name[:30]}_{uuid.uuid4().hex[:8]}"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server; fails the run with instructions when it does not answer."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_URL} does not answer ({exc}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or set ZHONGDU_TEST_DATABASE_URL.",
            pytrace=False,
        )
    return PG_URL


@pytest.fixture(scope="module")
def pg_url(pg_server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh, empty database for this test module, dropped afterwards."""
    name = _module_tag(request)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def pg_migrated(pg_url: str) -> str:
    """A fresh database with every migration applied (plain PostgreSQL)."""
    with storage.connect(pg_url) as conn:
        storage.migrate(conn)
    return pg_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def timescale_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The TimescaleDB test server (PGlite): the configured one, or one started for this run."""
    configured = os.environ.get("ZHONGDU_TEST_TIMESCALE_URL")
    if configured:
        try:
            with storage.connect(configured) as conn:
                conn.execute("SELECT 1")
        except StorageError as exc:
            pytest.fail(f"TimescaleDB test server at {configured} does not answer: {exc}", pytrace=False)
        yield configured
        return
    node = shutil.which("node")
    if node is None or not (TIMESCALE_DIR / "node_modules").is_dir():
        pytest.fail(
            "the TimescaleDB test server needs Node.js and its packages: run "
            "`npm ci --legacy-peer-deps` in infra/timescale-test (make test does this), "
            "or set ZHONGDU_TEST_TIMESCALE_URL.",
            pytrace=False,
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("timescale") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, "server.mjs", "--port", str(port)],
            cwd=TIMESCALE_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Wait for its "listening" line: a bare probe connection would take its single slot.
    deadline = time.monotonic() + 120
    while "listening on" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if "listening on" not in log.read_text():
        proc.kill()
        pytest.fail(f"the TimescaleDB test server did not start: {log.read_text()[-2000:]}", pytrace=False)
    try:
        yield f"postgresql://postgres:test@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def timescale_schema(timescale_server_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh schema on the TimescaleDB test server for this module, dropped after.

    The server has one database and serves one connection at a time: close connections promptly,
    and connect with `zhongdu.storage.connect`, which retries the connections it drops now and then.
    """
    schema = _module_tag(request)
    yield timescale_server_url, schema
    with storage.connect(timescale_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The machine's Mosquitto (Debian defaults: slow, fine for correctness tests)."""
    parts = urlsplit(MQTT_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as exc:
        pytest.fail(
            f"Mosquitto at {host}:{port} does not answer ({exc}). Start it with "
            "`mosquitto -d -c /etc/mosquitto/mosquitto.conf` or set ZHONGDU_TEST_MQTT_URL.",
            pytrace=False,
        )
    return MQTT_URL


@pytest.fixture
def tuned_broker(tmp_path: Path) -> Iterator[services.Service]:
    """A private Mosquitto with the project's tuned, persistent config (for speed and restarts)."""
    broker = services.start_mosquitto(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def wait_until() -> object:
    """Poll a condition until true or a deadline passes (no fixed sleeps in tests)."""

    def _wait(condition: object, timeout: float = 30.0, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return True
            time.sleep(interval)
        return bool(condition())  # type: ignore[operator]

    return _wait


def pytest_unconfigure(config: pytest.Config) -> None:
    """Quiet asyncio at interpreter exit: the amqtt fallback broker (third-party) leaves broadcast
    tasks pending, and their 'Task was destroyed' lines would print after pytest's summary."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
