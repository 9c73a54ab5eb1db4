"""`zhongdu api` and `zhongdu api create-key` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from zhongdu import services

pytestmark = pytest.mark.postgres

ZHONGDU = str(Path(sys.executable).with_name("zhongdu"))


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGDU_")}
    env.update(ZHONGDU_DATABASE_URL=db_url, **extra)
    return env


def test_help_lists_the_api_commands() -> None:
    out = subprocess.run([ZHONGDU, "api", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--host" in out and "--port" in out and "create-key" in out


def test_create_key_prints_a_working_key_once(pg_migrated: str) -> None:
    done = subprocess.run([ZHONGDU, "api", "create-key", "--role", "planner", "--name", "規劃 A"],
                          capture_output=True, text=True, env=_env(pg_migrated), timeout=120)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("zd_") and "role planner" in done.stdout
    bad = subprocess.run([ZHONGDU, "api", "create-key", "--role", "root", "--name", "x"],
                         capture_output=True, text=True, env=_env(pg_migrated), timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.mark.slow
@pytest.mark.mqtt
def test_serve_the_city(pg_migrated: str, mqtt_url: str, tmp_path: Path) -> None:
    """The default layout: the shipped Taichung grid and the generated stations, live."""
    port = services.free_port()
    log = tmp_path / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen([ZHONGDU, "api", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=_env(pg_migrated, ZHONGDU_MQTT_URL=mqtt_url))
    try:
        deadline = time.monotonic() + 180
        status, body = 0, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/v1/coverage")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, f"last status {status}; log: {log.read_text()[-2000:]}"
        assert body["stations_total"] > 10_000 and len(body["districts"]) == 29 and 0.5 < body["share"] <= 1
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert "bootstrap admin key of this process" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.mqtt
def test_start_api_in_a_thread_with_a_bootstrap_key(pg_migrated: str, mqtt_url: str) -> None:
    """What `zhongdu demo` uses: a served app, a generated admin key, a clean stop."""
    from zhongdu.api import start_api

    from ._api_fixtures import api_settings, small_city, wait_for

    settings = api_settings(pg_migrated, mqtt_url, admin_api_key=None)
    running = start_api(settings, port=services.free_port(), layout=small_city)
    try:
        assert running.admin_key and running.admin_key.startswith("local-admin-")
        assert wait_for(lambda: _get(f"{running.url}/v1/coverage")[0] == 200, 60)
        request = urllib.request.Request(
            f"{running.url}/v1/admin/keys", data=json.dumps({"name": "demo", "role": "viewer"}).encode(),
            headers={"X-API-Key": running.admin_key, "Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201 and json.loads(answer.read())["key"].startswith("zd_")
    finally:
        running.stop()
    assert not running.thread.is_alive()
