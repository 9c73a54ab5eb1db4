"""Coverage engine: H3 population grid, propagation models, coverage, placement (pure: no DB, no network).

The whole public API is re-exported here (see `__all__`); modules starting with `_` are private.
The placement names load on first use (PEP 562 `__getattr__`): they pull in SciPy's optimisers,
which every `zhongdu` command would otherwise pay for at start-up (about 0.5 s).
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports
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
from zhongdu.coverage._models import (
    EARTH_RADIUS_M,
    great_circle_m,
    hata_path_loss,
    max_reach_m,
    rsrp_dbm,
    sector_gain_db,
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

if TYPE_CHECKING:
    from zhongdu.coverage._candidates import CandidateDefaults, generate_candidates
    from zhongdu.coverage._mclp import MCLPResult, solve_mclp
    from zhongdu.coverage._placement import (
        PlacementError,
        PlacementPick,
        PlacementProblem,
        PlacementResult,
        build_problem,
        greedy,
        plan,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
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
