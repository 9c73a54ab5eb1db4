"""Binary grids (Parquet, Arrow IPC): same grid and same coverage as the CSV, clear errors for bad
files, and every command choosing the reader by extension."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from zhongdu.coverage import Grid, compute_coverage, load_grid, write_grid, write_stations
from zhongdu.coverage._grid_binary import read_binary
from zhongdu.coverage._indicator import load_default_grid
from zhongdu.coverage._types import GridError

from ._coverage_fixtures import random_stations, small_grid

SUFFIXES = [".parquet", ".arrow", ".feather"]


def _same_grid(a: Grid, b: Grid) -> None:
    for name in ("cells", "population", "district_index", "environment"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.districts == b.districts and a.resolution == b.resolution


@pytest.fixture(scope="module")
def city() -> Grid:
    """The shipped resolution-10 grid of the whole city (167,000 cells)."""
    return load_default_grid()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_city_grid_round_trips_with_its_centres(city: Grid, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"city{suffix}"
    write_grid(city, path)
    back = load_grid(path)
    _same_grid(back, city)
    assert back.cells.dtype == np.uint64 and back.population.dtype == np.float64
    lat, lng = back._cache["latlng"]  # stored centres, no h3 call per cell
    want_lat, want_lng = city.latlng_deg()
    np.testing.assert_array_equal(lat, want_lat)
    np.testing.assert_array_equal(lng, want_lng)


@pytest.mark.parametrize("model", ["disk", "hata"])
def test_coverage_from_binary_equals_csv_to_1e9(city: Grid, tmp_path: Path, model: str) -> None:
    """The acceptance check of the binary path: the same shares as the CSV path to 1e-9."""
    write_grid(city, tmp_path / "city.csv")
    write_grid(city, tmp_path / "city.arrow")
    write_grid(city, tmp_path / "city.parquet")
    stations = random_stations(city, 22, 400)
    if model == "disk":
        stations = type(stations).from_columns(
            station_id=stations.station_id, sector_id=stations.sector_id, lon=stations.lon, lat=stations.lat,
            up=stations.up, radius_m=np.linspace(300.0, 3000.0, len(stations)),
        )  # fmt: skip
    results = [
        compute_coverage(load_grid(tmp_path / name), stations, model=model, per_cell=True)  # type: ignore[arg-type]
        for name in ("city.csv", "city.arrow", "city.parquet")
    ]
    base = results[0]
    assert 0.0 < base.share < 1.0  # a layout that covers part of the city: the check can fail
    for other in results[1:]:
        assert abs(other.share - base.share) <= 1e-9
        assert abs(other.population_covered - base.population_covered) <= 1e-9 * base.population_total
        for a, b in zip(base.districts, other.districts, strict=True):
            assert a.district == b.district and abs(a.share - b.share) <= 1e-9
        np.testing.assert_array_equal(other.covered, base.covered)
        np.testing.assert_array_equal(other.serving_row, base.serving_row)


def test_unsorted_cells_are_written_sorted_and_read_back(tmp_path: Path) -> None:
    grid = small_grid(3)
    shuffled = grid.take(np.random.default_rng(1).permutation(len(grid)))
    write_grid(shuffled, tmp_path / "g.arrow")
    back = load_grid(tmp_path / "g.arrow")
    _same_grid(back, grid)  # small_grid's cells are sorted


def test_file_without_centres_or_environment_reads(tmp_path: Path) -> None:
    grid = small_grid(4)
    table = pa.table(
        {
            "h3": pa.array(grid.cells, pa.uint64()),
            "district": pa.array(np.asarray(grid.districts)[grid.district_index].tolist()),
            "population": pa.array(grid.population),
        }
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    back = load_grid(tmp_path / "plain.parquet")
    np.testing.assert_array_equal(back.cells, grid.cells)
    np.testing.assert_array_equal(back.population, grid.population)
    assert (back.environment == 0).all() and "latlng" not in back._cache


def _table(grid: Grid, **replace: object) -> pa.Table:
    lat, lng = grid.latlng_deg()
    cols: dict[str, object] = {
        "h3": pa.array(grid.cells, pa.uint64()),
        "district": pa.array(np.asarray(grid.districts)[grid.district_index].tolist()),
        "population": pa.array(grid.population),
        "environment": pa.array(["urban"] * len(grid)),
        "lat": pa.array(lat),
        "lng": pa.array(lng),
    }
    cols.update(replace)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def _bad_cases(grid: Grid) -> list[tuple[str, pa.Table, str]]:
    n = len(grid)
    pop = grid.population.copy()
    pop[5] = -1.0
    dup = grid.cells.copy()
    dup[7] = dup[6]
    mixed = grid.cells.copy()
    mixed[3] = np.uint64((int(mixed[3]) & ~(0xF << 52)) | (8 << 52))
    lat, _ = grid.latlng_deg()
    moved = np.roll(lat, 1)  # centres one row off their cells (the check samples rows)
    names = np.asarray(grid.districts)[grid.district_index].tolist()
    names[2] = ""
    return [
        ("missing", _table(grid, population=None), "missing column"),
        ("negative", _table(grid, population=pa.array(pop)), r"row 6: population -1.0"),
        ("duplicate", _table(grid, h3=pa.array(dup, pa.uint64())), "more than once"),
        ("mixed", _table(grid, h3=pa.array(mixed, pa.uint64())), "mix resolutions"),
        ("not-h3", _table(grid, h3=pa.array(np.arange(n, dtype=np.uint64))), "not an H3 cell"),
        ("centres", _table(grid, lat=pa.array(moved)), "is not the centre of cell"),
        ("env", _table(grid, environment=pa.array(["desert"] * n)), "environment 'desert'"),
        ("nodistrict", _table(grid, district=pa.array(names)), "row 3: empty district"),
        ("nulls", _table(grid, population=pa.array([None] * n, pa.float64())), "empty values"),
        ("text-cells", _table(grid, h3=pa.array(["x"] * n)), "column 'h3' of type string"),
    ]


@pytest.mark.parametrize("case", range(10))
@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_bad_binary_grids_are_refused_clearly(tmp_path: Path, case: int, suffix: str) -> None:
    grid = small_grid(5)
    name, table, match = _bad_cases(grid)[case]
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, path)
    else:
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    with pytest.raises(GridError, match=match) as err:
        load_grid(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_a_csv_or_truncated_file_with_a_binary_name_is_refused(tmp_path: Path, suffix: str) -> None:
    grid = small_grid(6)
    write_grid(grid, tmp_path / "g.csv")
    (tmp_path / f"csv{suffix}").write_bytes((tmp_path / "g.csv").read_bytes())
    with pytest.raises(GridError, match="not a readable"):
        load_grid(tmp_path / f"csv{suffix}")
    write_grid(grid, tmp_path / f"g{suffix}")
    data = (tmp_path / f"g{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(GridError, match="not a readable"):
        load_grid(tmp_path / f"cut{suffix}")
    with pytest.raises(GridError, match="no such grid file"):
        read_binary(tmp_path / f"absent{suffix}")


def _zhongdu(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("zhongdu")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def test_commands_choose_the_reader_by_extension(tmp_path: Path) -> None:
    """`grid build` writes Arrow; `coverage compute` reads it and the CSV alike."""
    out = tmp_path / "g9.arrow"
    proc = _zhongdu("grid", "build", "--resolution", "8", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    grid = load_grid(out)
    assert grid.resolution == 8 and "latlng" in grid._cache
    write_grid(grid, tmp_path / "g9.csv")
    stations = random_stations(grid, 7, 60)
    write_stations(stations, tmp_path / "s.csv")
    shares = []
    for name in ("g9.arrow", "g9.csv"):
        proc = _zhongdu(
            "coverage",
            "compute",
            "--grid",
            str(tmp_path / name),
            "--stations",
            str(tmp_path / "s.csv"),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
        shares.append(json.loads(proc.stdout)["share"])
    assert shares[0] == shares[1] and 0.0 < shares[0] < 1.0


def test_stored_geometry_is_the_engines_bit_for_bit(tmp_path: Path) -> None:
    """The frame coordinates and blocks in the file are what the engine computes from the grid."""
    from zhongdu.coverage._engine import grid_geometry
    from zhongdu.coverage._grid_binary import BLOCKS_KEY, FRAME_KEY

    grid = load_grid(_resolution_11_part(tmp_path))
    want = grid_geometry(grid)
    assert want.block is not None and want.blocks is not None
    write_grid(grid, tmp_path / "g.arrow")
    meta = pa.ipc.open_file(pa.memory_map(str(tmp_path / "g.arrow"))).schema.metadata
    assert FRAME_KEY in meta and BLOCKS_KEY in meta
    back = load_grid(tmp_path / "g.arrow")
    got = back._cache["grid_geometry"]
    assert (got.lat0, got.lng0) == (want.lat0, want.lng0)
    for name in ("x", "y", "z", "block"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for name in ("x", "y", "z", "radius", "env"):
        np.testing.assert_array_equal(getattr(got.blocks, name), getattr(want.blocks, name))


def _resolution_11_part(tmp_path: Path) -> Path:
    """Two resolution-9 parents' worth of resolution-11 cells of the shipped city, as a CSV."""
    import h3

    city = load_default_grid()
    parents = {h3.cell_to_parent(format(int(c), "x"), 9) for c in city.cells[:40].tolist()}
    cells = sorted(h3.str_to_int(c) for p in sorted(parents) for c in h3.cell_to_children(p, 11))
    rng = np.random.default_rng(11)
    grid = Grid.from_arrays(cells, rng.uniform(0, 30, len(cells)), ["西屯區"] * len(cells), ["urban"] * len(cells))
    write_grid(grid, tmp_path / "part.csv")
    return tmp_path / "part.csv"


