"""The pyarrow fast path of the CSV readers gives exactly what the checked reader gives, and the
cell-centre cache returns h3's centres."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from zhongdu.coverage import Grid, Stations, _types, load_grid, load_stations, write_grid, write_stations

from ._coverage_fixtures import random_stations, small_grid


def _checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_types, "_grid_fast", lambda _p: None)
    monkeypatch.setattr(_types, "_stations_fast", lambda _p: None)


def _same_grid(a: Grid, b: Grid) -> None:
    for name in ("cells", "population", "district_index", "environment"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.districts == b.districts and a.resolution == b.resolution


def _same_stations(a: Stations, b: Stations) -> None:
    for name in _types._ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert set(a.extra) == set(b.extra)
    for name in a.extra:
        np.testing.assert_array_equal(a.extra[name], b.extra[name])
        assert a.extra[name].dtype.kind == b.extra[name].dtype.kind


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_fast_and_checked_readers_agree(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = small_grid(8)
    st = random_stations(grid, 9, 30)
    st = dataclasses.replace(st, extra={"operator": np.array(["CHT", "FET", ""] * 10), "cost": np.arange(30.0)})
    write_grid(grid, tmp_path / f"g{suffix}")
    write_stations(st, tmp_path / f"s{suffix}")
    assert _types._grid_fast(tmp_path / f"g{suffix}") is not None  # the fast path is taken
    assert _types._stations_fast(tmp_path / f"s{suffix}") is not None
    fast_grid, fast_st = load_grid(tmp_path / f"g{suffix}"), load_stations(tmp_path / f"s{suffix}")
    _same_grid(fast_grid, grid)
    _checked(monkeypatch)
    _same_grid(fast_grid, load_grid(tmp_path / f"g{suffix}"))
    _same_stations(fast_st, load_stations(tmp_path / f"s{suffix}"))
    np.testing.assert_array_equal(fast_st.azimuth_deg, st.azimuth_deg)  # blanks (omni) are NaN


def test_odd_files_take_the_checked_path_with_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = small_grid(8)
    write_grid(grid, tmp_path / "g.csv")
    lines = (tmp_path / "g.csv").read_text(encoding="utf-8").splitlines()
    spaced = [lines[0]] + [", ".join(x.split(",")) for x in lines[1:]]  # spaces after commas
    (tmp_path / "spaced.csv").write_text("\n".join(spaced) + "\n", encoding="utf-8")
    upper = [lines[0]] + [x.upper() if i % 2 else x for i, x in enumerate(lines[1:])]
    (tmp_path / "upper.csv").write_text("\n".join(upper) + "\n", encoding="utf-8")
    a, b = load_grid(tmp_path / "spaced.csv"), load_grid(tmp_path / "upper.csv")
    _same_grid(a, grid)
    assert b.cells.tolist() == grid.cells.tolist()
    _checked(monkeypatch)
    _same_grid(a, load_grid(tmp_path / "spaced.csv"))
    bad = [lines[0], *lines[1:5], "zz," + lines[5].split(",", 1)[1]]
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n", encoding="utf-8")
    monkeypatch.undo()
    with pytest.raises(_types.GridError, match="line 6"):  # the error names the line, fast path or not
        load_grid(tmp_path / "bad.csv")


def test_cell_centres_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHONGDU_CACHE_DIR", str(tmp_path / "cache"))
    grid = small_grid(1, resolution=10)
    assert len(grid) >= _types._CACHE_MIN_CELLS
    truth = _types._h3_centres(grid.cells)
    first = _types._cell_centres(grid.cells)
    path = _types._centres_cache_path(grid.cells)
    assert path is not None and path.is_file()
    calls: list[int] = []
    monkeypatch.setattr(_types, "_h3_centres", lambda c: calls.append(1) or truth)
    second = _types._cell_centres(grid.cells)
    assert calls == []  # read from the cache
    for a, b in ((first, truth), (second, truth)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    path.write_bytes(b"not an npy file")
    third = _types._cell_centres(grid.cells)  # a broken cache is recomputed and rewritten
    assert calls == [1]
    np.testing.assert_array_equal(third[0], truth[0])
    other = grid.cells[: len(grid) - 1]
    assert _types._centres_cache_path(other) != path  # keyed by the cells themselves
    monkeypatch.setenv("ZHONGDU_CACHE_DIR", "off")
    assert _types._centres_cache_path(grid.cells) is None


def test_each_command_is_registered_by_the_module_the_cli_imports_for_it() -> None:
    import argparse
    import importlib

    from zhongdu.cli import COMMAND_MODULES, COMMAND_OWNERS, build_parser

    seen: dict[str, str] = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        seen.update(dict.fromkeys(sub.choices, name))
    assert seen == COMMAND_OWNERS
    only = build_parser("coverage")
    assert only.parse_args(["coverage", "compute", "--grid", "g", "--stations", "s"]).coverage_command == "compute"
    with pytest.raises(SystemExit):
        only.parse_args(["plan", "--help"])  # not registered in the narrow parser
    assert build_parser(None).parse_args(["plan", "--stations", "s"]).stations == Path("s")
