"""The petition analyses on their own (no database): H3 parents, Gi* against PySAL's esda, the FDR
correction, EB rates, planted clusters found and uniform cases not, emerging hot spot labels."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import h3
import numpy as np
import pytest
from scipy import stats

from zhongdu.petitions._emerging import emerging_hotspots, mann_kendall
from zhongdu.petitions._hotspots import (
    default_study_area,
    eb_rates,
    fdr_qvalues,
    gi_star,
    hotspots,
    kring_weights,
    parent_cells,
)
from zhongdu.petitions._simulate import Cluster, simulate

CENTRE = (120.6846, 24.1375)  # 臺中市政府 area, West District


def _cells10(df) -> np.ndarray:
    placed = df[df["lon"] != ""]
    return np.array(
        [
            h3.str_to_int(h3.latlng_to_cell(float(la), float(lo), 10))
            for lo, la in zip(placed["lon"], placed["lat"], strict=False)
        ],
        dtype=np.int64,
    )


def test_parent_cells_match_h3() -> None:
    rng = np.random.default_rng(1)
    points = zip(rng.uniform(24.0, 24.4, 200), rng.uniform(120.5, 121.0, 200), strict=False)
    cells = np.array([h3.str_to_int(h3.latlng_to_cell(la, lo, 10)) for la, lo in points], dtype=np.int64)
    for res in (8, 9, 10):
        expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in cells]
        assert parent_cells(cells, res).tolist() == expected


@pytest.mark.parametrize("k", [1, 2])
def test_gi_star_equals_esda(k: int) -> None:
    """Our vectorised Gi* against PySAL's G_Local (star, binary weights) on the same cells and data."""
    esda = pytest.importorskip("esda")
    libpysal = pytest.importorskip("libpysal")
    area = default_study_area(8, 1)
    cells = area.cells[1000:1800]
    weights = kring_weights(cells, k)
    rng = np.random.default_rng(k)
    x = rng.poisson(2.0, len(cells)).astype(float)
    x[:40] += 15  # a bump, so some z-scores are large
    coo = weights.tocoo()
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(cells))}
    for i, j in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
        if i != j:
            neighbours[i].append(j)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # disconnected components / islands at the subset's edge
        w = libpysal.weights.W(neighbours, silence_warnings=True)
        reference = esda.G_Local(x, w, transform="B", star=True, permutations=0)
    ours = gi_star(weights, x)
    np.testing.assert_allclose(ours, reference.Zs, rtol=1e-9, atol=1e-9)
    # esda's p_norm is one-sided; ours is two-sided
    np.testing.assert_allclose(2 * stats.norm.sf(np.abs(ours)), 2 * reference.p_norm, rtol=1e-9, atol=1e-12)
    # 2-D input (one column per month) gives each column's own Gi*
    both = gi_star(weights, np.column_stack([x, x[::-1]]))
    np.testing.assert_allclose(both[:, 0], ours)
    np.testing.assert_allclose(both[:, 1], gi_star(weights, x[::-1]))