@pytest.mark.parametrize("model", ["disk", "hata"])
def test_coverage_is_the_same_with_or_without_the_stored_geometry(tmp_path: Path, model: str) -> None:
    """Stored geometry, the previous layout (centres only) and the CSV: the same covered cells."""
    from zhongdu.coverage._grid_binary import write_binary

    csv = _resolution_11_part(tmp_path)
    grid = load_grid(csv)
    write_grid(grid, tmp_path / "g.arrow")
    write_binary(grid, tmp_path / "v1.arrow", geometry=False)
    assert "grid_geometry" not in load_grid(tmp_path / "v1.arrow")._cache
    stations = random_stations(grid, 5, 12)
    if model == "disk":
        stations = type(stations).from_columns(
            **{k: getattr(stations, k) for k in ("station_id", "sector_id", "lon", "lat")},
            radius_m=np.full(len(stations), 400.0),
        )
    results = [compute_coverage(load_grid(p), stations, model=model) for p in (csv, tmp_path / "g.arrow", tmp_path / "v1.arrow")]
    assert 0 < results[0].share < 1
    for r in results[1:]:
        assert r.covered is not None and results[0].covered is not None
        np.testing.assert_array_equal(r.covered, results[0].covered)
        assert r.share == pytest.approx(results[0].share, abs=1e-9)


