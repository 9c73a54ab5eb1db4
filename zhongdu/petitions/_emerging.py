"""Emerging hot spots: Gi* per month on every cell at once, then a Mann-Kendall trend per cell.

The labels follow the space-time pattern mining conventions (ESRI's Emerging Hot Spot Analysis),
on months: *new* (hot only in the last month), *intensifying* / *persistent* / *diminishing* (hot
in at least 90 % of months including the last, with a significant rising / no / falling trend of
the Gi* z-score), *sporadic* (hot in the last month and on and off before, under 90 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from zhongdu.petitions._hotspots import StudyArea, exact_pvalues, fdr_qvalues, gi_star, parent_cells

PATTERNS: tuple[str, ...] = ("new", "intensifying", "persistent", "diminishing", "sporadic")
PERSISTENT_SHARE = 0.9


def mann_kendall(series: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(z, two-sided p) of the Mann-Kendall trend test on each row of `series` (cells x steps).

    S sums sign(x_j - x_i) over all pairs i < j, one lag at a time across every row; its variance
    is n(n-1)(2n+5)/18 (no tie correction: Gi* z-scores rarely tie, and an all-equal row gives S=0).
    """
    n = series.shape[1]
    if n < 3:
        raise ValueError("a trend needs at least 3 time steps")
    s = np.zeros(series.shape[0], dtype=np.float64)
    for lag in range(1, n):
        s += np.sign(series[:, lag:] - series[:, :-lag]).sum(axis=1)
    var = n * (n - 1) * (2 * n + 5) / 18.0
    z = np.where(s > 0, (s - 1) / np.sqrt(var), np.where(s < 0, (s + 1) / np.sqrt(var), 0.0))
    return z, 2.0 * stats.norm.sf(np.abs(z))


@dataclass(frozen=True)
class Emerging:
    cells: NDArray[np.int64]  # cells with a pattern
    pattern: NDArray[np.str_]
    hot_steps: NDArray[np.int64]  # months in which the cell was a significant hot spot
    trend_z: NDArray[np.float64]
    trend_p: NDArray[np.float64]
    last_z: NDArray[np.float64]
    steps: int


def emerging_hotspots(
    area: StudyArea,
    case_cells10: NDArray[np.int64],
    case_steps: NDArray[np.int64],
    steps: int,
    *,
    counts: NDArray[np.int64] | None = None,
    alpha: float = 0.05,
) -> Emerging:
    """Label cells by their hot-spot history over `steps` time steps (case_steps in 0..steps-1).

    One entry per case, or (with `counts`) per cell and step with its number of cases.
    """
    if steps < 3:
        raise ValueError("emerging hot spots need at least 3 time steps (months)")
    idx = area.index_of(parent_cells(np.asarray(case_cells10, dtype=np.int64), area.res))
    keep = (idx >= 0) & (case_steps >= 0) & (case_steps < steps)
    n = len(area.cells)
    per = np.ones(len(idx)) if counts is None else np.asarray(counts, dtype=np.float64)
    flat = np.bincount(idx[keep] * steps + case_steps[keep], weights=per[keep], minlength=n * steps)
    matrix = flat.reshape(n, steps).astype(np.float64)
    z = gi_star(area.weights, matrix)  # every month in one sparse product
    p = np.maximum(
        2.0 * stats.norm.sf(np.abs(z)), exact_pvalues(area.weights, matrix, area.extent / area.extent.sum())
    )
    q = np.column_stack([fdr_qvalues(p[:, t]) for t in range(steps)])
    hot = (q <= alpha) & (z > 0)
    share = hot.mean(axis=1)
    last = hot[:, -1]
    before = hot[:, :-1].sum(axis=1)
    trend_z, trend_p = mann_kendall(z)
    rising = (trend_p <= alpha) & (trend_z > 0)
    falling = (trend_p <= alpha) & (trend_z < 0)
    mostly = last & (share >= PERSISTENT_SHARE)
    pattern = np.full(n, "", dtype=object)
    pattern[last & (before == 0)] = "new"
    pattern[mostly & ~rising & ~falling] = "persistent"
    pattern[mostly & rising] = "intensifying"
    pattern[mostly & falling] = "diminishing"
    pattern[last & (before > 0) & (share < PERSISTENT_SHARE)] = "sporadic"
    labelled = np.flatnonzero(pattern != "")
    return Emerging(
        cells=area.cells[labelled],
        pattern=pattern[labelled].astype(str),
        hot_steps=hot[labelled].sum(axis=1).astype(np.int64),
        trend_z=trend_z[labelled],
        trend_p=trend_p[labelled],
        last_z=z[labelled, -1],
        steps=steps,
    )
