"""Running `zhongdu demo --once` as a person would, from whichever `zhongdu` executable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from zhongdu.services import free_port


def demo_env(tmp_path: Path) -> dict[str, str]:
    """This environment without any ZHONGDU_* setting (nothing configured), data under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGDU_")}
    env["ZHONGDU_DATA_DIR"] = str(tmp_path / "data")
    env["ZHONGDU_API_METRICS_PORT"] = str(free_port())  # the default port may be another demo's
    return env


def demo_once(zhongdu: Path, env: dict[str, str], cwd: Path | None = None) -> str:
    """Run `zhongdu demo --once`; its stdout once it reports the smoke check passed."""
    done = subprocess.run(
        [str(zhongdu), "demo", "--once", "--port", str(free_port()), "--timeout", "120"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=400,
    )
    report = done.stdout + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert "demo smoke check passed" in done.stdout, report
    return done.stdout
