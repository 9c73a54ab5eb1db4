"""District boundaries for the browser and GIS: the 29 polygons as one clean coverage, simplified
to ~30 m, serialised once.

The full-resolution boundaries (1.3 MB) would cost the page a second to parse and draw. Simplifying
each polygon on its own opens gaps and overlaps between neighbours (0.35 km² and 0.5 km² here),
which breaks point-in-district joins and shows as seams, and the source itself has slivers
(~190 m² of gaps, as much overlap). So the districts are cleaned as a coverage (GEOS's coverage
cleaner: slivers merged into a neighbour, shared edges made identical), then simplified as a
coverage (every shared edge simplified once, for both sides), in metres (TWD97), and rounded to
1e-6° (shared vertices round alike, so edges stay shared). Read through the grid builder's own
readers, so the page shows the same districts and populations the coverage engine counts.
"""

from __future__ import annotations

import json
from typing import Any

SIMPLIFY_M = 30.0  # invisible at city zoom, a seventh of the points
SLIVER_M = 10.0  # gaps narrower than this between source polygons are digitising slivers
METRIC_CRS = 3826  # TWD97 / TM2 zone 121: Taiwan's metric grid
_DECIMALS = 6  # 0.1 m


def _rounded(coords: Any) -> Any:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        return [round(float(coords[0]), _DECIMALS), round(float(coords[1]), _DECIMALS)]
    return [_rounded(c) for c in coords]


def district_geojson() -> bytes:
    """The districts as a GeoJSON FeatureCollection (UTF-8 bytes), sorted by Chinese name.

    Properties: `district` (Chinese name, the key used everywhere else), `name_en`, `code`,
    `population` (official 2026-09), `environment` (the hata model's class), `area_km2`.
    """
    import geopandas as gpd
    import shapely
    from shapely.geometry import mapping

    from zhongdu.coverage._grid_build import (
        DISTRICTS_FILE,
        read_districts,
        read_source_geojson,
        source_dir_or_default,
    )

    source = source_dir_or_default(None)
    infos = read_districts(source)
    shapes = read_source_geojson(source, DISTRICTS_FILE).set_index("name_zh")
    metric = shapes.geometry.to_crs(METRIC_CRS)
    cleaned = shapely.coverage_clean(metric.values, gap_width=SLIVER_M)  # type: ignore[attr-defined]
    simplified = shapely.coverage_simplify(cleaned, SIMPLIFY_M)
    drawn = gpd.GeoSeries(simplified, index=metric.index, crs=METRIC_CRS).to_crs(4326)
    features = []
    for info in infos:
        shape = mapping(drawn[info.name_zh])
        features.append(
            {
                "type": "Feature",
                "id": info.code,
                "geometry": {"type": shape["type"], "coordinates": _rounded(shape["coordinates"])},
                "properties": {
                    "district": info.name_zh,
                    "name_en": info.name_en,
                    "code": info.code,
                    "population": info.population,
                    "environment": info.environment,
                    "area_km2": round(float(metric[info.name_zh].area) / 1e6, 3),
                },
            }
        )
    body = {"type": "FeatureCollection", "features": features, "simplified_m": SIMPLIFY_M}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
