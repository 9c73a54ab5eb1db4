"""Registry writes in bulk: a station layout (stations and their sectors) in two statements."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from zhongdu.coverage._types import STATION_COLUMNS

#: The engine's station columns, without the run-time `status` (entity_status holds it) and with
#: the disk model's `radius_m`: one list for the stations file and the registry.
SECTOR_COLUMNS: tuple[str, ...] = (*(c for c in STATION_COLUMNS if c != "status"), "radius_m")
_OPTIONAL = ("azimuth_deg", "beamwidth_deg", "radius_m")


def _nullable(values: Sequence[Any]) -> list[float | None]:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def register_layout(conn: psycopg.Connection, columns: Mapping[str, Sequence[Any]]) -> tuple[int, int]:
    """Register every station and sector of a layout; return (stations added, sectors added).

    `columns` holds one sequence per `SECTOR_COLUMNS` name (one row per sector, as the coverage
    engine's station table) and optionally `district`. Known stations keep what they have; their
    missing position or district is filled in. Idempotent.
    """
    missing = [c for c in SECTOR_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"layout columns missing: {', '.join(missing)}")
    n = len(columns["station_id"])
    station_id = [str(v) for v in columns["station_id"]]
    district = [str(v) for v in columns["district"]] if "district" in columns else [None] * n
    values = {c: [float(v) for v in columns[c]] for c in SECTOR_COLUMNS[2:] if c not in _OPTIONAL}
    optional = {c: _nullable(columns[c]) for c in _OPTIONAL}
    with conn.transaction():
        stations = conn.execute(
            """WITH added AS (
                 INSERT INTO stations AS s (station_id, district, lon, lat)
                 SELECT DISTINCT ON (id) id, d, x, y
                 FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[]) AS u (id, d, x, y)
                 ORDER BY id
                 ON CONFLICT (station_id) DO UPDATE SET
                     district = COALESCE(s.district, EXCLUDED.district),
                     lon = COALESCE(s.lon, EXCLUDED.lon),
                     lat = COALESCE(s.lat, EXCLUDED.lat)
                 RETURNING (xmax = 0) AS inserted)
               SELECT count(*) FILTER (WHERE inserted) FROM added""",
            (station_id, district, values["lon"], values["lat"]),
        ).fetchone()
        sectors = conn.execute(
            """WITH added AS (
                 INSERT INTO sectors (station_id, sector_id, lon, lat, height_m, eirp_dbm, frequency_mhz,
                                      bandwidth_mhz, azimuth_deg, beamwidth_deg, radius_m)
                 SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::float8[],
                                      %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
                                      %s::float8[])
                 ON CONFLICT DO NOTHING RETURNING 1)
               SELECT count(*) FROM added""",
            (
                station_id,
                [str(v) for v in columns["sector_id"]],
                values["lon"],
                values["lat"],
                values["height_m"],
                values["eirp_dbm"],
                values["frequency_mhz"],
                values["bandwidth_mhz"],
                optional["azimuth_deg"],
                optional["beamwidth_deg"],
                optional["radius_m"],
            ),
        ).fetchone()
    return (int(stations[0]) if stations else 0), (int(sectors[0]) if sectors else 0)
