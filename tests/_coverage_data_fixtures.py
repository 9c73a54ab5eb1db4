"""Shared helpers for the DATA tests (grid build, layouts, indicator series): the real inputs.

They come from the copy shipped in `coverage/data/source/` (or `ZHONGDU_SOURCE_DATA_DIR`), read
here with the plain `csv` module, independently of the builders' readers.
"""

from __future__ import annotations

import csv
from pathlib import Path

from zhongdu.coverage._grid_build import open_source_text, source_dir_or_default


def source_data_dir() -> Path:
    """The real Taichung inputs: the shipped copy unless `ZHONGDU_SOURCE_DATA_DIR` overrides it."""
    return source_dir_or_default(None)


def official_population(source: Path) -> dict[str, int]:
    """2026-09 population per district straight from the source CSV (independent of the builder)."""
    with open_source_text(source, "taichung_district_population.csv") as fh:
        return {r["name_zh"]: int(r["population"]) for r in csv.DictReader(fh)}


def ncc_4g_counts(source: Path) -> dict[str, dict[str, int]]:
    """date -> district (or '(未標示區)') -> 4G stations, read straight from the NCC file."""
    out: dict[str, dict[str, int]] = {}
    with open_source_text(source, "taichung_base_station_counts.csv") as fh:
        for r in csv.DictReader(fh):
            if r["technology"] != "4G":
                continue
            name = r["name_zh"] if r["district_code"] else "(未標示區)"
            d = out.setdefault(r["as_of_date"], {})
            d[name] = d.get(name, 0) + int(r["base_stations"])
    return out
