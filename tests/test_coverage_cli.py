"""Grid and stations CSV files (round trips, clear errors) and `zhongdu coverage compute` end to end."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhongdu.coverage import (
    GridError,
    StationsError,
    compute_coverage,
    load_grid,
    load_stations,
    write_grid,
    write_stations,
)

from ._coverage_fixtures import random_stations, small_grid

GRID = small_grid(1, rings=0)  # 343 res-9 cells


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    st = random_stations(GRID, 4, 12)
    write_grid(GRID, tmp_path / "grid.csv")
    write_stations(st, tmp_path / "stations.csv")
    return tmp_path / "grid.csv", tmp_path / "stations.csv"


def test_round_trips(tmp_path: Path) -> None:
    write_grid(GRID, tmp_path / "g.csv.gz")
    back = load_grid(tmp_path / "g.csv.gz")
    np.testing.assert_array_equal(back.cells, GRID.cells)
    np.testing.assert_array_equal(back.population, GRID.population)
    np.testing.assert_array_equal(back.environment, GRID.environment)
    assert back.districts == GRID.districts and back.resolution == 9
    st = random_stations(GRID, 2, 9)
    st = type(st)(
        **{**st.__dict__, "extra": {"cost": np.arange(9) * 2.5, "kind": np.array(["public_land"] * 9)}}
    )
    write_stations(st, tmp_path / "s.csv")
    got = load_stations(tmp_path / "s.csv")
    for name in ("lon", "lat", "height_m", "eirp_dbm", "azimuth_deg", "beamwidth_deg", "radius_m"):
        np.testing.assert_array_equal(getattr(got, name), getattr(st, name))
    np.testing.assert_array_equal(got.up, st.up)
    np.testing.assert_array_equal(got.extra["cost"], st.extra["cost"])
    assert got.extra["kind"].tolist() == ["public_land"] * 9


def test_grid_without_environment_is_urban(tmp_path: Path) -> None:
    p = tmp_path / "g.csv"
    p.write_text(
        "h3,district,population\n8a4ba0410007fff,東勢區,1.5\n8a4ba041000ffff,東勢區,2\n", encoding="utf-8"
    )
    g = load_grid(p)
    assert g.environment.tolist() == [0, 0] and g.population.tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    "text",
    [
        "h3,district,population\r\n8a4ba0410007fff,東勢區,1.5\r\n8a4ba041000ffff,東勢區,2\r\n",
        "\ufeffh3,district,population\n8a4ba0410007fff,東勢區,1.5\n8a4ba041000ffff,東勢區,2",
        "h3,district,population\n8a4ba0410007fff,東勢區,1.5\n\n8a4ba041000ffff,東勢區,2\n\n",
        'h3,district,population\n8a4ba0410007fff,"東勢區",1.5\n8a4ba041000ffff,東勢區,2\n',
        "h3, district, population\n8a4ba0410007fff, 東勢區, 1.5\n8a4ba041000ffff,東勢區 ,2\n",
    ],
    ids=["crlf", "bom-no-final-newline", "blank-lines", "quoted", "spaces"],
)
@pytest.mark.parametrize("gz", [False, True])
def test_grid_file_shapes_read_alike(tmp_path: Path, text: str, gz: bool) -> None:
    """The fast split path and the csv/per-line fallbacks give the same table."""
    p = tmp_path / ("g.csv.gz" if gz else "g.csv")
    data = text.encode("utf-8")
    p.write_bytes(gzip.compress(data) if gz else data)
    g = load_grid(p)
    assert [format(c, "x") for c in g.cells.tolist()] == ["8a4ba0410007fff", "8a4ba041000ffff"]
    assert g.population.tolist() == [1.5, 2.0] and list(g.districts) == ["東勢區"]


def test_grid_rows_whose_comma_errors_cancel_out_are_refused(tmp_path: Path) -> None:
    """One row short of a field and one with an extra field: the total count alone would pass."""
    p = tmp_path / "g.csv"
    p.write_text(
        "h3,district,population\n8a4ba0410007fff,東勢區\n8a4ba041000ffff,東勢區,2,9\n", encoding="utf-8"
    )
    with pytest.raises(GridError, match="data row 1 has 2 fields but the header has 3"):
        load_grid(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("h3,population\n8a4ba0410007fff,1\n", "missing column.*district"),
        ("h3,district,population\nzz,東勢區,1\n", "line 2: h3 'zz' is not a hexadecimal"),
        ("h3,district,population\n8a4ba0410007fff,東勢區,-3\n", "line 2: population '-3'"),
        ("h3,district,population\n8a4ba0410007fff,東勢區,many\n", "line 2, column 'population': 'many'"),
        ("h3,district,population\n8a4ba0410007fff,東勢區,1\n8a4ba0410007fff,東勢區,1\n", "more than once"),
        ("h3,district,population\n8a4ba0410007fff,東勢區,1\n894ba041003ffff,東勢區,1\n", "mix resolutions"),
        ("h3,district,population\n8a4ba0410007fff,東勢區\n", "has 2 fields but the header has 3"),
        ("h3,district,population,environment\n8a4ba0410007fff,東勢區,1,forest\n", "environment 'forest'"),
        ("", "empty"),
    ],
)
def test_bad_grid_files(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "g.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(GridError, match=match):
        load_grid(p)


def _stations_text(**override: str) -> str:
    row = {
        "station_id": "S1",
        "sector_id": "1",
        "lon": "120.65",
        "lat": "24.16",
        "height_m": "30",
        "eirp_dbm": "60",
        "frequency_mhz": "1800",
        "bandwidth_mhz": "20",
        "azimuth_deg": "120",
        "beamwidth_deg": "65",
        "status": "up",
    }
    row.update(override)
    return ",".join(row) + "\n" + ",".join(row.values()) + "\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("station_id,lon,lat\nS1,120,24\n", "missing column.*sector_id"),
        (_stations_text(lat="north"), "column 'lat': 'north' is not a number"),
        (_stations_text(lat="95"), "lat=.*95.*latitude"),
        (_stations_text(height_m="0"), "height_m=0.0; expected antenna height"),
        (_stations_text(status="maybe"), "status 'maybe' must be 'up' or 'down'"),
        (_stations_text(beamwidth_deg="-10"), "beamwidth"),
        (_stations_text(station_id=""), "empty station_id"),
        (
            _stations_text() + "S1,1,120.6,24.1,30,60,1800,20,0,65,up\n",
            "station 'S1' sector '1' appears more than once",
        ),
    ],
)
def test_bad_stations_files(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "s.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(StationsError, match=match):
        load_stations(p)


def test_omni_row_and_quoted_csv(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(_stations_text(azimuth_deg="", beamwidth_deg="", station_id='"S,1"'), encoding="utf-8")
    st = load_stations(p)
    assert st.station_id.tolist() == ["S,1"]
    assert np.isnan(st.azimuth_deg[0]) and np.isnan(st.radius_m[0])


def _zhongdu(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("zhongdu")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("model", ["disk", "hata"])
def test_cli_compute_json(files: tuple[Path, Path], model: str, tmp_path: Path) -> None:
    grid, stations = files
    out = tmp_path / "cells.csv"
    proc = _zhongdu("coverage", "compute", "--grid", str(grid), "--stations", str(stations), "--model", model,
                    "--threshold", "-105", "--json", "--per-cell", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["population_total", "population_covered", "share", "districts"]
    want = compute_coverage(load_grid(grid), load_stations(stations), model=model, threshold_dbm=-105.0)
    assert doc == json.loads(json.dumps(want.to_dict()))
    assert all(set(d) == {"district", "population", "covered", "share"} for d in doc["districts"])
    with open(out, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(GRID)
    covered_pop = sum(p for p, r in zip(GRID.population.tolist(), rows, strict=True) if r["covered"] == "1")
    assert covered_pop == pytest.approx(doc["population_covered"])
    assert all((r["station_id"] != "") == (r["covered"] == "1") for r in rows)


def test_cli_bad_file_is_one_clear_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    grid, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text(_stations_text(frequency_mhz="-5"), encoding="utf-8")
    proc = _zhongdu("coverage", "compute", "--grid", str(grid), "--stations", str(bad), "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "zhongdu: error:" in proc.stderr and "frequency_mhz=-5.0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_compute_defaults_to_the_shipped_grid(files: tuple[Path, Path]) -> None:
    """Like `plan` and `stations generate`, `coverage compute` needs no --grid."""
    _, stations = files
    proc = _zhongdu("coverage", "compute", "--stations", str(stations), "--model", "disk", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["districts"]) == 29 and doc["population_total"] > 2_800_000
    assert "grid_res10.csv.gz" in proc.stderr
