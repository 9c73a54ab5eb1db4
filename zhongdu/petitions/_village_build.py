"""Rebuild `data/villages.csv`: each village's population-weighted centre from the population grid.

    python -m zhongdu.petitions._village_build taichung_villages.geojson > villages.csv

The grid's resolution-10 cells are assigned to the village polygon holding their centre; a village
holding no populated cell falls back to its polygon's representative point.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import geopandas as gpd
    import h3
    import numpy as np
    import pandas as pd

    from zhongdu.coverage import load_default_grid

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("villages", help="village polygons GeoJSON (village_code, district_zh, ...)")
    args = parser.parse_args(argv)
    villages = gpd.read_file(args.villages)
    grid = load_default_grid(10)
    lat, lon = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in grid.cells.tolist()]).T
    points = gpd.GeoDataFrame(
        {"population": np.asarray(grid.population, dtype=float)},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    joined = gpd.sjoin(points, villages[["village_code", "geometry"]], predicate="within")
    joined["wx"] = joined.geometry.x * joined.population
    joined["wy"] = joined.geometry.y * joined.population
    sums = joined.groupby("village_code")[["wx", "wy", "population"]].sum()
    sums = sums[sums.population > 0]
    rep = villages.set_index("village_code").geometry.representative_point()
    out = villages[["village_code", "district_zh", "district_en", "village_zh", "population"]].copy()
    out = out.set_index("village_code")
    out["lon"] = rep.x
    out["lat"] = rep.y
    has = sums.index.intersection(out.index)
    out.loc[has, "lon"] = sums.loc[has, "wx"] / sums.loc[has, "population"]
    out.loc[has, "lat"] = sums.loc[has, "wy"] / sums.loc[has, "population"]
    out["lon"] = out["lon"].round(6)
    out["lat"] = out["lat"].round(6)
    out = out.reset_index().drop_duplicates("village_code").sort_values("village_code")
    pd.DataFrame(out).to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
