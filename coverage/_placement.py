"""Scenario placement: the order in which candidate sites raise the covered population most.

A candidate SITE is every row of the candidates file sharing one `station_id`; the cells it covers are
the union of its sectors' cells (`coverage_matrix`, which ignores status: a candidate is assumed built
and switched on). Existing stations count only through their `up` rows.

The greedy maximises covered population, a monotone submodular function, so it keeps the classical
(1 − 1/e) guarantee under a site budget. Lazy evaluation (CELF, Leskovec et al. 2007) re-evaluates a
site only when its stale upper bound reaches the top of a heap, which is valid because marginal gains
only shrink as coverage grows.

Determinism: decisions use population quantised to integer units held in float64 (a power-of-two
scale keeps every partial sum below 2**52, where float addition of integers is exact), so plain and
lazy greedy compute bit-identical gains in any summation order and break ties the same way: the
highest gain (per unit cost when costs differ), then the lowest site index (file order). Reported
gains and shares use the unquantised populations.

Per-district minimum shares are met first (phase 1): the objective is Σ_d min(covered_d, required_d)
over districts with a minimum, itself monotone submodular, so CELF applies; it runs until every
minimum is met, no site helps any more, or the budget is spent. Phase 2 then maximises city-wide
covered population until the target is reached or the budget is spent. Picks record their phase.

With differing costs and a `max_cost`, the cost-benefit greedy alone can be arbitrarily bad (one
cheap site with a tiny gain can block an expensive one that covers everything), so, following
CELF's paper, the unit-cost greedy is run too and the one covering more population is returned.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from zhongdu.errors import ZhongduError

if TYPE_CHECKING:
    from zhongdu.coverage._types import Grid, Stations

__all__ = [
    "CellGroups",
    "PlacementError",
    "PlacementPick",
    "PlacementProblem",
    "PlacementResult",
    "build_problem",
    "greedy",
    "plan",
]

Model = Literal["disk", "hata"]
_SHARE_EPS = 1e-12  # shares are compared with this slack (float sums of populations)


class PlacementError(ZhongduError, ValueError):
    """The placement inputs are inconsistent (no budget, bad costs, unknown district, ...)."""


@dataclass(frozen=True)
class CellGroups:
    """Groups of cells (blocks) a site can cover whole: group g is `cells[start[g]:start[g + 1]]`.

    A site covering a whole block holds one column for it instead of one per cell, which keeps
    street-level matrices small (`_site_matrix`).
    """

    start: NDArray[np.int64] = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    cells: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n(self) -> int:
        return len(self.start) - 1

    def cells_of(self, groups: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        """The cells of the given groups, concatenated."""
        g = np.asarray(groups, dtype=np.int64)
        owner, k = _expand(self.start[g + 1] - self.start[g])
        out: NDArray[np.int64] = self.cells[self.start[g[owner]] + k]
        return out


def _expand(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For ranges of given lengths: owner index of each element and its offset inside its range."""
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner), dtype=np.int64) - starts[owner]


def expand_groups(sites: sparse.csr_array, groups: CellGroups, n_cells: int) -> sparse.csr_array:
    """A (rows, n_cells + groups.n) matrix as (rows, n_cells), each group column replaced by its
    cells; sorted indices, each cell once per row."""
    m = sparse.csr_array(sites)
    if groups.n == 0:
        return m
    cols = np.asarray(m.indices, dtype=np.int64)
    row = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    is_cell = cols < n_cells
    grp = cols[~is_cell] - n_cells
    sizes = np.ones(len(cols), dtype=np.int64)
    sizes[~is_cell] = groups.start[grp + 1] - groups.start[grp]
    owner = np.repeat(np.arange(len(cols), dtype=np.int64), sizes)
    cells = np.empty(len(owner), dtype=np.int64)
    cells[is_cell[owner]] = cols[is_cell]
    cells[~is_cell[owner]] = groups.cells_of(grp)
    out = sparse.csr_array(
        (np.ones(len(cells), dtype=bool), (row[owner], cells)), shape=(m.shape[0], n_cells)
    )
    out.sum_duplicates()
    return out


