"""Synthetic 4G station layouts for Taichung from the regulator's (NCC) per-district counts.

No public list of Taichung's site positions exists (see `coverage/data/source/README.md`), only the
number of 4G base stations per district and date. A layout places exactly that many stations in
each district, at positions drawn with density proportional to the grid's population there, and
gives each one documented antenna parameters. It is a model, not a map of the real network.

Layouts are *nested*: each district has one seeded, endless sequence of sites, and the layout at
a date takes its first N sites, N the district's count at that date. So a later date with more
stations extends the earlier layout (coverage can only grow where counts grow), and a date with
fewer stations drops the most recently "built" ones. Every attribute comes from its own random
stream, so the k-th site is the same whatever N is.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._grid_build import (
    COUNTS_FILE,
    GridBuildError,
    open_source_text,
    read_districts,
    source_dir_or_default,
)
from zhongdu.coverage._types import Grid, Stations
from zhongdu.errors import ZhongduError

DATA_DIR = Path(__file__).resolve().parent / "data"
STATION_COUNTS_FILE = "station_counts_4g.csv"
DISTRICTS_FILE = "districts.csv"
UNLABELLED = "(未標示區)"
DEFAULT_DATE = "2022-11-30"
DEFAULT_SEED = 2015

# ---------------------------------------------------------------------------------------------------
# Antenna parameters (documented in docs/coverage.md#station-layouts; NCC publishes counts only, no bands).
# Bands: Taiwan's 4G licences (2013/2015 auctions, 2100 MHz refarmed from 3G after 2018-12) use
# 700 (B28), 900 (B8), 1800 (B3, the main layer), 2100 (B1) and 2600 MHz (B7/B38). Low bands carry
# coverage where sites are sparse, 2600 MHz adds capacity in the dense core. Shares per station:
BANDS_MHZ: tuple[float, ...] = (700.0, 900.0, 1800.0, 2100.0, 2600.0)
BAND_SHARES: dict[str, tuple[float, ...]] = {
    "urban": (0.15, 0.10, 0.35, 0.15, 0.25),
    "suburban": (0.25, 0.15, 0.35, 0.10, 0.15),
    "rural": (0.40, 0.25, 0.25, 0.05, 0.05),
}
# Carrier bandwidth per band (typical licensed blocks: 2x10 at 700/900, 2x20 at 1800, 2x15 at
# 2100, 20 at 2600 MHz).
BANDWIDTH_MHZ: dict[float, float] = {700.0: 10.0, 900.0: 10.0, 1800.0: 20.0, 2100.0: 15.0, 2600.0: 20.0}
# EIRP per sector: 46 dBm (40 W) transmitter + antenna gain (15 dBi low-band panel, 17 dBi
# mid-band panel) - 2 dB jumper/connector loss (radio units at the mast head).
EIRP_DBM: dict[float, float] = {700.0: 59.0, 900.0: 59.0, 1800.0: 61.0, 2100.0: 61.0, 2600.0: 61.0}
# Antenna heights (uniform ranges): rooftops in the city, rooftops/masts in the plains, towers in
# the hills.
HEIGHT_RANGE_M: dict[str, tuple[float, float]] = {
    "urban": (25.0, 35.0),
    "suburban": (25.0, 40.0),
    "rural": (30.0, 40.0),
}
# Radius for the `disk` model: typical macro cell radius per environment, about three quarters of
# the `hata` boresight reach of a 1800 MHz sector at -110 dBm (1.1 km urban, 2.8 km suburban; the
# rural Hata figure, about 10 km, is cut to 6 km since it ignores the hills' terrain).
RADIUS_M: dict[str, float] = {"urban": 800.0, "suburban": 2000.0, "rural": 6000.0}
SECTORS = 3
BEAMWIDTH_DEG = 65.0
ENVIRONMENTS = ("urban", "suburban", "rural")


class LayoutError(ZhongduError, ValueError):
    """A layout cannot be generated (unknown date, grid without the counted districts, ...)."""


@dataclass(frozen=True)
class DistrictRow:
    name_zh: str
    name_en: str
    code: str
    population: int
    environment: str


# --------------------------------------------------------------------------- the shipped count table


def build_station_counts_table(source_dir: Path | str | None = None) -> list[dict[str, object]]:
    """4G rows of the NCC file pivoted: one dict per date with the unlabelled and per-district counts."""
    src = source_dir_or_default(source_dir)
    districts = read_districts(src)
    names = [d.name_zh for d in districts]
    table: dict[str, dict[str, int]] = {}
    with open_source_text(src, COUNTS_FILE) as fh:
        for row in csv.DictReader(fh):
            if row["technology"] != "4G":
                continue
            name = row["name_zh"] if row["district_code"] else UNLABELLED
            if name != UNLABELLED and name not in names:
                raise GridBuildError(f"{COUNTS_FILE}: unknown district {name!r}")
            per_date = table.setdefault(row["as_of_date"], {})
            per_date[name] = per_date.get(name, 0) + int(row["base_stations"])
    rows: list[dict[str, object]] = []
    for date in sorted(table):
        counts = table[date]
        out: dict[str, object] = {"as_of_date": date, "total": sum(counts.values())}
        out[UNLABELLED] = counts.get(UNLABELLED, 0)
        out.update({n: counts.get(n, 0) for n in names})
        rows.append(out)
    return rows


def write_station_counts_table(rows: list[dict[str, object]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_districts_table(source_dir: Path | str | None, path: Path) -> None:
    """The derived district table: names, MOI code, 2026-09 population, environment."""
    districts = read_districts(source_dir_or_default(source_dir))
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name_zh", "name_en", "district_code", "population_2026_09", "environment"])
        w.writerows([d.name_zh, d.name_en, d.code, d.population, d.environment] for d in districts)


@lru_cache(maxsize=1)
def _counts_table() -> tuple[tuple[str, ...], tuple[str, ...], NDArray[np.int64]]:
    """(dates, column names after the date, counts matrix) of the shipped table."""
    path = DATA_DIR / STATION_COUNTS_FILE
    if not path.is_file():
        raise LayoutError(f"{path} is missing; remake it with `zhongdu stations counts --rebuild`")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    dates = tuple(r[0] for r in rows)
    matrix = np.array([[int(x) for x in r[1:]] for r in rows], dtype=np.int64)
    return dates, tuple(header[1:]), matrix


@lru_cache(maxsize=1)
def district_table() -> tuple[DistrictRow, ...]:
    """The shipped district table (sorted by Chinese name)."""
    path = DATA_DIR / DISTRICTS_FILE
    if not path.is_file():
        raise LayoutError(f"{path} is missing; remake it with `zhongdu stations counts --rebuild`")
    with path.open(encoding="utf-8", newline="") as fh:
        return tuple(
            DistrictRow(
                r["name_zh"], r["name_en"], r["district_code"], int(r["population_2026_09"]), r["environment"]
            )
            for r in csv.DictReader(fh)
        )


def count_dates() -> tuple[str, ...]:
    """The 72 NCC dates (ISO), oldest first."""
    return _counts_table()[0]


def resolve_date(date: str | None) -> str:
    """An NCC date from `YYYY-MM-DD` (exact) or `YYYY-MM` (that month's date); None = the latest."""
    dates = count_dates()
    if date is None:
        return dates[-1]
    text = str(date).strip()
    if text in dates:
        return text
    month = [d for d in dates if d[:7] == text[:7]] if len(text) in (7, 10) else []
    if len(month) == 1:
        return month[0]
    raise LayoutError(
        f"no NCC 4G count for {date!r}; dates run monthly or half-yearly from {dates[0]} to {dates[-1]} "
        "(give YYYY-MM-DD or YYYY-MM)"
    )


def station_counts(date: str | None = None) -> dict[str, int]:
    """NCC 4G base stations per district at `date` (None = 2022-11-30); unlabelled ones excluded.

    `unlabelled_station_count(date)` gives the stations NCC listed without a district.
    """
    dates, names, matrix = _counts_table()
    row = matrix[dates.index(resolve_date(date))]
    return {n: int(v) for n, v in zip(names, row, strict=True) if n not in ("total", UNLABELLED)}


def unlabelled_station_count(date: str | None = None) -> int:
    """Stations NCC listed as 「臺中市」 or 「臺中市工業區」 (no district) at `date`; at most 28."""
    dates, names, matrix = _counts_table()
    return int(matrix[dates.index(resolve_date(date)), names.index(UNLABELLED)])


def layout_counts(grid: Grid, date: str | None = None) -> dict[str, int]:
    """Stations the layout places per district: NCC counts plus the unlabelled ones spread.

    The unlabelled stations (at most 28, all before 2018) are spread over the districts in
    proportion to the grid's population, by largest remainder (deterministic), so the layout holds
    every counted station.
    """
    counts = station_counts(date)
    extra = unlabelled_station_count(date)
    if extra:
        pop = np.bincount(grid.district_index, weights=grid.population, minlength=len(grid.districts))
        quota = extra * pop / pop.sum()
        add = np.floor(quota).astype(np.int64)
        rest = extra - int(add.sum())
        order = np.lexsort((np.arange(len(quota)), -(quota - add)))
        add[order[:rest]] += 1
        for name, k in zip(grid.districts, add.tolist(), strict=True):
            counts[name] = counts.get(name, 0) + int(k)
    return counts


# ------------------------------------------------------------------------------------- the generator


def _district_streams(seed: int, code: str, operator: int = 0) -> list[np.random.Generator]:
    """Five independent streams per district (and operator, 1-based; 0 = none): cell, jitter,
    rotation, band, height."""
    entropy = [int(seed), int(code)] + ([operator] if operator else [])
    children = np.random.SeedSequence(entropy).spawn(5)
    return [np.random.Generator(np.random.PCG64(c)) for c in children]


def _codes_for(grid: Grid) -> dict[str, str]:
    table = {d.name_zh: d.code for d in district_table()}
    missing = [d for d in grid.districts if d not in table]
    if missing:
        raise LayoutError(f"grid districts {missing} are not Taichung districts (no MOI code)")
    return table


def generate_layout(grid: Grid, *, date: str = DEFAULT_DATE, seed: int = DEFAULT_SEED) -> Stations:
    """The 4G layout at an NCC `date`: exactly its stations per district and per operator, seeded.

    Each district's count is split among the five operators in proportion to their city-wide
    NCC counts (`operator_district_counts`: both margins exact); each (district, operator) has
    its own nested site sequence. Station ids are `TC-<district code>-<operator>-<n>` (n from 1,
    in build order), sector ids `<station id>-<1..3>`; extra columns `district`, `environment`
    and `operator` (short code, e.g. CHT).
    """
    from zhongdu.coverage._operators import operator_counts, operator_district_counts

    iso = resolve_date(date)
    split = operator_district_counts(layout_counts(grid, iso), operator_counts(iso))
    return _place(grid, split, seed)


def layout_from_counts(grid: Grid, counts: Mapping[str, int], *, seed: int = DEFAULT_SEED) -> Stations:
    """Place `counts[district]` stations in each district (the first ones of its site sequence),
    without operators (ids `TC-<district code>-<n>`)."""
    return _place(grid, {d: {"": n} for d, n in counts.items()}, seed)


def _place(grid: Grid, counts: Mapping[str, Mapping[str, int]], seed: int) -> Stations:
    """`counts[district][operator]` sites of each (district, operator) sequence ("" = no operator)."""
    from zhongdu.coverage._operators import OPERATORS

    op_index = {code: i + 1 for i, code in enumerate(OPERATORS)} | {"": 0}
    codes = _codes_for(grid)
    unknown = [d for d, per in counts.items() if sum(per.values()) > 0 and d not in grid.districts]
    if unknown:
        raise LayoutError(f"counts name districts missing from the grid: {unknown}")
    lat_c, lon_c = grid.latlng_deg()
    import h3

    jitter_m = 0.8 * float(h3.average_hexagon_edge_length(grid.resolution, unit="m"))  # inside the cell
    order = np.argsort(grid.district_index, kind="stable")
    starts = np.searchsorted(grid.district_index[order], np.arange(len(grid.districts) + 1))
    env_names = np.asarray(ENVIRONMENTS)
    parts: list[Stations] = []
    for d, name in enumerate(grid.districts):
        rows = order[starts[d] : starts[d + 1]]
        env = str(env_names[int(np.bincount(grid.environment[rows]).argmax())])
        for op, count in counts.get(name, {}).items():
            n = int(count)
            if n < 0:
                raise LayoutError(f"negative station count {n} for {name}")
            if n == 0:
                continue
            streams = _district_streams(seed, codes[name], op_index[op])
            sites = _district_sites(
                grid, rows, lat_c, lon_c, n, streams, codes[name], name, env, jitter_m, op
            )
            parts.append(sites)
    if not parts:
        raise LayoutError("no station to place at this date")
    return Stations.concat(parts)


def _district_sites(
    grid: Grid,
    rows: NDArray[np.intp],
    lat_c: NDArray[np.float64],
    lon_c: NDArray[np.float64],
    n: int,
    streams: list[np.random.Generator],
    code: str,
    name: str,
    env: str,
    jitter_m: float,
    operator: str,
) -> Stations:
    """The first `n` sites of one district's (and operator's) sequence, as 3n sector rows."""
    r_cell, r_jit, r_rot, r_band, r_height = streams
    pop = grid.population[rows]
    weights = pop if pop.sum() > 0 else np.ones(len(rows))
    cum = np.cumsum(weights)
    chosen = rows[np.minimum(np.searchsorted(cum, r_cell.random(n) * cum[-1], side="right"), len(rows) - 1)]
    u = r_jit.random((n, 2))
    radius = jitter_m * np.sqrt(u[:, 0])
    angle = 2.0 * np.pi * u[:, 1]
    k = 6_371_008.8 * np.pi / 180.0
    lat = lat_c[chosen] + radius * np.sin(angle) / k
    lon = lon_c[chosen] + radius * np.cos(angle) / (k * np.cos(np.radians(lat_c[chosen])))
    rotation = r_rot.random(n) * (360.0 / SECTORS)
    band_idx = np.searchsorted(np.cumsum(BAND_SHARES[env]), r_band.random(n), side="right")
    band_idx = np.minimum(band_idx, len(BANDS_MHZ) - 1)
    freq = np.asarray(BANDS_MHZ)[band_idx]
    lo, hi = HEIGHT_RANGE_M[env]
    height = np.round(lo + (hi - lo) * r_height.random(n), 1)

    prefix = f"TC-{code}-{operator}-" if operator else f"TC-{code}-"
    ids = np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(np.str_), 5))
    rep = np.repeat
    sector_no = np.tile(np.arange(1, SECTORS + 1), n)
    azimuth = (rep(rotation, SECTORS) + np.tile(np.arange(SECTORS) * (360.0 / SECTORS), n)) % 360.0
    f = rep(freq, SECTORS)
    m = n * SECTORS
    return Stations(
        station_id=rep(ids, SECTORS),
        sector_id=np.char.add(np.char.add(rep(ids, SECTORS), "-"), sector_no.astype(np.str_)),
        lon=np.round(rep(lon, SECTORS), 7),
        lat=np.round(rep(lat, SECTORS), 7),
        height_m=rep(height, SECTORS),
        eirp_dbm=rep(np.array([EIRP_DBM[b] for b in BANDS_MHZ])[band_idx], SECTORS),
        frequency_mhz=f,
        bandwidth_mhz=rep(np.array([BANDWIDTH_MHZ[b] for b in BANDS_MHZ])[band_idx], SECTORS),
        azimuth_deg=np.round(azimuth, 2),
        beamwidth_deg=np.full(m, BEAMWIDTH_DEG),
        up=np.ones(m, dtype=np.bool_),
        radius_m=np.full(m, RADIUS_M[env]),
        extra={"district": np.full(m, name), "environment": np.full(m, env)}
        | ({"operator": np.full(m, operator)} if operator else {}),
    )
