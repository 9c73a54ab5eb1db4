"""The planner's desk: what its three new costs are, each against a baseline measured in the run.

1. The city-wide lattice (`candidate_source: lattice`) against the coverage computation it cannot
   avoid (the existing network's covered mask over the whole city).
2. Checking an uploaded file of the limit's 1,500 sites (CSV, and GeoJSON polygons) against plain
   `csv.DictReader` / `json.loads` of the same bytes.
3. The one-page PDF of a scenario against its CSV export.

    .venv/bin/python benchmarks/bench_planner_desk.py [--resolution 8] [--limit 200]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=8, help="lattice resolution (default 8)")
    parser.add_argument("--limit", type=int, default=200, help="lattice candidates kept (default 200)")
    parser.add_argument("--criterion", default="indoor", choices=("outdoor", "indoor"))
    parser.add_argument("--operator", default="every_major", help="any, every_major or one operator")
    parser.add_argument(
        "--date", default=None, help="the existing network's layout date (default: the live one)"
    )
    args = parser.parse_args()

    from zhongdu.api import _candidate_files as files
    from zhongdu.api import _scenario_export as export
    from zhongdu.api._scenario_pool import lattice_in_child
    from zhongdu.coverage import load_default_grid, plan
    from zhongdu.coverage._grid_build import read_source_geojson, source_dir_or_default
    from zhongdu.coverage._layout import generate_layout
    from zhongdu.coverage._placement import covered_by_operator, existing_covered

    print("loading the shipped grid and the layout ...", flush=True)
    grid = load_default_grid()
    stations = generate_layout(grid, date=args.date) if args.date else generate_layout(grid)
    print(
        f"grid: {len(grid):,} cells at resolution {grid.resolution}; layout {args.date or 'default'}: "
        f"{len(stations):,} sectors"
    )
    criterion, operator = args.criterion, None if args.operator == "any" else args.operator

    def covered() -> Any:
        if operator is None:
            return existing_covered(grid, stations, model="hata", threshold_dbm=-110.0, criterion=criterion)
        return covered_by_operator(
            grid, stations, operator, model="hata", threshold_dbm=-110.0, criterion=criterion
        )

    covered()  # the grid's geometry cached, as in the live API

    # 1. lattice
    _, mask_s = timed(covered, repeat=2)
    options = dict(
        model="hata",
        threshold_dbm=-110.0,
        resolution=args.resolution,
        limit=args.limit,
        min_population=1.0,
        criterion=criterion,
        operator=operator,
        districts=None,
    )
    rows, lattice_s = timed(lambda: lattice_in_child(grid, stations, options), repeat=2)
    print(
        f"\n1. lattice r{args.resolution}, limit {args.limit}, {criterion}, {args.operator}: "
        f"{len({r['station_id'] for r in rows})} sites"
    )
    print(f"   covered mask alone (baseline) {mask_s:6.2f} s")
    print(f"   lattice candidates            {lattice_s:6.2f} s  (x{lattice_s / mask_s:.2f} of the baseline)")
    from zhongdu.api._routes_scenarios import candidate_stations, locate_picks

    result, plan_s = timed(
        lambda: plan(
            grid,
            stations,
            candidate_stations(rows),
            model="hata",
            threshold_dbm=-110.0,
            budget=args.limit,
            criterion=criterion,
            operator=operator,
        ).to_dict()
    )
    picks, locate_s = timed(lambda: locate_picks(grid, result["picks"], rows))
    print(
        f"   placement of them (CELF)      {plan_s:6.2f} s; {len(picks)} picks "
        f"located in {locate_s * 1000:.0f} ms"
    )

    # 2. file check at the limit
    areas = read_source_geojson(source_dir_or_default(None), "taichung_statistical_areas_2017.geojson")
    areas = areas.sort_values("population_2017_06", ascending=False).head(files.MAX_SITES)
    points = areas.geometry.representative_point()
    buffer = io.StringIO()
    buffer.write("id,name,lat,lng,cost,height,kind\n")
    for code, p in zip(areas["codebase"], points, strict=True):
        buffer.write(f"{code},統計區 {code},{p.y:.6f},{p.x:.6f},1,30,public_building\n")
    csv_bytes = buffer.getvalue().encode()
    simplified = areas.assign(geometry=areas.geometry.simplify(0.0002))
    features = [
        {"type": "Feature", "geometry": json.loads(json.dumps(g.__geo_interface__)), "properties": {"id": c}}
        for c, g in zip(simplified["codebase"], simplified.geometry, strict=True)
    ]
    geo_bytes = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    _, plain_csv_s = timed(lambda: list(csv.DictReader(io.StringIO(csv_bytes.decode()))), repeat=5)
    _, check_csv_s = timed(lambda: files.sector_rows(files.parse(csv_bytes)[1]), repeat=5)
    _, plain_geo_s = timed(lambda: json.loads(geo_bytes), repeat=5)
    _, check_geo_s = timed(lambda: files.sector_rows(files.parse(geo_bytes)[1]), repeat=5)
    print(f"\n2. a file of {files.MAX_SITES:,} sites (best of 5)")
    print(
        f"   CSV {len(csv_bytes) / 1024:,.0f} KiB: csv.DictReader {plain_csv_s * 1000:6.1f} ms; "
        f"checked + sector rows {check_csv_s * 1000:6.1f} ms (x{check_csv_s / plain_csv_s:.1f})"
    )
    print(
        f"   GeoJSON polygons {len(geo_bytes) / 1024:,.0f} KiB: json.loads {plain_geo_s * 1000:6.1f} ms; "
        f"checked + points inside + sector rows {check_geo_s * 1000:6.1f} ms "
        f"(x{check_geo_s / plain_geo_s:.1f})"
    )

    # 3. exports of the lattice scenario
    row = {
        "scenario_id": "sc_000000000000",
        "name": "bench",
        "note": None,
        "status": "done",
        "finished_at": None,
        "request": {"budget": args.limit},
        "result": dict(
            result,
            picks=picks,
            criterion=criterion,
            operator=args.operator,
            base="stations serving at 2026-12-05T05:00:00+00:00",
        ),
    }
    _, csv_s = timed(lambda: export.to_csv(row, bom=True), repeat=3)
    _, first_pdf_s = timed(lambda: export.to_pdf(row, lang="zh"))  # imports WeasyPrint, matplotlib
    pdf, pdf_s = timed(lambda: export.to_pdf(row, lang="zh"), repeat=2)
    print(
        f"\n3. exports of {len(picks)} picks: CSV {csv_s * 1000:.1f} ms; one-page PDF {pdf_s:.2f} s "
        f"(x{pdf_s / csv_s:,.0f}; {len(pdf) / 1024:.0f} KiB; the process's first {first_pdf_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
