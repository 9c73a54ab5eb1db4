"""Grid and station tables as columns of NumPy arrays, with their CSV readers and writers.

H3 cells stay `uint64` from the file to the engine (hex strings only at the CSV edge). Readers
check every value and raise `GridError` / `StationsError` naming the file, line, column, the bad
value and the fix, so a bad file never turns into a wrong coverage figure.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zhongdu.errors import ZhongduError

__all__ = [
    "ENVIRONMENTS",
    "STATION_COLUMNS",
    "Grid",
    "GridError",
    "Stations",
    "StationsError",
    "load_grid",
    "load_stations",
    "write_grid",
    "write_stations",
]

#: Codes of `Grid.environment`, in order: the `hata` model's area classes.
ENVIRONMENTS: tuple[str, ...] = ("urban", "suburban", "rural")

#: Required columns of a stations file (docs/coverage.md#stations-csv); `radius_m` is optional (disk model).
STATION_COLUMNS: tuple[str, ...] = (
    "station_id",
    "sector_id",
    "lon",
    "lat",
    "height_m",
    "eirp_dbm",
    "frequency_mhz",
    "bandwidth_mhz",
    "azimuth_deg",
    "beamwidth_deg",
    "status",
)
_FLOAT_COLUMNS: tuple[str, ...] = STATION_COLUMNS[2:-1]  # lon … beamwidth_deg
# H3 index layout: bits 59-62 mode (1 = cell), bits 52-55 resolution.
_H3_MODE_SHIFT = np.uint64(59)
_H3_RES_SHIFT = np.uint64(52)


class GridError(ZhongduError, ValueError):
    """A population grid (file or arrays) is malformed."""


class StationsError(ZhongduError, ValueError):
    """A stations table (file or arrays) is malformed."""


# --------------------------------------------------------------------------------------------- Grid


@dataclass(frozen=True, eq=False)
class Grid:
    """Population on H3 cells: one entry per cell, all arrays aligned.

    `district_index` points into `districts` (sorted names); `environment` holds codes into
    `ENVIRONMENTS` (0 urban, 1 suburban, 2 rural). Cell centres are computed once, on first use.
    """

    cells: NDArray[np.uint64]
    population: NDArray[np.float64]
    district_index: NDArray[np.int32]
    districts: tuple[str, ...]
    environment: NDArray[np.int8]
    resolution: int
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.cells)
        for name in ("population", "district_index", "environment"):
            if len(getattr(self, name)) != n:
                raise GridError(f"grid column {name!r} has {len(getattr(self, name))} values for {n} cells")
        if not 0 <= self.resolution <= 15:
            raise GridError(f"H3 resolution {self.resolution} is outside 0-15")
        if n and (
            int(self.district_index.min()) < 0 or int(self.district_index.max()) >= len(self.districts)
        ):
            raise GridError("district_index points outside `districts`")
        if n and (int(self.environment.min()) < 0 or int(self.environment.max()) >= len(ENVIRONMENTS)):
            raise GridError("environment codes must be 0 (urban), 1 (suburban) or 2 (rural)")

    def __len__(self) -> int:
        return len(self.cells)

    @classmethod
    def from_arrays(
        cls,
        cells: ArrayLike,
        population: ArrayLike,
        district: Sequence[str] | NDArray[np.str_],
        environment: ArrayLike | None = None,
    ) -> Grid:
        """Build a grid from per-cell arrays (district names per cell; environment codes or names)."""
        cell_arr = np.asarray(cells, dtype=np.uint64)
        names = district if isinstance(district, list) else [str(d) for d in np.asarray(district).tolist()]
        districts, index = _categories(names)
        env = _environment_codes(environment, len(cell_arr))
        res = _check_cells(cell_arr, "cells")
        pop = np.asarray(population, dtype=np.float64)
        bad = ~np.isfinite(pop) | (pop < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GridError(f"population must be a finite number >= 0; cell {i} has {pop[i]!r}")
        return cls(
            cells=cell_arr,
            population=pop,
            district_index=index.astype(np.int32),
            districts=districts,
            environment=env,
            resolution=res,
        )

    def take(self, rows: ArrayLike) -> Grid:
        """The cells selected by an index array or boolean mask (same district table), e.g. to
        compute per-cell detail for one district without evaluating the whole city."""
        idx = np.asarray(rows)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        sub = Grid(
            cells=self.cells[idx],
            population=self.population[idx],
            district_index=self.district_index[idx],
            districts=self.districts,
            environment=self.environment[idx],
            resolution=self.resolution,
        )
        cached = self._cache.get("latlng")
        if cached is not None:
            sub._cache["latlng"] = (cached[0][idx], cached[1][idx])
        return sub

    def latlng_deg(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Cell centres (lat, lng) in degrees, computed with h3 once per grid and cached."""
        cached = self._cache.get("latlng")
        if cached is None:
            cached = _cell_centres(self.cells)
            self._cache["latlng"] = cached
        return cached  # type: ignore[no-any-return,unused-ignore]


