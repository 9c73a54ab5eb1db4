"""Registering a station layout: sites and sectors in bulk, idempotent, NaN as NULL."""

from __future__ import annotations

import math

import pytest

from zhongdu import storage


def _layout() -> dict[str, list[object]]:
    return {
        "station_id": ["TC-1", "TC-1", "TC-2"],
        "sector_id": ["1", "2", "1"],
        "lon": [120.64, 120.64, 120.70],
        "lat": [24.17, 24.17, 24.15],
        "height_m": [30.0, 30.0, 35.0],
        "eirp_dbm": [59.0, 59.0, 61.0],
        "frequency_mhz": [1800.0, 1800.0, 700.0],
        "bandwidth_mhz": [20.0, 20.0, 10.0],
        "azimuth_deg": [0.0, 120.0, math.nan],
        "beamwidth_deg": [65.0, 65.0, math.nan],
        "radius_m": [math.nan, math.nan, 2000.0],
        "district": ["西屯區", "西屯區", "北屯區"],
    }


@pytest.mark.postgres
def test_register_layout_is_idempotent_and_fills_known_stations(pg_migrated: str) -> None:
    with storage.connect(pg_migrated) as conn:
        storage.telemetry.register_station(conn, "TC-2")  # known from telemetry, no position yet
        assert storage.register_layout(conn, _layout()) == (1, 3)
        assert storage.register_layout(conn, _layout()) == (0, 0)
        stations = conn.execute("SELECT station_id, district, lon, lat FROM stations ORDER BY 1").fetchall()
        omni = conn.execute(
            "SELECT azimuth_deg, beamwidth_deg, radius_m FROM sectors WHERE station_id = 'TC-2'"
        ).fetchone()
    assert stations == [("TC-1", "西屯區", 120.64, 24.17), ("TC-2", "北屯區", 120.70, 24.15)]
    assert omni == (None, None, 2000.0)


def test_register_layout_names_missing_columns() -> None:
    columns = _layout()
    del columns["eirp_dbm"]
    with pytest.raises(ValueError, match="eirp_dbm"):
        storage.register_layout(None, columns)  # type: ignore[arg-type]