@dataclass(frozen=True)
class PlacementProblem:
    """Everything the greedy and the exact solver need, as arrays.

    `sites` is a boolean CSR array of shape (n_sites, n_cells + groups.n): row s holds the cells
    candidate site s would cover, a column n_cells + g standing for every cell of group g (a row
    never holds both a group and one of its cells). Cells covered already, or empty, may be left
    out: they never add to a gain. `covered` is the cells the existing `up` sectors already cover
    (`build_problem` searches the populated ones only: an empty cell is False, and weighs nothing).
    """

    site_ids: tuple[str, ...]
    sites: sparse.csr_array
    population: NDArray[np.float64]
    covered: NDArray[np.bool_]
    district_index: NDArray[np.int32]
    districts: tuple[str, ...]
    cost: NDArray[np.float64]
    kind: tuple[str, ...]
    groups: CellGroups = field(default_factory=CellGroups)

    def __post_init__(self) -> None:
        n_sites, n_cols = self.sites.shape
        n_cells = n_cols - self.groups.n
        if len(self.groups.cells) and (self.groups.cells.min() < 0 or self.groups.cells.max() >= n_cells):
            raise PlacementError("a cell group points outside the grid")
        if len(self.site_ids) != n_sites or len(self.cost) != n_sites or len(self.kind) != n_sites:
            raise PlacementError(
                f"{n_sites} site rows but {len(self.site_ids)} ids, {len(self.cost)} costs, "
                f"{len(self.kind)} kinds"
            )
        if len(self.population) != n_cells or len(self.covered) != n_cells:
            raise PlacementError(
                f"{n_cells} cell columns but {len(self.population)} populations and "
                f"{len(self.covered)} covered flags"
            )
        if len(self.district_index) != n_cells:
            raise PlacementError(f"{n_cells} cells but {len(self.district_index)} district indexes")
        if len(set(self.site_ids)) != n_sites:
            raise PlacementError("candidate site ids must be unique")
        if not np.all(np.isfinite(self.cost)) or np.any(self.cost <= 0):
            bad = [self.site_ids[i] for i in np.flatnonzero(~(np.isfinite(self.cost) & (self.cost > 0)))[:3]]
            raise PlacementError(f"candidate costs must be positive and finite; bad sites: {bad}")
        if not np.all(np.isfinite(self.population)) or np.any(self.population < 0):
            raise PlacementError("cell populations must be finite and non-negative")
        if n_cells and (self.district_index.min() < 0 or self.district_index.max() >= len(self.districts)):
            raise PlacementError("district_index points outside `districts`")

    @property
    def n_sites(self) -> int:
        return int(self.sites.shape[0])

    @property
    def population_total(self) -> float:
        return float(self.population.sum())

    @property
    def n_cells(self) -> int:
        return len(self.population)

    def best_reachable(self) -> NDArray[np.bool_]:
        """Cells covered when every candidate is built: the ceiling any plan can reach."""
        hit = np.zeros(self.sites.shape[1], dtype=bool)
        hit[self.sites.indices] = True
        reach = hit[: self.n_cells]
        reach[self.groups.cells_of(np.flatnonzero(hit[self.n_cells :]))] = True
        return reach | self.covered

    def cell_matrix(self) -> sparse.csr_array:
        """The (n_sites, n_cells) boolean matrix with every group expanded to its cells."""
        return expand_groups(self.sites, self.groups, self.n_cells)

    def take(self, sites: NDArray[np.integer[Any]] | slice) -> PlacementProblem:
        """The same problem with only some candidate sites (e.g. the exact solver's subsets)."""
        idx = np.arange(self.n_sites)[sites]
        return PlacementProblem(
            site_ids=tuple(self.site_ids[i] for i in idx.tolist()),
            sites=sparse.csr_array(self.sites[idx]),
            population=self.population,
            covered=self.covered,
            district_index=self.district_index,
            districts=self.districts,
            cost=self.cost[idx],
            kind=tuple(self.kind[i] for i in idx.tolist()),
            groups=self.groups,
        )


@dataclass(frozen=True)
class PlacementPick:
    station_id: str
    gain: float  # covered population the site adds
    share: float  # cumulative city share after it
    cost: float
    kind: str
    phase: Literal["district_min", "city"]
    district_shares: dict[str, float]  # cumulative share per district after it
    # the grid cells (indexes) the site newly covers: which blocks it brings in (not in the JSON)
    cells: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "gain": self.gain,
            "share": self.share,
            "cost": self.cost,
            "kind": self.kind,
            "phase": self.phase,
            "district_shares": self.district_shares,
        }


