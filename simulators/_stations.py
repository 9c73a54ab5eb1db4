"""The city's base stations: layout, daily traffic, and scripted outages.

Layout, in order of preference: a station CSV (`--stations FILE`, the coverage engine's columns,
docs/coverage.md#stations-csv), the coverage engine's generated Taichung layout (`zhongdu.coverage`), or, when
neither is available, a small synthetic layout around Shuinan (with a warning that says so).

Load follows the typical 4G daily curve (night trough near 04:00, peak near 21:00) scaled per
station and sector; PRB utilisation in 0..1, active users proportional to load and bandwidth.
Outages are scripted: `auto` takes down a cluster of neighbouring sites (a local power cut) every
so often and brings it back, and degrades a single site between cuts, so live coverage visibly
changes; or an explicit list such as `TC-0001@10m+5m,TC-0042@1h+30m:degraded`.
"""

from __future__ import annotations

import csv
import importlib
import logging
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from zhongdu.errors import ZhongduError
from zhongdu.simulators._environment import mobile_traffic_index
from zhongdu.simulators._park import SHUINAN_LAT, SHUINAN_LON

log = logging.getLogger(__name__)

ANTENNA_GAIN_DBI = 17.0  # typical macro panel: EIRP - gain = transmit power at the port


class LayoutError(ZhongduError, ValueError):
    """A station file is missing, unreadable or lacks the columns the simulator needs."""


@dataclass(frozen=True)
class SectorSpec:
    sector_id: str
    eirp_dbm: float
    bandwidth_mhz: float


@dataclass(frozen=True)
class StationSpec:
    station_id: str
    lon: float
    lat: float
    sectors: tuple[SectorSpec, ...]
    up: bool = True  # the layout's own status: a `down` site reports down throughout