def test_fdr_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 1, 900), rng.uniform(0, 1e-4, 100)])
    np.testing.assert_allclose(fdr_qvalues(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12)


def test_eb_rates_shrink_small_populations() -> None:
    cases = np.array([2.0, 200.0, 0.0, 50.0])
    pop = np.array([3.0, 10_000.0, 500.0, 10_000.0])
    smoothed = eb_rates(cases, pop)
    overall = cases.sum() / pop.sum()
    raw = cases / pop
    # 2 cases among 3 residents is pulled almost all the way to the overall rate
    assert abs(smoothed[0] - overall) < 0.05 * abs(raw[0] - overall)
    # the populous cell keeps most of its own rate
    assert abs(smoothed[1] - raw[1]) < 0.2 * abs(raw[1] - overall)


def _simulated(n: int, *, spread: str = "population", clusters: tuple[Cluster, ...] = (), seed: int = 11):
    return simulate(
        n,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2025, 7, 1, tzinfo=UTC),
        seed=seed,
        spread=spread,  # type: ignore[arg-type]
        clusters=clusters,
        coarse_share=0.0,
        now=datetime(2025, 12, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("measure", ["count", "rate"])
def test_planted_cluster_is_the_top_hotspot(measure: str) -> None:
    df = _simulated(20_000, clusters=(Cluster(CENTRE[0], CENTRE[1], 250.0, 400),))
    result = hotspots(default_study_area(9, 1), _cells10(df), measure=measure)  # type: ignore[arg-type]
    assert result.hot.any()
    top = result.cells[np.argmax(np.where(result.hot, result.z, -np.inf))]
    lat, lon = h3.cell_to_latlng(h3.int_to_str(int(top)))
    distance_m = h3.great_circle_distance((lat, lon), (CENTRE[1], CENTRE[0]), unit="m")
    assert distance_m < 600, f"top hotspot {h3.int_to_str(int(top))} is {distance_m:.0f} m from the cluster"


@pytest.mark.parametrize(
    ("spread", "measure", "n"),
    [
        ("uniform", "count", 50_000),
        ("uniform", "count", 500),
        ("population", "rate", 50_000),
        ("population", "rate", 500),
    ],
)
def test_no_hotspots_without_a_cluster(spread: str, measure: str, n: int) -> None:
    """Cases spread as the null says (uniform over cells for counts, by residents for rates), dense
    or sparse: nothing is significant at the 5 % false discovery rate."""
    for res in (8, 9):
        df = _simulated(n, spread=spread, seed=100 + res)
        result = hotspots(default_study_area(res, 1), _cells10(df), measure=measure)  # type: ignore[arg-type]
        assert result.cases == len(df)
        assert int(result.significant.sum()) == 0, (res, result.z[result.significant][:5])


def test_counts_by_population_are_count_hotspots_but_not_rate_hotspots() -> None:
    """Where many people live, many complaints: a count hotspot, rightly not a rate hotspot."""
    df = _simulated(50_000, spread="population", seed=3)
    area = default_study_area(8, 1)
    counts = hotspots(area, _cells10(df), measure="count")
    rates = hotspots(area, _cells10(df), measure="rate")
    assert counts.hot.sum() > 10
    assert rates.significant.sum() == 0


def test_mann_kendall_matches_kendall_tau() -> None:
    rng = np.random.default_rng(2)
    series = rng.normal(size=(50, 24)) + np.linspace(0, 1.5, 24) * rng.integers(-1, 2, size=(50, 1))
    z, p = mann_kendall(series)
    for row, zi in zip(series, z, strict=True):
        tau = stats.kendalltau(np.arange(24), row).statistic
        assert np.sign(tau) == np.sign(zi) or abs(tau) < 1e-12
    assert (p[np.abs(z) > 3] < 0.01).all()


def test_emerging_labels() -> None:
    """Background cases every month; one place hot only in the last month (new), one whose cases
    grow every month (intensifying), one that shrinks as much (diminishing; the two keep the
    month's spread steady), one constant (persistent)."""
    from zhongdu.coverage import load_default_grid

    area = default_study_area(8, 1)
    rng = np.random.default_rng(9)
    months = 12
    grid_cells = load_default_grid(10).cells.astype(np.int64)
    cells: list[np.ndarray] = []
    steps: list[np.ndarray] = []

    def child(lon: float, lat: float) -> int:
        return h3.str_to_int(h3.latlng_to_cell(lat, lon, 10))

    new_at, grow_at, keep_at, fall_at = (120.70, 24.18), (120.62, 24.12), (120.66, 24.26), (120.58, 24.22)
    for t in range(months):
        centre = rng.choice(grid_cells, size=3000)  # uniform over the city
        grow, fall = 160 + 16 * t, 336 - 16 * t
        cells += [
            centre,
            np.full(grow, child(*grow_at)),
            np.full(300, child(*keep_at)),
            np.full(fall, child(*fall_at)),
        ]
        steps += [np.full(len(centre), t), np.full(grow, t), np.full(300, t), np.full(fall, t)]
        if t == months - 1:
            cells.append(np.full(400, child(*new_at)))
            steps.append(np.full(400, t))
    result = emerging_hotspots(area, np.concatenate(cells), np.concatenate(steps), months)
    label = dict(zip(result.cells.tolist(), result.pattern.tolist(), strict=True))

    def at(lon: float, lat: float) -> str:
        return label.get(h3.str_to_int(h3.latlng_to_cell(lat, lon, 8)), "")

    assert at(*new_at) == "new"
    assert at(*grow_at) == "intensifying"
    assert at(*keep_at) == "persistent"
    assert at(*fall_at) == "diminishing"
    assert set(result.pattern.tolist()) <= {"new", "intensifying", "persistent", "diminishing", "sporadic"}
