"""The Taichung inputs shipped in coverage/data/source: complete, as the manifest says, read alike
plain or gzipped, reproducibly packed, and remaking exactly the shipped derived products."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zhongdu.coverage._grid_build import (
    REQUIRED_FILES,
    SHIPPED_SOURCE_DIR,
    GridBuildError,
    read_districts,
    read_source_geojson,
    source_dir_or_default,
    source_file,
)
from zhongdu.coverage._layout import DATA_DIR
from zhongdu.coverage._sources import MANIFEST_FILE, SHIPPED_COLUMNS, check_sources, pack_sources
from zhongdu.settings import Settings


def _unpacked_copy(target: Path) -> Path:
    """The shipped files decompressed under their original names (a folder of plain inputs)."""
    target.mkdir()
    for name in SHIPPED_COLUMNS:
        (target / name).write_bytes(gzip.decompress((SHIPPED_SOURCE_DIR / f"{name}.gz").read_bytes()))
    return target


def test_the_shipped_copy_matches_its_manifest() -> None:
    assert check_sources() == []
    manifest = json.loads((SHIPPED_SOURCE_DIR / MANIFEST_FILE).read_text("utf-8"))["files"]
    rows = {entry["original"]: entry["rows"] for entry in manifest.values()}
    assert rows == {
        "taichung_districts.geojson": 29,
        "taichung_district_population.csv": 29,
        "taichung_statistical_areas_2017.geojson": 17_218,
        "taichung_statistical_areas_2017.csv": 17_218,
        "taichung_base_station_counts.csv": 2_664,
        "taichung_base_station_counts_by_operator.csv": 522,
    }
    assert sum(p.stat().st_size for p in SHIPPED_SOURCE_DIR.glob("*.gz")) < 3_000_000
    assert (SHIPPED_SOURCE_DIR / "README.md").is_file()


def test_check_sources_cli_passes_and_catches_a_changed_file(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "zhongdu.cli", "grid", "check-sources"]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "every file matches" in ok.stdout, ok.stderr
    copy = tmp_path / "source"
    shutil.copytree(SHIPPED_SOURCE_DIR, copy)
    counts = copy / "taichung_base_station_counts.csv.gz"
    text = gzip.decompress(counts.read_bytes()).decode("utf-8").replace(",4G,13\n", ",4G,14\n", 1)
    counts.write_bytes(gzip.compress(text.encode("utf-8")))
    bad = subprocess.run([*cli, "--source-dir", str(copy)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "taichung_base_station_counts.csv.gz: SHA-256 differs" in bad.stderr


def test_the_default_source_dir_is_the_shipped_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ZHONGDU_SOURCE_DATA_DIR", raising=False)
    assert Settings().source_data_dir == SHIPPED_SOURCE_DIR
    assert source_dir_or_default(None) == SHIPPED_SOURCE_DIR
    monkeypatch.setenv("ZHONGDU_SOURCE_DATA_DIR", str(tmp_path))  # an override still wins ...
    assert Settings().source_data_dir == tmp_path
    with pytest.raises(GridBuildError, match=r"lacks taichung_districts\.geojson") as info:
        source_dir_or_default(None)  # ... and says what it lacks and how to get the shipped copy
    assert str(SHIPPED_SOURCE_DIR) in str(info.value)


def test_source_file_finds_plain_before_gzipped(tmp_path: Path) -> None:
    name = "taichung_district_population.csv"
    with pytest.raises(GridBuildError, match=f"neither {name} nor {name}.gz"):
        source_file(tmp_path, name)
    shutil.copy(SHIPPED_SOURCE_DIR / f"{name}.gz", tmp_path)
    assert source_file(tmp_path, name) == tmp_path / f"{name}.gz"
    (tmp_path / name).write_bytes(gzip.decompress((tmp_path / f"{name}.gz").read_bytes()))
    assert source_file(tmp_path, name) == tmp_path / name


def test_plain_and_gzipped_inputs_read_alike(tmp_path: Path) -> None:
    plain = _unpacked_copy(tmp_path / "plain")
    assert all((plain / name).is_file() for name in REQUIRED_FILES)
    assert read_districts(plain) == read_districts(SHIPPED_SOURCE_DIR)
    assert sum(d.population for d in read_districts(SHIPPED_SOURCE_DIR)) == 2_866_367
    columns = list(SHIPPED_COLUMNS["taichung_statistical_areas_2017.geojson"] or ())
    a = read_source_geojson(plain, "taichung_statistical_areas_2017.geojson", columns)
    b = read_source_geojson(SHIPPED_SOURCE_DIR, "taichung_statistical_areas_2017.geojson", columns)
    assert len(a) == 17_218 and a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
    assert int(a["population_2017_06"].sum()) == 2_775_618


def test_packing_is_reproducible(tmp_path: Path) -> None:
    """Packing the shipped content again gives the very same bytes (deterministic gzip, stable
    projection), so `zhongdu grid pack-sources` on the originals reproduces the shipped files."""
    packed = pack_sources(_unpacked_copy(tmp_path / "plain"), tmp_path / "packed")
    assert {p.name for p in packed} == {f"{name}.gz" for name in SHIPPED_COLUMNS}
    for p in packed:
        assert (tmp_path / "packed" / p.name).read_bytes() == (SHIPPED_SOURCE_DIR / p.name).read_bytes(), p.name
    assert check_sources(tmp_path / "packed") == []


@pytest.mark.slow
def test_the_shipped_inputs_remake_the_shipped_derived_files(tmp_path: Path) -> None:
    """`zhongdu grid rebuild-data` from the shipped inputs: the same districts, counts and grid."""
    proc = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "grid", "rebuild-data", "--quiet", "--out-dir", str(tmp_path),
         "--source-dir", str(SHIPPED_SOURCE_DIR)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("districts.csv", "station_counts_4g.csv"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
    rebuilt = gzip.decompress((tmp_path / "grid_res10.csv.gz").read_bytes())
    assert rebuilt == gzip.decompress((DATA_DIR / "grid_res10.csv.gz").read_bytes())
