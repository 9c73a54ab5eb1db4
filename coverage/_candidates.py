"""Candidate sites for planners with no list: a regular H3 lattice over under-covered populated cells.

The plan puts new base stations on public buildings and public land (公有建物及土地設置基地臺); without
a cadastre of public land we stand in one site per coarse H3 cell (resolution 7 by default, about
5 km² per cell, so neighbouring candidates sit about 2.5 km apart) whose population the existing
`up` sectors do not reach, at the coarse cell's centre. Each candidate is a tri-sector macro site with
the documented defaults of `CandidateDefaults` (kind `public_land`, cost 1), so the greedy's order
among them is by covered population alone; planners with real costs edit the file's `cost` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._placement import PlacementError

if TYPE_CHECKING:
    from zhongdu.coverage._types import Grid, Stations

__all__ = ["CandidateDefaults", "cell_to_parent", "generate_candidates"]


@dataclass(frozen=True)
class CandidateDefaults:
    """Antenna parameters of a generated candidate: a typical urban LTE-1800 macro site.

    58 dBm EIRP per sector, 30 m mast, 20 MHz carrier (100 resource blocks), three 65° sectors at
    0°/120°/240°. `radius_m` serves the `disk` model: 1 km is about this site's Hata range at −110 dBm
    in an urban area (0.9 km) and well inside the suburban one (2.3 km).
    """

    sectors: int = 3
    frequency_mhz: float = 1800.0
    bandwidth_mhz: float = 20.0
    height_m: float = 30.0
    eirp_dbm: float = 58.0
    beamwidth_deg: float = 65.0
    radius_m: float = 1000.0
    cost: float = 1.0
    kind: str = "public_land"


_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT


def cell_to_parent(cells: NDArray[np.uint64], resolution: int) -> NDArray[np.uint64]:
    """Vectorised `h3.cell_to_parent`: set the resolution field and mark finer digits unused (7)."""
    if not 0 <= resolution <= 15:
        raise PlacementError(f"H3 resolution {resolution} is outside 0-15")
    unused = np.uint64((1 << (3 * (15 - resolution))) - 1)
    out = (cells & ~_RES_MASK) | (np.uint64(resolution) << _RES_SHIFT) | unused
    return np.asarray(out, dtype=np.uint64)


def generate_candidates(
    grid: Grid,
    stations: Stations,
    *,
    model: Literal["disk", "hata"] = "hata",
    threshold_dbm: float = -110.0,
    resolution: int = 7,
    min_population: float = 1.0,
    limit: int | None = None,
    defaults: CandidateDefaults = CandidateDefaults(),
    criterion: Literal["outdoor", "indoor"] = "outdoor",
    operator: str | None = None,
) -> Stations:
    """One candidate site per lattice cell holding at least `min_population` uncovered people.

    "Uncovered" is under the criterion (`indoor`: building loss counted) and, with `operator`,
    by that operator's sectors (by each major operator's for `every_major`), as `plan` counts it.

    Sites are ordered by the uncovered population of their lattice cell (largest first), then by
    cell index; `limit` keeps the first ones. Station ids are `C<resolution>-<h3 hex>`.
    """
    import h3

    from zhongdu.coverage._placement import covered_by_operator, existing_covered
    from zhongdu.coverage._types import Stations as StationsT

    if not 0 <= resolution < grid.resolution:
        raise PlacementError(
            f"candidate lattice resolution {resolution} must be coarser than the grid's {grid.resolution}"
        )
    if limit is not None and limit < 1:
        raise PlacementError(f"limit must be at least 1, got {limit}")
    if operator is None or operator == "any":
        covered = existing_covered(
            grid, stations, model=model, threshold_dbm=threshold_dbm, criterion=criterion
        )
    else:
        covered = covered_by_operator(
            grid, stations, operator, model=model, threshold_dbm=threshold_dbm, criterion=criterion
        )
    open_cells = ~covered & (grid.population > 0)
    parents, inverse = np.unique(cell_to_parent(grid.cells[open_cells], resolution), return_inverse=True)
    uncovered = np.bincount(inverse.ravel(), weights=grid.population[open_cells], minlength=len(parents))
    keep = np.flatnonzero(uncovered >= min_population)
    keep = keep[np.lexsort((parents[keep], -uncovered[keep]))]
    if limit is not None:
        keep = keep[:limit]
    if len(keep) == 0:
        raise PlacementError(
            f"no lattice cell at resolution {resolution} holds {min_population} uncovered people; "
            "lower --min-population or use a finer --resolution"
        )
    chosen = parents[keep]
    centres = np.array([h3.api.basic_int.cell_to_latlng(int(c)) for c in chosen.tolist()], dtype=np.float64)
    n, k = len(chosen), defaults.sectors
    ids = np.array([f"C{resolution}-{int(c):x}" for c in chosen.tolist()], dtype=np.str_)
    omni = k == 1
    azimuth = np.tile(np.arange(k) * (360.0 / k), n) if not omni else np.full(n, np.nan)
    return StationsT.from_columns(
        station_id=np.repeat(ids, k),
        sector_id=np.tile(np.arange(1, k + 1).astype(str), n),
        lon=np.repeat(centres[:, 1], k),
        lat=np.repeat(centres[:, 0], k),
        height_m=defaults.height_m,
        eirp_dbm=defaults.eirp_dbm,
        frequency_mhz=defaults.frequency_mhz,
        bandwidth_mhz=defaults.bandwidth_mhz,
        azimuth_deg=azimuth,
        beamwidth_deg=np.nan if omni else defaults.beamwidth_deg,
        up=True,
        radius_m=defaults.radius_m,
        extra={
            "cost": np.full(n * k, defaults.cost),
            "kind": np.repeat(np.array([defaults.kind], dtype=np.str_), n * k),
            "uncovered_population": np.repeat(uncovered[keep], k),
        },
    )