def _environment_codes(environment: ArrayLike | None, n: int) -> NDArray[np.int8]:
    """Codes 0/1/2 from names (`urban`, `suburban`, `rural`; empty = urban) or from codes."""
    if environment is None:
        return np.zeros(n, dtype=np.int8)
    if isinstance(environment, list) and (not environment or isinstance(environment[0], str)):
        names: list[str] = environment
    else:
        env = np.asarray(environment)
        if env.dtype.kind not in "US":
            return env.astype(np.int8)
        names = env.tolist()
    lookup = {name: code for code, name in enumerate(ENVIRONMENTS)}
    values, inverse = _categories(names)
    codes = []
    for v in values:
        key = v.strip().lower() or "urban"
        if key not in lookup:
            raise GridError(f"environment {v!r} is not one of {', '.join(ENVIRONMENTS)} (or empty = urban)")
        codes.append(lookup[key])
    return np.asarray(codes, dtype=np.int8)[inverse].reshape(n)


def _categories(values: list[str]) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """Distinct values (sorted) and each value's index among them; a dict pass, faster than np.unique."""
    names = sorted(set(values))
    lookup = {name: i for i, name in enumerate(names)}
    return tuple(names), np.fromiter(map(lookup.__getitem__, values), dtype=np.int64, count=len(values))


def _check_cells(cells: NDArray[np.uint64], where: str) -> int:
    """Check that all indexes are H3 cells of one resolution (vectorised header check); return it."""
    if len(cells) == 0:
        raise GridError(f"{where}: the grid has no cells")
    mode = (cells >> _H3_MODE_SHIFT) & np.uint64(0xF)
    res = (cells >> _H3_RES_SHIFT) & np.uint64(0xF)
    bad = mode != 1
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GridError(f"{where}: {int(cells[i]):x} (row {i + 1}) is not an H3 cell index")
    r0 = int(res[0])
    bad = res != r0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GridError(
            f"{where}: cells mix resolutions ({r0} and {int(res[i])}, row {i + 1}); "
            "build the grid at one resolution"
        )
    ordered = np.sort(cells)
    dup = ordered[1:] == ordered[:-1]
    if dup.any():
        raise GridError(f"{where}: cell {int(ordered[1:][dup][0]):x} appears more than once; each cell once")
    return r0


#: Grids with at least this many cells keep their centres in the cache directory between runs.
_CACHE_MIN_CELLS = 10_000


def _centres_cache_path(cells: NDArray[np.uint64]) -> Path | None:
    """Where the centres of exactly these cells are cached (keyed by a hash of the cells), or None.

    ZHONGDU_CACHE_DIR (default ~/.cache/zhongdu; `off` disables). A planner's second run on the
    same grid skips h3's per-cell calls (0.2 s at resolution 10, 1.4 s at 11).
    """
    import hashlib
    import os

    where = os.environ.get("ZHONGDU_CACHE_DIR", "")
    if where.lower() == "off" or len(cells) < _CACHE_MIN_CELLS:
        return None
    base = (
        Path(where) if where else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zhongdu"
    )
    key = hashlib.blake2b(np.ascontiguousarray(cells).tobytes(), digest_size=16).hexdigest()
    return base / "centres" / f"{key}-{len(cells)}.npy"