def _tamper(path: Path, out: Path, **columns: np.ndarray) -> None:
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, pa.array(values))
    with pa.OSFile(str(out), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


def test_tampered_stored_geometry_is_refused(tmp_path: Path) -> None:
    grid = load_grid(_resolution_11_part(tmp_path))
    write_grid(grid, tmp_path / "g.arrow")
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / "g.arrow"))).read_all()
    x = table.column("x").to_numpy().copy()
    x += 50.0  # every centre 50 m off in the frame
    _tamper(tmp_path / "g.arrow", tmp_path / "x.arrow", x=x)
    with pytest.raises(GridError, match="stored x, y, z are not the cell centre"):
        load_grid(tmp_path / "x.arrow")
    block = table.column("block").to_numpy().copy()
    block[: len(block) // 2] = 0  # blocks merged: numbering no longer 0, 1, ... in row order
    _tamper(tmp_path / "g.arrow", tmp_path / "b.arrow", block=block)
    with pytest.raises(GridError, match="column 'block' must number the blocks"):
        load_grid(tmp_path / "b.arrow")
    meta = dict(table.schema.metadata)
    meta[b"zhongdu.blocks"] = b"!!not base64!!"
    with pa.OSFile(str(tmp_path / "m.arrow"), "wb") as sink, ipc.new_file(
        sink, table.schema.with_metadata(meta)
    ) as w:
        w.write_table(table.replace_schema_metadata(meta))
    with pytest.raises(GridError, match="needs the blocks in the schema metadata"):
        load_grid(tmp_path / "m.arrow")


def test_stored_blocks_that_do_not_hold_their_cells_are_refused(tmp_path: Path) -> None:
    """A radius too small would let the engine's block bounds call cells covered that are not."""
    import base64

    grid = load_grid(_resolution_11_part(tmp_path))
    write_grid(grid, tmp_path / "g.arrow")
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / "g.arrow"))).read_all()
    meta = dict(table.schema.metadata)
    raw = bytearray(base64.b64decode(meta[b"zhongdu.blocks"]))
    n = len(raw) // 33
    radius = np.frombuffer(bytes(raw[24 * n : 32 * n]), dtype="<f8") * 0.5
    raw[24 * n : 32 * n] = radius.astype("<f8").tobytes()
    meta[b"zhongdu.blocks"] = base64.b64encode(bytes(raw))
    with pa.OSFile(str(tmp_path / "r.arrow"), "wb") as sink, ipc.new_file(
        sink, table.schema.with_metadata(meta)
    ) as w:
        w.write_table(table.replace_schema_metadata(meta))
    with pytest.raises(GridError, match="does not hold its cells"):
        load_grid(tmp_path / "r.arrow")
