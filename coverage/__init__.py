"""Coverage engine: H3 population grid, propagation models, coverage, placement (pure: no DB, no network).

The whole public API is re-exported here (see `__all__`); modules starting with `_` are private.
Every name loads on first use (PEP 562 `__getattr__`): the placement names pull in SciPy's
optimisers (about 0.5 s), and the rest NumPy and the engine (about 0.15 s), which every `zhongdu`
command's `--help` and parser would otherwise pay for at start-up.
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports

if TYPE_CHECKING:
    from zhongdu.coverage._candidates import CandidateDefaults, generate_candidates
    from zhongdu.coverage._capacity import CapacityParams, capacity_served, sector_load
    from zhongdu.coverage._engine import (
        CoverageEngine,
        CoverageError,
        CoverageResult,
        DistrictCoverage,
        compute_coverage,
        coverage_matrix,
    )
    from zhongdu.coverage._grid_build import ENVIRONMENT_BY_DISTRICT, GridBuildError, build_grid
    from zhongdu.coverage._indicator import (
        SERIES_CRITERIA,
        IndicatorError,
        load_default_grid,
        modelled_indicator_document,
        modelled_indicator_series,
        modelled_share,
    )
    from zhongdu.coverage._indoor import CRITERIA, indoor_loss_db
    from zhongdu.coverage._layout import LayoutError, generate_layout, layout_counts, station_counts
    from zhongdu.coverage._live import StationStatus, live_coverage, snapshot_record
    from zhongdu.coverage._mclp import MCLPResult, solve_mclp
    from zhongdu.coverage._models import (
        EARTH_RADIUS_M,
        great_circle_m,
        hata_path_loss,
        max_reach_m,
        rsrp_dbm,
        sector_gain_db,
    )
    from zhongdu.coverage._placement import (
        PlacementError,
        PlacementPick,
        PlacementProblem,
        PlacementResult,
        build_problem,
        greedy,
        plan,
    )
    from zhongdu.coverage._types import (
        ENVIRONMENTS,
        STATION_COLUMNS,
        Grid,
        GridError,
        Stations,
        StationsError,
        load_grid,
        load_stations,
        write_grid,
        write_stations,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CapacityParams": "._capacity",
        "capacity_served": "._capacity",
        "sector_load": "._capacity",
        "CoverageEngine": "._engine",
        "CoverageError": "._engine",
        "CoverageResult": "._engine",
        "DistrictCoverage": "._engine",
        "compute_coverage": "._engine",
        "coverage_matrix": "._engine",
        "ENVIRONMENT_BY_DISTRICT": "._grid_build",
        "GridBuildError": "._grid_build",
        "build_grid": "._grid_build",
        "SERIES_CRITERIA": "._indicator",
        "IndicatorError": "._indicator",
        "load_default_grid": "._indicator",
        "modelled_indicator_document": "._indicator",
        "modelled_indicator_series": "._indicator",
        "modelled_share": "._indicator",
        "CRITERIA": "._indoor",
        "indoor_loss_db": "._indoor",
        "LayoutError": "._layout",
        "generate_layout": "._layout",
        "layout_counts": "._layout",
        "station_counts": "._layout",
        "StationStatus": "._live",
        "live_coverage": "._live",
        "snapshot_record": "._live",
        "EARTH_RADIUS_M": "._models",
        "great_circle_m": "._models",
        "hata_path_loss": "._models",
        "max_reach_m": "._models",
        "rsrp_dbm": "._models",
        "sector_gain_db": "._models",
        "ENVIRONMENTS": "._types",
        "STATION_COLUMNS": "._types",
        "Grid": "._types",
        "GridError": "._types",
        "Stations": "._types",
        "StationsError": "._types",
        "load_grid": "._types",
        "load_stations": "._types",
        "write_grid": "._types",
        "write_stations": "._types",
        "CandidateDefaults": "._candidates",
        "generate_candidates": "._candidates",
        "MCLPResult": "._mclp",
        "solve_mclp": "._mclp",
        "PlacementError": "._placement",
        "PlacementPick": "._placement",
        "PlacementProblem": "._placement",
        "PlacementResult": "._placement",
        "build_problem": "._placement",
        "greedy": "._placement",
        "plan": "._placement",
    },
)


__all__ = [  # noqa: RUF022 - grouped by owner
    # engine
    "EARTH_RADIUS_M",
    "ENVIRONMENTS",
    "STATION_COLUMNS",
    "CoverageEngine",
    "CoverageError",
    "CoverageResult",
    "DistrictCoverage",
    "Grid",
    "GridError",
    "StationStatus",
    "Stations",
    "StationsError",
    "compute_coverage",
    "coverage_matrix",
    "great_circle_m",
    "hata_path_loss",
    "live_coverage",
    "load_grid",
    "load_stations",
    "max_reach_m",
    "rsrp_dbm",
    "sector_gain_db",
    "snapshot_record",
    "write_grid",
    "write_stations",
    # grid build, layouts, indicator series
    "ENVIRONMENT_BY_DISTRICT",
    "GridBuildError",
    "IndicatorError",
    "LayoutError",
    "build_grid",
    "generate_layout",
    "layout_counts",
    "load_default_grid",
    "modelled_indicator_document",
    "modelled_indicator_series",
    "modelled_share",
    "SERIES_CRITERIA",
    "station_counts",
    # criteria: indoor, capacity
    "CRITERIA",
    "CapacityParams",
    "capacity_served",
    "indoor_loss_db",
    "sector_load",
    # scenario placement (loaded on first use)
    "CandidateDefaults",
    "MCLPResult",
    "PlacementError",
    "PlacementPick",
    "PlacementProblem",
    "PlacementResult",
    "build_problem",
    "generate_candidates",
    "greedy",
    "plan",
    "solve_mclp",
]