@dataclass(frozen=True)
class PlacementResult:
    """The ordered picks and what they achieve. `to_dict()` is the `zhongdu plan --json` object."""

    population_total: float
    covered_before: float
    covered_after: float
    target: float | None
    budget: int | None
    max_cost: float | None
    best_reachable_share: float  # with every candidate built
    picks: list[PlacementPick]
    districts_before: dict[str, float]
    districts_after: dict[str, float]
    district_min: dict[str, float] = field(default_factory=dict)
    strategy: str = "cost_benefit"

    @property
    def share_before(self) -> float:
        return _share(self.covered_before, self.population_total)

    @property
    def share_after(self) -> float:
        return _share(self.covered_after, self.population_total)

    @property
    def target_reached(self) -> bool:
        """True when the target share is met (trivially without a target) and every district minimum."""
        city = self.target is None or self.share_after >= self.target - _SHARE_EPS
        return city and all(self.district_min_met.values())

    @property
    def target_feasible(self) -> bool:
        """Could the target be met at all with every candidate built (ignoring the budget)?"""
        return self.target is None or self.best_reachable_share >= self.target - _SHARE_EPS

    @property
    def district_min_met(self) -> dict[str, bool]:
        return {d: self.districts_after[d] >= m - _SHARE_EPS for d, m in self.district_min.items()}

    @property
    def total_cost(self) -> float:
        return float(math.fsum(p.cost for p in self.picks))

    def to_dict(self) -> dict[str, Any]:
        return {
            "share_before": self.share_before,
            "share_after": self.share_after,
            "target_reached": self.target_reached,
            "picks": [p.to_dict() for p in self.picks],
            "target": self.target,
            "target_feasible": self.target_feasible,
            "best_reachable_share": self.best_reachable_share,
            "budget": self.budget,
            "max_cost": self.max_cost,
            "total_cost": self.total_cost,
            "strategy": self.strategy,
            "population_total": self.population_total,
            "covered_before": self.covered_before,
            "covered_after": self.covered_after,
            "districts_before": self.districts_before,
            "districts_after": self.districts_after,
            "district_min": self.district_min,
            "district_min_met": self.district_min_met,
        }


def _share(covered: float, total: float) -> float:
    """covered / total, at most 1: a subset summed in another order can exceed the total by an ulp."""
    return min(1.0, covered / total) if total > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Greedy core on arrays


def _scale_exponent(largest_sum: float) -> int:
    """Power-of-two scale keeping every integer partial sum below 2**52, where float64 adds exactly."""
    return 20 if largest_sum <= 0 else min(20, math.floor(52 - math.log2(largest_sum)) - 1)


@dataclass
class _State:
    """Mutable greedy state: site -> column CSR over the pairs that can still add people.

    Columns are cells, then groups of cells; a group's weight is the sum of its uncovered cells'.
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.integer[Any]]  # column ids
    weight: NDArray[np.float64]  # quantised population per column, 0 once covered (or empty)
    district: NDArray[np.int32]  # district of each column (a group lies in one district)
    exponent: int  # weight = rint(population * 2**exponent)
    n_cells: int
    groups: CellGroups
    group_of: NDArray[np.int64]  # per cell, its group or -1
    fresh: NDArray[np.float64] | None = None  # every site's gain, until the first cover

    def newly(self, columns: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        """The cells the columns would newly cover (each once)."""
        cols = np.asarray(columns, dtype=np.int64)
        cols = cols[self.weight[cols] > 0]
        cells = cols[cols < self.n_cells]
        if self.groups.n == 0:
            return cells
        inner = self.groups.cells_of(cols[cols >= self.n_cells] - self.n_cells)
        both = np.sort(np.concatenate([cells, inner[self.weight[inner] > 0]]))
        return both[np.append(True, both[1:] != both[:-1])] if len(both) else both

    def cover(self, cells: NDArray[np.int64]) -> None:
        """Zero the cells' weights and take them off their groups' weights (exact: integers)."""
        self.fresh = None
        w = self.weight[cells]
        self.weight[cells] = 0.0
        if self.groups.n:
            g = self.group_of[cells]
            inside = g >= 0
            self.weight[self.n_cells :] -= np.bincount(g[inside], weights=w[inside], minlength=self.groups.n)

    def site_cells(self, site: int) -> NDArray[np.integer[Any]]:
        return self.indices[self.indptr[site] : self.indptr[site + 1]]

    def gains_all(self) -> NDArray[np.float64]:
        if self.fresh is not None:  # nothing covered since `_prepare` summed them
            return self.fresh.copy()
        return _row_sums(self.weight[self.indices], self.indptr)

    def gain_one(self, site: int) -> float:
        return float(self.weight[self.site_cells(site)].sum())


def _row_sums(values: NDArray[np.float64], indptr: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sum of each CSR row's values, by `np.add.reduceat` over the non-empty rows only.

    Empty rows have zero length, so each non-empty row's segment ends where the next one starts.
    """
    out = np.zeros(len(indptr) - 1)
    nonempty = indptr[1:] > indptr[:-1]
    if nonempty.any():
        out[nonempty] = np.add.reduceat(values, indptr[:-1][nonempty])
    return out


