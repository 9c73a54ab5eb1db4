"""The `capacity` criterion: a cell counts as served only if its serving sector is not overloaded.

A first, documented model (docs/coverage.md#criteria): each covered cell is served by one sector:
of the nearest site that covers it (the engine's witness search), the covering sector whose
boresight points closest to the cell. A sector's busy-hour load is

    load = activity x subscriber_share x (population of the cells it serves)
           / (users_per_mhz x bandwidth_mhz)

and the cells of a sector with load >= 1 are not served (admission control refuses the extra
users; the model does not hand them to a neighbour). `subscriber_share` is the share of the
population on the network being evaluated: 1 for all operators pooled, an operator's share of
the stations for one operator (operators size their networks to their subscribers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zhongdu.coverage._types import Grid, Stations

__all__ = ["CapacityParams", "capacity_served", "sector_load"]


@dataclass(frozen=True)
class CapacityParams:
    """Parameters of the capacity criterion (defaults: see docs/coverage.md#criteria)."""

    activity: float = 0.05  # busy-hour share of the people with an active (RRC-connected) session
    users_per_mhz: float = 10.0  # connected users a sector carries per MHz (200 on a 20 MHz carrier)
    subscriber_share: float = 1.0  # share of the population on the evaluated network

    def __post_init__(self) -> None:
        for name in ("activity", "users_per_mhz", "subscriber_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"capacity parameter {name} must be a number > 0, got {value!r}")
        if self.activity > 1 or self.subscriber_share > 1:
            raise ValueError("capacity activity and subscriber_share are fractions in (0, 1]")


def sector_load(
    grid: Grid, stations: Stations, serving_row: NDArray[np.int64], params: CapacityParams
) -> NDArray[np.float64]:
    """Busy-hour load per stations row (0 for rows serving nobody)."""
    has = serving_row >= 0
    people = np.bincount(serving_row[has], weights=grid.population[has], minlength=len(stations))
    demand = params.activity * params.subscriber_share * people
    return np.asarray(demand / (params.users_per_mhz * stations.bandwidth_mhz), dtype=np.float64)


def capacity_served(
    grid: Grid, stations: Stations, serving_row: NDArray[np.int64], params: CapacityParams
) -> NDArray[np.bool_]:
    """Per cell: covered and its serving sector's load below 1."""
    load = sector_load(grid, stations, serving_row, params)
    ok = np.append(load < 1.0, False)  # the sentinel (-1: no server) is not served
    return np.asarray(ok[serving_row], dtype=np.bool_)
