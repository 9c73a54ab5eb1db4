"""Shared helpers for the DATA tests (grid build, layouts, indicator series): the real inputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from zhongdu.settings import Settings


def shared_data_dir() -> Path:
    """The real Taichung inputs; fails (never skips) with the fix when they are missing."""
    path = Settings().source_data_dir
    if not (path / "taichung_districts.geojson").is_file():
        pytest.fail(
            f"the shared Taichung data are not at {path}; set ZHONGDU_SOURCE_DATA_DIR to the folder "
            "with taichung_districts.geojson etc. (../shared/data next to the repository)"
        )
    return path


def official_population(source: Path) -> dict[str, int]:
    """2026-09 population per district straight from the source CSV (independent of the builder)."""
    with (source / "taichung_district_population.csv").open(encoding="utf-8", newline="") as fh:
        return {r["name_zh"]: int(r["population"]) for r in csv.DictReader(fh)}


def ncc_4g_counts(source: Path) -> dict[str, dict[str, int]]:
    """date -> district (or '(未標示區)') -> 4G stations, read straight from the NCC file."""
    out: dict[str, dict[str, int]] = {}
    with (source / "taichung_base_station_counts.csv").open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["technology"] != "4G":
                continue
            name = r["name_zh"] if r["district_code"] else "(未標示區)"
            d = out.setdefault(r["as_of_date"], {})
            d[name] = d.get(name, 0) + int(r["base_stations"])
    return out
