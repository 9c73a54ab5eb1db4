"""The coverage engine against an independent brute force, its invariants, incremental what-if and live mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from zhongdu.coverage import (
    CoverageEngine,
    CoverageError,
    Stations,
    StationsError,
    StationStatus,
    compute_coverage,
    coverage_matrix,
    live_coverage,
    snapshot_record,
)
from zhongdu.errors import ZhongduError

from ._coverage_fixtures import brute_distance_bearing, brute_rsrp, random_stations, small_grid

GRID = small_grid(0)  # ~2,400 res-9 cells around Taichung, mixed environments
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _replace_up(st: Stations, up: np.ndarray) -> Stations:
    rows = st.take(np.arange(len(st)))
    object.__setattr__(rows, "up", np.asarray(up, dtype=bool).copy())
    return rows


def _brute_disk(st: Stations) -> np.ndarray:
    d, _ = brute_distance_bearing(GRID, st)
    return ((d <= st.radius_m[None, :]) & st.up[None, :]).any(axis=1)


@pytest.mark.parametrize("seed", range(6))
def test_disk_equals_brute_force(seed: int) -> None:
    st = random_stations(GRID, seed, 40)
    res = compute_coverage(GRID, st, model="disk", per_cell=True)
    covered = _brute_disk(st)
    assert res.covered is not None
    np.testing.assert_array_equal(res.covered, covered)
    assert res.population_covered == pytest.approx(float(GRID.population[covered].sum()), rel=1e-12)
    # without per-cell output the witness search gives the same set
    fast = compute_coverage(GRID, st, model="disk")
    assert fast.to_dict() == res.to_dict()
    assert fast.covered is not None and fast.serving_row is None
    np.testing.assert_array_equal(fast.covered, covered)


@pytest.mark.parametrize("seed", range(6))
def test_hata_equals_brute_force_best_server(seed: int) -> None:
    st = random_stations(GRID, 100 + seed, 40)
    rsrp = np.where(st.up[None, :], brute_rsrp(GRID, st), -np.inf)
    best = rsrp.max(axis=1)
    covered = best >= -110.0
    res = compute_coverage(GRID, st, model="hata", per_cell=True)
    assert res.covered is not None and res.best_rsrp_dbm is not None and res.serving_row is not None
    np.testing.assert_array_equal(res.covered, covered)
    np.testing.assert_allclose(res.best_rsrp_dbm[covered], best[covered], atol=1e-7)
    assert np.isnan(res.best_rsrp_dbm[~covered]).all()
    np.testing.assert_array_equal(res.serving_row[covered], rsrp.argmax(axis=1)[covered])
    assert (res.serving_row[~covered] == -1).all()
    fast = compute_coverage(GRID, st, model="hata")
    assert fast.to_dict() == res.to_dict()
    assert fast.covered is not None
    np.testing.assert_array_equal(fast.covered, covered)


def test_district_totals_and_json_shape() -> None:
    st = random_stations(GRID, 7, 30)
    res = compute_coverage(GRID, st, model="hata")
    doc = res.to_dict()
    assert list(doc) == ["population_total", "population_covered", "share", "districts"]
    assert [d["district"] for d in doc["districts"]] == sorted(GRID.districts)
    assert set(doc["districts"][0]) == {"district", "population", "covered", "share"}
    assert sum(d["population"] for d in doc["districts"]) == pytest.approx(doc["population_total"])
    assert sum(d["covered"] for d in doc["districts"]) == pytest.approx(doc["population_covered"])
    assert doc["population_total"] == pytest.approx(float(GRID.population.sum()))


def test_coverage_matrix_ignores_status() -> None:
    st = random_stations(GRID, 11, 25, p_up=0.5)
    rsrp = brute_rsrp(GRID, st)
    m = coverage_matrix(GRID, st, model="hata").toarray()
    np.testing.assert_array_equal(m, (rsrp >= -110.0).T)
    d, _ = brute_distance_bearing(GRID, st)
    np.testing.assert_array_equal(coverage_matrix(GRID, st, model="disk").toarray(), (d <= st.radius_m).T)


def test_down_sectors_never_serve() -> None:
    st = random_stations(GRID, 5, 30)
    res = compute_coverage(GRID, st, model="hata", per_cell=True)
    assert res.serving_row is not None
    served = res.serving_row[res.serving_row >= 0]
    assert st.up[served].all()
    none_up = compute_coverage(GRID, _replace_up(st, np.zeros(len(st), bool)), model="hata")
    assert none_up.population_covered == 0.0 and none_up.share == 0.0


@PROPS
@given(seed=hs.integers(0, 10_000), m=hs.integers(0, 25), model=hs.sampled_from(["disk", "hata"]))
def test_share_in_unit_interval_and_row_order_free(seed: int, m: int, model: str) -> None:
    st = random_stations(GRID, seed, m)
    res = compute_coverage(GRID, st, model=model)  # type: ignore[arg-type]
    assert 0.0 <= res.share <= 1.0
    assert all(0.0 <= d.share <= 1.0 for d in res.districts)
    perm = np.random.default_rng(seed).permutation(m)
    shuffled = compute_coverage(GRID, st.take(perm), model=model, per_cell=True)  # type: ignore[arg-type]
    assert shuffled.to_dict() == res.to_dict()
    full = compute_coverage(GRID, st, model=model, per_cell=True)  # type: ignore[arg-type]
    assert full.serving_row is not None and shuffled.serving_row is not None
    # the same sector serves each cell whatever the row order (ties broken by station/sector id)
    has = full.serving_row >= 0
    np.testing.assert_array_equal(perm[shuffled.serving_row[has]], full.serving_row[has])


@PROPS
@given(seed=hs.integers(0, 10_000), model=hs.sampled_from(["disk", "hata"]))
def test_adding_an_up_sector_never_lowers_coverage(seed: int, model: str) -> None:
    st = random_stations(GRID, seed, 12)
    extra = random_stations(GRID, seed + 1, 1, p_up=1.0)
    before = compute_coverage(GRID, st, model=model)  # type: ignore[arg-type]
    after = compute_coverage(GRID, Stations.concat([st, extra]), model=model)  # type: ignore[arg-type]
    assert after.population_covered >= before.population_covered
    for b, a in zip(before.districts, after.districts, strict=True):
        assert a.covered >= b.covered


@pytest.mark.parametrize("model", ["disk", "hata"])
def test_incremental_engine_equals_full_recompute(model: str) -> None:
    rng = np.random.default_rng(42)
    st = random_stations(GRID, 9, 45)
    engine = CoverageEngine(GRID, st, model=model)  # type: ignore[arg-type]
    assert engine.result().to_dict() == compute_coverage(GRID, st, model=model).to_dict()  # type: ignore[arg-type]
    table = st
    up = st.up.copy()
    for step in range(40):
        action = rng.random()
        if action < 0.15:
            new = random_stations(GRID, 1000 + step, int(rng.integers(1, 4)))
            new = Stations.from_columns(
                station_id=np.char.add(f"N{step}-", new.station_id),
                sector_id=new.sector_id,
                lon=new.lon,
                lat=new.lat,
                height_m=new.height_m,
                eirp_dbm=new.eirp_dbm,
                frequency_mhz=new.frequency_mhz,
                bandwidth_mhz=new.bandwidth_mhz,
                azimuth_deg=new.azimuth_deg,
                beamwidth_deg=new.beamwidth_deg,
                up=new.up,
                radius_m=new.radius_m,
            )
            got = engine.add_sectors(new)
            table = Stations.concat([table, new])
            up = np.concatenate([up, new.up])
        elif action < 0.3:
            sid = str(rng.choice(table.station_id))
            flag = bool(rng.random() < 0.5)
            got = engine.set_station_up(sid, flag)
            up[table.station_id == sid] = flag
        else:
            row = int(rng.integers(len(table)))
            flag = bool(rng.random() < 0.5)
            got = engine.set_sector_up(row, flag)
            up[row] = flag
        want = compute_coverage(GRID, _replace_up(table, up), model=model)  # type: ignore[arg-type]
        assert got.to_dict() == want.to_dict(), step
        assert got.stations_serving == want.stations_serving
        assert got.covered is not None and want.covered is not None
        np.testing.assert_array_equal(got.covered, want.covered)
    np.testing.assert_array_equal(engine.up, up)
    full = compute_coverage(GRID, _replace_up(table, up), model=model, per_cell=True)  # type: ignore[arg-type]
    mine = engine.result(per_cell=True)
    assert mine.serving_row is not None and full.serving_row is not None
    np.testing.assert_array_equal(mine.serving_row, full.serving_row)


def test_engine_rejects_unknown_station_and_row() -> None:
    engine = CoverageEngine(GRID, random_stations(GRID, 1, 6))
    with pytest.raises(CoverageError, match="unknown station_id 'nope'"):
        engine.set_station_up("nope", False)
    with pytest.raises(ValueError, match="outside"):
        engine.set_sector_up(99, False)


def test_bad_arguments_are_clear() -> None:
    st = random_stations(GRID, 1, 3)
    with pytest.raises(CoverageError, match="unknown model 'cost231'"):
        compute_coverage(GRID, st, model="cost231")  # type: ignore[arg-type]
    with pytest.raises(CoverageError, match="threshold"):
        compute_coverage(GRID, st, threshold_dbm=float("nan"))
    no_radius = Stations.from_columns(station_id=["a"], lon=[120.65], lat=[24.16])
    with pytest.raises(StationsError, match="radius_m"):
        compute_coverage(GRID, no_radius, model="disk")
    with pytest.raises(ZhongduError):
        Stations.from_columns(station_id=["a"], lon=[120.65], lat=[95.0])


def _live_fixture() -> tuple[CoverageEngine, Stations]:
    st = random_stations(GRID, 21, 30, p_up=1.0)
    return CoverageEngine(GRID, st, model="hata"), st


def test_live_coverage_status_and_silence_timeout() -> None:
    engine, st = _live_fixture()
    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    ids = sorted(set(st.station_id.tolist()))
    statuses = {
        ids[0]: StationStatus("down", now - timedelta(seconds=5)),
        ids[1]: StationStatus("degraded", now - timedelta(seconds=5)),  # serves
        ids[2]: StationStatus("up", now - timedelta(seconds=301)),  # silent too long
        ids[3]: StationStatus("up", now - timedelta(seconds=299)),
        "not-in-layout": StationStatus("up", now),
    }
    res = live_coverage(engine, statuses, now=now, silence_timeout_s=300.0)
    serving = np.ones(len(st), dtype=bool)  # stations without status: layout flag (all up here)
    serving[st.station_id == ids[0]] = False
    serving[st.station_id == ids[2]] = False
    want = compute_coverage(GRID, _replace_up(st, serving), model="hata")
    assert res.to_dict() == want.to_dict()
    assert res.stations_serving == len(ids) - 2
    # a longer timeout brings the silent station back; statuses can also be cleared
    res2 = live_coverage(engine, statuses, now=now, silence_timeout_s=400.0)
    serving[st.station_id == ids[2]] = True
    assert res2.to_dict() == compute_coverage(GRID, _replace_up(st, serving), model="hata").to_dict()
    assert live_coverage(engine, {}, now=now).to_dict() == compute_coverage(GRID, st, model="hata").to_dict()


def test_live_coverage_needs_aware_times() -> None:
    engine, _ = _live_fixture()
    with pytest.raises(CoverageError, match="timezone"):
        live_coverage(engine, {}, now=datetime(2026, 1, 1))
    with pytest.raises(CoverageError, match="status 'flaky'"):
        StationStatus("flaky", datetime(2026, 1, 1, tzinfo=UTC))


def test_snapshot_record_matches_table_columns() -> None:
    engine, _ = _live_fixture()
    t = datetime(2026, 11, 26, tzinfo=UTC)
    rec = snapshot_record(engine.result(), time=t, model="hata", trigger="manual")
    assert list(rec) == [
        "time",
        "model",
        "trigger",
        "population_total",
        "population_covered",
        "share",
        "stations_serving",
        "districts",
    ]
    assert rec["time"] == t and rec["trigger"] == "manual"
    assert rec["stations_serving"] == 10
    assert 0.0 <= rec["share"] <= 1.0
    assert {d["district"] for d in rec["districts"]} == set(GRID.districts)


def test_added_sector_can_take_over_cells_it_was_added_for() -> None:
    """Cells losing their witness find one among sectors added after the engine indexed its sites."""
    lat, lng = GRID.latlng_deg()
    c = len(GRID) // 2
    base = Stations.from_columns(station_id=["A"], lon=[lng[c]], lat=[lat[c]], radius_m=400.0)
    engine = CoverageEngine(GRID, base, model="disk")
    before = engine.set_sector_up(0, False)
    assert before.population_covered == 0.0
    engine.set_sector_up(0, True)
    added = Stations.from_columns(station_id=["B"], lon=[lng[c] + 0.0005], lat=[lat[c]], radius_m=400.0)
    engine.add_sectors(added)
    got = engine.set_station_up("A", False)  # few cells lose A: the cell-centric search must see B
    want = compute_coverage(
        GRID, _replace_up(Stations.concat([base, added]), np.array([False, True])), model="disk"
    )
    assert got.to_dict() == want.to_dict()
    assert got.population_covered > 0.0
    assert engine.rows_of_station("B").tolist() == [1]
    assert got.stations_serving == 1


@pytest.mark.parametrize("threshold", [-390.9, -250.0, -600.0])
def test_huge_reach_is_capped_at_the_antipode(threshold: float) -> None:
    """A threshold so low that the reach exceeds half the Earth still covers every cell."""
    lat, lng = GRID.latlng_deg()
    st = Stations.from_columns(station_id=["a"], lon=[lng[0]], lat=[lat[0]])
    assert compute_coverage(GRID, st, threshold_dbm=threshold).share == 1.0
    assert compute_coverage(GRID, st, threshold_dbm=threshold, per_cell=True).share == 1.0


@pytest.mark.slow
def test_shipped_grid_disk_equals_brute_force_and_hata_is_consistent() -> None:
    """On the shipped resolution-10 Taichung grid: disk against brute force, hata fast vs per-cell path."""
    from zhongdu.coverage import generate_layout, load_default_grid

    grid = load_default_grid()
    layout = generate_layout(grid, date="2015-12-31")
    rows = np.random.default_rng(7).choice(len(layout), 60, replace=False)
    st = layout.take(rows)
    lat, lng = grid.latlng_deg()
    p1, l1 = np.radians(st.lat)[None, :], np.radians(st.lon)[None, :]
    p2, l2 = np.radians(lat)[:, None], np.radians(lng)[:, None]
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    d = 2 * 6_371_008.8 * np.arctan2(np.sqrt(a), np.sqrt(1 - a))
    covered = (d <= st.radius_m[None, :]).any(axis=1)
    disk = compute_coverage(grid, st, model="disk")
    assert disk.covered is not None
    np.testing.assert_array_equal(disk.covered, covered)
    fast = compute_coverage(grid, layout, model="hata")
    full = compute_coverage(grid, layout.take(np.arange(0, len(layout), 7)), model="hata", per_cell=True)
    sparse_fast = compute_coverage(grid, layout.take(np.arange(0, len(layout), 7)), model="hata")
    assert sparse_fast.to_dict() == full.to_dict()
    assert 0.0 < full.share <= fast.share <= 1.0
    assert fast.population_total == pytest.approx(float(grid.population.sum()))


@pytest.mark.parametrize("model", ["hata", "disk"])
def test_per_cell_detail_on_a_sub_grid_equals_the_whole(model: str) -> None:
    """The API computes per-cell detail for a district alone: it must match the city run."""
    grid = small_grid(7, rings=2)
    stations = random_stations(grid, 7, 25)
    whole = compute_coverage(grid, stations, model=model, per_cell=True)  # type: ignore[arg-type]
    rows = np.flatnonzero(np.random.default_rng(7).random(len(grid)) < 0.3)
    part = compute_coverage(grid.take(rows), stations, model=model, per_cell=True)  # type: ignore[arg-type]
    assert whole.covered is not None and part.covered is not None
    np.testing.assert_array_equal(part.covered, whole.covered[rows])
    assert whole.best_rsrp_dbm is not None and part.best_rsrp_dbm is not None
    np.testing.assert_allclose(part.best_rsrp_dbm, whole.best_rsrp_dbm[rows], equal_nan=True)
    assert part.population_total == pytest.approx(grid.population[rows].sum())


@pytest.mark.parametrize("per_cell", [True, False], ids=["per-cell", "witness"])
def test_a_cell_exactly_at_the_threshold_is_covered(per_cell: bool) -> None:
    """RSRP >= threshold covers: the boundary belongs to the covered side (both search paths)."""
    st = random_stations(GRID, 7, 3)
    low = compute_coverage(GRID, st, model="hata", threshold_dbm=-140.0, per_cell=True)
    assert low.best_rsrp_dbm is not None and low.covered is not None
    rsrp = low.best_rsrp_dbm
    # the weakest covered cells: the edge, where the pre-filter by reach is tightest too
    for cell in np.argsort(np.where(np.isnan(rsrp), np.inf, rsrp))[:3]:
        exact = float(rsrp[cell])
        at = compute_coverage(GRID, st, model="hata", threshold_dbm=exact, per_cell=per_cell)
        above = compute_coverage(
            GRID, st, model="hata", threshold_dbm=float(np.nextafter(exact, np.inf)), per_cell=per_cell
        )
        assert at.covered is not None and above.covered is not None
        assert at.covered[cell], f"cell {cell} at exactly {exact!r} dBm must be covered"
        assert not above.covered[cell], f"cell {cell} one ulp below the threshold must not be"