def _prepare(problem: PlacementProblem) -> _State:
    """Weights with covered cells zeroed; pairs on such cells are dropped when they are the majority.

    Dropping costs a pass over every pair, so it only pays when it shrinks the arrays a lot.
    """
    keep = ~problem.covered & (problem.population > 0)
    pop = np.where(keep, problem.population, 0.0)
    # Every sum the greedy forms (one site, one district, the city) is at most the total population.
    exponent = _scale_exponent(float(problem.population.sum()))
    weight = np.rint(np.ldexp(pop, exponent))
    groups, n_cells = problem.groups, problem.n_cells
    district = problem.district_index
    group_of = np.full(n_cells if groups.n else 0, -1, dtype=np.int64)
    if groups.n:
        sizes = np.diff(groups.start)
        group_of[groups.cells] = np.repeat(np.arange(groups.n, dtype=np.int64), sizes)
        weight = np.concatenate([weight, _row_sums(weight[groups.cells], groups.start)])
        first = groups.cells[np.minimum(groups.start[:-1], max(len(groups.cells) - 1, 0))]
        district = np.concatenate([district, problem.district_index[first]]).astype(np.int32)
    m = problem.sites
    indptr = np.asarray(m.indptr, dtype=np.int64)
    indices = m.indices
    gathered = weight[indices]  # one gather serves the check and the first gains
    live = gathered > 0
    n_live = int(np.count_nonzero(live))
    if n_live < len(indices) // 2:
        positions = np.flatnonzero(live)
        indptr = np.searchsorted(positions, indptr).astype(np.int64)  # live pairs before each row
        indices = indices[positions]
        gathered = gathered[positions]
    fresh = _row_sums(gathered, indptr)
    del gathered, live
    return _State(
        indptr=indptr,
        indices=indices,
        weight=weight,
        district=district,
        exponent=exponent,
        n_cells=n_cells,
        groups=groups,
        group_of=group_of,
        fresh=fresh,
    )


def _select(
    n_sites: int,
    gains_all: Callable[[], NDArray[np.float64]],
    gain_one: Callable[[int], float],
    cost: NDArray[np.float64],
    alive: NDArray[np.bool_],
    *,
    lazy: bool,
    start_round: int,
) -> Callable[[int], int | None]:
    """A chooser of the next site among `alive` ones: plain (full re-evaluation) or CELF.

    The returned function takes the pick round and returns the best site or None when no alive site
    has a positive gain. The caller mutates `alive` (picked or unaffordable sites) between rounds.
    """
    if not lazy:

        def plain(_round: int) -> int | None:
            if not alive.any():
                return None
            ratio = gains_all() / cost
            ratio[~alive] = -np.inf
            best = int(np.argmax(ratio))  # first maximum: lowest index wins ties
            return best if ratio[best] > 0 else None

        return plain

    initial = gains_all() / cost
    heap = [(-float(initial[s]), s) for s in np.flatnonzero(alive & (initial > 0)).tolist()]
    heapq.heapify(heap)
    fresh_at = np.full(n_sites, start_round, dtype=np.int64)  # round at which each heap entry was computed

    def celf(round_: int) -> int | None:
        while heap:
            _, site = heap[0]
            if not alive[site]:
                heapq.heappop(heap)
                continue
            if fresh_at[site] == round_:
                heapq.heappop(heap)
                return site
            ratio = gain_one(site) / float(cost[site])
            fresh_at[site] = round_
            if ratio > 0:
                heapq.heapreplace(heap, (-ratio, site))
            else:  # gains never grow back: drop it for good
                heapq.heappop(heap)
        return None

    return celf