def _float(row: dict[str, str], key: str, default: float) -> float:
    raw = (row.get(key) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise LayoutError(
            f"column {key!r} has a non-number {raw!r} (station {row.get('station_id')!r})"
        ) from None


def read_station_csv(path: Path) -> list[StationSpec]:
    """Stations from a CSV with at least `station_id` and `sector_id` (other columns optional)."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            missing = {"station_id", "sector_id"} - columns
            if missing:
                raise LayoutError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; expected the station CSV of "
                    "docs/coverage.md#stations-csv (station_id, sector_id, lon, lat, ..., status)"
                )
            rows = list(reader)
    except OSError as exc:
        raise LayoutError(f"cannot read the station file {path}: {exc.strerror or exc}") from exc
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        sid = (row.get("station_id") or "").strip()
        if not sid:
            raise LayoutError(f"{path}: a row has an empty station_id")
        grouped.setdefault(sid, []).append(row)
    out = []
    for sid, group in grouped.items():
        sectors = tuple(
            SectorSpec(
                (r.get("sector_id") or "").strip() or str(i + 1),
                _float(r, "eirp_dbm", 60.0),
                _float(r, "bandwidth_mhz", 20.0),
            )
            for i, r in enumerate(group)
        )
        up = any((r.get("status") or "up").strip().lower() != "down" for r in group)
        out.append(
            StationSpec(
                sid, _float(group[0], "lon", math.nan), _float(group[0], "lat", math.nan), sectors, up
            )
        )
    if not out:
        raise LayoutError(f"{path}: no stations")
    return out


def _from_coverage_stations(stations: Any) -> list[StationSpec]:
    """Group the coverage engine's per-sector arrays into stations."""
    ids = [str(s) for s in stations.station_id]
    grouped: dict[str, list[int]] = {}
    for row, sid in enumerate(ids):
        grouped.setdefault(sid, []).append(row)
    out = []
    for sid, rows in grouped.items():
        sectors = tuple(
            SectorSpec(
                str(stations.sector_id[r]), float(stations.eirp_dbm[r]), float(stations.bandwidth_mhz[r])
            )
            for r in rows
        )
        up = bool(np.any(np.asarray(stations.up)[rows]))
        out.append(StationSpec(sid, float(stations.lon[rows[0]]), float(stations.lat[rows[0]]), sectors, up))
    return out


def synthetic_layout(n: int = 60, *, seed: int = 2015) -> list[StationSpec]:
    """A stand-in layout: `n` three-sector sites scattered around Shuinan (about 6 km across)."""
    rng = random.Random(f"{seed}:synthetic-layout")
    out = []
    for i in range(n):
        r = 3000.0 * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        lat = SHUINAN_LAT + r * math.cos(a) / 111_320.0
        lon = SHUINAN_LON + r * math.sin(a) / (111_320.0 * math.cos(math.radians(SHUINAN_LAT)))
        bw = rng.choice((10.0, 15.0, 20.0))
        sectors = tuple(SectorSpec(str(k + 1), rng.uniform(58.0, 62.0), bw) for k in range(3))
        out.append(StationSpec(f"SIM-{i + 1:04d}", round(lon, 6), round(lat, 6), sectors))
    return out


def load_layout(
    path: Path | None = None,
    *,
    limit: int | None = None,
    seed: int = 2015,
    prefix: str = "",
    grid_path: Path | None = None,
    resolution: int = 10,
) -> tuple[list[StationSpec], str]:
    """(stations, where they came from). `limit` keeps the sites nearest the Shuinan park.

    Without a file, the layout is the one the API's live coverage uses by default: the coverage
    engine's `generate_layout` (its own default date and seed, so station ids match) on the grid
    from `grid_path`, else the shipped grid at `resolution`. `seed` only shapes the synthetic
    stand-in used when the coverage engine cannot provide a layout.
    """
    if path is not None:
        stations, source = read_station_csv(path), f"file {path}"
    else:
        try:
            coverage = importlib.import_module("zhongdu.coverage")
            grid = coverage.load_grid(grid_path) if grid_path else coverage.load_default_grid(resolution)
            stations = _from_coverage_stations(coverage.generate_layout(grid))
            where = grid_path or f"the shipped resolution-{resolution} grid"
            source = f"coverage engine layout (generate_layout on {where})"
        except (ImportError, AttributeError, OSError, ZhongduError) as exc:
            stations = synthetic_layout(seed=seed)
            source = "synthetic layout of 60 sites around Shuinan"
            log.warning(
                "the coverage engine's station layout is not available (%s: %s); using a %s. "
                "Pass --stations FILE for a real layout.",
                type(exc).__name__,
                exc,
                source,
            )
    if limit is not None and limit < len(stations):
        lon = np.array([s.lon for s in stations])
        lat = np.array([s.lat for s in stations])
        d2 = np.nan_to_num(
            ((lon - SHUINAN_LON) * math.cos(math.radians(SHUINAN_LAT))) ** 2 + (lat - SHUINAN_LAT) ** 2,
            nan=np.inf,
        )
        keep = np.sort(np.argsort(d2, kind="stable")[:limit])
        stations = [stations[int(i)] for i in keep]
        source += f", the {limit} sites nearest Shuinan"
    if prefix:
        stations = [StationSpec(prefix + s.station_id, s.lon, s.lat, s.sectors, s.up) for s in stations]
    for s in stations:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", s.station_id):
            raise LayoutError(f"station id {s.station_id!r} is not a valid topic id ([A-Za-z0-9_.:-], <= 64)")
    return stations, source


# -- outages ---------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `10m`, `1.5h` or `1d`."""
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}; use e.g. 90s, 10m, 1.5h")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Outage:
    """Stations `station_ids` report `status` from `start_s` for `duration_s` (seconds after sim start)."""

    station_ids: tuple[str, ...]
    start_s: float
    duration_s: float
    status: str = "down"


