"""Getis-Ord Gi* hotspots on the H3 grid, vectorised: sparse k-ring weights, one matrix product.

Cases are counted per cell of resolution 8-10 (parents of their stored resolution-10 cell, by bit
arithmetic on the H3 index), over a fixed study area: the cells of the population grid. The
statistic uses binary weights over the cell's grid disk of radius k *including the cell itself*
(Gi*, Getis & Ord 1992; Ord & Getis 1995). The normal approximation of Gi* fails on sparse counts
(a few cases over 24,000 cells make every pair of neighbouring cases "significant"), so each cell's
p-value is the larger of Gi*'s two-sided normal p-value and an exact one: the neighbourhood's case
count against its Binomial distribution when the window's cases fall at random (uniformly over the
city's area for counts, in proportion to residents for rates). The p-values are then corrected for the
number of cells tested with the Benjamini-Hochberg false-discovery rate.

Rates per resident are smoothed with global empirical Bayes (Marshall 1991) before testing, so a
cell with 3 residents and 2 cases does not top the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse, stats

Measure = Literal["count", "rate"]
RESOLUTIONS = (8, 9, 10)
MAX_K = 3
RATE_PER = 1000.0  # rates are cases per 1,000 residents over the window

_RES_SHIFT = 52
_RES_MASK = np.int64(0xF << _RES_SHIFT)


def parent_cells(cells: NDArray[np.int64], res: int) -> NDArray[np.int64]:
    """The resolution-`res` parents of finer H3 cells (as int64), without a call per cell.

    An H3 index stores its resolution in bits 52-55 and one 3-bit digit per resolution 1-15;
    digits finer than the resolution are all 7. The parent is the same index with the resolution
    field lowered and the finer digits set to 7.
    """
    if not 0 <= res <= 15:
        raise ValueError(f"resolution must be 0-15, got {res}")
    unused = np.int64((1 << ((15 - res) * 3)) - 1)
    return (cells & ~_RES_MASK) | np.int64(res << _RES_SHIFT) | unused


@dataclass(frozen=True)
class StudyArea:
    """The cells tested at one resolution, their residents and their k-ring weights."""

    res: int
    k: int
    cells: NDArray[np.int64]  # sorted
    population: NDArray[np.float64]
    extent: NDArray[np.float64]  # resolution-10 grid cells inside each cell (its area in the city)
    weights: sparse.csr_matrix  # binary, self included
    row_sums: NDArray[np.float64] = field(repr=False)

    def index_of(self, cells: NDArray[np.int64]) -> NDArray[np.intp]:
        """Position of each cell in the study area, -1 for a cell outside it."""
        pos = np.searchsorted(self.cells, cells)
        pos = np.minimum(pos, len(self.cells) - 1)
        return np.where(self.cells[pos] == cells, pos, -1)


def kring_weights(cells: NDArray[np.int64], k: int) -> sparse.csr_matrix:
    """Binary weights: 1 where two study-area cells are at grid distance <= k (diagonal included).

    grid_disk is asked once per cell; a study area is built once per (resolution, k) and cached,
    so hotspot requests never loop over cells.
    """
    from h3.api import basic_int as h3

    rows: list[NDArray[np.intp]] = []
    cols: list[NDArray[np.int64]] = []
    for i, cell in enumerate(cells.tolist()):
        disk = np.fromiter(h3.grid_disk(cell, k), dtype=np.int64) if k else np.array([cell], np.int64)
        cols.append(disk)
        rows.append(np.full(len(disk), i, dtype=np.intp))
    flat_rows = np.concatenate(rows)
    flat_cols = np.concatenate(cols)
    pos = np.minimum(np.searchsorted(cells, flat_cols), len(cells) - 1)
    inside = cells[pos] == flat_cols
    n = len(cells)
    data = np.ones(int(inside.sum()), dtype=np.float64)
    return sparse.csr_matrix((data, (flat_rows[inside], pos[inside])), shape=(n, n))


def study_area(cells: NDArray[np.int64], population: NDArray[np.float64], res: int, k: int) -> StudyArea:
    """Aggregate a resolution-10 population grid to `res` and weigh it with k-rings."""
    if res not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {res}")
    if not 0 <= k <= MAX_K:
        raise ValueError(f"k must be 0-{MAX_K}, got {k}")
    parents = parent_cells(cells, res)
    unique, inverse = np.unique(parents, return_inverse=True)
    pop = np.bincount(inverse, weights=population, minlength=len(unique)).astype(np.float64)
    extent = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    weights = kring_weights(unique, k)
    return StudyArea(res, k, unique, pop, extent, weights, np.asarray(weights.sum(axis=1)).ravel())


@lru_cache(maxsize=8)
def default_study_area(res: int, k: int) -> StudyArea:
    """The shipped population grid's study area (cached per process)."""
    from zhongdu.coverage import load_default_grid

    grid = load_default_grid(10)
    cells = np.asarray(grid.cells).astype(np.int64)  # H3 indexes use 63 bits: int64 holds them
    return study_area(cells, np.asarray(grid.population, dtype=np.float64), res, k)


