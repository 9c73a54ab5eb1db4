"""The docs describe the code as it is: every referenced page and heading exists, tables match the code.

No servers. References are `*.md` paths (optionally `#anchor`, a GitHub-style heading slug) and
`docs/...` paths in the code, the docs, the CLI's help texts, the OpenAPI schema and the broker
config `zhongdu broker config` writes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
# Built from parts, so that this file does not trip its own scan.
FORBIDDEN = ("DESIGN" + ".md", ".." + "/shared")
TEXT_SUFFIXES = {".py", ".md", ".js", ".mjs", ".html", ".conf", ".yaml", ".yml", ".toml", ".sh", ".sql", ".json",
                 ".txt", ".cfg", ".ini"}  # fmt: skip
_REF = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:[\w.-]+/)*[\w.-]+\.md)(#[\w\-%]+)?")
_DOCS_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]*[\w-])")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def repo_files() -> list[Path]:
    """Files of the repository as a clone has them (tracked, plus new ones not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    files = [REPO_ROOT / line for line in out.splitlines() if line]
    return [f for f in files if f.is_file() and (f.suffix in TEXT_SUFFIXES or f.name in {"Makefile", "run"})]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            found.add(slug(m.group(2)))
    return found


def broken_references(text: str, where: str, base: Path) -> Iterator[str]:
    """Problems with the `*.md` and `docs/...` references of `text` (`base`: its file's folder)."""
    for bad in FORBIDDEN:
        if bad in text:
            yield f"{where}: mentions {bad}"
    for m in _REF.finditer(text):
        path, anchor = m.group(1), m.group(2)
        candidates = [base / path, REPO_ROOT / path]
        target = next((c for c in candidates if c.is_file()), None)
        if target is None:
            yield f"{where}: {path} does not exist"
        elif anchor and anchor[1:] not in anchors(target):
            yield f"{where}: {path} has no heading for {anchor}"
    for m in _DOCS_PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if path.endswith(".md") or path.count("/") > 1:  # pages are checked above; deeper: other projects
            continue
        if not (REPO_ROOT / path).exists() and not (base / path).exists():
            yield f"{where}: {path} does not exist"


_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_LINK_TEXT = re.compile(r"\[([^\]]*)\]\(")


def scannable(text: str, markdown: bool) -> str:
    """`text` without URLs (other sites' paths) and, in Markdown, without link texts (the target counts)."""
    text = _URL.sub(" ", text)
    return _LINK_TEXT.sub("(", text) if markdown else text


def test_files_reference_only_what_exists() -> None:
    problems: list[str] = []
    for path in repo_files():
        if path == Path(__file__).resolve() or path.is_relative_to(REPO_ROOT / "api" / "ui" / "node_modules"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(REPO_ROOT)
        if path.suffix == ".json" or rel.parts[:2] == ("api", "static"):
            problems += [p for p in broken_references(text, str(rel), path.parent) if "mentions" in p]
            continue
        problems += broken_references(scannable(text, path.suffix == ".md"), str(rel), path.parent)
    assert not problems, "\n".join(problems)


def _help_texts(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, str]]:
    yield name, " ".join(filter(None, (parser.description, parser.epilog)))
    for action in parser._actions:
        if action.help:
            yield f"{name} {'/'.join(action.option_strings) or action.dest}", action.help
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _help_texts(sub, f"{name} {sub_name}")


def test_help_texts_reference_only_what_exists() -> None:
    from zhongdu.cli import build_parser

    problems: list[str] = []
    texts = list(_help_texts(build_parser(), "zhongdu"))
    assert len(texts) > 100  # every command's options, not just the top level
    for where, text in texts:
        problems += broken_references(text, f"`{where}` help", REPO_ROOT)
    assert not problems, "\n".join(problems)


def test_openapi_schema_references_only_what_exists() -> None:
    import json

    from zhongdu.api import create_app
    from zhongdu.settings import Settings

    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none"), live_coverage=False)
    text = json.dumps(app.openapi(), ensure_ascii=False)
    assert "docs/coverage.md#criteria" in text  # the scan sees the descriptions
    problems = list(broken_references(text, "OpenAPI schema", REPO_ROOT))
    assert not problems, "\n".join(problems)


def test_generated_broker_config_references_only_what_exists(tmp_path: Path) -> None:
    from zhongdu.broker import write_broker_config

    write_broker_config(tmp_path / "broker")
    texts = [(p.name, p.read_text()) for p in (tmp_path / "broker").rglob("*") if p.is_file()]
    assert any("docs/security-and-deployment.md" in t for _, t in texts)
    problems = [p for name, t in texts for p in broken_references(t, f"generated {name}", REPO_ROOT)]
    assert not problems, "\n".join(problems)


def test_the_scan_catches_what_it_should(tmp_path: Path) -> None:
    text = (f"see {FORBIDDEN[0]}; docs/nowhere.md; docs/coverage.md#no-such-heading; "
            "docs/coverage.md#stations-csv; README.md; docs/missing-folder/")  # fmt: skip
    problems = list(broken_references(text, "x", tmp_path))
    assert len(problems) == 5, problems
    assert slug("Stations CSV") == "stations-csv" and slug("`Models` (Hata)") == "models-hata"


def test_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) < 10_000, f"README.md is {len(text.encode())} bytes; move detail into docs/"
    assert text.index("docs/dashboard.png") < text.index("```"), "the screenshot comes before the first command"
    assert (REPO_ROOT / "docs" / "dashboard.png").is_file()
    assert "make demo" in text and "make test" in text
    assert not re.search(r"\b(issues?|sessions?)\b|\b202[5-9]-\d\d-\d\d\b", text), "no history in the front door"


