"""`zhongdu demo` on a machine with nothing configured: embedded PostgreSQL, a private broker,
ingester, simulators and API, until telemetry is stored and live coverage is served."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zhongdu.services import free_port


@pytest.mark.slow
def test_demo_once_stores_telemetry_and_serves_coverage(tmp_path: Path) -> None:
    from ._demo_fixtures import demo_env, demo_once

    out = demo_once(Path(sys.executable).with_name("zhongdu"), demo_env(tmp_path))
    assert "embedded PostgreSQL" in out, out
    stored = next(line for line in out.splitlines() if "stored" in line)
    readings, telemetry = (int(word) for word in stored.split() if word.isdigit())
    assert readings > 0 and telemetry > 0
    share_line = next(line for line in out.splitlines() if "live share" in line)
    share = float(share_line.split(":")[1])
    assert 0.5 < share <= 1.0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mqtt
def test_demo_on_a_secured_broker_gives_every_simulated_device_its_own_credential(
    tmp_path: Path, pg_migrated: str
) -> None:
    from ._broker_fixtures import secured_broker, try_connect

    with secured_broker() as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGDU_")}
        env.update(
            ZHONGDU_DATA_DIR=str(tmp_path / "data"),
            ZHONGDU_API_METRICS_PORT=str(free_port()),
            ZHONGDU_DATABASE_URL=pg_migrated,
            ZHONGDU_MQTT_URL=broker.config.ingest_url,  # the ingester's credential
            ZHONGDU_BROKER_ADMIN_URL=broker.config.admin_url,  # to issue the devices' own
        )
        assert try_connect(broker.url) != 0  # anonymous refused: the demo must use credentials
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "zhongdu.cli",
                "demo",
                "--once",
                "--port",
                str(free_port()),
                "--timeout",
                "120",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        report = done.stdout + done.stderr[-3000:]
        assert done.returncode == 0, report + broker.log()
        assert "demo smoke check passed" in done.stdout, report
        assert "own MQTT credential" in done.stdout, report
