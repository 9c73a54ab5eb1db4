"""Greedy placement (plain and CELF) and the exact MCLP yardstick on seeded synthetic instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from zhongdu.coverage._mclp import collapse_demand, solve_mclp
from zhongdu.coverage._placement import PlacementError, PlacementProblem, greedy, site_matrix
from zhongdu.errors import ZhongduError

from ._placement_fixtures import random_problem


def _ids(result) -> list[str]:
    return [p.station_id for p in result.picks]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("costs", [False, True])
def test_lazy_and_plain_greedy_pick_the_same_sites(seed: int, costs: bool) -> None:
    problem = random_problem(seed, costs=costs, integer_population=seed % 2 == 0)
    for kwargs in (
        {"budget": 8},
        {"target": 0.8},
        {"max_cost": 9.0},
        {"budget": 6, "district_min": {"D2": 0.7}},
    ):
        lazy = greedy(problem, lazy=True, **kwargs)
        plain = greedy(problem, lazy=False, **kwargs)
        assert _ids(lazy) == _ids(plain), kwargs
        assert [p.gain for p in lazy.picks] == [p.gain for p in plain.picks]
        assert lazy.picks, "the instance must be non-trivial"


def test_ties_break_by_file_order() -> None:
    # Three identical sites: every run must take the first one listed.
    reach = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=bool)
    problem = PlacementProblem(
        site_ids=("b", "a", "c"),
        sites=sparse.csr_array(reach),
        population=np.array([10.0, 5.0, 1.0]),
        covered=np.zeros(3, dtype=bool),
        district_index=np.zeros(3, dtype=np.int32),
        districts=("D",),
        cost=np.ones(3),
        kind=("x",) * 3,
    )
    for lazy in (True, False):
        result = greedy(problem, budget=3, lazy=lazy)
        assert _ids(result) == ["b"]  # the others add nothing, so the greedy stops
        assert result.picks[0].gain == 15.0


@pytest.mark.parametrize("seed", range(12))
def test_greedy_is_at_least_one_minus_one_over_e_of_the_optimum(seed: int) -> None:
    problem = random_problem(seed, n_cells=150, n_sites=14, radius=0.2)
    before = float(problem.population[problem.covered].sum())
    for p in (1, 2, 3, 5):
        exact = solve_mclp(problem, p)
        assert exact.optimal
        assert len(exact.selected) <= p
        result = greedy(problem, budget=p)
        greedy_gain = result.covered_after - before
        exact_gain = exact.covered_population - before
        assert greedy_gain >= (1 - 1 / math.e) * exact_gain - 1e-6
        assert result.covered_after <= exact.covered_population + 1e-6  # the exact one really is optimal


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_greedy_within_two_percent_on_realistic_instances(seed: int) -> None:
    problem = random_problem(seed, n_cells=4000, n_sites=200, n_existing=20, radius=0.07, n_districts=8)
    for p in (5, 15, 30):
        exact = solve_mclp(problem, p, time_limit=120)
        result = greedy(problem, budget=p)
        assert result.covered_after >= 0.98 * exact.covered_population
        assert result.covered_after <= exact.covered_population + 1e-6


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # spopt builds PuLP variables the pre-4.0 way
def test_exact_solver_agrees_with_spopt_mclp() -> None:
    pulp = pytest.importorskip("pulp")
    from spopt.locate import MCLP

    problem = random_problem(7, n_cells=60, n_sites=10, n_existing=0, radius=0.25)
    dense = problem.sites.toarray().T  # cells x sites
    cost = np.where(dense, 0.0, 2.0)
    for p in (1, 2, 4):
        model = MCLP.from_cost_matrix(cost, problem.population, service_radius=1.0, p_facilities=p)
        model.solve(pulp.HiGHS(msg=False))
        chosen = np.array([bool(v.value() and v.value() > 0.5) for v in model.fac_vars])
        spopt_cover = float(problem.population[dense[:, chosen].any(axis=1)].sum())
        ours = solve_mclp(problem, p)
        assert ours.covered_population == pytest.approx(spopt_cover, rel=1e-9)


def test_collapse_merges_cells_with_the_same_covering_sites() -> None:
    reach = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 0]], dtype=bool)
    problem = PlacementProblem(
        site_ids=("a", "b"),
        sites=sparse.csr_array(reach),
        population=np.array([1.0, 2.0, 4.0, 8.0, 16.0]),
        covered=np.array([False, False, False, False, False]),
        district_index=np.zeros(5, dtype=np.int32),
        districts=("D",),
        cost=np.ones(2),
        kind=("x", "x"),
    )
    rows, weights, n_cells = collapse_demand(problem)
    assert n_cells == 4  # cell 4 has no covering site
    groups = {tuple(np.flatnonzero(r).tolist()): w for r, w in zip(rows.toarray(), weights, strict=True)}
    assert groups == {(0,): 1.0, (0, 1): 10.0, (1,): 4.0}
    assert solve_mclp(problem, 1).site_ids == ("b",)  # 14 > 11


def test_target_already_met_returns_no_picks() -> None:
    problem = random_problem(3, n_existing=60)
    share = float(problem.population[problem.covered].sum() / problem.population.sum())
    assert share > 0.5
    result = greedy(problem, target=share - 0.01)
    assert result.picks == []
    assert result.target_reached
    assert result.share_after == result.share_before == pytest.approx(share)


def test_infeasible_target_reports_the_best_reachable_share() -> None:
    problem = random_problem(4, radius=0.06)
    reach = problem.covered.copy()
    reach[problem.sites.indices] = True
    best = float(problem.population[reach].sum() / problem.population.sum())
    assert best < 0.99
    result = greedy(problem, target=0.99)
    assert not result.target_reached
    assert not result.target_feasible
    assert result.best_reachable_share == pytest.approx(best)
    assert result.share_after == pytest.approx(best)  # without a budget it gets there
    d = result.to_dict()
    assert d["target_feasible"] is False and d["best_reachable_share"] == pytest.approx(best)
    # With a budget too small, the target is feasible in principle but not reached.
    small = greedy(problem, target=best - 0.01, budget=2)
    assert small.target_feasible and not small.target_reached and len(small.picks) == 2


@pytest.mark.parametrize("seed", range(4))
def test_budget_and_max_cost_are_respected(seed: int) -> None:
    problem = random_problem(seed, costs=True)
    for budget in (0, 1, 4):
        assert len(greedy(problem, budget=budget).picks) <= budget
    for max_cost in (0.5, 3.0, 7.0, 12.5):
        result = greedy(problem, max_cost=max_cost)
        assert result.total_cost <= max_cost + 1e-9
        assert all(p.cost <= max_cost for p in result.picks)
    both = greedy(problem, budget=2, max_cost=100.0)
    assert len(both.picks) == 2


def test_unit_cost_greedy_rescues_the_cost_benefit_trap() -> None:
    # Site a: cost 1, covers 2 people (ratio 2). Site b: cost 10, covers 10 people (ratio 1).
    # With 10 to spend, cost-benefit takes a and can no longer afford b; unit cost takes b.
    reach = np.array([[1, 0], [0, 1]], dtype=bool)
    problem = PlacementProblem(
        site_ids=("a", "b"),
        sites=sparse.csr_array(reach),
        population=np.array([2.0, 10.0]),
        covered=np.zeros(2, dtype=bool),
        district_index=np.zeros(2, dtype=np.int32),
        districts=("D",),
        cost=np.array([1.0, 10.0]),
        kind=("x", "x"),
    )
    result = greedy(problem, max_cost=10.0)
    assert _ids(result) == ["b"] and result.strategy == "unit_cost"
    assert _ids(greedy(problem, max_cost=10.0, strategy="cost_benefit")) == ["a"]
    assert solve_mclp(problem, 2, max_cost=10.0).site_ids == ("b",)
    # With a target, the cheapest way there is cost-benefit's business.
    assert _ids(greedy(problem, target=1.0)) == ["a", "b"]


def test_district_minima_are_met_first() -> None:
    problem = random_problem(11, n_cells=600, n_sites=40, n_districts=4)
    free = greedy(problem, budget=3)
    low = min(free.districts_after, key=lambda d: free.districts_after[d])
    want = min(1.0, free.districts_after[low] + 0.2)
    result = greedy(problem, target=0.9, district_min={low: want})
    assert result.district_min_met == {low: True}
    assert result.districts_after[low] >= want
    phases = [p.phase for p in result.picks]
    assert phases[0] == "district_min" and "city" in phases
    assert phases == sorted(phases, key=lambda ph: ph != "district_min")  # all district picks first
    # The district's share after the last district pick meets the minimum; before it, it did not.
    last = max(i for i, ph in enumerate(phases) if ph == "district_min")
    assert result.picks[last].district_shares[low] >= want - 1e-12
    if last:
        assert result.picks[last - 1].district_shares[low] < want
    impossible = greedy(problem, budget=5, district_min={low: 1.0})
    if impossible.districts_after[low] < 1.0:
        assert impossible.district_min_met == {low: False} and not impossible.target_reached


def test_bad_inputs_raise_clear_errors() -> None:
    problem = random_problem(0)
    with pytest.raises(PlacementError, match="target share, a budget"):
        greedy(problem)
    with pytest.raises(PlacementError, match=r"in \[0, 1\]"):
        greedy(problem, target=95)
    with pytest.raises(PlacementError, match="unknown district"):
        greedy(problem, budget=1, district_min={"西屯區": 0.9})
    with pytest.raises(ValueError, match="positive"):  # also a ValueError
        PlacementProblem(
            site_ids=("a",),
            sites=sparse.csr_array(np.ones((1, 2), dtype=bool)),
            population=np.ones(2),
            covered=np.zeros(2, dtype=bool),
            district_index=np.zeros(2, dtype=np.int32),
            districts=("D",),
            cost=np.array([0.0]),
            kind=("x",),
        )
    assert issubclass(PlacementError, ZhongduError)


def test_site_matrix_unions_sectors_in_file_order() -> None:
    sectors = sparse.csr_array(np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=bool))
    ids, site_of_row, sites = site_matrix(sectors, np.array(["z", "a", "z", "a"]))
    assert ids == ("z", "a")
    assert site_of_row.tolist() == [0, 1, 0, 1]
    assert sites.toarray().tolist() == [[True, True, False, False], [False, False, True, True]]


def test_to_dict_has_the_cli_keys() -> None:
    d = greedy(random_problem(1), budget=3).to_dict()
    assert {"share_before", "share_after", "target_reached", "picks"} <= set(d)
    assert all({"station_id", "gain", "share"} <= set(p) for p in d["picks"])
    assert d["picks"][-1]["share"] == d["share_after"]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_sites=st.integers(1, 40),
    radius=st.floats(0.03, 0.3),
    costs=st.booleans(),
    budget=st.integers(1, 15),
)
def test_gains_never_increase_and_share_never_decreases(
    seed: int, n_sites: int, radius: float, costs: bool, budget: int
) -> None:
    problem = random_problem(seed, n_cells=200, n_sites=n_sites, radius=radius, costs=costs)
    result = greedy(problem, budget=budget)
    ratios = [p.gain / p.cost for p in result.picks]
    assert all(b <= a * (1 + 1e-9) + 1e-9 for a, b in itertools.pairwise(ratios))
    shares = [result.share_before, *(p.share for p in result.picks)]
    assert all(b >= a for a, b in itertools.pairwise(shares))
    assert all(p.gain > 0 for p in result.picks)
    assert 0.0 <= result.share_after <= result.best_reachable_share + 1e-12 <= 1.0 + 1e-12
    assert result.covered_after == pytest.approx(result.covered_before + sum(p.gain for p in result.picks))


@pytest.mark.parametrize("seed", range(8))
def test_greedy_matches_a_naive_dense_reference(seed: int) -> None:
    # Small reach leaves empty site rows, including at the end (a reduceat edge case once wrong).
    problem = random_problem(seed, n_cells=200, n_sites=30, radius=0.045, integer_population=True)
    reach = problem.sites.toarray()
    covered = problem.covered.copy()
    order = []
    for _ in range(10):
        gains = (reach & ~covered) @ problem.population  # integer populations: exact sums
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        order.append(problem.site_ids[best])
        covered |= reach[best]
    for lazy in (True, False):
        assert _ids(greedy(problem, budget=10, lazy=lazy)) == order


def test_exact_upper_bound_brackets_the_optimum() -> None:
    problem = random_problem(21, n_cells=1500, n_sites=80, radius=0.12)
    exact = solve_mclp(problem, 6)
    assert exact.optimal and exact.upper_bound == exact.covered_population
    rushed = solve_mclp(problem, 6, time_limit=0.05)
    assert rushed.covered_population <= exact.covered_population + 1e-6
    assert rushed.upper_bound >= exact.covered_population - 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(("date", "picks"), [("2014-06-30", 15), ("2014-12-31", 10)])
def test_greedy_within_two_percent_on_taichung(date: str, picks: int) -> None:
    # The shipped grid, a seeded layout of the regulator's counts, lattice candidates, the disk model.
    from zhongdu.coverage import build_problem, generate_candidates, generate_layout, load_default_grid

    grid = load_default_grid()
    existing = generate_layout(grid, date=date)
    candidates = generate_candidates(grid, existing, model="disk", resolution=8, limit=300)
    problem = build_problem(grid, existing, candidates, model="disk")
    result = greedy(problem, budget=picks)
    exact = solve_mclp(problem, picks, time_limit=60)
    # Against HiGHS's proven bound, so the check holds even if the time limit stops it.
    assert result.covered_after >= 0.98 * exact.upper_bound
    assert result.covered_after <= exact.upper_bound + 1e-6
    assert len(result.picks) == picks


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    costs=st.booleans(),
    budget=st.none() | st.integers(0, 12),
    max_cost=st.none() | st.floats(0.0, 30.0),
    target=st.none() | st.floats(0.0, 1.0),
    minimum=st.none() | st.tuples(st.integers(0, 3), st.floats(0.0, 1.0)),
)
def test_lazy_equals_plain_for_any_goal(
    seed: int,
    costs: bool,
    budget: int | None,
    max_cost: float | None,
    target: float | None,
    minimum: tuple[int, float] | None,
) -> None:
    problem = random_problem(seed, n_cells=200, n_sites=25, costs=costs)
    if budget is None and max_cost is None and target is None:
        budget = 5
    minima = {f"D{minimum[0]}": minimum[1]} if minimum else None
    kwargs = {"budget": budget, "max_cost": max_cost, "target": target, "district_min": minima}
    lazy = greedy(problem, lazy=True, **kwargs)
    plain = greedy(problem, lazy=False, **kwargs)
    assert _ids(lazy) == _ids(plain)
    assert lazy.to_dict() == plain.to_dict()
    if budget is not None:
        assert len(lazy.picks) <= budget
    if max_cost is not None:
        assert lazy.total_cost <= max_cost + 1e-9
    if target is not None and lazy.target_feasible and budget is None and max_cost is None and not minima:
        assert lazy.target_reached
