"""Synthetic petitions (no real case data ships): where people live, when the plan's categories peak.

Cases land on resolution-10 cells in proportion to their residents (or uniformly over the grid's
cells with `spread="uniform"`), are spread over the window with each category's seasonal peak
(drains in the plum rains and typhoon season, streetlights in the long winter nights), more on
weekdays and in the daytime, and optionally with planted clusters: extra cases inside a circle,
which the hotspot analysis must find. Every case id starts with `SIM-`: synthetic wherever shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from zhongdu.petitions._cases import COLUMNS, OPTIONAL_COLUMNS
from zhongdu.petitions._categories import BY_CODE, CATEGORIES
from zhongdu.petitions._places import load_places

SYNTHETIC_PREFIX = "SIM-"
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5, 4.5, 3.5, 4.5, 5, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.6, 1.2]
)
_EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Cluster:
    """`cases` extra cases uniformly inside `radius_m` of (lon, lat), of one category or any."""

    lon: float
    lat: float
    radius_m: float
    cases: int
    category: str | None = None
    start: datetime | None = None  # only from this time on (an emerging hot spot)

    @classmethod
    def parse(cls, text: str) -> Cluster:
        """LON,LAT,RADIUS_M,CASES[,CATEGORY[,START]]"""
        parts = [p.strip() for p in text.split(",")]
        if not 4 <= len(parts) <= 6:
            raise ValueError(f"a cluster is LON,LAT,RADIUS_M,CASES[,CATEGORY[,START]], got {text!r}")
        category = parts[4] or None if len(parts) > 4 else None
        if category is not None and category not in BY_CODE:
            raise ValueError(f"unknown category {category!r}; one of {', '.join(BY_CODE)}")
        start = datetime.fromisoformat(parts[5].replace("Z", "+00:00")) if len(parts) > 5 else None
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        cluster = cls(float(parts[0]), float(parts[1]), float(parts[2]), int(parts[3]), category, start)
        if cluster.radius_m <= 0 or cluster.cases < 0:
            raise ValueError("a cluster needs a positive radius and a non-negative case count")
        return cluster


def simulate(
    cases: int,
    *,
    start: datetime,
    end: datetime,
    seed: int = 1999,
    spread: Literal["population", "uniform"] = "population",
    clusters: tuple[Cluster, ...] = (),
    coarse_share: float = 0.03,
    now: datetime | None = None,
) -> pd.DataFrame:
    """A frame with the import CSV's columns (plus dispatched_at and description)."""
    from h3.api import numpy_int  # noqa: F401  (import check: h3 is a dependency)

    from zhongdu.coverage import load_default_grid
    from zhongdu.coverage._grid_build import cell_centres

    if end <= start:
        raise ValueError("the window's end must be after its start")
    if cases < 0:
        raise ValueError("cases must be >= 0")
    rng = np.random.default_rng(seed)
    now = now or datetime.now(UTC)
    grid = load_default_grid(10)
    weights = np.asarray(grid.population, dtype=np.float64) if spread == "population" else None
    if weights is not None:
        weights = weights / weights.sum()
    cell = rng.choice(len(grid.cells), size=cases, p=weights)
    lat_c, lon_c = cell_centres(grid.cells)
    # a point somewhere in the cell (res-10 cells are ~65 m across)
    lon = lon_c[cell] + rng.uniform(-25, 25, cases) / (_EARTH_M_PER_DEG * np.cos(np.radians(24.15)))
    lat = lat_c[cell] + rng.uniform(-25, 25, cases) / _EARTH_M_PER_DEG
    codes = np.array([c.code for c in CATEGORIES])
    category = rng.choice(codes, size=cases, p=_normalised([c.weight for c in CATEGORIES]))
    received = _times(rng, category, cases, start, end)
    frames = [_frame(lon, lat, category, received)]
    for cl in clusters:
        angle = rng.uniform(0, 2 * np.pi, cl.cases)
        radius = cl.radius_m * np.sqrt(rng.uniform(0, 1, cl.cases))
        c_lon = cl.lon + radius * np.cos(angle) / (_EARTH_M_PER_DEG * np.cos(np.radians(cl.lat)))
        c_lat = cl.lat + radius * np.sin(angle) / _EARTH_M_PER_DEG
        c_cat = (
            np.full(cl.cases, cl.category)
            if cl.category
            else rng.choice(codes, size=cl.cases, p=_normalised([c.weight for c in CATEGORIES]))
        )
        c_start = max(cl.start, start) if cl.start else start
        frames.append(_frame(c_lon, c_lat, c_cat, _times(rng, c_cat, cl.cases, c_start, end)))
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("received_at", kind="stable").reset_index(drop=True)
    n = len(df)
    df.insert(0, "case_id", [f"{SYNTHETIC_PREFIX}{seed}-{i:07d}" for i in range(n)])
    _place_coarse(df, rng, coarse_share)
    _lifecycle(df, rng, now)
    df["description"] = "synthetic case (zhongdu simulate petitions)"
    return df


