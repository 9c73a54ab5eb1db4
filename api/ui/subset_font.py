"""Subset Noto Sans CJK TC to the characters the operations page can show, as WOFF2.

A wall PC without a CJK font would draw boxes for every Chinese text. The page ships a subset
(OFL 1.1, licence beside it) covering every CJK character of the page's sources, the district
names and the plan's indicator names, so it renders Chinese anywhere. Run by `make ui` before the
bundle is built; the output is committed, so install and tests need neither the source font nor
fontTools. The source font: `--source` (`make ui CJK_SOURCE_FONT=…`), else Debian's fonts-noto-cjk
collection.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FAMILY = "Noto Sans CJK TC"
OUT = HERE / "fonts" / "NotoSansCJKtc-zhongdu.woff2"
# Where the page's Chinese comes from: its own strings, the district names (map labels, lists),
# the plan's indicator names, and the API's Chinese summaries and messages.
TEXT_SOURCES = ("api/ui/src/*.js", "api/ui/index.html", "coverage/data/districts.csv",
                "api/data/indicators_104_107.json", "api/*.py")  # fmt: skip
FIRST_CJK = 0x2E80  # CJK radicals onwards: ideographs, CJK punctuation, full-width forms


def page_characters(root: Path = ROOT) -> set[str]:
    """Every CJK character (and full-width form) in the page's text sources."""
    chars: set[str] = set()
    for pattern in TEXT_SOURCES:
        for path in sorted(root.glob(pattern)):
            chars.update(c for c in path.read_text(encoding="utf-8") if ord(c) >= FIRST_CJK)
    return chars


def _face_index(source: Path) -> int:
    """Index of the Traditional Chinese face in a collection (0 for a single font)."""
    from fontTools.ttLib import TTCollection  # type: ignore[import-untyped]

    if source.suffix.lower() not in (".ttc", ".otc"):
        return 0
    for i, font in enumerate(TTCollection(str(source)).fonts):
        if font["name"].getDebugName(1) == FAMILY:
            return i
    raise SystemExit(f"{source} has no {FAMILY!r} face")


def build(source: Path, out: Path = OUT) -> int:
    """Write the subset; returns its size in bytes."""
    from fontTools import subset  # type: ignore[import-untyped]
    from fontTools.ttLib import TTFont

    chars = page_characters()
    options = subset.Options()
    options.flavor = "woff2"
    options.layout_features = ["kern", "palt", "halt"]  # horizontal text only: no vertical forms
    options.hinting = False  # a wall's large type needs no hints
    options.notdef_outline = True
    # same input, same bytes: no timestamp of this run in the font
    font = TTFont(str(source), fontNumber=_face_index(source), recalcTimestamp=False, lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(chars)))
    subsetter.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(out), options)
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help=f"the source font or collection (default {DEFAULT_SOURCE})")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(
            f"subset_font: the source font {args.source} is missing. Install Debian's fonts-noto-cjk "
            "(apt-get install fonts-noto-cjk) or name NotoSansCJK-Regular.ttc or NotoSansCJKtc-Regular.otf "
            "with `make ui CJK_SOURCE_FONT=/path/to/it`.",
            file=sys.stderr,
        )
        return 2
    try:
        # WOFF2 needs it; fontTools would say so only deep in the save
        import brotli  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        print("subset_font: WOFF2 needs the brotli package (pip install brotli)", file=sys.stderr)
        return 2
    size = build(args.source)
    print(f"subset_font: {OUT.relative_to(ROOT)} {size / 1024:.0f} KiB, {len(page_characters())} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