def gi_star(weights: sparse.csr_matrix, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gi* z-scores of `x` (one column per series when 2-D), binary weights with self included.

    z_i = (sum_j w_ij x_j - mean * W_i) / (s * sqrt((n S1_i - W_i^2) / (n - 1))), with s the
    population standard deviation; for binary weights S1_i = W_i. A constant series gives 0.
    """
    n = x.shape[0]
    w = np.asarray(weights.sum(axis=1)).ravel()
    lag = weights @ x
    mean = x.mean(axis=0)
    s = np.sqrt(np.maximum((x * x).mean(axis=0) - mean * mean, 0.0))
    spread = np.sqrt(np.maximum(n * w - w * w, 0.0) / (n - 1))
    if x.ndim == 2:
        num = lag - np.outer(w, mean)
        den = np.outer(spread, s)
    else:
        num = lag - w * mean
        den = spread * s
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(den > 0, num / den, 0.0)
    return np.asarray(z, dtype=np.float64)


def exact_pvalues(
    weights: sparse.csr_matrix, counts: NDArray[np.float64], shares: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Two-sided p-values of each neighbourhood's case count, Binomial(total, neighbourhood share).

    `shares` is each cell's probability of receiving a case under the null (summing to 1);
    2-D `counts` (cells x steps) are tested per column.
    """
    neighbourhood = weights @ counts
    share = np.clip(weights @ shares, 0.0, 1.0)
    total = counts.sum(axis=0)
    if counts.ndim == 2:
        share = share[:, None]
    upper = stats.binom.sf(neighbourhood - 1, total, share)
    lower = stats.binom.cdf(neighbourhood, total, share)
    return np.asarray(np.minimum(1.0, 2.0 * np.minimum(upper, lower)), dtype=np.float64)


def fdr_qvalues(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values) of the p-values themselves."""
    n = len(p)
    if n == 0:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(n, dtype=np.float64)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def eb_rates(cases: NDArray[np.float64], population: NDArray[np.float64]) -> NDArray[np.float64]:
    """Global empirical-Bayes smoothed rates (cases per resident), Marshall's moment estimator.

    Each raw rate is pulled towards the overall rate by C_i = A / (A + m / P_i): fully for an
    empty cell, hardly for a populous one. A (the between-cell variance) is floored at 0.
    """
    pop = np.asarray(population, dtype=np.float64)
    total_pop = pop.sum()
    if total_pop <= 0:
        raise ValueError("the study area has no residents")
    m = cases.sum() / total_pop
    if m == 0:
        return np.zeros(len(pop), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(pop > 0, cases / pop, m)
    a = max(float((pop * (raw - m) ** 2).sum() / total_pop - m / pop.mean()), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(pop > 0, a / (a + m / pop), 0.0)
    return np.asarray(m + shrink * (raw - m), dtype=np.float64)


@dataclass(frozen=True)
class Hotspots:
    """One Gi* run: every tested cell, in study-area order."""

    res: int
    k: int
    measure: Measure
    alpha: float
    cells: NDArray[np.int64]
    counts: NDArray[np.float64]
    neighbourhood: NDArray[np.float64]  # cases in the cell's k-ring, itself included (what Gi* sums)
    population: NDArray[np.float64]
    rate: NDArray[np.float64]  # EB-smoothed, per RATE_PER residents
    raw_rate: NDArray[np.float64]
    z: NDArray[np.float64]
    p_normal: NDArray[np.float64]  # Gi*'s normal approximation, two-sided
    p_exact: NDArray[np.float64]  # the neighbourhood count's Binomial test, two-sided
    p: NDArray[np.float64]  # the larger of the two
    q: NDArray[np.float64]
    cases: int  # cases inside the study area
    outside: int  # cases in cells outside it (not tested)

    @property
    def significant(self) -> NDArray[np.bool_]:
        return np.asarray(self.q <= self.alpha)

    @property
    def hot(self) -> NDArray[np.bool_]:
        return self.significant & (self.z > 0)

    @property
    def cold(self) -> NDArray[np.bool_]:
        return self.significant & (self.z < 0)

    def method(self) -> dict[str, object]:
        return {
            "statistic": "Getis-Ord Gi* (binary weights, self included, normal approximation)",
            "neighbourhood": f"H3 grid disk k={self.k} (cells within grid distance {self.k})",
            "resolution": self.res,
            "measure": self.measure,
            "values": "cases per cell"
            if self.measure == "count"
            else f"empirical-Bayes smoothed cases per {RATE_PER:g} residents",
            "multiple_testing": f"Benjamini-Hochberg false discovery rate, q <= {self.alpha}",
            "p_values": "two-sided; the larger of Gi*'s normal approximation and the exact Binomial test "
            "of the neighbourhood's cases under random allocation"
            + (
                " (uniform over the city's area)"
                if self.measure == "count"
                else " (in proportion to residents)"
            ),
            "cells_tested": len(self.cells),
        }


def hotspots(
    area: StudyArea,
    cells: NDArray[np.int64],
    *,
    counts: NDArray[np.int64] | None = None,
    measure: Measure = "count",
    alpha: float = 0.05,
) -> Hotspots:
    """Gi* of the cases over `area`, FDR-corrected at `alpha`.

    `cells` holds one resolution-10 cell per case, or (with `counts`) cells at the area's
    resolution or finer with their case counts, as the database aggregates them.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    idx = area.index_of(parent_cells(np.asarray(cells, dtype=np.int64), area.res))
    inside = idx >= 0
    per = np.ones(len(idx)) if counts is None else np.asarray(counts, dtype=np.float64)
    tally = np.bincount(idx[inside], weights=per[inside], minlength=len(area.cells)).astype(np.float64)
    per_resident = eb_rates(tally, area.population)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(area.population > 0, tally / area.population, np.nan) * RATE_PER
    if measure == "count":
        tested = np.ones(len(area.cells), dtype=bool)
        values = tally
        weights = area.weights
        # a cell on the city's edge is partly outside it: its share is the part inside
        shares = area.extent / area.extent.sum()
    elif measure == "rate":
        # a rate needs residents: cells without any are left out of the test, not set to zero
        tested = area.population > 0
        values = per_resident[tested] * RATE_PER
        weights = area.weights[tested][:, tested]
        shares = area.population[tested] / area.population[tested].sum()
    else:
        raise ValueError(f"measure must be count or rate, got {measure!r}")
    z_tested = gi_star(weights, values)
    p_normal = 2.0 * stats.norm.sf(np.abs(z_tested))
    p_exact = exact_pvalues(weights, tally[tested], shares)
    p_tested = np.maximum(p_normal, p_exact)
    q_tested = fdr_qvalues(p_tested)
    sel = np.flatnonzero(tested)
    return Hotspots(
        res=area.res,
        k=area.k,
        measure=measure,
        alpha=alpha,
        cells=area.cells[sel],
        counts=tally[sel],
        neighbourhood=np.asarray(weights @ tally[tested], dtype=np.float64),
        population=area.population[sel],
        rate=per_resident[sel] * RATE_PER,
        raw_rate=raw[sel],
        z=z_tested,
        p_normal=p_normal,
        p_exact=p_exact,
        p=p_tested,
        q=q_tested,
        cases=int(per[inside].sum()),
        outside=int(per[~inside].sum()),
    )


def new_significant_hotspots(before: Hotspots, after: Hotspots) -> NDArray[np.int64]:
    """Cells that are significant hot spots in `after` but were not in `before` (same grid)."""
    if (before.res, before.k, before.measure) != (after.res, after.k, after.measure):
        raise ValueError("compare hotspot runs of the same resolution, k and measure")
    was = before.cells[before.hot]
    now = after.cells[after.hot]
    return np.setdiff1d(now, was)