def greedy(
    problem: PlacementProblem,
    *,
    target: float | None = None,
    budget: int | None = None,
    max_cost: float | None = None,
    district_min: Mapping[str, float] | None = None,
    lazy: bool = True,
    strategy: Literal["auto", "cost_benefit", "unit_cost"] = "auto",
) -> PlacementResult:
    """Greedy placement (CELF when `lazy`); see the module docstring for the rules.

    At least one of `target` (share in [0, 1]), `budget` (number of sites) or `max_cost` must be given.
    """
    _check_limits(target, budget, max_cost)
    minima = _check_minima(problem, district_min)
    uniform = bool(np.all(problem.cost == problem.cost[0])) if problem.n_sites else True
    if strategy == "auto":
        if uniform:
            strategy = "cost_benefit"  # identical to unit cost when every site costs the same
        elif max_cost is not None and target is None:
            runs = [
                _greedy_run(problem, target, budget, max_cost, minima, lazy, s)
                for s in ("cost_benefit", "unit_cost")
            ]
            return max(runs, key=lambda r: (r.covered_after, r.strategy == "cost_benefit"))
        else:
            strategy = "cost_benefit"
    return _greedy_run(problem, target, budget, max_cost, minima, lazy, strategy)


def _check_limits(target: float | None, budget: int | None, max_cost: float | None) -> None:
    if target is None and budget is None and max_cost is None:
        raise PlacementError("give a target share, a budget (number of sites) or a max cost")
    if target is not None and not (0.0 <= target <= 1.0):
        raise PlacementError(f"target share must be in [0, 1], got {target}")
    if budget is not None and budget < 0:
        raise PlacementError(f"budget must be a non-negative number of sites, got {budget}")
    if max_cost is not None and not (max_cost >= 0 and math.isfinite(max_cost)):
        raise PlacementError(f"max cost must be finite and non-negative, got {max_cost}")


def _check_minima(problem: PlacementProblem, district_min: Mapping[str, float] | None) -> dict[str, float]:
    minima = dict(district_min or {})
    for name, share in minima.items():
        if name not in problem.districts:
            raise PlacementError(
                f"unknown district {name!r} in district minimum; known: {', '.join(problem.districts)}"
            )
        if not (0.0 <= share <= 1.0):
            raise PlacementError(f"district minimum for {name} must be in [0, 1], got {share}")
    return minima


