"""Shared helpers for the simulator tests."""

from __future__ import annotations

from pathlib import Path

STATION_HEADER = "station_id,sector_id,lon,lat,height_m,eirp_dbm,frequency_mhz,bandwidth_mhz,azimuth_deg,beamwidth_deg,status"


def write_stations_csv(path: Path, id_prefix: str, sites: int = 4) -> Path:
    """A small tri-sector layout in the station CSV format of docs/coverage.md#stations-csv, site ids `<prefix>0000`…."""
    rows = [STATION_HEADER]
    for s in range(sites):
        for sector, az in enumerate((0, 120, 240), start=1):
            rows.append(f"{id_prefix}{s:04d},{sector},120.6{s},24.1{s},30,60,1800,20,{az},65,up")
    path.write_text("\n".join(rows) + "\n")
    return path
