"""Placement for a subscriber's view: covered by one operator, or by every major operator."""

from __future__ import annotations

import numpy as np
import pytest

from zhongdu.coverage import Stations, compute_coverage
from zhongdu.coverage._placement import PlacementError, plan

from ._api_fixtures import CENTRE, small_city


def _candidate() -> Stations:
    return Stations.from_columns(
        station_id=["cand-centre"], sector_id=["0"], lon=[CENTRE[1]], lat=[CENTRE[0]], radius_m=[900.0]
    )


def test_every_major_counts_cells_each_major_operator_covers() -> None:
    grid, stations = small_city()
    ops = np.asarray(stations.extra["operator"])
    each = [
        np.asarray(compute_coverage(grid, stations.take(ops == code), model="disk").covered, dtype=bool)
        for code in ("CHT", "TWM", "FET")
    ]
    all_three = each[0] & each[1] & each[2]
    any_op = each[0] | each[1] | each[2]
    population = np.asarray(grid.population)
    total = population.sum()

    result = plan(grid, stations, _candidate(), model="disk", budget=1, operator="every_major")
    assert result.share_before == pytest.approx(population[all_three].sum() / total)
    site = np.asarray(compute_coverage(grid, _candidate(), model="disk").covered, dtype=bool)
    # the new site carries all three majors: its reach joins the cells each of them already covers
    assert result.share_after == pytest.approx(population[all_three | site].sum() / total)

    anyone = plan(grid, stations, _candidate(), model="disk", budget=1)
    assert anyone.share_before == pytest.approx(population[any_op].sum() / total)
    assert result.share_before < anyone.share_before

    cht = plan(grid, stations, _candidate(), model="disk", budget=1, operator="CHT")
    assert cht.share_before == pytest.approx(population[each[0]].sum() / total)


def test_an_operator_the_layout_does_not_have_is_refused() -> None:
    grid, stations = small_city()
    bare = Stations.from_columns(
        station_id=["a"], sector_id=["0"], lon=[CENTRE[1]], lat=[CENTRE[0]], radius_m=[900.0]
    )
    with pytest.raises(PlacementError, match="operator"):
        plan(grid, bare, _candidate(), model="disk", budget=1, operator="every_major")
    assert len(stations) == 3


def test_plan_cli_takes_the_operator() -> None:
    from zhongdu.cli import build_parser

    args = build_parser("plan").parse_args(
        ["plan", "--stations", "s.csv", "--candidates", "c.csv", "--criterion", "indoor",
         "--operator", "every_major", "--target", "0.9"]
    )
    assert (args.criterion, args.operator, args.target) == ("indoor", "every_major", 0.9)


def test_candidates_follow_the_operator_view() -> None:
    from zhongdu.coverage._candidates import generate_candidates

    grid, stations = small_city()
    anyone = generate_candidates(grid, stations, model="disk", resolution=8)
    every = generate_candidates(grid, stations, model="disk", resolution=8, operator="every_major")
    # the cells west and east cover are not covered by all three majors: they become candidates too
    assert len(set(every.station_id.tolist())) > len(set(anyone.station_id.tolist()))