def _cell_centres(cells: NDArray[np.uint64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    path = _centres_cache_path(cells)
    if path is not None:
        try:
            pairs = np.load(path, allow_pickle=False)
            if pairs.shape == (2, len(cells)) and pairs.dtype == np.float64:
                return pairs[0].copy(), pairs[1].copy()
        except (OSError, ValueError):
            pass  # absent or unreadable: compute and (re)write it
    lat, lng = _h3_centres(cells)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, np.stack([lat, lng]), allow_pickle=False)
            tmp.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one
        except OSError:
            pass  # a read-only home: no cache, same result
    return lat, lng


def _h3_centres(cells: NDArray[np.uint64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # h3-py 4 has no vectorised cell_to_latlng; one C call per cell (~0.6 us) done once per grid.
    import h3

    try:
        flat = np.fromiter(
            (v for c in cells.tolist() for v in h3.api.basic_int.cell_to_latlng(c)),
            dtype=np.float64,
            count=2 * len(cells),
        )
    except (ValueError, h3.H3BaseException) as exc:
        raise GridError(f"invalid H3 cell in grid: {exc}") from exc
    pairs = flat.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


# ----------------------------------------------------------------------------------------- Stations


@dataclass(frozen=True, eq=False)
class Stations:
    """One row per sector (docs/coverage.md#stations-csv); `azimuth_deg`/`beamwidth_deg` NaN = omni."""

    station_id: NDArray[np.str_]
    sector_id: NDArray[np.str_]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    height_m: NDArray[np.float64]
    eirp_dbm: NDArray[np.float64]
    frequency_mhz: NDArray[np.float64]
    bandwidth_mhz: NDArray[np.float64]
    azimuth_deg: NDArray[np.float64]
    beamwidth_deg: NDArray[np.float64]
    up: NDArray[np.bool_]
    radius_m: NDArray[np.float64]
    extra: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.station_id)
        for name in _ARRAY_FIELDS:
            if len(getattr(self, name)) != n:
                raise StationsError(
                    f"stations column {name!r} has {len(getattr(self, name))} values for {n} rows"
                )
        for name, col in self.extra.items():
            if len(col) != n:
                raise StationsError(f"stations column {name!r} has {len(col)} values for {n} rows")

    def __len__(self) -> int:
        return len(self.station_id)

    @classmethod
    def from_columns(
        cls,
        *,
        station_id: ArrayLike,
        sector_id: ArrayLike | None = None,
        lon: ArrayLike,
        lat: ArrayLike,
        height_m: ArrayLike = 30.0,
        eirp_dbm: ArrayLike = 60.0,
        frequency_mhz: ArrayLike = 1800.0,
        bandwidth_mhz: ArrayLike = 20.0,
        azimuth_deg: ArrayLike = np.nan,
        beamwidth_deg: ArrayLike = np.nan,
        up: ArrayLike = True,
        radius_m: ArrayLike = np.nan,
        extra: Mapping[str, ArrayLike] | None = None,
    ) -> Stations:
        """Build and validate a table from columns (scalars broadcast), e.g. in tests or generators."""
        sid = np.asarray(station_id).astype(np.str_)
        n = len(sid)
        sec = np.arange(n).astype(np.str_) if sector_id is None else np.asarray(sector_id).astype(np.str_)

        def col(value: ArrayLike) -> NDArray[np.float64]:
            return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()

        stations = cls(
            station_id=sid,
            sector_id=np.broadcast_to(sec, (n,)).copy(),
            lon=col(lon),
            lat=col(lat),
            height_m=col(height_m),
            eirp_dbm=col(eirp_dbm),
            frequency_mhz=col(frequency_mhz),
            bandwidth_mhz=col(bandwidth_mhz),
            azimuth_deg=col(azimuth_deg),
            beamwidth_deg=col(beamwidth_deg),
            up=np.broadcast_to(np.asarray(up, dtype=np.bool_), (n,)).copy(),
            radius_m=col(radius_m),
            extra={k: np.asarray(v) for k, v in (extra or {}).items()},
        )
        stations.validate()
        return stations

    def validate(self, where: str = "stations", *, header_lines: int | None = None) -> None:
        """Raise `StationsError` for the first out-of-range value (vectorised checks)."""
        checks: list[tuple[str, NDArray[np.bool_], str]] = [
            ("lon", ~np.isfinite(self.lon) | (np.abs(self.lon) > 180), "a longitude in degrees (-180..180)"),
            ("lat", ~np.isfinite(self.lat) | (np.abs(self.lat) > 90), "a latitude in degrees (-90..90)"),
            ("height_m", ~(self.height_m > 0) | ~np.isfinite(self.height_m), "antenna height in metres, > 0"),
            ("eirp_dbm", ~np.isfinite(self.eirp_dbm), "a finite EIRP in dBm"),
            (
                "frequency_mhz",
                ~(self.frequency_mhz > 0) | ~np.isfinite(self.frequency_mhz),
                "a carrier frequency in MHz, > 0",
            ),
            (
                "bandwidth_mhz",
                ~(self.bandwidth_mhz > 0) | ~np.isfinite(self.bandwidth_mhz),
                "a channel bandwidth in MHz, > 0",
            ),
            (
                "azimuth_deg",
                np.isinf(self.azimuth_deg),
                "an azimuth in degrees, or empty for an omni row",
            ),
            (
                "beamwidth_deg",
                ~np.isnan(self.beamwidth_deg) & ~(self.beamwidth_deg > 0) | np.isinf(self.beamwidth_deg),
                "a 3 dB beamwidth in degrees, > 0, or empty for an omni row",
            ),
            (
                "radius_m",
                ~np.isnan(self.radius_m) & ~(self.radius_m >= 0) | np.isinf(self.radius_m),
                "a disk radius in metres, >= 0, or empty",
            ),
        ]
        for name, bad, fix in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = getattr(self, name)[i].item()
                at = f"row {i + 1}" if header_lines is None else f"line {i + 1 + header_lines}"
                raise StationsError(
                    f"{where}: {at} (station {self.station_id[i]!s}, sector {self.sector_id[i]!s}) "
                    f"has {name}={value!r}; expected {fix}"
                )

    def take(self, rows: ArrayLike) -> Stations:
        """The rows selected by an index array or boolean mask, as a new table."""
        idx = np.asarray(rows)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        kwargs: dict[str, Any] = {name: getattr(self, name)[idx] for name in _ARRAY_FIELDS}
        return Stations(**kwargs, extra={k: v[idx] for k, v in self.extra.items()})

    @staticmethod
    def concat(parts: Iterable[Stations]) -> Stations:
        """Rows of several tables, in order; extra columns absent from a part become empty/NaN."""
        parts = list(parts)
        if not parts:
            return _empty_stations()
        kwargs: dict[str, Any] = {
            name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAY_FIELDS
        }
        names: list[str] = []
        for p in parts:
            names.extend(k for k in p.extra if k not in names)
        extra: dict[str, NDArray[Any]] = {}
        for name in names:
            cols = []
            for p in parts:
                if name in p.extra:
                    cols.append(p.extra[name])
                else:
                    numeric = any(q.extra[name].dtype.kind in "fiu" for q in parts if name in q.extra)
                    cols.append(np.full(len(p), np.nan) if numeric else np.full(len(p), "", dtype=np.str_))
            extra[name] = np.concatenate(cols)
        return Stations(**kwargs, extra=extra)

    def station_index(self) -> tuple[NDArray[np.str_], NDArray[np.intp]]:
        """Distinct station ids (sorted) and, per row, the index of its station among them."""
        ids, inverse = np.unique(self.station_id, return_inverse=True)
        return ids, inverse.reshape(-1)


# The array fields of `Stations`: the file's columns with `status` read as the `up` flag.
_ARRAY_FIELDS: tuple[str, ...] = (*(c for c in STATION_COLUMNS if c != "status"), "up", "radius_m")


def _empty_stations() -> Stations:
    f = np.zeros(0, dtype=np.float64)
    s = np.zeros(0, dtype=np.str_)
    return Stations(s, s, f, f, f, f, f, f, f, f, np.zeros(0, dtype=np.bool_), f)


# -------------------------------------------------------------------------------------------- CSV IO


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        raw = gzip.GzipFile(filename=path, mode=mode + "b")
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def _read_columns(path: Path, error: type[ZhongduError]) -> tuple[list[str], dict[str, list[str]]]:
    """Header and columns of a CSV file as lists of stripped strings; errors name the fix.

    Plain files (no quotes, every line as many commas as the header) are split once with
    `str.split` into strided columns, several times faster than `csv.reader`; the comma count
    per line is checked with NumPy on the bytes. Other files go through `csv` or per-line splits.
    """
    if not path.exists():
        raise error(f"{path}: no such file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if b"\r" in raw:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        raw = raw.rstrip(b"\n")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise error(f"{path}: cannot read as UTF-8 CSV ({exc})") from exc
    head, _, rest = text.partition("\n")
    if not head.strip():
        raise error(f"{path}: the file is empty; expected a CSV header line")
    if '"' in text:
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise error(f"{path}: cannot read as CSV ({exc})") from exc
        header = [h.strip() for h in rows[0]]
        body = rows[1:]
    else:
        header = [h.strip() for h in head.split(",")]
        if not rest.strip():
            return header, {name: [] for name in header}
        if _commas_per_line_equal(raw, len(header) - 1):
            # one split over the whole text and strided slices: no per-line lists
            flat = rest.replace("\n", ",").split(",")
            cols = [flat[j :: len(header)] for j in range(len(header))]
            return header, _strip_columns(header, cols, text)
        body = [line.split(",") for line in rest.split("\n")]
    width = len(header)
    body = [r for r in body if any(x.strip() for x in r)]  # blank lines
    for i, row in enumerate(body):
        if len(row) != width:
            raise error(
                f"{path}: data row {i + 1} has {len(row)} fields but the header has {width}; "
                "check for unquoted commas or a missing value"
            )
    return header, _strip_columns(
        header, list(zip(*body, strict=True)) if body else [[] for _ in header], text
    )


def _commas_per_line_equal(raw: bytes, commas: int) -> bool:
    """True when every line of `raw` (no trailing newline) holds exactly `commas` commas."""
    b = np.frombuffer(raw, dtype=np.uint8)
    ends = np.append(np.flatnonzero(b == 0x0A), len(b))
    per_line = np.diff(np.searchsorted(np.flatnonzero(b == 0x2C), ends), prepend=0)
    return bool((per_line == commas).all())


def _strip_columns(header: list[str], cols: Sequence[Sequence[str]], text: str) -> dict[str, list[str]]:
    if " " in text or "\t" in text:
        return {name: [v.strip() for v in cols[j]] for j, name in enumerate(header)}
    return {name: list(cols[j]) for j, name in enumerate(header)}


def _floats(
    path: Path, name: str, values: list[str], error: type[ZhongduError], *, blank_nan: bool
) -> NDArray[np.float64]:
    try:
        if blank_nan:
            values = [v or "nan" for v in values]
        # map(float) then fromiter: ~10x faster than np.array(list of str, dtype=float)
        return np.fromiter(map(float, values), dtype=np.float64, count=len(values))
    except ValueError:
        for i, v in enumerate(values):
            try:
                if v or not blank_nan:
                    float(v)
            except ValueError:
                raise error(f"{path}: line {i + 2}, column {name!r}: {v!r} is not a number") from None
        raise


def _arrow_read(
    path: Path, types: Mapping[str, str], optional: Mapping[str, str] | None = None
) -> Any | None:
    """The CSV as a pyarrow Table with these column types, or None: then the checked reader runs.

    pyarrow's multi-threaded C++ reader parses a resolution-10 grid in 0.03 s where Python
    takes 0.4 s. Anything unusual (a missing column, a bad number, a blank where a value is due,
    a BOM-less encoding error) falls back to `_read_columns`, whose errors name line and fix.
    `optional` columns get their type when present and may be absent.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    kinds = {"float": pa.float64(), "str": pa.string(), "dict": pa.dictionary(pa.int32(), pa.string())}
    try:
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types={k: kinds[v] for k, v in {**(optional or {}), **types}.items()},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError, ValueError):
        return None
    if any(name not in table.column_names for name in types):
        return None
    return table


def _np_numbers(column: Any, dtype: Any = np.float64) -> NDArray[Any]:
    """A fixed-width pyarrow column as NumPy from its buffers; nulls become NaN (floats).

    Not `to_numpy`: that imports pandas (0.3 s of a 1 s command).
    """
    import pyarrow as pa

    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    want = pa.from_numpy_dtype(np.dtype(dtype))
    if arr.type != want:
        arr = arr.cast(want)
    n = len(arr)
    size = np.dtype(dtype).itemsize
    values = np.frombuffer(arr.buffers()[1], dtype=dtype, count=n, offset=arr.offset * size).copy()
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), bitorder="little")
        values[~bits[arr.offset : arr.offset + n].astype(bool)] = np.nan
    return values


def _np_str(column: Any) -> NDArray[np.str_]:
    """A string column stripped of surrounding white space (as the checked reader does).

    `str.strip` on the Python strings, not `pyarrow.compute`: importing that module costs 0.13 s of
    a one-second `zhongdu coverage compute`, stripping 30,000 ids a few milliseconds.
    """
    return np.asarray([value.strip() for value in column.to_pylist()], dtype=np.str_)


def _hex_cells(column: Any) -> NDArray[np.uint64] | None:
    """uint64 from 15-character lower/upper-case hex strings, vectorised; None if not all are."""
    arr = column.combine_chunks()
    n = len(arr)
    if n == 0 or arr.null_count:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * arr.offset)
    if not (np.diff(offsets) == 15).all():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + 15 * n].reshape(n, 15)
    lut = np.full(256, 255, dtype=np.uint8)
    lut[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
    lut[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
    lut[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
    digits = lut[data]
    if (digits == 255).any():
        return None
    out = np.zeros(n, dtype=np.uint64)
    for j in range(15):
        out = (out << np.uint64(4)) | digits[:, j].astype(np.uint64)
    return out


def _dictionary(column: Any) -> tuple[list[str], NDArray[np.int64]] | None:
    """(distinct stripped values, index of each row's value) of a dictionary-encoded column."""
    arr = column.combine_chunks()
    if arr.null_count:
        return None
    values = [str(v).strip() for v in arr.dictionary.to_pylist()]
    return values, _np_numbers(arr.indices, np.int32).astype(np.int64)


def _grid_fast(path: Path) -> Grid | None:
    """The grid through pyarrow, or None (then `load_grid`'s checked path runs)."""
    if path.suffix not in (".csv", ".gz"):
        return None
    table = _arrow_read(
        path, {"h3": "str", "district": "dict", "population": "float"}, optional={"environment": "dict"}
    )
    if table is None:
        return None
    cells = _hex_cells(table.column("h3"))
    district = _dictionary(table.column("district"))
    pop = table.column("population")
    if cells is None or district is None or pop.null_count or "" in district[0]:
        return None
    names, idx = district
    districts = tuple(sorted(set(names)))
    remap = np.array([districts.index(v) for v in names], dtype=np.int64)
    if "environment" in table.column_names:
        env_col = _dictionary(table.column("environment"))  # read dictionary-encoded: no pyarrow.compute
        if env_col is None:
            return None
        env: NDArray[np.int8] | None = _environment_codes(env_col[0], len(env_col[0]))[env_col[1]]
    else:
        env = None
    population = _np_numbers(pop)
    if (~np.isfinite(population) | (population < 0)).any():
        return None
    try:
        res = _check_cells(cells, str(path))
    except GridError:
        return None  # the checked path names the line
    return Grid(
        cells=cells,
        population=population,
        district_index=remap[idx].astype(np.int32),
        districts=districts,
        environment=np.zeros(len(cells), dtype=np.int8) if env is None else env.astype(np.int8),
        resolution=res,
    )


def load_grid(path: str | Path) -> Grid:
    """Read a grid CSV (`h3` hex, `district`, `population`[, `environment`]); `.csv.gz` works too.

    `.parquet`/`.pq` and `.arrow`/`.feather`/`.ipc` files are the binary grids of `_grid_binary`
    (same columns, `uint64` cells, optional stored centres), chosen by the extension.
    """
    p = Path(path)
    from ._grid_binary import is_binary, read_binary

    if is_binary(p):
        return read_binary(p)
    fast = _grid_fast(p)
    if fast is not None:
        return fast
    header, cols = _read_columns(p, GridError)
    missing = [c for c in ("h3", "district", "population") if c not in header]
    if missing:
        raise GridError(
            f"{p}: missing column(s) {', '.join(missing)}; a grid file needs h3, district, population "
            f"[, environment] (found: {', '.join(header)}). Make one with `zhongdu grid build`."
        )
    try:
        cells = np.fromiter(map(int, cols["h3"], repeat(16)), dtype=np.uint64, count=len(cols["h3"]))
    except (ValueError, OverflowError):
        for i, v in enumerate(cols["h3"]):
            try:
                if not 0 <= int(v, 16) < 2**64:
                    raise ValueError(v)
            except ValueError:
                raise GridError(f"{p}: line {i + 2}: h3 {v!r} is not a hexadecimal H3 cell index") from None
        raise
    pop = _floats(p, "population", cols["population"], GridError, blank_nan=False)
    bad = ~np.isfinite(pop) | (pop < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GridError(
            f"{p}: line {i + 2}: population {cols['population'][i]!r} must be a finite number >= 0"
        )
    if "" in cols["district"]:
        line = cols["district"].index("") + 2
        raise GridError(f"{p}: line {line}: empty district name; every cell needs its district")
    env = cols["environment"] if "environment" in header else None
    try:
        return Grid.from_arrays(cells, pop, cols["district"], env)
    except GridError as exc:
        raise GridError(f"{p}: {exc}") from None


def write_grid(grid: Grid, path: str | Path) -> None:
    """Write a grid CSV (with the environment column); `.gz` suffix compresses.

    A binary extension (`.parquet`, `.arrow`, ...) writes the binary grid, cell centres included.
    """
    p = Path(path)
    from ._grid_binary import is_binary, write_binary

    if is_binary(p):
        write_binary(grid, p)
        return
    names = np.asarray(grid.districts, dtype=np.str_)[grid.district_index]
    envs = np.asarray(ENVIRONMENTS)[grid.environment]
    with _open_text(p, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["h3", "district", "population", "environment"])
        w.writerows(
            zip(
                (format(c, "x") for c in grid.cells.tolist()),
                names.tolist(),
                (repr(x) for x in grid.population.tolist()),
                envs.tolist(),
                strict=True,
            )
        )


def _stations_fast(path: Path) -> Stations | None:
    """The stations through pyarrow, or None (then `load_stations`' checked path runs)."""
    if path.suffix not in (".csv", ".gz"):
        return None
    types = {c: "float" for c in _FLOAT_COLUMNS} | {"station_id": "str", "sector_id": "str", "status": "str"}
    table = _arrow_read(path, types)
    if table is None:
        return None
    import pyarrow as pa

    floats = {}
    for name in _FLOAT_COLUMNS:
        col = table.column(name)
        if col.null_count and not name.endswith("_deg"):
            return None
        floats[name] = _np_numbers(col)  # nulls (blank) -> NaN
    status = np.char.lower(_np_str(table.column("status")))
    ids = _np_str(table.column("station_id"))
    if not ((status == "up") | (status == "down")).all() or (ids == "").any():
        return None
    extra: dict[str, NDArray[Any]] = {}
    radius = np.full(len(ids), np.nan)
    for name in table.column_names:
        if name in STATION_COLUMNS:
            continue
        col = table.column(name)
        kind = col.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            values = _np_numbers(col) if not pa.types.is_null(kind) else np.full(len(col), np.nan)
        elif name == "radius_m":
            return None
        else:
            values = _np_str(col)
        if name == "radius_m":
            radius = values
        else:
            extra[name] = values
    return Stations(
        station_id=ids,
        sector_id=_np_str(table.column("sector_id")),
        up=status == "up",
        radius_m=radius,
        extra=extra,
        **floats,
    )


def load_stations(path: str | Path) -> Stations:
    """Read a stations CSV (docs/coverage.md#stations-csv columns, optional `radius_m`, any extra columns)."""
    p = Path(path)
    fast = _stations_fast(p)
    if fast is not None:
        stations = fast
        stations.validate(str(p), header_lines=1)
        _check_unique_sectors(p, stations.station_id.tolist(), stations.sector_id.tolist())
        return stations
    header, cols = _read_columns(p, StationsError)
    missing = [c for c in STATION_COLUMNS if c not in header]
    if missing:
        raise StationsError(
            f"{p}: missing column(s) {', '.join(missing)}; a stations file needs "
            f"{', '.join(STATION_COLUMNS)} [, radius_m] (found: {', '.join(header)})"
        )
    floats = {
        name: _floats(p, name, cols[name], StationsError, blank_nan=name.endswith("_deg"))
        for name in _FLOAT_COLUMNS
    }
    status = np.asarray([v.lower() for v in cols["status"]], dtype=np.str_)
    bad = (status != "up") & (status != "down")
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StationsError(f"{p}: line {i + 2}: status {cols['status'][i]!r} must be 'up' or 'down'")
    radius = (
        _floats(p, "radius_m", cols["radius_m"], StationsError, blank_nan=True)
        if "radius_m" in header
        else np.full(len(status), np.nan)
    )
    empty = [i for i, s in enumerate(cols["station_id"]) if not s]
    if empty:
        raise StationsError(f"{p}: line {empty[0] + 2}: empty station_id; every row needs its station")
    extra: dict[str, NDArray[Any]] = {}
    for name in header:
        if name in STATION_COLUMNS or name == "radius_m":
            continue
        try:
            extra[name] = np.array([float(v) if v else math.nan for v in cols[name]], dtype=np.float64)
        except ValueError:
            extra[name] = np.asarray(cols[name], dtype=np.str_)
    stations = Stations(
        station_id=np.asarray(cols["station_id"], dtype=np.str_),
        sector_id=np.asarray(cols["sector_id"], dtype=np.str_),
        up=status == "up",
        radius_m=radius,
        extra=extra,
        **floats,
    )
    stations.validate(str(p), header_lines=1)
    _check_unique_sectors(p, cols["station_id"], cols["sector_id"])
    return stations


def _check_unique_sectors(p: Path, station_ids: list[str], sector_ids: list[str]) -> None:
    keys = list(zip(station_ids, sector_ids, strict=True))
    if len(set(keys)) != len(keys):
        seen: set[tuple[str, str]] = set()
        for i, key in enumerate(keys):
            if key in seen:
                raise StationsError(
                    f"{p}: line {i + 2}: station {key[0]!r} sector {key[1]!r} appears more than once; "
                    "one row per sector"
                )
            seen.add(key)


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else repr(x)


def write_stations(stations: Stations, path: str | Path) -> None:
    """Write a stations CSV (all columns, `radius_m` and extra columns after the standard ones)."""
    p = Path(path)
    extra_names = list(stations.extra)
    with _open_text(p, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*STATION_COLUMNS, "radius_m", *extra_names])
        float_cols = [[_fmt(x) for x in getattr(stations, n).tolist()] for n in _FLOAT_COLUMNS]
        status = np.where(stations.up, "up", "down").tolist()
        radius = [_fmt(x) for x in stations.radius_m.tolist()]
        extras = [
            [_fmt(x) for x in col.tolist()] if col.dtype.kind == "f" else [str(x) for x in col.tolist()]
            for col in (stations.extra[n] for n in extra_names)
        ]
        w.writerows(
            zip(
                stations.station_id.tolist(),
                stations.sector_id.tolist(),
                *float_cols,
                status,
                radius,
                *extras,
                strict=True,
            )
        )