class OutageSchedule:
    """Which stations are down or degraded at a simulated time.

    `auto`: every `period_s` (first one 2 minutes in) a cluster of 3-8 neighbouring sites goes down
    for 5-12 minutes (a local power cut), and halfway between cuts one site is degraded for a few
    minutes. Seeded, and a pure function of time, so any order of questions gets the same answers.
    """

    def __init__(
        self,
        stations: list[StationSpec],
        *,
        explicit: tuple[Outage, ...] = (),
        auto: bool = False,
        period_s: float = 1200.0,
        seed: int = 2015,
    ) -> None:
        self.explicit = explicit
        self.auto = auto and len(stations) > 0
        self.period_s = period_s
        self.seed = seed
        self._ids = [s.station_id for s in stations]
        self._xy = np.array(
            [(s.lon * math.cos(math.radians(SHUINAN_LAT)), s.lat) for s in stations], dtype=np.float64
        ).reshape(-1, 2)
        self._xy = np.nan_to_num(self._xy, nan=0.0)
        self._auto_cache: dict[int, tuple[Outage, ...]] = {}
        known = set(self._ids)
        for o in explicit:
            unknown = [sid for sid in o.station_ids if sid not in known]
            if unknown:
                raise ValueError(f"outage names unknown station(s) {', '.join(unknown[:5])}")

    @classmethod
    def parse(
        cls, spec: str, stations: list[StationSpec], *, seed: int = 2015, prefix: str = ""
    ) -> OutageSchedule:
        """`auto`, `none`, or `ID@START+DURATION[:degraded]` items separated by commas."""
        spec = spec.strip()
        if spec in ("", "none"):
            return cls(stations, seed=seed)
        if spec == "auto":
            return cls(stations, auto=True, seed=seed)
        items = []
        for part in spec.split(","):
            m = re.fullmatch(r"\s*([A-Za-z0-9_.:-]+)@([^+]+)\+([^:]+)(?::(down|degraded))?\s*", part)
            if not m:
                raise ValueError(
                    f"bad outage {part!r}; expected STATION@START+DURATION[:degraded], e.g. TC-0001@10m+5m"
                )
            items.append(
                Outage(
                    (prefix + m.group(1),),
                    parse_duration(m.group(2)),
                    parse_duration(m.group(3)),
                    m.group(4) or "down",
                )
            )
        return cls(stations, explicit=tuple(items), seed=seed)

    def _auto(self, k: int) -> tuple[Outage, ...]:
        cached = self._auto_cache.get(k)
        if cached is not None:
            return cached
        rng = random.Random(f"{self.seed}:outage:{k}")
        n = len(self._ids)
        centre = rng.randrange(n)
        size = min(n, rng.randint(3, 8))
        d2 = ((self._xy - self._xy[centre]) ** 2).sum(axis=1)
        cluster = tuple(self._ids[int(i)] for i in np.argsort(d2, kind="stable")[:size])
        start = 120.0 + k * self.period_s
        cut = Outage(cluster, start, rng.uniform(300.0, 720.0), "down")
        one = (self._ids[rng.randrange(n)],)
        degraded = Outage(one, start + self.period_s / 2, rng.uniform(120.0, 420.0), "degraded")
        out = (cut, degraded)
        self._auto_cache[k] = out
        return out

    def status(self, station_id: str, elapsed_s: float) -> str:
        """`down`, `degraded` or `up` at `elapsed_s` simulated seconds after the start."""
        worst = "up"
        candidates: list[Outage] = list(self.explicit)
        if self.auto and elapsed_s >= 120.0:
            k = int((elapsed_s - 120.0) // self.period_s)
            candidates.extend(self._auto(k))
            if k > 0:
                candidates.extend(self._auto(k - 1))
        for o in candidates:
            if o.start_s <= elapsed_s < o.start_s + o.duration_s and station_id in o.station_ids:
                if o.status == "down":
                    return "down"
                worst = "degraded"
        return worst


# -- telemetry -------------------------------------------------------------------------------------


def rfc3339(t: float) -> str:
    """UTC time as RFC 3339 with milliseconds and a `Z`.

    >>> rfc3339(1767225600.25)
    '2026-01-01T00:00:00.250Z'
    """
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StationModel:
    """One station's reports: per-sector load following the city's mobile traffic curve."""

    def __init__(self, spec: StationSpec, seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"{seed}:station:{spec.station_id}")
        # busy downtown sites run hotter than suburban ones; sectors differ too
        self.scale = self.rng.uniform(0.35, 0.95)
        self.sector_scale = [self.rng.uniform(0.7, 1.25) for _ in spec.sectors]
        self.weak_sector = self.rng.randrange(len(spec.sectors)) if spec.sectors else 0

    def report(self, t: float, status: str) -> dict[str, object]:
        """The telemetry object at UTC time `t` for a station in `status` (up, degraded, down)."""
        if not self.spec.up:
            status = "down"
        demand = mobile_traffic_index(t)
        sectors = []
        for i, sector in enumerate(self.spec.sectors):
            tx: float | None = round(min(49.0, max(20.0, sector.eirp_dbm - ANTENNA_GAIN_DBI)), 1)
            if status == "down" or (status == "degraded" and i == self.weak_sector):
                prb, users = 0.0, 0
                tx = None if status == "down" else round(float(tx or 0.0) - 6.0, 1)  # radio off / alarm
            else:
                boost = 1.35 if status == "degraded" else 1.0  # neighbours absorb the failed sector's users
                load = demand * self.scale * self.sector_scale[i] * boost * (1.0 + self.rng.gauss(0, 0.06))
                prb = round(min(0.99, max(0.01, load)), 3)
                users = max(0, round(prb * sector.bandwidth_mhz * 6.0 * self.rng.uniform(0.75, 1.25)))
            sectors.append(
                {
                    "sector_id": sector.sector_id,
                    "prb_utilisation": prb,
                    "active_users": users,
                    "tx_power_dbm": tx,
                }
            )
        return {"time": rfc3339(t), "status": status, "sectors": sectors}
