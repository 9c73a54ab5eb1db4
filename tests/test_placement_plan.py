"""`plan()` on real grids and station tables, the lattice candidate generator and `zhongdu plan` (subprocess)."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h3
import numpy as np
import pytest
from scipy import sparse

from zhongdu.coverage import (
    Grid,
    Stations,
    compute_coverage,
    load_stations,
    write_grid,
    write_stations,
)
from zhongdu.coverage._candidates import cell_to_parent, generate_candidates
from zhongdu.coverage._placement import PlacementError, PlacementProblem, build_problem, greedy, plan

CENTRE = (24.1630, 120.6480)  # Taichung City Hall, 西屯區
EARTH_R = 6_371_008.8


def _grid(seed: int = 5, k: int = 14) -> Grid:
    """Resolution-9 hexagon of cells around City Hall; west half 西屯區, east half 北屯區."""
    rng = np.random.default_rng(seed)
    centre = h3.latlng_to_cell(*CENTRE, 9)
    cells = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, k)), dtype=np.uint64)
    lng = np.array([h3.cell_to_latlng(h3.int_to_str(int(c)))[1] for c in cells])
    pop = rng.lognormal(4.0, 1.0, len(cells))
    pop[rng.random(len(cells)) < 0.1] = 0.0
    district = np.where(lng < CENTRE[1], "西屯區", "北屯區")
    return Grid.from_arrays(cells, pop, district)


def _stations(
    rng: np.random.Generator,
    prefix: str,
    n: int,
    *,
    sectors: int = 1,
    up_share: float = 1.0,
    radius: float = 700.0,
    cost: bool = False,
) -> Stations:
    lat = CENTRE[0] + rng.uniform(-0.03, 0.03, n)
    lon = CENTRE[1] + rng.uniform(-0.03, 0.03, n)
    extra = {}
    if cost:
        extra = {
            "cost": np.repeat(np.rint(rng.uniform(1, 4, n)), sectors),
            "kind": np.repeat(rng.choice(["public_building", "public_land"], n), sectors),
        }
    # Sectors of one site sit a few hundred metres apart here so that their union matters.
    return Stations.from_columns(
        station_id=np.repeat([f"{prefix}{i}" for i in range(n)], sectors),
        sector_id=np.tile(np.arange(sectors).astype(str), n),
        lon=np.repeat(lon, sectors) + np.tile(np.arange(sectors) * 0.004, n),
        lat=np.repeat(lat, sectors),
        radius_m=np.repeat(radius * rng.uniform(0.6, 1.4, n), sectors),
        up=rng.random(n * sectors) < up_share,
        extra=extra,
    )


def _haversine_reach(grid: Grid, st: Stations) -> np.ndarray:
    lat, lng = np.radians(grid.latlng_deg()[0]), np.radians(grid.latlng_deg()[1])
    slat, slng = np.radians(st.lat)[:, None], np.radians(st.lon)[:, None]
    a = np.sin((lat - slat) / 2) ** 2 + np.cos(slat) * np.cos(lat) * np.sin((lng - slng) / 2) ** 2
    dist = 2 * EARTH_R * np.arcsin(np.sqrt(a))
    return dist <= st.radius_m[:, None]


def test_plan_matches_an_independent_disk_problem() -> None:
    rng = np.random.default_rng(1)
    grid = _grid()
    existing = _stations(rng, "E", 6, up_share=0.6)
    candidates = _stations(rng, "C", 25, sectors=2, cost=True)
    result = plan(grid, existing, candidates, model="disk", budget=6)

    reach_e = _haversine_reach(grid, existing)
    covered = reach_e[existing.up].any(axis=0)
    reach_c = _haversine_reach(grid, candidates)
    sites = reach_c.reshape(25, 2, -1).any(axis=1)  # union of each site's two sectors
    manual = PlacementProblem(
        site_ids=tuple(f"C{i}" for i in range(25)),
        sites=sparse.csr_array(sites),
        population=grid.population,
        covered=covered,
        district_index=grid.district_index,
        districts=grid.districts,
        cost=candidates.extra["cost"][::2].astype(float),
        kind=tuple(candidates.extra["kind"][::2].tolist()),
    )
    expected = greedy(manual, budget=6)
    assert [p.station_id for p in result.picks] == [p.station_id for p in expected.picks]
    assert result.share_before == pytest.approx(expected.share_before)
    assert result.share_after == pytest.approx(expected.share_after)
    assert result.share_before == pytest.approx(compute_coverage(grid, existing, model="disk").share)
    assert len(result.picks) == 6 and {p.kind for p in result.picks} <= {"public_building", "public_land"}


def test_existing_coverage_counts_only_up_rows_under_hata() -> None:
    rng = np.random.default_rng(2)
    grid = _grid()
    existing = _stations(rng, "E", 5, sectors=3, up_share=0.5)
    candidates = _stations(rng, "C", 10, sectors=3)
    problem = build_problem(grid, existing, candidates, model="hata", threshold_dbm=-100.0)
    per_cell = compute_coverage(grid, existing, model="hata", threshold_dbm=-100.0, per_cell=True)
    assert per_cell.covered is not None
    # the populated cells as the engine covers them; empty ones are not searched (left False)
    populated = grid.population > 0
    assert 0 < per_cell.covered[populated].sum() < populated.sum()
    assert np.array_equal(problem.covered[populated], per_cell.covered[populated])
    assert not problem.covered[~populated].any()
    result = plan(grid, existing, candidates, model="hata", threshold_dbm=-100.0, target=0.999)
    # Adding every picked site through the engine reproduces the greedy's final share.
    picked = np.isin(candidates.station_id, [p.station_id for p in result.picks])
    both = Stations.concat([existing, candidates.take(picked)])
    assert compute_coverage(grid, both, model="hata", threshold_dbm=-100.0).share == pytest.approx(
        result.share_after
    )


def test_plan_rejects_clashing_ids_and_missing_goal() -> None:
    rng = np.random.default_rng(3)
    grid = _grid()
    existing = _stations(rng, "S", 3)
    with pytest.raises(PlacementError, match="already used"):
        plan(grid, existing, _stations(rng, "S", 3), model="disk", budget=1)
    with pytest.raises(PlacementError, match="budget"):
        plan(grid, existing, _stations(rng, "C", 3), model="disk")


def test_sector_rows_of_one_site_must_agree_on_cost() -> None:
    rng = np.random.default_rng(4)
    grid = _grid()
    cand = _stations(rng, "C", 2, sectors=2, cost=True)
    cost = cand.extra["cost"].copy()
    cost[1] += 1.0
    # the two rows of C0 disagree on the cost
    bad = dataclasses.replace(cand, extra={"cost": cost, "kind": cand.extra["kind"]})
    with pytest.raises(PlacementError, match=r"C0.*cost"):
        plan(grid, _stations(rng, "E", 1), bad, model="disk", budget=1)


def test_generated_candidates_sit_on_the_lattice_over_uncovered_people() -> None:
    rng = np.random.default_rng(6)
    grid = _grid()
    existing = _stations(rng, "E", 4, radius=900.0)
    cands = generate_candidates(grid, existing, model="disk", resolution=7, min_population=50.0)
    ids = np.unique(cands.station_id)
    assert len(cands) == 3 * len(ids)
    assert set(cands.extra["kind"].tolist()) == {"public_land"} and set(cands.extra["cost"].tolist()) == {1.0}
    assert sorted(set(cands.azimuth_deg.tolist())) == [0.0, 120.0, 240.0]
    covered = build_problem(grid, existing, cands, model="disk").covered
    parents = cell_to_parent(grid.cells, 7)
    for sid in ids.tolist():
        res, hexid = sid[1:].split("-")
        assert res == "7"
        inside = parents == np.uint64(int(hexid, 16))
        assert grid.population[inside & ~covered].sum() >= 50.0
        lat, lng = h3.cell_to_latlng(hexid)
        row = np.flatnonzero(cands.station_id == sid)[0]
        assert (cands.lat[row], cands.lon[row]) == pytest.approx((lat, lng))
    # The uncovered population column orders the sites, largest first.
    first_rows = cands.extra["uncovered_population"][::3]
    assert np.all(np.diff(first_rows) <= 0)
    limited = generate_candidates(grid, existing, model="disk", resolution=8, limit=5)
    assert len(np.unique(limited.station_id)) == 5
    with pytest.raises(PlacementError, match="coarser"):
        generate_candidates(grid, existing, model="disk", resolution=9)


def _zhongdu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_plan_json_has_the_design_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    grid = _grid()
    existing = _stations(rng, "E", 5)
    write_grid(grid, tmp_path / "grid.csv")
    write_stations(existing, tmp_path / "stations.csv")
    out = _zhongdu(
        "plan",
        "candidates",
        "--grid",
        str(tmp_path / "grid.csv"),
        "--stations",
        str(tmp_path / "stations.csv"),
        "--model",
        "disk",
        "--resolution",
        "8",
        "--out",
        str(tmp_path / "cand.csv"),
    )
    assert out.returncode == 0, out.stderr
    candidates = load_stations(tmp_path / "cand.csv")
    common = [
        "--grid",
        str(tmp_path / "grid.csv"),
        "--stations",
        str(tmp_path / "stations.csv"),
        "--candidates",
        str(tmp_path / "cand.csv"),
        "--model",
        "disk",
    ]
    out = _zhongdu("plan", *common, "--budget", "4", "--district-min", "北屯區=0.5", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert list(got)[:4] == ["share_before", "share_after", "target_reached", "picks"]
    assert all(list(p)[:3] == ["station_id", "gain", "share"] for p in got["picks"])
    expected = plan(
        grid, existing, candidates, model="disk", budget=4, district_min={"北屯區": 0.5}
    ).to_dict()
    assert got == json.loads(json.dumps(expected))
    assert len(got["picks"]) == 4 and got["picks"][-1]["share"] == got["share_after"]

    # progress on stderr, one line per step, stdout the JSON alone; -q silences it
    steps = [line.split("] ", 1)[1].split(":")[0] for line in out.stderr.splitlines()]
    assert steps == ["grid", "stations", "existing network", "site matrix", "greedy"], out.stderr

    # the cells each pick brings in: exactly the populated cells the picks add to the coverage
    cells_csv = tmp_path / "cells.csv"
    out = _zhongdu("plan", *common, "--budget", "4", "--json", "-q", "--cells-out", str(cells_csv))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    with cells_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["pick"]) for r in rows} == {1, 2, 3, 4}
    for i, pick in enumerate(got["picks"], 1):
        mine = [r for r in rows if int(r["pick"]) == i]
        assert {r["station_id"] for r in mine} == {pick["station_id"]}
        assert sum(float(r["population"]) for r in mine) == pytest.approx(pick["gain"], rel=1e-9)
    index = {f"{int(c):x}": i for i, c in enumerate(grid.cells.tolist())}
    listed = np.zeros(len(grid), dtype=bool)
    listed[[index[r["h3"]] for r in rows]] = True
    assert len(rows) == listed.sum()  # each cell once
    picked = candidates.take(np.isin(candidates.station_id, [p["station_id"] for p in got["picks"]]))
    before = compute_coverage(grid, existing, model="disk").covered
    after = compute_coverage(grid, Stations.concat([existing, picked]), model="disk").covered
    assert before is not None and after is not None
    np.testing.assert_array_equal(listed, after & ~before & (grid.population > 0))
    assert all(r["district"] == grid.districts[grid.district_index[index[r["h3"]]]] for r in rows)

    out = _zhongdu("plan", *common, "--target", "0.2", "--json", "-q")
    got = json.loads(out.stdout)
    assert out.returncode == 0 and got["target_reached"] is (got["share_after"] >= 0.2)
    assert out.stderr == ""

    out = _zhongdu("plan", *common, "--json")
    assert out.returncode == 2 and "--target" in out.stderr
    out = _zhongdu("plan", *common, "--budget", "2", "--district-min", "nowhere", "--json")
    assert out.returncode == 2 and "DISTRICT=SHARE" in out.stderr
    out = _zhongdu("plan", *common, "--target", "0.9", "--budget", "2")
    assert out.returncode == 2  # argparse: mutually exclusive


def test_hata_plan_on_generated_candidates_reaches_a_feasible_target() -> None:
    # Lattice candidates sit exactly on cell centres (distance 0 to that cell): the model must cope.
    rng = np.random.default_rng(1)
    grid = _grid()
    existing = _stations(rng, "E", 3, sectors=3)
    cands = generate_candidates(grid, existing, model="hata", resolution=8)
    result = plan(grid, existing, cands, model="hata", target=0.99)
    assert result.target_feasible and result.target_reached
    assert result.share_before < 0.5 < 0.99 <= result.share_after
    assert len(result.picks) < len(np.unique(cands.station_id))  # it stops once the target is met
    assert result.to_dict()["picks"][0]["kind"] == "public_land"


@pytest.mark.slow
def test_cli_plan_defaults_to_the_shipped_taichung_grid(tmp_path: Path) -> None:
    from zhongdu.coverage import generate_layout, load_default_grid

    grid = load_default_grid()
    existing = generate_layout(grid, date="2014-06-30")
    cands = generate_candidates(grid, existing, model="disk", resolution=7, limit=40)
    write_stations(existing, tmp_path / "stations.csv")
    write_stations(cands, tmp_path / "cand.csv")
    out = _zhongdu(
        "plan",
        "--stations",
        str(tmp_path / "stations.csv"),
        "--candidates",
        str(tmp_path / "cand.csv"),
        "--model",
        "disk",
        "--budget",
        "5",
        "--district-min",
        "和平區=0.5",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    expected = plan(
        grid,
        existing,
        load_stations(tmp_path / "cand.csv"),
        model="disk",
        budget=5,
        district_min={"和平區": 0.5},
    )
    assert got == json.loads(json.dumps(expected.to_dict()))
    assert len(got["picks"]) == 5 and len(got["districts_after"]) == 29
    assert got["share_after"] > got["share_before"]
