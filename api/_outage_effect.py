"""What each outage costs under a criterion and operator: the people and cells that would be covered
again if that site alone came back, and if every site out came back.

Outdoor by any operator saturates (neighbours cover almost everyone), so an outage that matters
shows under indoor or every-major-operator coverage. Only the cells within a site's reach can
change, so each site is evaluated on that sub-grid (milliseconds to a fraction of a second); the
capacity criterion loads sectors with every cell they serve, so it is evaluated on the whole grid.
Pure NumPy over the coverage engine: no database, no network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from zhongdu.coverage import Grid, Stations

MAX_SITES = 60  # per-site effects beyond this many sites out are left out (the total is still given)
REACH_MARGIN_M = 300.0  # a cell whose centre lies just past the reach can still hold covered area
_EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class SiteEffect:
    station_id: str
    people: float
    cells: int


@dataclass(frozen=True)
class OutageEffect:
    criterion: str
    operator: str
    population_total: float
    people: float  # covered again if every site out came back
    cells: int
    sites: list[SiteEffect | None]  # per site out, in the order asked (None: past MAX_SITES)

    def to_dict(self) -> dict[str, Any]:
        total = self.population_total or 1.0
        return {
            "criterion": self.criterion,
            "operator": self.operator,
            "population_total": self.population_total,
            "people": self.people,
            "cells": self.cells,
            "share_pp": 100.0 * self.people / total,
        }


def site_reach_m(stations: Stations, rows: NDArray[np.intp], *, model: str, threshold_dbm: float) -> float:
    """The farthest any of these sectors can cover (outdoors: indoor reach is shorter)."""
    if model == "disk":
        return float(np.nanmax(stations.radius_m[rows])) if len(rows) else 0.0
    from zhongdu.coverage import ENVIRONMENTS
    from zhongdu.coverage._models import max_reach_m

    reach = max_reach_m(
        eirp_dbm=stations.eirp_dbm[rows][:, None],
        bandwidth_mhz=stations.bandwidth_mhz[rows][:, None],
        frequency_mhz=stations.frequency_mhz[rows][:, None],
        height_m=stations.height_m[rows][:, None],
        environment=np.arange(len(ENVIRONMENTS))[None, :],
        threshold_dbm=threshold_dbm,
    )
    return float(np.max(reach)) if reach.size else 0.0


def _near(
    lat: NDArray[np.float64], lng: NDArray[np.float64], at: tuple[float, float], radius_m: float
) -> NDArray[np.bool_]:
    """Cells whose centre is within `radius_m` of `at` (lat, lng), equirectangular (km-scale)."""
    lat0 = np.radians(at[0])
    dy = np.radians(lat - at[0])
    dx = np.radians(lng - at[1]) * np.cos(lat0)
    return np.asarray(_EARTH_M * np.hypot(dx, dy) <= radius_m, dtype=bool)


def covered_fraction(
    grid: Grid, stations: Stations, *, criterion: str, operator: str, model: str, threshold_dbm: float
) -> NDArray[np.float64]:
    """Per cell, the covered fraction (0/1; capacity by any operator can be partial)."""
    from zhongdu.coverage._by_operator import compute_by_operator

    if len(grid) == 0:
        return np.zeros(0)
    every_major = operator == "every_major"
    results = compute_by_operator(
        grid,
        stations,
        operator="each" if every_major else operator,
        model=model,  # type: ignore[arg-type]
        threshold_dbm=threshold_dbm,
        criterion=criterion,  # type: ignore[arg-type]
    )
    if every_major and "every_major" not in results:
        raise ValueError("the layout lacks one of the major operators (CHT, TWM, FET)")
    main = results["every_major"] if every_major else results.get("any") or next(iter(results.values()))
    assert main.covered is not None
    return np.asarray(main.covered, dtype=np.float64)


def outage_effect(
    grid: Grid,
    cell_latlng: tuple[NDArray[np.float64], NDArray[np.float64]],
    layout: Stations,
    serving_now: Stations,
    out_ids: list[str],
    site_latlng: list[tuple[float, float]],
    *,
    criterion: str,
    operator: str,
    model: str,
    threshold_dbm: float,
) -> OutageEffect:
    """People and cells each site of `out_ids` (and all of them) would cover again if it came back.

    `serving_now` is the layout with `up` as it serves now; a site coming back gets its layout's
    `up` flags again. Per-site figures are marginal: two overlapping sites out can each show little
    while the pair shows much (the total says so).
    """
    population = np.asarray(grid.population, dtype=np.float64)
    total_population = float(population.sum())
    ids = np.asarray(layout.station_id, dtype=str)
    layout_up = np.asarray(layout.up, dtype=bool)
    now_up = np.asarray(serving_now.up, dtype=bool)
    lat, lng = cell_latlng
    whole_grid = criterion == "capacity"
    kw: dict[str, Any] = {
        "criterion": criterion,
        "operator": operator,
        "model": model,
        "threshold_dbm": threshold_dbm,
    }

    def restored(rows: NDArray[np.intp]) -> Stations:
        up = now_up.copy()
        up[rows] = layout_up[rows]
        return dataclasses.replace(serving_now, up=up)

    site_rows = [np.flatnonzero(ids == sid) for sid in out_ids]
    masks: list[NDArray[np.bool_]] = []
    for rows, at in zip(site_rows, site_latlng, strict=True):
        if whole_grid:
            masks.append(np.ones(len(grid), dtype=bool))
        else:
            reach = site_reach_m(layout, rows, model=model, threshold_dbm=threshold_dbm)
            masks.append(_near(lat, lng, at, reach + REACH_MARGIN_M))
    union = np.logical_or.reduce(masks) if masks else np.zeros(len(grid), dtype=bool)
    cells_u = np.flatnonzero(union)
    if not len(cells_u):
        return OutageEffect(
            criterion, operator, total_population, 0.0, 0, [SiteEffect(s, 0.0, 0) for s in out_ids]
        )
    sub = grid.take(cells_u)
    now = covered_fraction(sub, serving_now, **kw)
    every = np.concatenate(site_rows) if site_rows else np.zeros(0, dtype=np.intp)
    gained = np.clip(covered_fraction(sub, restored(every), **kw) - now, 0.0, 1.0)
    pop_u = population[cells_u]
    sites: list[SiteEffect | None] = []
    position = np.full(len(grid), -1, dtype=np.intp)
    position[cells_u] = np.arange(len(cells_u))
    for n, (sid, rows, mask) in enumerate(zip(out_ids, site_rows, masks, strict=True)):
        if n >= MAX_SITES:
            sites.append(None)
            continue
        cells = np.flatnonzero(mask)
        if len(out_ids) == 1:
            g = gained
        else:
            g = np.clip(
                covered_fraction(grid.take(cells), restored(rows), **kw) - now[position[cells]], 0.0, 1.0
            )
        sites.append(SiteEffect(sid, float((pop_u[position[cells]] * g).sum()), int(np.count_nonzero(g > 0))))
    return OutageEffect(
        criterion,
        operator,
        total_population,
        float((pop_u * gained).sum()),
        int(np.count_nonzero(gained > 0)),
        sites,
    )
