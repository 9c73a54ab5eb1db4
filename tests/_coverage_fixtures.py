"""Small seeded H3 grids around Taichung and an independent brute-force coverage, for the engine tests.

The brute force uses only NumPy broadcasting over every (cell, sector) pair with the textbook
haversine and initial-bearing formulas: it shares no code with `zhongdu.coverage._engine`.
"""

from __future__ import annotations

import math

import h3
import numpy as np

from zhongdu.coverage import Grid, Stations

R = 6_371_008.8
TAICHUNG = (24.16, 120.65)  # 西屯 / 南屯 border
DISTRICTS = ("西屯區", "南屯區", "北屯區", "和平區")


def small_grid(seed: int = 0, *, resolution: int = 9, rings: int = 1, envs: bool = True) -> Grid:
    """H3 cells of `rings` res-6 rings around Taichung uncompacted to `resolution`, random people."""
    rng = np.random.default_rng(seed)
    centre = h3.latlng_to_cell(*TAICHUNG, 6)
    cells = sorted(h3.str_to_int(c) for c in h3.uncompact_cells(h3.grid_disk(centre, rings), resolution))
    n = len(cells)
    env = rng.choice(["urban", "suburban", "rural"], n) if envs else None
    return Grid.from_arrays(
        np.asarray(cells, dtype=np.uint64),
        rng.uniform(0.0, 100.0, n).round(3),
        rng.choice(DISTRICTS, n),
        env,
    )


def random_stations(grid: Grid, seed: int, m: int, *, p_up: float = 0.8) -> Stations:
    """`m` sector rows spread over the grid's box: mixed bands, heights, omni and sectored rows."""
    rng = np.random.default_rng(seed)
    lat, lng = grid.latlng_deg()
    azimuth = np.where(rng.random(m) < 0.3, np.nan, rng.uniform(0.0, 360.0, m))
    return Stations.from_columns(
        station_id=np.char.add("S", (np.arange(m) // 3).astype(str)),
        sector_id=np.arange(m).astype(str),
        lon=rng.uniform(lng.min() - 0.01, lng.max() + 0.01, m),
        lat=rng.uniform(lat.min() - 0.01, lat.max() + 0.01, m),
        height_m=rng.uniform(15.0, 50.0, m),
        eirp_dbm=rng.uniform(40.0, 61.0, m),
        frequency_mhz=rng.choice([700.0, 900.0, 1800.0, 2100.0, 2600.0], m),
        bandwidth_mhz=rng.choice([5.0, 10.0, 15.0, 20.0], m),
        azimuth_deg=azimuth,
        beamwidth_deg=np.where(np.isnan(azimuth), np.nan, rng.uniform(45.0, 120.0, m)),
        up=rng.random(m) < p_up,
        radius_m=rng.uniform(150.0, 3000.0, m),
    )


def brute_distance_bearing(grid: Grid, st: Stations) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle distance (m) and initial bearing (deg) from every sector to every cell centre."""
    lat, lng = grid.latlng_deg()
    p1, l1 = np.radians(st.lat)[None, :], np.radians(st.lon)[None, :]
    p2, l2 = np.radians(lat)[:, None], np.radians(lng)[:, None]
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    d = 2 * R * np.arctan2(np.sqrt(a), np.sqrt(1 - a))
    bearing = np.degrees(
        np.arctan2(
            np.sin(l2 - l1) * np.cos(p2), np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(l2 - l1)
        )
    )
    return d, bearing


def brute_rsrp(grid: Grid, st: Stations) -> np.ndarray:
    """RSRP (dBm) of every sector at every cell, docs/coverage.md#models written out again."""
    d, bearing = brute_distance_bearing(grid, st)
    f = st.frequency_mhz[None, :]
    hb = st.height_m[None, :]
    lf = np.log10(f)
    a_hm = (1.1 * lf - 0.7) * 1.5 - (1.56 * lf - 0.8)
    dk = np.maximum(d / 1000.0, 0.02)
    env = grid.environment[:, None]
    low = 69.55 + 26.16 * lf - 13.82 * np.log10(hb) - a_hm + (44.9 - 6.55 * np.log10(hb)) * np.log10(dk)
    high = 46.3 + 33.9 * lf - 13.82 * np.log10(hb) - a_hm + (44.9 - 6.55 * np.log10(hb)) * np.log10(dk)
    high = high + np.where(env == 0, 3.0, 0.0)
    loss = np.where(f > 1500, high, low)
    loss = np.where(env == 1, loss - 2 * np.log10(f / 28) ** 2 - 5.4, loss)
    loss = np.where(env == 2, loss - 4.78 * lf**2 + 18.33 * lf - 40.94, loss)
    theta = np.abs((bearing - np.nan_to_num(st.azimuth_deg)[None, :] + 180.0) % 360.0 - 180.0)
    omni = np.isnan(st.azimuth_deg) | np.isnan(st.beamwidth_deg)
    gain = np.where(omni[None, :], 0.0, -np.minimum(12 * (theta / st.beamwidth_deg[None, :]) ** 2, 25.0))
    n_rb = 5 * st.bandwidth_mhz[None, :]
    return st.eirp_dbm[None, :] - 10 * np.log10(12 * n_rb) + gain - loss


def hata_urban_by_hand(d_km: float, f: float, hb: float, env: str = "urban") -> float:
    """Path loss with the math module, one value at a time (for hand-checked single sectors)."""
    lf = math.log10(f)
    a_hm = (1.1 * lf - 0.7) * 1.5 - (1.56 * lf - 0.8)
    d = max(d_km, 0.02)
    slope = (44.9 - 6.55 * math.log10(hb)) * math.log10(d)
    if f <= 1500:
        loss = 69.55 + 26.16 * lf - 13.82 * math.log10(hb) - a_hm + slope
    else:
        loss = 46.3 + 33.9 * lf - 13.82 * math.log10(hb) - a_hm + slope + (3.0 if env == "urban" else 0.0)
    if env == "suburban":
        loss -= 2 * math.log10(f / 28) ** 2 + 5.4
    elif env == "rural":
        loss -= 4.78 * lf**2 - 18.33 * lf + 40.94
    return loss


def destination(lat: float, lng: float, bearing_deg: float, dist_m: float) -> tuple[float, float]:
    """Point `dist_m` from (lat, lng) along the great circle with the given initial bearing."""
    p1, l1, b, dr = math.radians(lat), math.radians(lng), math.radians(bearing_deg), dist_m / R
    p2 = math.asin(math.sin(p1) * math.cos(dr) + math.cos(p1) * math.sin(dr) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(dr) * math.cos(p1), math.cos(dr) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), math.degrees(l2)
