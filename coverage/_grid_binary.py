"""Binary population grids: Parquet and Arrow IPC files with `uint64` cells, beside CSV.

At resolution 12 (8.2 million cells) a grid CSV is 410 MB of hex text whose parsing dominates a
whole `coverage compute`; the same columns in Arrow IPC are read by memory-mapping the file (no
parse, no copy) and in Parquet by one columnar decode. Both carry the same columns as the CSV,
`h3` as the 64-bit integer itself, plus optional `lat`/`lng`: the cell centres computed by h3 at
build time, which spare every later run h3's one-call-per-cell centre computation (6 s at
resolution 12). The layout is documented in docs/grid-formats.md.

The checks are those of the CSV reader, vectorised: H3 cell mode and one resolution, cells once,
finite populations >= 0, a district per cell, known environments; stored centres are compared
with h3 on an evenly spread sample, so a file whose centres do not belong to its cells is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._types import ENVIRONMENTS, Grid, GridError, _check_cells, _h3_centres

__all__ = [
    "ARROW_SUFFIXES",
    "BINARY_SUFFIXES",
    "PARQUET_SUFFIXES",
    "is_binary",
    "read_binary",
    "write_binary",
]

PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
ARROW_SUFFIXES: tuple[str, ...] = (".arrow", ".feather", ".ipc")
BINARY_SUFFIXES: tuple[str, ...] = PARQUET_SUFFIXES + ARROW_SUFFIXES

#: Schema metadata key and value that mark a Zhongdu grid file (and its layout version).
FORMAT_KEY = b"zhongdu.grid"
FORMAT_VERSION = b"1"
#: Stored centres are checked against h3 on this many cells ...
CENTRE_SAMPLE = 512
#: ... in this many runs of consecutive rows (see `_check_centres`).
SAMPLE_RUNS = 4
#: Largest difference (degrees) between a stored centre and h3's: float64 round trip is exact.
CENTRE_TOLERANCE_DEG = 1e-9
#: Stored frame coordinates must match those recomputed from the centres to this (metres).
FRAME_TOLERANCE_M = 1e-6
#: Stored blocks are checked (radius holds the cells, environment) on this many blocks, in runs.
BLOCK_SAMPLE = 64
#: Schema metadata: the engine's frame centre (JSON [lat, lng]) and blocks (base64: x, y, z,
#: radius as little-endian float64, then the environment as int8, each one value per block).
FRAME_KEY = b"zhongdu.frame"
BLOCKS_KEY = b"zhongdu.blocks"


def is_binary(path: Path) -> bool:
    """Whether the file extension names a binary grid (`.parquet`/`.pq`, `.arrow`/`.feather`/`.ipc`)."""
    return path.suffix.lower() in BINARY_SUFFIXES


def write_binary(grid: Grid, path: Path, *, centres: bool = True, geometry: bool = True) -> None:
    """Write the grid as Parquet or Arrow IPC (by extension); `centres` adds `lat`/`lng` columns,
    and with them `geometry` the engine's grid-only geometry (`x`, `y`, `z`, `block`).

    Arrow IPC is written uncompressed so readers can memory-map it; Parquet uses zstd (smaller
    file, one decode on read). Cells are written sorted, which lets the reader check uniqueness in
    one pass.
    """
    import pyarrow as pa

    # already sorted (every grid build): no copies
    cells = grid.cells
    order: NDArray[np.intp] | None = None
    if len(cells) > 1 and not bool((cells[1:] > cells[:-1]).all()):
        order = np.argsort(cells, kind="stable")

    def col(a: NDArray[Any]) -> NDArray[Any]:
        return a if order is None else a[order]

    columns: dict[str, Any] = {
        "h3": pa.array(col(grid.cells), type=pa.uint64()),
        "district": pa.DictionaryArray.from_arrays(
            pa.array(col(grid.district_index), type=pa.int32()), pa.array(list(grid.districts), pa.string())
        ),
        "population": pa.array(col(grid.population), type=pa.float64()),
        "environment": pa.DictionaryArray.from_arrays(
            pa.array(col(grid.environment), type=pa.int8()), pa.array(list(ENVIRONMENTS), pa.string())
        ),
    }
    meta = {FORMAT_KEY: FORMAT_VERSION, b"zhongdu.resolution": str(grid.resolution).encode()}
    if centres:
        lat, lng = grid.latlng_deg()
        columns["lat"] = pa.array(col(lat), type=pa.float64())
        columns["lng"] = pa.array(col(lng), type=pa.float64())
        if geometry and order is None:  # the engine's geometry is per row order: sorted grids
            columns.update(_geometry_columns(grid, meta))
    table = pa.table(columns).replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    else:
        import pyarrow.ipc as ipc

        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=len(table) or None)  # one batch: zero-copy reads
    tmp.replace(path)  # a reader never sees half a file


def _geometry_columns(grid: Grid, meta: dict[bytes, bytes]) -> dict[str, Any]:
    """The engine's grid-only geometry as columns (`x`, `y`, `z`, `block`) and metadata (frame
    centre, per-block centres, radii and environments), so readers map it instead of computing it."""
    import base64

    import pyarrow as pa

    from ._engine import grid_geometry

    gg = grid_geometry(grid)
    meta[FRAME_KEY] = json.dumps([gg.lat0, gg.lng0]).encode()  # repr: float64 round-trips exactly
    columns: dict[str, Any] = {name: pa.array(getattr(gg, name), type=pa.float64()) for name in "xyz"}
    if gg.block is not None and gg.blocks is not None:
        b = gg.blocks
        raw = b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in (b.x, b.y, b.z, b.radius))
        meta[BLOCKS_KEY] = base64.b64encode(raw + np.ascontiguousarray(b.env, dtype=np.int8).tobytes())
        columns["block"] = pa.array(gg.block, type=pa.int32())
    return columns


def _read_table(path: Path) -> Any:
    import pyarrow as pa

    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return pq.read_table(path, memory_map=True)
        import pyarrow.ipc as ipc

        with pa.memory_map(str(path), "r") as source:
            return ipc.open_file(source).read_all()  # views into the mapped file
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except (pa.ArrowException, OSError) as exc:
        kind = "Parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "Arrow IPC"
        raise GridError(
            f"{path}: not a readable {kind} grid ({exc}); write one with "
            f"`zhongdu grid build --out {path.name}` or use a CSV"
        ) from None


def _numbers(table: Any, name: str, path: Path, dtype: Any) -> NDArray[Any]:
    """A column as NumPy of `dtype` (zero-copy when one chunk of that type without nulls)."""
    import pyarrow as pa

    column = table.column(name)
    if column.null_count:
        raise GridError(f"{path}: column {name!r} has {column.null_count} empty values; every cell needs one")
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    want = pa.from_numpy_dtype(np.dtype(dtype))
    if arr.type != want:
        try:
            arr = arr.cast(want)
        except (pa.ArrowException, ValueError) as exc:
            raise GridError(f"{path}: column {name!r} of type {column.type} is not {want} ({exc})") from None
    return _view(arr, dtype)


def _view(arr: Any, dtype: Any) -> NDArray[Any]:
    """A fixed-width Arrow array without nulls as a NumPy view of its buffer (no copy).

    Not `to_numpy`: that imports pandas, 0.3 s of a one-second command.
    """
    size = np.dtype(dtype).itemsize
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * size)


def _names(table: Any, name: str, path: Path) -> tuple[list[str], NDArray[np.integer[Any]]]:
    """(distinct values, each row's index among them) of a string or dictionary column."""
    import pyarrow as pa

    column = table.column(name)
    if column.null_count:
        raise GridError(f"{path}: column {name!r} has {column.null_count} empty values; every cell needs one")
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(arr.type):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            raise GridError(f"{path}: column {name!r} must hold names (strings), not {arr.type}")
        arr = arr.dictionary_encode()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    values = [str(v).strip() for v in arr.dictionary.to_pylist()]
    indices = arr.indices
    return values, _view(indices, np.dtype(indices.type.to_pandas_dtype()))  # a view: no copy


def read_binary(path: Path) -> Grid:
    """A grid from a Parquet or Arrow IPC file, checked like a CSV (errors name the file and fix)."""
    table = _read_table(path)
    missing = [c for c in ("h3", "district", "population") if c not in table.column_names]
    if missing:
        raise GridError(
            f"{path}: missing column(s) {', '.join(missing)}; a grid file needs h3 (uint64), district, "
            f"population [, environment, lat, lng] (found: {', '.join(table.column_names)}). "
            "Make one with `zhongdu grid build`."
        )
    if len(table) == 0:
        raise GridError(f"{path}: the grid has no cells")
    cells = _numbers(table, "h3", path, np.uint64)
    population = _numbers(table, "population", path, np.float64)
    bad = ~np.isfinite(population) | (population < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GridError(
            f"{path}: row {i + 1}: population {float(population[i])!r} must be a finite number >= 0"
        )
    names, index = _names(table, "district", path)
    if "" in names and (index == names.index("")).any():
        i = int(np.flatnonzero(index == names.index(""))[0])
        raise GridError(f"{path}: row {i + 1}: empty district name; every cell needs its district")
    districts = tuple(sorted(set(names)))
    remap = np.array([districts.index(v) for v in names], dtype=np.int32)
    if "environment" in table.column_names:
        env_names, env_index = _names(table, "environment", path)
        lookup = {name: code for code, name in enumerate(ENVIRONMENTS)}
        codes = []
        for v in env_names:
            key = v.lower() or "urban"
            if key not in lookup:
                raise GridError(
                    f"{path}: environment {v!r} is not one of {', '.join(ENVIRONMENTS)} (or empty = urban)"
                )
            codes.append(lookup[key])
        environment = np.asarray(codes, dtype=np.int8)[env_index]
    else:
        environment = np.zeros(len(cells), dtype=np.int8)
    # sorted strictly increasing (as written): unique in one pass, else the full check sorts
    if len(cells) > 1 and not bool((cells[1:] > cells[:-1]).all()):
        resolution = _check_cells(np.asarray(cells), str(path))
    else:
        resolution = _check_header(cells, path)
    identity = bool((remap == np.arange(len(remap))).all())  # names already sorted: no 8 M-row copy
    grid = Grid(
        cells=cells,
        population=population,
        district_index=np.asarray(index, dtype=np.int32) if identity else remap[index],
        districts=districts,
        environment=environment,
        resolution=resolution,
    )
    if "lat" in table.column_names and "lng" in table.column_names:
        lat = _numbers(table, "lat", path, np.float64)
        lng = _numbers(table, "lng", path, np.float64)
        sample = _check_centres(cells, lat, lng, path)
        grid._cache["latlng"] = (lat, lng)
        if all(c in table.column_names for c in "xyz"):
            grid._cache["grid_geometry"] = _read_geometry(table, path, grid, sample)
    return grid


def _read_geometry(table: Any, path: Path, grid: Grid, sample: NDArray[np.int64]) -> Any:
    """The stored engine geometry, checked on the centre sample and on a sample of blocks."""

    from ._engine import GridGeometry, _Frame, _unit_vectors
    from ._models import EARTH_RADIUS_M

    meta = table.schema.metadata or {}
    try:
        lat0, lng0 = (float(v) for v in json.loads(meta[FRAME_KEY]))
    except (KeyError, ValueError, TypeError):
        raise GridError(
            f"{path}: columns x, y, z need the frame centre in the schema metadata ({FRAME_KEY.decode()}); "
            "rewrite the file with `zhongdu grid build` or drop those columns"
        ) from None
    x, y, z = (_numbers(table, name, path, np.float64) for name in "xyz")
    lat, lng = grid.latlng_deg()
    frame = _Frame.at(lat0, lng0)
    want = frame.apply(*_unit_vectors(lat[sample], lng[sample]), scale=EARTH_RADIUS_M)
    off = np.max([np.abs(w - got[sample]) for w, got in zip(want, (x, y, z), strict=True)], axis=0)
    if not (math.isfinite(lat0) and math.isfinite(lng0)) or not bool((off <= FRAME_TOLERANCE_M).all()):
        i = int(sample[int(np.argmax(off))])
        raise GridError(
            f"{path}: row {i + 1}: stored x, y, z are not the cell centre in the stored frame; "
            "rewrite the file with `zhongdu grid build` or drop the x, y, z columns"
        )
    if "block" not in table.column_names:
        return GridGeometry(lat0, lng0, x, y, z, None, None)
    block = _numbers(table, "block", path, np.int32)
    blocks = _read_blocks(meta, path)
    n = len(blocks.x)
    step = np.diff(block)
    if int(block[0]) != 0 or int(block[-1]) != n - 1 or not bool(((step >= 0) & (step <= 1)).all()):
        raise GridError(
            f"{path}: column 'block' must number the blocks 0..{n - 1} in row order; "
            "rewrite the file with `zhongdu grid build` or drop the block column"
        )
    _check_blocks(block, blocks, x, y, z, grid.environment, path)
    return GridGeometry(lat0, lng0, x, y, z, block, blocks)


def _read_blocks(meta: dict[bytes, bytes], path: Path) -> Any:
    import base64
    import binascii

    from ._engine import _Blocks

    try:
        raw = base64.b64decode(meta[BLOCKS_KEY], validate=True)
    except (KeyError, binascii.Error):
        raise GridError(
            f"{path}: column 'block' needs the blocks in the schema metadata ({BLOCKS_KEY.decode()}); "
            "rewrite the file with `zhongdu grid build` or drop the block column"
        ) from None
    if len(raw) % 33:
        raise GridError(f"{path}: the stored blocks ({BLOCKS_KEY.decode()}) are truncated")
    n = len(raw) // 33
    f = np.frombuffer(raw, dtype="<f8", count=4 * n).reshape(4, n).astype(np.float64)
    env = np.frombuffer(raw, dtype=np.int8, offset=32 * n)
    return _Blocks(f[0], f[1], f[2], f[3], env)


def _check_blocks(
    block: NDArray[np.int32],
    blocks: Any,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    z: NDArray[np.float64],
    env: NDArray[np.int8],
    path: Path,
) -> None:
    """On evenly spread blocks: every cell within the stored radius, the stored environment its cells'.

    The engine's block bounds rest on both, so a file whose blocks do not hold their cells is refused.
    """
    n = len(blocks.x)
    if not bool(np.isfinite(blocks.radius).all()) or not bool(
        ((blocks.env >= -1) & (blocks.env < len(ENVIRONMENTS))).all()
    ):
        raise GridError(f"{path}: stored block radii or environments are not valid")
    pick = _sample_rows(n, BLOCK_SAMPLE)  # runs of consecutive blocks: few pages mapped
    lo, hi = np.searchsorted(block, pick, "left"), np.searchsorted(block, pick, "right")
    count = hi - lo
    owner = np.repeat(np.arange(len(pick)), count)
    rows = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
    b = pick[owner]
    dist = np.sqrt((x[rows] - blocks.x[b]) ** 2 + (y[rows] - blocks.y[b]) ** 2 + (z[rows] - blocks.z[b]) ** 2)
    e = env[rows]
    same = np.minimum.reduceat(e, np.cumsum(count) - count) == np.maximum.reduceat(
        e, np.cumsum(count) - count
    )
    first = e[np.cumsum(count) - count]
    env_ok = blocks.env[pick] == np.where(same, first, -1)
    if not bool((dist <= blocks.radius[b]).all()) or not bool(env_ok.all()):
        bad = (
            int(b[int(np.argmax(dist - blocks.radius[b]))])
            if not bool((dist <= blocks.radius[b]).all())
            else int(pick[int(np.argmin(env_ok))])
        )
        raise GridError(
            f"{path}: stored block {bad} does not hold its cells; rewrite the file with "
            "`zhongdu grid build` or drop the block column"
        )


def _check_header(cells: NDArray[np.uint64], path: Path) -> int:
    """`_check_cells` without the uniqueness sort (the caller saw the cells strictly increasing)."""
    r0 = int((cells[0] >> np.uint64(52)) & np.uint64(0xF))
    # mode 1 and resolution r0 in bits 52-62 (bit 63 reserved, 0), in slices: bounded temporaries
    want = np.uint64((1 << 59) | (r0 << 52))
    top = np.uint64(0xFFF << 52)
    for a in range(0, len(cells), 1 << 20):
        part = cells[a : a + (1 << 20)]
        bad = (part & top) != want
        if bad.any():
            i = a + int(np.flatnonzero(bad)[0])
            c = int(cells[i])
            if (c >> 59) & 0xF != 1 or c >> 63:
                raise GridError(f"{path}: {c:x} (row {i + 1}) is not an H3 cell index")
            raise GridError(
                f"{path}: cells mix resolutions ({r0} and {(c >> 52) & 0xF}, row {i + 1}); "
                "build the grid at one resolution"
            )
    return r0


def _sample_rows(n: int, size: int = CENTRE_SAMPLE) -> NDArray[np.int64]:
    """`size` rows in SAMPLE_RUNS runs of consecutive rows, evenly spread, first and last included."""
    run = max(1, size // SAMPLE_RUNS)
    starts = np.linspace(0, max(n - run, 0), SAMPLE_RUNS).astype(np.int64)
    rows = (starts[:, None] + np.arange(run, dtype=np.int64)[None, :]).ravel()
    return np.unique(np.minimum(rows, n - 1))


def _check_centres(
    cells: NDArray[np.uint64], lat: NDArray[np.float64], lng: NDArray[np.float64], path: Path
) -> NDArray[np.int64]:
    """Refuse stored centres that are not h3's centres of the cells (a sample); the sample.

    The sample is runs of consecutive rows spread over the file, not single rows: the file is
    memory-mapped, and every row read maps its whole page-cache folio (up to 2 MB) into the
    process, so spread single rows would map whole columns a run never otherwise reads.
    """
    sample = _sample_rows(len(cells))
    finite = np.isfinite(lat[sample]) & np.isfinite(lng[sample])
    if not bool(finite.all()):
        i = int(sample[int(np.argmin(finite))])
        raise GridError(
            f"{path}: row {i + 1}: stored centre ({float(lat[i])!r}, {float(lng[i])!r}) is not a number"
        )
    h_lat, h_lng = _h3_centres(np.ascontiguousarray(cells[sample]))
    off = np.maximum(np.abs(h_lat - lat[sample]), np.abs(h_lng - lng[sample]))
    if not bool((off <= CENTRE_TOLERANCE_DEG).all()):
        i = int(sample[int(np.argmax(off))])
        raise GridError(
            f"{path}: row {i + 1}: stored centre ({float(lat[i])!r}, {float(lng[i])!r}) is not the "
            f"centre of cell {int(cells[i]):x}; rewrite the file with `zhongdu grid build` "
            "or drop the lat/lng columns"
        )
    return sample
