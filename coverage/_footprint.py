"""How much memory a placement will need, known before its matrix is built.

A placement holds one column index per (candidate site, column) pair of its matrix
(`_site_matrix`: a block a site covers whole is one column, a cell on a coverage edge another),
plus per-cell arrays of the grid and the engine. The number of pairs is bounded from the block
tests alone (`column_bound`: every cell of an edge block counted, never fewer than the matrix
holds), which costs a fraction of building the matrix and no per-cell evaluation; the bytes per
pair and per cell below were measured on the 2014 layout at resolutions 10 and 11.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._types import Grid, Stations

# Peak bytes per (site, column) pair of `plan` without district minima (measured: 18 to 20 B,
# the 4-byte index and the greedy's weight gathers), per grid cell (measured: about 100 B, the
# engine's geometry, the covered mask and the greedy's weights), and the fixed part (the chunk
# arrays of the engine and of the matrix, a few MB each; not the interpreter and its imports).
BYTES_PER_PAIR = 24
BYTES_PER_CELL = 128
BASE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Footprint:
    pairs: int  # upper bound of the (site, column) pairs of the placement's matrix
    bytes: int  # estimated peak memory of the placement

    @property
    def megabytes(self) -> float:
        return self.bytes / 2**20


def placement_footprint(
    grid: Grid,
    candidates: Stations,
    *,
    model: str,
    threshold_dbm: float,
    criterion: str = "outdoor",
    cells: NDArray[np.bool_] | None = None,
) -> Footprint:
    """An upper bound of the pairs a placement of `candidates` on `grid` builds, and its memory.

    `cells`: the cells the placement can count (the populated cells the existing network misses);
    by default every populated cell, which bounds any existing network. `criterion` indoor only
    shrinks the reach, so the outdoor bound holds for it too.
    """
    from zhongdu.coverage._site_matrix import column_bound

    mask = np.asarray(grid.population) > 0 if cells is None else np.asarray(cells, dtype=bool)
    fixed = BASE_BYTES + BYTES_PER_CELL * len(grid)
    if len(candidates) == 0 or not mask.any():
        return Footprint(0, fixed)
    crit = "indoor" if criterion == "indoor" else "outdoor"
    pairs = column_bound(
        grid, candidates, model=model, threshold_dbm=threshold_dbm, criterion=crit, cells=mask
    )
    return Footprint(pairs, fixed + pairs * BYTES_PER_PAIR)
