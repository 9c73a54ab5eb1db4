"""The shipped copy of the real Taichung inputs (`coverage/data/source/`): made, and checked.

The project ships the open-data inputs its code reads, so a clone needs nothing beside it.
`pack_sources` makes the copy from the original files (see `coverage/data/source/README.md`): each
file gzipped under its own name plus `.gz`, columns (CSV) or feature properties (GeoJSON) no code
reads dropped, nothing else changed (rows, their order, every value and coordinate kept), and a
`manifest.json` recording each file's rows and SHA-256 (of the decompressed content, so a zlib
version cannot change it). `check_sources` verifies the copy against that manifest and, given the
originals, that packing them again gives the same content.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhongdu.coverage._grid_build import (
    AREA_POINTS_FILE,
    AREAS_FILE,
    COUNTS_FILE,
    DISTRICTS_FILE,
    OPERATOR_SOURCE_FILE,
    POPULATION_FILE,
    SHIPPED_SOURCE_DIR,
    GridBuildError,
    find_source_file,
)

MANIFEST_FILE = "manifest.json"

#: Shipped file -> the CSV columns or GeoJSON feature properties kept (None: the file as it is).
#: The two small files are kept whole (29 rows; their extra columns cost under 2 KB gzipped).
SHIPPED_COLUMNS: dict[str, tuple[str, ...] | None] = {
    DISTRICTS_FILE: None,
    POPULATION_FILE: None,
    AREAS_FILE: ("codebase", "district_code", "population_2017_06"),
    AREA_POINTS_FILE: ("codebase", "district_code", "lon", "lat", "area_km2", "population_2017_06"),
    COUNTS_FILE: ("name_zh", "name_en", "district_code", "as_of_date", "technology", "base_stations"),
    OPERATOR_SOURCE_FILE: ("city_zh", "as_of_date", "operator", "technology", "base_stations"),
}


@dataclass(frozen=True)
class PackedFile:
    """One shipped file: its name, the original's name and SHA-256, rows, kept columns, content hash."""

    name: str
    original: str
    original_sha256: str
    rows: int
    columns: tuple[str, ...] | None
    sha256: str
    bytes_packed: int

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "original_sha256": self.original_sha256,
            "rows": self.rows,
            "columns": list(self.columns) if self.columns is not None else None,
            "sha256": self.sha256,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def project(name: str, data: bytes, columns: tuple[str, ...] | None) -> tuple[bytes, int]:
    """The file's content with only `columns` kept (all when None), and its row/feature count."""
    if name.endswith(".geojson"):
        doc = json.loads(data)
        features = doc["features"]
        if columns is None:
            return data, len(features)
        for feature in features:
            props = feature["properties"]
            missing = [c for c in columns if c not in props]
            if missing:
                raise GridBuildError(f"{name}: a feature lacks the properties {missing}")
            feature["properties"] = {c: props[c] for c in columns}
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))  # floats round-trip exactly
        return text.encode("utf-8"), len(features)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    if columns is None:
        return data, len(rows) - 1
    header = rows[0]
    missing = [c for c in columns if c not in header]
    if missing:
        raise GridBuildError(f"{name}: the header lacks the columns {missing}")
    keep = [header.index(c) for c in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([row[i] for i in keep] for row in rows)
    return out.getvalue().encode("utf-8"), len(rows) - 1


def pack_sources(original_dir: Path, out_dir: Path = SHIPPED_SOURCE_DIR) -> list[PackedFile]:
    """Write the shipped copy of every input in `SHIPPED_COLUMNS` from the originals, and its manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    packed: list[PackedFile] = []
    for name, columns in SHIPPED_COLUMNS.items():
        source = original_dir / name
        if not source.is_file():
            raise GridBuildError(f"{source} is missing: pack from the folder holding the original inputs")
        original = source.read_bytes()
        content, rows = project(name, original, columns)
        blob = gzip.compress(content, compresslevel=9, mtime=0)  # no time stamp: reproducible bytes
        (out_dir / f"{name}.gz").write_bytes(blob)
        packed.append(
            PackedFile(f"{name}.gz", name, _sha256(original), rows, columns, _sha256(content), len(blob))
        )
    manifest = {"files": {p.name: p.manifest_entry() for p in packed}}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return packed


def _count_rows(name: str, content: bytes) -> int:
    if name.endswith(".geojson"):
        return len(json.loads(content)["features"])
    return len(list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))) - 1


def check_sources(source_dir: Path = SHIPPED_SOURCE_DIR, original_dir: Path | None = None) -> list[str]:
    """Problems with the shipped copy in `source_dir` (empty: all good).

    Each file of the manifest must be there, decompress, have the recorded rows and SHA-256. With
    `original_dir`, each original must have the recorded SHA-256 and pack to the same content.
    """
    manifest_path = source_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing"]
    files: dict[str, dict[str, Any]] = json.loads(manifest_path.read_text("utf-8"))["files"]
    problems = [f"{MANIFEST_FILE} does not list {n}.gz" for n in SHIPPED_COLUMNS if f"{n}.gz" not in files]
    for packed_name, entry in files.items():
        original_name = entry["original"]
        path = find_source_file(source_dir, original_name)
        if path is None:
            problems.append(f"{packed_name}: missing from {source_dir}")
            continue
        try:
            content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError) as exc:
            problems.append(f"{packed_name}: cannot be decompressed ({exc})")
            continue
        if _sha256(content) != entry["sha256"]:
            problems.append(f"{packed_name}: SHA-256 differs from {MANIFEST_FILE}")
        rows = _count_rows(original_name, content)
        if rows != entry["rows"]:
            problems.append(f"{packed_name}: {rows} rows, {MANIFEST_FILE} says {entry['rows']}")
        if original_dir is None:
            continue
        original_path = original_dir / original_name
        if not original_path.is_file():
            problems.append(f"{original_name}: not in {original_dir}")
            continue
        original = original_path.read_bytes()
        if _sha256(original) != entry["original_sha256"]:
            problems.append(f"{original_name}: the original's SHA-256 differs from {MANIFEST_FILE}")
        columns = tuple(entry["columns"]) if entry["columns"] is not None else None
        if _sha256(project(original_name, original, columns)[0]) != _sha256(content):
            problems.append(f"{packed_name}: packing the original does not give the shipped content")
    return problems
