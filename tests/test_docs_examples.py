"""The shell examples of README.md and docs/*.md run as written, against real servers.

The convention (docs/development.md#examples-that-run): fenced blocks tagged `sh` run in order, per
file, in a fresh working directory; only commands starting with `zhongdu` or `curl` run; a block
tagged `sh no-run: why` or a line ending in `# no-run: why` is skipped with its reason. The servers:
a migrated PostgreSQL database, a private Mosquitto, an auto-registering ingester and `zhongdu api`
(the full live layout), with `http://127.0.0.1:8000` rewritten to the API's address.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zhongdu import services

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]

DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
RUNNABLE = ("zhongdu", "curl")
ADMIN_KEY = "docs-examples-admin-key-0123456789abcdef"
DOCUMENTED_API = re.compile(r"https?://(?:127\.0\.0\.1|localhost):8000")
_FENCE = re.compile(r"^```(\S*)\s*(.*)$")
_NO_RUN_LINE = re.compile(r"#\s*no-run:\s*(\S.*)$")


@dataclass(frozen=True)
class Example:
    """One command of a `sh` block, or why it is not run (`skip`)."""

    line: int
    command: str
    skip: str | None = None


def extract(text: str) -> list[Example]:
    """The commands of the `sh` blocks of a Markdown text, in order, each with its line number."""
    examples: list[Example] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        tag, info = m.group(1), m.group(2).strip()
        start, i = i + 1, i + 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        if tag != "sh":
            continue
        block_skip = None
        if info:
            if not re.fullmatch(r"no-run:\s*\S.*", info):
                raise ValueError(f"line {start}: a `sh` block's tag may only add `no-run: reason`, got {info!r}")
            block_skip = info.split(":", 1)[1].strip()
        for number, command in _commands(body):
            if block_skip:
                examples.append(Example(number, command, block_skip))
            elif (no_run := _NO_RUN_LINE.search(command)) is not None:
                examples.append(Example(number, command, no_run.group(1).strip()))
            elif command.split()[0] not in RUNNABLE:
                examples.append(Example(number, command, "not a zhongdu or curl command"))
            else:
                examples.append(Example(number, command))
    return examples


def _commands(body: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join `\\`-continued lines; drop blank lines and whole-line comments."""
    pending: list[str] = []
    first = 0
    for number, raw in body:
        if not pending:
            first = number
        line = raw.strip()
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        command = " ".join([*pending, line]).strip()
        pending = []
        if command and not command.startswith("#"):
            yield first, command


# --- the convention itself (no servers) --------------------------------------------------------


def test_extract_follows_the_convention() -> None:
    text = "\n".join([
        "# Page", "```sh", "zhongdu --help", "make demo", "curl -s http://127.0.0.1:8000/healthz \\",
        "  -o out.json", "zhongdu api   # no-run: serves until stopped", "", "# a comment", "```",
        "```sh no-run: needs a production broker", "zhongdu devices credential list", "```",
        "```text", "zhongdu plan --budget N", "```", "```json", '{"zhongdu": 1}', "```",
    ])  # fmt: skip
    got = extract(text)
    assert [(e.line, e.command, e.skip) for e in got] == [
        (3, "zhongdu --help", None),
        (4, "make demo", "not a zhongdu or curl command"),
        (5, "curl -s http://127.0.0.1:8000/healthz -o out.json", None),
        (7, "zhongdu api   # no-run: serves until stopped", "serves until stopped"),
        (12, "zhongdu devices credential list", "needs a production broker"),
    ]
    with pytest.raises(ValueError, match="no-run: reason"):
        extract("```sh norun\nzhongdu demo\n```")
    with pytest.raises(ValueError, match="no-run: reason"):
        extract("```sh no-run:\nzhongdu demo\n```")


def test_every_doc_file_parses() -> None:
    for path in DOC_FILES:
        extract(path.read_text(encoding="utf-8"))  # raises on a malformed tag


# --- running them ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocServers:
    env: dict[str, str]
    api_url: str


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except OSError:
        return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def doc_servers(pg_migrated: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServers]:
    """PostgreSQL (migrated), a private Mosquitto, an ingester and `zhongdu api` on free ports."""
    work = tmp_path_factory.mktemp("doc-servers")
    broker = services.start_mosquitto(work / "mosquitto")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ZHONGDU_DATABASE_URL": pg_migrated,
        "ZHONGDU_MQTT_URL": broker.url,
        "ZHONGDU_ADMIN_API_KEY": ADMIN_KEY,
        "ZHONGDU_AUTO_REGISTER": "true",
        "ZHONGDU_DATA_DIR": str(work / "data"),
        "ZHONGDU_CACHE_DIR": str(work / "cache"),
        "ZHONGDU_API_METRICS_PORT": str(services.free_port()),  # 9109 may be another API's
    }
    env.pop("ZHONGDU_API_PORT", None)
    port = services.free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: (work / f"{name}.log").open("wb") for name in ("ingest", "api")}
    try:
        procs.append(subprocess.Popen(
            [f"{bin_dir}/zhongdu", "ingest", "--client-id", f"docs-{uuid.uuid4().hex[:8]}", "--group", ""],
            env=env, stdout=logs["ingest"], stderr=subprocess.STDOUT,
        ))  # fmt: skip
        procs.append(subprocess.Popen(
            [f"{bin_dir}/zhongdu", "api", "--port", str(port)],
            env=env, stdout=logs["api"], stderr=subprocess.STDOUT,
        ))  # fmt: skip
        api_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while _get(f"{api_url}/v1/coverage") != 200:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail(f"the API did not serve live coverage: {(work / 'api.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield DocServers(env, api_url)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs.values():
            log.close()
        broker.stop()


def _as_run(command: str, api_url: str) -> str:
    command = DOCUMENTED_API.sub(api_url, command)
    if command.startswith("curl "):
        command = "curl --fail-with-body " + command[len("curl ") :]
    return command


@pytest.mark.parametrize("doc", DOC_FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in DOC_FILES])
def test_doc_examples_run(doc: Path, doc_servers: DocServers, tmp_path: Path) -> None:
    examples = extract(doc.read_text(encoding="utf-8"))
    runnable = [e for e in examples if e.skip is None]
    for e in examples:
        if e.skip is not None:
            print(f"skipped {doc.name}:{e.line}: {e.command}  ({e.skip})")
    if not runnable:
        print(f"{doc.name}: no runnable shell examples ({len(examples)} skipped)")
        return
    # example files the docs ship (docs/examples/...) are read as from the repository's root
    (tmp_path / "docs").symlink_to(REPO_ROOT / "docs", target_is_directory=True)
    failures: list[str] = []
    for e in runnable:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["bash", "-o", "pipefail", "-c", _as_run(e.command, doc_servers.api_url)],
                cwd=tmp_path, env=doc_servers.env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            failures.append(f"{doc.name}:{e.line}: `{e.command}` took more than 120 s")
            continue
        print(f"ran {doc.name}:{e.line} in {time.monotonic() - started:.1f} s: {e.command}")
        if proc.returncode != 0:
            failures.append(
                f"{doc.name}:{e.line}: `{e.command}` exited {proc.returncode}\n"
                f"  stdout: {proc.stdout[-800:]}\n  stderr: {proc.stderr[-1500:]}"
            )
    assert not failures, "\n".join(failures)
