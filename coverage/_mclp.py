"""Exact yardstick: the maximal covering location problem (Church & ReVelle 1974) as an integer program.

    maximise   Σ_g w_g y_g
    subject to y_g ≤ Σ_{s covers g} x_s      for every demand row g
               Σ_s x_s ≤ p                   (site budget)
               Σ_s cost_s x_s ≤ C            (optional cost budget)
               x_s ∈ {0, 1},  0 ≤ y_g ≤ 1

y may be continuous: for integer x the optimum puts y_g = 1 exactly when some chosen site covers g.
Cells already covered by existing stations, empty cells and cells no candidate reaches are constants
and are left out; cells covered by exactly the same set of sites are merged into one row weighted by
their total population (identified by two independent 64-bit random hashes of the site set plus its
size, so a collision is astronomically unlikely). Solved by HiGHS through `scipy.optimize.milp`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, sparse

from zhongdu.coverage._placement import PlacementError, PlacementProblem

__all__ = ["MCLPResult", "collapse_demand", "solve_mclp"]


@dataclass(frozen=True)
class MCLPResult:
    selected: NDArray[np.int64]  # site indexes (PlacementProblem order), ascending
    site_ids: tuple[str, ...]
    covered_population: float  # including cells the existing stations cover
    share: float
    optimal: bool  # False when the time limit stopped HiGHS first (the incumbent is then reported)
    upper_bound: float  # HiGHS's proven bound on the covered population (= covered_population if optimal)
    mip_gap: float
    seconds: float
    n_demand_rows: int  # rows after merging identical covering sets
    n_cells: int  # uncovered populated cells some candidate reaches


def collapse_demand(
    problem: PlacementProblem, seed: int = 20150101
) -> tuple[sparse.csr_array, NDArray[np.float64], int]:
    """Merge cells with identical covering-site sets: (rows × sites coverage, row weights, cells used)."""
    cell_sites = sparse.csr_array(problem.cell_matrix().T.tocsr())  # blocks expanded to their cells
    cell_sites.sort_indices()
    n_sites = cell_sites.shape[1]
    nnz = np.diff(cell_sites.indptr)
    useful = (nnz > 0) & ~problem.covered & (problem.population > 0)
    rng = np.random.default_rng(seed)
    keys = [nnz.astype(np.uint64)]
    for _ in range(2):
        r = rng.integers(0, np.iinfo(np.uint64).max, size=n_sites, dtype=np.uint64, endpoint=True)
        csum = np.zeros(cell_sites.nnz + 1, dtype=np.uint64)
        np.cumsum(r[cell_sites.indices], out=csum[1:])  # wraps modulo 2**64, so differences do too
        keys.append(csum[cell_sites.indptr[1:]] - csum[cell_sites.indptr[:-1]])
    key = np.stack(keys, axis=1)[useful]
    cells = np.flatnonzero(useful)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=problem.population[cells], minlength=len(first)).astype(
        np.float64
    )
    rows = sparse.csr_array(cell_sites[cells[first]], dtype=np.float64)
    return rows, weights, len(cells)


def solve_mclp(
    problem: PlacementProblem,
    p: int,
    *,
    max_cost: float | None = None,
    time_limit: float | None = None,
    mip_rel_gap: float = 0.0,
) -> MCLPResult:
    """Choose at most `p` sites (and at most `max_cost` in total) covering the most population.

    With a `time_limit` HiGHS may stop early: `optimal` is then False, the incumbent is reported and
    `upper_bound` still bounds the optimum, so `greedy / upper_bound` is a proven quality floor.
    """
    if p < 0:
        raise PlacementError(f"p must be a non-negative number of sites, got {p}")
    started = time.perf_counter()
    rows, weights, n_cells = collapse_demand(problem)
    n_rows, n_sites = rows.shape
    # Variables: x_0..x_{S-1} (sites, binary), then y_0..y_{G-1} (demand rows, continuous).
    objective = np.concatenate([np.zeros(n_sites), -weights])
    cover = sparse.hstack([-rows, sparse.eye_array(n_rows)], format="csr")
    constraints = [optimize.LinearConstraint(cover, -np.inf, 0.0)]
    count = np.concatenate([np.ones(n_sites), np.zeros(n_rows)])
    constraints.append(optimize.LinearConstraint(count[None, :], -np.inf, float(p)))
    if max_cost is not None:
        spend = np.concatenate([problem.cost, np.zeros(n_rows)])
        constraints.append(optimize.LinearConstraint(spend[None, :], -np.inf, float(max_cost)))
    integrality = np.concatenate([np.ones(n_sites), np.zeros(n_rows)])
    options: dict[str, float | bool] = {"disp": False, "mip_rel_gap": float(mip_rel_gap)}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    res = optimize.milp(
        objective,
        constraints=constraints,
        integrality=integrality,
        bounds=optimize.Bounds(0.0, 1.0),
        options=options,
    )
    if res.x is None:
        raise PlacementError(f"HiGHS found no solution: {res.message}")
    selected = np.flatnonzero(res.x[:n_sites] > 0.5).astype(np.int64)
    # Re-count the covered population from the chosen sites rather than trusting the LP's y values.
    covered = problem.covered.copy()
    chosen = problem.cell_matrix()[selected]
    covered[sparse.csr_array(chosen).indices] = True
    covered_pop = float(problem.population[covered].sum())
    total = problem.population_total
    before = float(problem.population[problem.covered].sum())
    bound = getattr(res, "mip_dual_bound", None)
    upper = (
        covered_pop if bound is None or not np.isfinite(bound) else max(covered_pop, before - float(bound))
    )
    return MCLPResult(
        selected=selected,
        site_ids=tuple(problem.site_ids[i] for i in selected),
        covered_population=covered_pop,
        share=covered_pop / total if total > 0 else 0.0,
        optimal=res.status == 0,
        upper_bound=covered_pop if res.status == 0 else upper,
        mip_gap=float(getattr(res, "mip_gap", 0.0) or 0.0),
        seconds=time.perf_counter() - started,
        n_demand_rows=n_rows,
        n_cells=n_cells,
    )
