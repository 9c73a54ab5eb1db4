"""How much memory a placement will need, known before it runs.

A placement holds one (candidate sector, cell) pair for every cell a candidate reaches, so its peak
memory grows with the sum over candidates of the cells within their reach: 800 candidates reaching
50 km each touch nearly all 168,000 cells of Taichung's grid (about 4.4 MB per candidate). The
estimate counts the cells in each candidate's bounding box of its reach with a summed-area table of
the grid (vectorised, milliseconds for 5,000 candidates), an upper bound of the cells in the disk
(at most 4/pi of them), and never needs the propagation itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._models import EARTH_RADIUS_M, RURAL, SUBURBAN, URBAN, max_reach_m
from zhongdu.coverage._types import Grid, Stations

# Peak bytes per (sector, cell) pair of `plan` (measured on the shipped grid with the disk model:
# 524 MB for 100 candidates reaching 15.0 M pairs, 35 B each, rounded up) and the fixed part.
BYTES_PER_PAIR = 40
BASE_BYTES = 64 * 1024 * 1024
_BIN_DEG = 0.01  # ~1 km raster for the summed-area table
_ENVIRONMENTS = (URBAN, SUBURBAN, RURAL)


@dataclass(frozen=True)
class Footprint:
    pairs: int  # upper bound of the (candidate sector, cell) pairs
    bytes: int  # estimated peak memory of the placement

    @property
    def megabytes(self) -> float:
        return self.bytes / 2**20


def reach_m(
    candidates: Stations, *, model: str, threshold_dbm: float, environment: int
) -> NDArray[np.float64]:
    """Each candidate's largest reach over cells of one environment: its radius (disk), or its
    boresight reach there (hata; the engine's own pre-filter uses the same bound)."""
    if model == "disk":
        return np.nan_to_num(np.asarray(candidates.radius_m, dtype=np.float64), nan=0.0)
    return max_reach_m(
        eirp_dbm=candidates.eirp_dbm,
        bandwidth_mhz=candidates.bandwidth_mhz,
        frequency_mhz=candidates.frequency_mhz,
        height_m=candidates.height_m,
        environment=np.full(len(candidates), environment),
        threshold_dbm=threshold_dbm,
    )


def placement_footprint(grid: Grid, candidates: Stations, *, model: str, threshold_dbm: float) -> Footprint:
    """An upper bound of the pairs a placement of `candidates` on `grid` builds, and its memory.

    One summed-area table per environment: a hata sector reaches 0.9 km over urban cells and
    8.6 km over rural ones, and counting each environment within its own reach keeps the bound tight.
    """
    lat, lng = grid.latlng_deg()
    if len(lat) == 0 or len(candidates) == 0:
        return Footprint(0, BASE_BYTES)
    lat0, lng0 = float(lat.min()), float(lng.min())
    rows = int((lat.max() - lat0) / _BIN_DEG) + 1
    cols = int((lng.max() - lng0) / _BIN_DEG) + 1
    binned = ((lat - lat0) / _BIN_DEG).astype(np.int64) * cols + ((lng - lng0) / _BIN_DEG).astype(np.int64)
    env = np.asarray(grid.environment)
    clat = np.asarray(candidates.lat, dtype=np.float64)
    clng = np.asarray(candidates.lon, dtype=np.float64)
    pairs = 0
    for code in _ENVIRONMENTS if model != "disk" else (None,):
        cells = binned if code is None else binned[env == code]
        if len(cells) == 0:
            continue
        counts = np.bincount(cells, minlength=rows * cols).reshape(rows, cols)
        table = np.zeros((rows + 1, cols + 1), dtype=np.int64)
        table[1:, 1:] = counts.cumsum(axis=0).cumsum(axis=1)
        reach = reach_m(candidates, model=model, threshold_dbm=threshold_dbm, environment=code or 0)
        dlat = np.degrees(reach / EARTH_RADIUS_M)
        cos_lat = np.maximum(np.cos(np.radians(np.minimum(np.abs(clat) + dlat, 89.0))), 1e-6)
        dlng = dlat / cos_lat
        # bins are widened by one on each side: a bin partly inside the box counts whole
        r0 = np.clip(np.floor((clat - dlat - lat0) / _BIN_DEG).astype(np.int64), 0, rows)
        r1 = np.clip(np.floor((clat + dlat - lat0) / _BIN_DEG).astype(np.int64) + 1, 0, rows)
        c0 = np.clip(np.floor((clng - dlng - lng0) / _BIN_DEG).astype(np.int64), 0, cols)
        c1 = np.clip(np.floor((clng + dlng - lng0) / _BIN_DEG).astype(np.int64) + 1, 0, cols)
        inside = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
        pairs += int(np.where(reach > 0, inside, 0).sum())
    return Footprint(pairs, BASE_BYTES + pairs * BYTES_PER_PAIR)
