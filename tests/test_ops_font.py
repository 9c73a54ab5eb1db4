"""The CJK font the page ships covers every Chinese character the page can show: its own texts,
the district names and the plan's indicator names. A new string with a new character fails here
until `make ui` makes the subset again."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FONT = REPO / "api" / "static" / "NotoSansCJKtc-zhongdu.woff2"


def _subset_module() -> object:
    spec = importlib.util.spec_from_file_location("subset_font", REPO / "api" / "ui" / "subset_font.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_served_font_covers_every_chinese_character_of_the_page() -> None:
    from fontTools.ttLib import TTFont

    chars = _subset_module().page_characters()  # type: ignore[attr-defined]
    assert {"臺", "中", "屯", "區", "營", "運", "（", "・"} <= chars  # the sources were read
    cmap = TTFont(io.BytesIO(FONT.read_bytes()))["cmap"].getBestCmap()
    missing = sorted(c for c in chars if ord(c) not in cmap and not c.isspace())
    assert missing == [], f"run `make ui`: the font lacks {''.join(missing)}"
    assert FONT.stat().st_size < 160 * 1024  # a subset, not the 19 MB collection
    assert (REPO / "api" / "static" / "NotoSansCJKtc-zhongdu.OFL.txt").read_text().count("SIL OPEN FONT LICENSE") == 1


def test_the_build_says_what_is_missing_without_the_source_font(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(REPO / "api" / "ui" / "subset_font.py"), "--source", str(tmp_path / "none.ttc")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2 and "fonts-noto-cjk" in run.stderr and "CJK_SOURCE_FONT" in run.stderr
