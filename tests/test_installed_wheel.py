"""The wheel, installed, runs on its own: `pip wheel .`, a fresh venv, `zhongdu demo --once`.

The fresh venv gets the project's dependencies from the test's venv through a `.pth` line (no
downloads, seconds instead of minutes), but not the checkout: `.pth` files inside that directory
(the editable install's finder) are not processed, the wheel is installed with `--no-deps`, and
the commands run from an empty working directory, so `zhongdu` can only come from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from ._demo_fixtures import demo_env, demo_once

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: an in-tree build reuses build/lib, where files deleted since linger
    source = tmp_path_factory.mktemp("source") / "zhongdu"
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "node_modules")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {"tests", "benchmarks"} & set(names) if Path(folder) == REPO_ROOT else set()
        return set(skip(folder, names)) | top

    shutil.copytree(REPO_ROOT, source, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    # --no-build-isolation: setuptools comes from the dev extra, so the build needs no network
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "warning" not in log.lower(), log  # e.g. setuptools' "Package would be ignored"
    (path,) = out.glob("zhongdu-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "zhongdu-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    return root


def test_the_wheel_carries_its_run_time_files_and_no_benchmark_or_test_code(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "zhongdu/mosquitto/mosquitto.conf",
        "zhongdu/migrations/0001_core.sql",
        "zhongdu/api/static/index.html",
        "zhongdu/api/static/app.js",
        "zhongdu/api/data/indicators_104_107.json",
        "zhongdu/coverage/data/grid_res10.csv.gz",
        "zhongdu/coverage/data/source/manifest.json",
    ):
        assert needed in names, needed
    assert not [n for n in names if "bench" in n.rsplit("/", 1)[-1] or n.startswith(("tests/", "benchmarks/"))]


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in demo_env(tmp_path).items() if not k.startswith("PYTHON")}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import zhongdu.coverage, zhongdu.api; print(zhongdu.coverage.__path__[0])"],
        cwd=cwd, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv), where  # the wheel, not the checkout
    out = demo_once(venv / "bin" / "zhongdu", env, cwd=cwd)
    assert str(REPO_ROOT) not in out, out  # nothing read from the source tree
