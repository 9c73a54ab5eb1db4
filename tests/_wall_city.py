"""A small city where one outage matters only indoors: three omni sites (one per major operator)
at the centre reach every cell outdoors, and a shared edge site (one sector per major operator)
2.2 km east adds indoor coverage there. Taking the edge site down changes nothing outdoors and
loses people indoors, by any and by every major operator."""

from __future__ import annotations

import numpy as np

from zhongdu.coverage import Grid, Stations

from ._api_fixtures import CENTRE, small_city

EDGE_AT = (CENTRE[0], CENTRE[1] + 0.022)  # lat, lon


def wall_city(prefix: str = "bs") -> tuple[Grid, Stations]:
    grid, _ = small_city()
    ids = [
        f"{prefix}-cht",
        f"{prefix}-fet",
        f"{prefix}-twm",
        f"{prefix}-edge",
        f"{prefix}-edge",
        f"{prefix}-edge",
    ]
    stations = Stations.from_columns(
        station_id=ids,
        sector_id=["0", "0", "0", "0", "1", "2"],
        lon=[CENTRE[1]] * 3 + [EDGE_AT[1]] * 3,
        lat=[CENTRE[0]] * 6,
        radius_m=[4000.0] * 3 + [1500.0] * 3,
        extra={"operator": np.array(["CHT", "FET", "TWM", "CHT", "FET", "TWM"])},
    )
    return grid, stations