def test_settings_table_matches_the_code() -> None:
    from zhongdu import settings_doc

    page = settings_doc.CONFIG_PAGE.read_text(encoding="utf-8")
    table = page.split(settings_doc.BEGIN, 1)[1].split(settings_doc.END, 1)[0]
    documented = re.findall(r"^\| `(ZHONGDU_[A-Z0-9_]+)`", table, flags=re.M)
    expected = settings_doc.env_names()
    missing, stale = sorted(set(expected) - set(documented)), sorted(set(documented) - set(expected))
    assert not missing and not stale, (
        f"docs/configuration.md: missing {missing}, no longer settings {stale}; "
        "run `python -m zhongdu.settings_doc --write`"
    )
    assert settings_doc.render_page(page) == page, "run `python -m zhongdu.settings_doc --write`"


def test_every_env_variable_the_code_reads_is_documented() -> None:
    from zhongdu import settings_doc

    documented = set(settings_doc.env_names())
    read: set[str] = set()
    for folder in ("zhongdu", "ingest", "coverage", "api", "simulators"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"""environ(?:\.get)?[\[(]\s*["'](ZHONGDU_[A-Z0-9_]+)""", path.read_text()))
    assert read - documented == set(), "read from the environment but not in docs/configuration.md"


def _markdown_table(page: Path, first_header: str) -> list[list[str]]:
    rows, inside = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {first_header} |"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if not line.startswith("|---"):
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_metric_catalogue_matches_the_ingester() -> None:
    from zhongdu.ingest import DEVICE_KINDS, METRICS

    def g(x: float | None) -> str:
        return "" if x is None else f"{x:g}"

    expected = [
        [f"`{m}`", s.unit or "", g(s.min), g(s.max), ", ".join(k for k, ms in DEVICE_KINDS.items() if m in ms),
         s.description]
        for m, s in METRICS.items()
    ]  # fmt: skip
    documented = _markdown_table(DOCS / "mqtt-contract.md", "metric")
    assert documented == expected, "docs/mqtt-contract.md's metric catalogue differs from zhongdu.ingest.METRICS"


def test_rejection_reasons_match_the_ingester() -> None:
    from zhongdu.ingest._types import Reason

    documented = [row[0].strip("`") for row in _markdown_table(DOCS / "mqtt-contract.md", "reason")]
    assert documented == [r.value for r in Reason]


def test_every_docs_page_is_in_the_index() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "index.md" and f"({p.name})" not in index]
    assert not unlisted, f"add {unlisted} to docs/index.md"