def _greedy_run(
    problem: PlacementProblem,
    target: float | None,
    budget: int | None,
    max_cost: float | None,
    minima: dict[str, float],
    lazy: bool,
    strategy: str,
) -> PlacementResult:
    state = _prepare(problem)
    n_sites, n_districts = problem.n_sites, len(problem.districts)
    cost = problem.cost if strategy == "cost_benefit" else np.ones(n_sites)
    pop = problem.population
    total = float(pop.sum())
    covered_pop = float(pop[problem.covered].sum())
    district_total = _wsum(problem.district_index, weights=pop, minlength=n_districts)
    district_cov = _wsum(
        problem.district_index[problem.covered], weights=pop[problem.covered], minlength=n_districts
    )
    districts_before = _district_shares(problem.districts, district_cov, district_total)

    alive = np.ones(n_sites, dtype=bool)
    spent = 0.0
    picks: list[PlacementPick] = []
    round_ = 0

    def budget_left() -> bool:
        if budget is not None and len(picks) >= budget:
            return False
        if max_cost is not None:
            alive[problem.cost > max_cost - spent + 1e-9 * max(1.0, max_cost)] = False
        return bool(alive.any())

    def apply(site: int, phase: Literal["district_min", "city"]) -> None:
        nonlocal covered_pop, spent
        full = state.newly(state.site_cells(site))
        state.cover(full)
        gain = float(pop[full].sum())
        covered_pop += gain
        district_cov[:] += _wsum(problem.district_index[full], weights=pop[full], minlength=n_districts)
        spent += float(problem.cost[site])
        alive[site] = False
        picks.append(
            PlacementPick(
                station_id=problem.site_ids[site],
                gain=gain,
                share=_share(covered_pop, total),
                cost=float(problem.cost[site]),
                kind=problem.kind[site],
                phase=phase,
                district_shares=_district_shares(problem.districts, district_cov, district_total),
                cells=full,
            )
        )

    # Phase 1: district minima, objective Σ_d min(covered_d, required_d) in quantised units.
    if minima:
        qpop = np.rint(np.ldexp(pop, state.exponent))  # per cell, as the state's cell weights
        q_total = _wsum(problem.district_index, weights=qpop, minlength=n_districts)
        required = np.zeros(n_districts)
        for name, share in minima.items():
            d = problem.districts.index(name)
            required[d] = math.ceil(share * q_total[d] - 1e-9 * q_total[d])
        q_cov = _wsum(
            problem.district_index[problem.covered], weights=qpop[problem.covered], minlength=n_districts
        )
        deficit = np.maximum(required - q_cov, 0.0)
        rows = np.repeat(np.arange(n_sites), np.diff(state.indptr))

        def d_gains_all() -> NDArray[np.float64]:
            per = _wsum(
                rows * n_districts + state.district[state.indices],
                weights=state.weight[state.indices],
                minlength=n_sites * n_districts,
            ).reshape(n_sites, n_districts)
            out: NDArray[np.float64] = np.minimum(per, deficit).sum(axis=1)
            return out

        def d_gain_one(site: int) -> float:
            local = state.site_cells(site)
            per = _wsum(state.district[local], weights=state.weight[local], minlength=n_districts)
            return float(np.minimum(per, deficit).sum())

        if deficit.any() and budget_left():
            choose = _select(n_sites, d_gains_all, d_gain_one, cost, alive, lazy=lazy, start_round=round_)
            while deficit.any() and budget_left():
                site = choose(round_)
                if site is None:
                    break
                local = state.site_cells(site)
                newly = _wsum(state.district[local], weights=state.weight[local], minlength=n_districts)
                deficit[:] = np.maximum(deficit - newly, 0.0)
                apply(site, "district_min")
                round_ += 1

    # Phase 2: city-wide covered population.
    def city_done() -> bool:
        return target is not None and _share(covered_pop, total) >= target - _SHARE_EPS

    if not city_done() and budget_left():
        choose = _select(n_sites, state.gains_all, state.gain_one, cost, alive, lazy=lazy, start_round=round_)
        while not city_done() and budget_left():
            site = choose(round_)
            if site is None:
                break
            apply(site, "city")
            round_ += 1

    reach = problem.best_reachable()
    return PlacementResult(
        population_total=total,
        covered_before=float(pop[problem.covered].sum()),
        covered_after=covered_pop,
        target=target,
        budget=budget,
        max_cost=max_cost,
        best_reachable_share=_share(float(pop[reach].sum()), total),
        picks=picks,
        districts_before=districts_before,
        districts_after=_district_shares(problem.districts, district_cov, district_total),
        district_min=minima,
        strategy=strategy,
    )


def _wsum(
    index: NDArray[np.integer[Any]], weights: NDArray[np.float64], minlength: int
) -> NDArray[np.float64]:
    """Weighted bincount, typed as float (NumPy's stubs type every bincount as integer)."""
    return np.asarray(np.bincount(index, weights=weights, minlength=minlength), dtype=np.float64)


def _district_shares(
    names: Sequence[str], covered: NDArray[np.float64], total: NDArray[np.float64]
) -> dict[str, float]:
    shares = np.divide(covered, total, out=np.zeros_like(covered), where=total > 0)
    return dict(zip(names, shares.tolist(), strict=True))


# --------------------------------------------------------------------------------------------------
# From grid and station files to a problem


def site_index(station_id: NDArray[Any]) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """Site ids in order of first appearance and the site of each row."""
    ids = np.asarray(station_id).astype(str)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return tuple(uniq[order].tolist()), rank[inverse.reshape(-1)]


def site_matrix(
    sector_matrix: sparse.csr_array | sparse.csr_matrix, station_id: NDArray[np.str_]
) -> tuple[tuple[str, ...], NDArray[np.int64], sparse.csr_array]:
    """Union the sector rows of each station into one site row, sites in order of first appearance.

    Returns the site ids, the site of each sector row, and the boolean (n_sites, n_cells) CSR array.
    """
    site_ids, site_of_row = site_index(station_id)
    n_rows = len(site_of_row)
    group = sparse.csr_array(
        (np.ones(n_rows, dtype=np.int32), (site_of_row, np.arange(n_rows))), shape=(len(site_ids), n_rows)
    )
    counts = sparse.csr_array(group @ sparse.csr_array(sector_matrix, dtype=np.int32))
    counts.eliminate_zeros()
    counts.sort_indices()
    sites = sparse.csr_array(
        (np.ones(counts.nnz, dtype=bool), counts.indices, counts.indptr), shape=counts.shape
    )
    return site_ids, site_of_row, sites