def _normalised(values: list[float]) -> NDArray[np.float64]:
    a = np.asarray(values, dtype=np.float64)
    return np.asarray(a / a.sum(), dtype=np.float64)


def _times(
    rng: np.random.Generator, category: np.ndarray, n: int, start: datetime, end: datetime
) -> np.ndarray:
    """Times with each category's seasonal peak, a weekday bias and a daytime profile (rejection sampling)."""
    days = (end - start).total_seconds() / 86400
    factor = {c.code: (set(c.peak_months), c.peak_factor) for c in CATEGORIES}
    out = np.empty(n, dtype="datetime64[s]")
    todo = np.arange(n)
    base = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "s")
    top = max(c.peak_factor for c in CATEGORIES) * 1.0
    while len(todo):
        day = rng.uniform(0, days, len(todo))
        t = base + (day * 86400).astype("timedelta64[s]")
        local = pd.DatetimeIndex(t).tz_localize("UTC").tz_convert("Asia/Taipei")
        month = local.month.to_numpy()
        weekday = local.day_of_week.to_numpy()
        hour = local.hour.to_numpy()
        peak = np.ones(len(todo))
        cats = category[todo]
        for code, (months, f) in factor.items():
            if months:
                peak[(cats == code) & np.isin(month, list(months))] = f
        accept = peak / top * np.where(weekday < 5, 1.0, 0.7) * (_HOUR_WEIGHTS[hour] / _HOUR_WEIGHTS.max())
        keep = rng.uniform(0, 1, len(todo)) < accept
        out[todo[keep]] = t[keep]
        todo = todo[~keep]
    return out


def _frame(lon: np.ndarray, lat: np.ndarray, category: np.ndarray, received: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "received_at": pd.DatetimeIndex(received).tz_localize("UTC"),
            "category": category,
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
        }
    )


def _place_coarse(df: pd.DataFrame, rng: np.random.Generator, share: float) -> None:
    """The nearest village for every case; a share of them keep only district and village."""
    places = load_places()
    v_lon = np.array([v.lon for v in places.villages])
    v_lat = np.array([v.lat for v in places.villages])
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([v_lon * np.cos(np.radians(24.15)), v_lat]))
    _, nearest = tree.query(np.column_stack([df["lon"].to_numpy() * np.cos(np.radians(24.15)), df["lat"]]))
    df["district"] = np.array([v.district for v in places.villages])[nearest]
    df["village"] = np.array([v.name for v in places.villages])[nearest]
    coarse = rng.uniform(0, 1, len(df)) < share
    df["lon"] = df["lon"].astype(object)
    df["lat"] = df["lat"].astype(object)
    df.loc[coarse, ["lon", "lat"]] = ""


def _lifecycle(df: pd.DataFrame, rng: np.random.Generator, now: datetime) -> None:
    """Work order within hours, resolution within days (lognormal), later than now stays open."""
    n = len(df)
    received = df["received_at"]
    dispatch_h = rng.lognormal(np.log(4), 0.8, n)
    close_h = dispatch_h + rng.lognormal(np.log(48), 1.0, n)
    dispatched = received + pd.to_timedelta(dispatch_h, unit="h")
    closed = received + pd.to_timedelta(close_h, unit="h")
    now_ts = pd.Timestamp(now)
    status = np.where(closed <= now_ts, "resolved", np.where(dispatched <= now_ts, "dispatched", "received"))
    df["status"] = status
    df["dispatched_at"] = dispatched.where(dispatched <= now_ts)
    df["closed_at"] = closed.where(status == "resolved")


def write_csv(df: pd.DataFrame, path: Path | str | IO[str]) -> None:
    """The import CSV (UTC times, ISO 8601)."""
    out = df.copy()
    for col in ("received_at", "dispatched_at", "closed_at"):
        out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    columns = [*COLUMNS, *OPTIONAL_COLUMNS]
    out[columns].to_csv(path, index=False)


def default_window(months: int = 24, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last `months` whole months up to now (Taiwan time), as a default simulation window."""
    now = now or datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=round(months * 30.44)), end
