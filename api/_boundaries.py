"""District boundaries for the browser: the 29 polygons simplified to ~30 m and serialised once.

The full-resolution boundaries (1.3 MB) would cost the page a second to parse and draw; simplified
with shared edges kept (shapely's topology-preserving simplification, per polygon) and rounded to
5 decimals (~1 m) they are a tenth of that. Read through the grid builder's own readers, so the
page shows the same districts and populations the coverage engine counts.
"""

from __future__ import annotations

import json
from typing import Any

SIMPLIFY_DEG = 0.0003  # ~30 m at Taichung's latitude: invisible at city zoom, a tenth of the points
_DECIMALS = 5


def _rounded(coords: Any) -> Any:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        return [round(float(coords[0]), _DECIMALS), round(float(coords[1]), _DECIMALS)]
    return [_rounded(c) for c in coords]


def district_geojson() -> bytes:
    """The districts as a GeoJSON FeatureCollection (UTF-8 bytes), sorted by Chinese name.

    Properties: `district` (Chinese name, the key used everywhere else), `name_en`, `code`,
    `population` (official 2026-09), `environment` (the hata model's class), `area_km2`.
    """
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
    metric = shapes.geometry.to_crs(3826)  # TWD97 / TM2: areas in m²
    features = []
    for info in infos:
        geometry = shapes.geometry[info.name_zh].simplify(SIMPLIFY_DEG, preserve_topology=True)
        shape = mapping(geometry)
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
    body = {"type": "FeatureCollection", "features": features, "simplified_deg": SIMPLIFY_DEG}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