def _site_values(
    values: NDArray[Any] | None, site_of_row: NDArray[np.int64], site_ids: Sequence[str], column: str
) -> NDArray[Any] | None:
    """One value per site from per-row values, refusing sites whose rows disagree."""
    if values is None:
        return None
    values = np.asarray(values)
    n_sites = len(site_ids)
    rows = np.arange(len(site_of_row))
    first = np.full(n_sites, len(rows), dtype=np.int64)
    np.minimum.at(first, site_of_row, rows)
    per_site = values[first]
    differs = values != per_site[site_of_row]
    if np.any(differs):
        bad = site_ids[int(site_of_row[np.flatnonzero(differs)[0]])]
        raise PlacementError(f"candidate {bad}: its sector rows have different {column!r} values")
    return per_site


def existing_covered(
    grid: Grid,
    stations: Stations,
    *,
    model: Literal["disk", "hata"],
    threshold_dbm: float,
    criterion: Literal["outdoor", "indoor"] = "outdoor",
    cells: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """Cells the existing `up` sectors cover: the engine's covered mask, which needs one covering
    sector per cell rather than every sector-cell pair (seconds instead of a minute and 3 GB
    for the 2022-11 layout at resolution 10). With `cells` (a mask), only those are searched
    (the engine's exact witness search on a subset) and the others come back False."""
    from zhongdu.coverage._engine import (
        _check_args,
        _geometry,
        _sectors,
        _sites,
        _witnesses,
        compute_coverage,
    )

    n_cells = len(grid.population)
    if not np.asarray(stations.up, dtype=bool).any():
        return np.zeros(n_cells, dtype=bool)
    if cells is None:
        result = compute_coverage(
            grid, stations, model=model, threshold_dbm=threshold_dbm, criterion=criterion
        )
        assert result.covered is not None
        return np.asarray(result.covered, dtype=bool)
    _check_args(grid, stations, model, threshold_dbm, criterion)
    geo = _geometry(grid)
    rows = np.flatnonzero(stations.up).astype(np.int64)
    sec = _sectors(geo, stations, rows, model, float(threshold_dbm), criterion == "indoor")
    which = np.flatnonzero(cells).astype(np.int64)
    wit = _witnesses(
        geo, sec, _sites(sec), model, float(threshold_dbm), which, np.ones(len(rows), dtype=bool)
    )
    out = np.zeros(n_cells, dtype=bool)
    out[which] = wit >= 0
    return out


def covered_by_operator(
    grid: Grid,
    stations: Stations,
    operator: str,
    *,
    model: Literal["disk", "hata"],
    threshold_dbm: float,
    criterion: Literal["outdoor", "indoor"],
) -> NDArray[np.bool_]:
    """Cells the existing sectors of one operator cover, or (`every_major`) that each of the major
    operators covers with its own sectors: a subscriber's view, whichever network one is on."""
    from zhongdu.coverage._by_operator import operator_mask
    from zhongdu.coverage._engine import CoverageError
    from zhongdu.coverage._operators import MAJOR_OPERATORS

    codes = MAJOR_OPERATORS if operator == "every_major" else (operator,)
    covered = np.ones(len(grid.population), dtype=bool)
    for code in codes:
        try:
            mask = operator_mask(stations, code)
        except (CoverageError, ValueError) as exc:
            raise PlacementError(str(exc)) from exc
        covered &= existing_covered(
            grid, stations.take(mask), model=model, threshold_dbm=threshold_dbm, criterion=criterion
        )
    return covered


def build_problem(
    grid: Grid,
    stations: Stations,
    candidates: Stations,
    *,
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    criterion: str = "outdoor",
    operator: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PlacementProblem:
    """Coverage of the existing `up` sectors and of every candidate site, from the engine's sparse reach.

    `criterion` `indoor` plans for indoor coverage (building loss counted); `capacity` is not
    additive over sites (a site's value depends on its neighbours' loads) and is refused.
    `operator` (a code, or `every_major`) counts a cell as covered only by that operator's
    sectors (each major operator's, for `every_major`); a new site then carries that operator
    (all three majors co-located, for `every_major`), so its reach adds to every one of them and
    the problem stays additive.
    """
    from zhongdu.coverage._site_matrix import site_coverage_matrix

    if criterion not in ("outdoor", "indoor"):
        raise PlacementError(
            f"placement plans for criterion outdoor or indoor, not {criterion!r} (capacity is not "
            "additive over sites: a site's value depends on its neighbours' loads)"
        )
    crit: Literal["outdoor", "indoor"] = "indoor" if criterion == "indoor" else "outdoor"

    if len(candidates) == 0:
        raise PlacementError("the candidates file has no rows")
    existing_ids = set(np.asarray(stations.station_id).astype(str).tolist())
    clash = sorted(existing_ids & set(np.asarray(candidates.station_id).astype(str).tolist()))
    if clash:
        raise PlacementError(
            f"candidate station_id(s) already used by existing stations: {', '.join(clash[:5])}; "
            "give candidates their own ids"
        )
    n_cells = len(grid.population)
    if operator is None or operator == "any":
        # only populated cells can weigh in a gain or a share: empty ones are left False
        covered = existing_covered(
            grid,
            stations,
            model=model,
            threshold_dbm=threshold_dbm,
            criterion=crit,
            cells=np.asarray(grid.population) > 0,
        )
    else:
        covered = covered_by_operator(
            grid, stations, operator, model=model, threshold_dbm=threshold_dbm, criterion=crit
        )
    assert len(covered) == n_cells
    say = progress or (lambda _message: None)
    # only cells the existing network misses, and with people, can add to a gain
    open_cells = ~covered & (np.asarray(grid.population) > 0)
    say(f"existing network: {int(open_cells.sum()):,} populated cells left uncovered")
    matrix = site_coverage_matrix(
        grid, candidates, model=model, threshold_dbm=threshold_dbm, criterion=crit, cells=open_cells
    )
    site_ids, site_of_row, sites = matrix.site_ids, matrix.site_of_row, matrix.sites
    whole = int(np.count_nonzero(sites.indices >= n_cells))
    say(f"site matrix: {len(site_ids):,} sites, {sites.nnz:,} columns ({whole:,} whole blocks)")
    extra = candidates.extra
    raw_cost = extra.get("cost")
    cost: NDArray[np.float64]
    if raw_cost is None:
        cost = np.ones(len(site_ids))
    else:
        try:
            numeric = np.asarray(raw_cost).astype(np.float64)
        except ValueError as exc:
            raise PlacementError(f"candidate `cost` must be numeric: {exc}") from exc
        per_site = _site_values(numeric, site_of_row, site_ids, "cost")
        assert per_site is not None
        cost = per_site.astype(np.float64)
    raw_kind = extra.get("kind")
    kinds = (
        ("",) * len(site_ids)
        if raw_kind is None
        else tuple(
            str(k)
            for k in _site_values(np.asarray(raw_kind).astype(str), site_of_row, site_ids, "kind")  # type: ignore[union-attr]
        )
    )
    return PlacementProblem(
        site_ids=site_ids,
        sites=sites,
        population=np.asarray(grid.population, dtype=np.float64),
        covered=covered,
        district_index=np.asarray(grid.district_index, dtype=np.int32),
        districts=tuple(grid.districts),
        cost=cost,
        kind=kinds,
        groups=matrix.groups,
    )


def plan(
    grid: Grid,
    stations: Stations,
    candidates: Stations,
    *,
    model: Model = "hata",
    threshold_dbm: float = -110.0,
    target: float | None = None,
    budget: int | None = None,
    max_cost: float | None = None,
    district_min: Mapping[str, float] | None = None,
    criterion: str = "outdoor",
    operator: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PlacementResult:
    """Which candidate sites, in which order, raise the covered population most (CELF greedy).

    `result.to_dict()` is exactly what `zhongdu plan --json` prints. `criterion`: outdoor or
    indoor (plan for people indoors: the building loss shrinks every site's reach). `progress`
    receives a line per step (the `zhongdu plan` progress on stderr).
    """
    _check_limits(target, budget, max_cost)
    problem = build_problem(
        grid,
        stations,
        candidates,
        model=model,
        threshold_dbm=threshold_dbm,
        criterion=criterion,
        operator=operator,
        progress=progress,
    )
    result = greedy(problem, target=target, budget=budget, max_cost=max_cost, district_min=district_min)
    if progress is not None:
        progress(
            f"greedy: {len(result.picks)} picks, share {result.share_before:.4%} -> {result.share_after:.4%}"
        )
    return result
