"""Cell centres of the grid builder (h3's compiled call, split with a worker process), the
population residual's cell, and what a coverage command imports before it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._coverage_data_fixtures import source_data_dir
from zhongdu.coverage import build_grid, load_default_grid
from zhongdu.coverage._grid_build import (
    _SPLIT_FROM,
    GridBuildError,
    cell_centres,
    centre_pool,
    centre_processes,
    spread_population,
)


def _h3_public(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells.tolist()]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _pentagon_neighbourhood() -> np.ndarray:
    """Resolution-10 cells of every pentagon's disk at resolution 6 (pentagon-adjacent cells)."""
    cells = set()
    for p in h3.get_pentagons(6):
        for c in h3.grid_disk(p, 1):
            cells.update(h3.str_to_int(x) for x in h3.cell_to_children(c, 10))
    return np.array(sorted(cells), dtype=np.uint64)


@pytest.mark.parametrize("processes", [1, 2])
def test_centres_are_h3s_bit_for_bit(processes: int) -> None:
    """The city's 168,139 cells at resolution 10 and cells around the 12 pentagons, split or not."""
    cells = np.concatenate([load_default_grid().cells, _pentagon_neighbourhood()])
    assert len(cells) > 2 * _SPLIT_FROM  # large enough for the split to happen
    want_lat, want_lng = _h3_public(cells)
    with centre_pool(processes) as pool:
        assert (pool is None) == (processes == 1)
        lat, lng = cell_centres(cells, pool)
    # the same doubles, not merely close ones: the binary grid stores them
    assert lat.tobytes() == want_lat.tobytes()
    assert lng.tobytes() == want_lng.tobytes()


def test_centres_of_nothing_and_of_few() -> None:
    with centre_pool(2) as pool:
        lat, lng = cell_centres(np.zeros(0, dtype=np.uint64), pool)
        assert len(lat) == len(lng) == 0
        one = np.array([h3.str_to_int(h3.latlng_to_cell(24.15, 120.65, 12))], dtype=np.uint64)
        got = cell_centres(one, pool)
    assert (float(got[0][0]), float(got[1][0])) == h3.cell_to_latlng(h3.int_to_str(int(one[0])))


def test_processes_setting() -> None:
    assert centre_processes(3) == 3
    assert centre_processes(None) == 1
    with pytest.raises(GridBuildError, match="at least 1"):
        centre_processes(0)
    with pytest.raises(GridBuildError, match="at least 1"):  # also where no worker would start
        build_grid(7, source_data_dir(), processes=0)


def test_one_process_builds_the_same_grid() -> None:
    """One process and two (a forked worker process for half the centres) agree."""
    one = build_grid(10, source_data_dir(), processes=1)
    two = build_grid(10, source_data_dir(), processes=2)
    for name in ("cells", "population", "district_index", "environment"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    for a, b in zip(one.latlng_deg(), two.latlng_deg(), strict=True):
        assert a.tobytes() == b.tobytes()


def _residual_cell_by_sort(population: np.ndarray, district_index: np.ndarray, n: int) -> np.ndarray:
    """The previous rule, by a stable sort: each district's largest cell, its first row among equals."""
    order = np.lexsort((-population, district_index))
    return order[np.searchsorted(district_index[order], np.arange(n))]


@settings(max_examples=60, deadline=None)
@given(n_districts=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), n_cells=st.integers(5, 300))
def test_the_residual_goes_where_a_sort_puts_it(n_districts: int, seed: int, n_cells: int) -> None:
    """Equal weights (ties for the largest cell) are common: uniform districts, cells of one area."""
    rng = np.random.default_rng(seed)
    district_index = np.concatenate([np.arange(n_districts), rng.integers(0, n_districts, n_cells)]).astype(
        np.int32
    )
    weights = rng.integers(0, 4, len(district_index)).astype(np.float64)  # few values: many ties
    met = rng.random(len(district_index)) < 0.8
    official = rng.integers(0, 400_000, n_districts).astype(np.float64)
    got = spread_population(weights, met, district_index, official)
    # recompute the population before the residual as spread_population does, then apply the old rule
    w = weights.copy()
    counts = np.bincount(district_index, minlength=n_districts).astype(np.float64)
    w[~met] = (np.bincount(district_index, weights=w, minlength=n_districts) / counts)[district_index[~met]]
    total = np.bincount(district_index, weights=w, minlength=n_districts)
    zero = total <= 0
    if zero.any():
        w[zero[district_index]] = 1.0
        total = np.bincount(district_index, weights=w, minlength=n_districts)
    want = w * (official / total)[district_index]
    residual = official - np.bincount(district_index, weights=want, minlength=n_districts)
    want[_residual_cell_by_sort(want, district_index, n_districts)] += residual
    assert got.tobytes() == want.tobytes()


def _imports_after(args: list[str], env: dict[str, str] | None = None) -> str:
    code = (
        f"import sys\nfrom zhongdu.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=120
    )
    return out.stdout.strip().splitlines()[-1]


def test_coverage_help_imports_neither_numpy_nor_the_settings() -> None:
    modules = _imports_after(["coverage", "compute", "--help"]).split()
    assert "numpy" not in modules
    assert "zhongdu.settings" not in modules
    assert "zhongdu.coverage" in modules  # the package itself was loaded, lazily


@pytest.mark.parametrize("name", ["ZHONGDU_RSRP_THRESHOLD_DBM", "zhongdu_rsrp_threshold_dbm"])
def test_hata_threshold_from_the_environment_or_the_settings_default(name: str, tmp_path: Path) -> None:
    """No threshold variable: the settings' default without importing them; one set: the settings'."""
    from zhongdu.coverage.cli import DEFAULT_RSRP_THRESHOLD_DBM, _threshold_setting
    from zhongdu.settings import Settings

    assert Settings.model_fields["rsrp_threshold_dbm"].default == DEFAULT_RSRP_THRESHOLD_DBM
    env = {k: v for k, v in os.environ.items() if k.upper() != "ZHONGDU_RSRP_THRESHOLD_DBM"}
    code = "from zhongdu.coverage.cli import _threshold_setting as t; import sys; print(t(), 'zhongdu.settings' in sys.modules)"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert plain.stdout.split() == ["-110.0", "False"]
    env[name] = "-97.5"
    given_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert given_.stdout.split() == ["-97.5", "True"]
    env[name] = "-10"  # out of the settings' range: their error, as before
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "rsrp_threshold_dbm" in bad.stderr
    assert _threshold_setting() == Settings().rsrp_threshold_dbm


def test_every_coverage_export_resolves() -> None:
    """The lazy package still exports its whole `__all__`."""
    import zhongdu.coverage as coverage

    missing = [name for name in coverage.__all__ if getattr(coverage, name, None) is None]
    assert missing == []
