"""Where the sun is over Taichung, and what a PV inverter makes of it.

NOAA's low-precision solar position equations (error well under 1 degree, plenty for a simulator),
vectorised over time so a whole day of samples is one NumPy call. Inverter power is clear-sky
irradiance (Haurwitz) times a cloud factor times the array's performance ratio: zero whenever the
sun is below the horizon, by construction rather than by clipping noise.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Shuinan (水湳) smart park, Xitun District, Taichung.
TAICHUNG_LAT = 24.17
TAICHUNG_LON = 120.65

_DEG = np.pi / 180.0


def solar_elevation_deg(
    unix_time: ArrayLike, lat: float = TAICHUNG_LAT, lon: float = TAICHUNG_LON
) -> NDArray[np.float64]:
    """Solar elevation above the horizon in degrees at UTC `unix_time` (seconds, scalar or array).

    >>> round(float(solar_elevation_deg(1719028800.0)), 0)  # 2024-06-22 04:00 UTC = local noon
    89.0
    >>> bool(solar_elevation_deg(1719072000.0) < 0)  # 2024-06-22 16:00 UTC = local midnight
    True
    """
    t = np.asarray(unix_time, dtype=np.float64)
    seconds = t.astype("datetime64[s]")
    year_start = seconds.astype("datetime64[Y]").astype("datetime64[s]")
    doy = (seconds - year_start).astype(np.float64) / 86400.0  # 0-based day of year, with fraction
    frac_day = doy - np.floor(doy)  # fraction of the UTC day
    gamma = 2.0 * np.pi / 365.0 * (np.floor(doy) + (frac_day * 24.0 - 12.0) / 24.0)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )
    true_solar_min = frac_day * 1440.0 + eqtime + 4.0 * lon
    hour_angle = (true_solar_min / 4.0 - 180.0) * _DEG
    phi = lat * _DEG
    cos_zenith = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return np.asarray(90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0))), dtype=np.float64)


def clear_sky_ghi(elevation_deg: ArrayLike) -> NDArray[np.float64]:
    """Global horizontal irradiance under a clear sky (W/m², Haurwitz model); 0 below the horizon."""
    elev = np.asarray(elevation_deg, dtype=np.float64)
    sin_e = np.sin(np.clip(elev, 0.0, 90.0) * _DEG)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ghi = np.where(sin_e > 1e-3, 1098.0 * sin_e * np.exp(-0.057 / np.maximum(sin_e, 1e-3)), 0.0)
    return np.asarray(ghi, dtype=np.float64)


def inverter_power_w(
    unix_time: ArrayLike,
    capacity_w: float,
    cloud_factor: ArrayLike = 1.0,
    *,
    performance_ratio: float = 0.8,
    lat: float = TAICHUNG_LAT,
    lon: float = TAICHUNG_LON,
) -> NDArray[np.float64]:
    """AC power of a PV inverter with `capacity_w` peak, at `unix_time` under `cloud_factor` (0..1).

    Capped at the inverter's rating; exactly 0 when the sun is down.
    """
    ghi = clear_sky_ghi(solar_elevation_deg(unix_time, lat, lon))
    cloud = np.clip(np.asarray(cloud_factor, dtype=np.float64), 0.0, 1.0)
    power = capacity_w * ghi / 1000.0 * performance_ratio * cloud
    return np.asarray(np.clip(power, 0.0, capacity_w), dtype=np.float64)


def clear_sky_ghi_scalar(elevation_deg: float) -> float:
    """`clear_sky_ghi` for one elevation, without NumPy's per-call overhead (the simulators' hot path)."""
    if elevation_deg <= 0.0:
        return 0.0
    sin_e = math.sin(math.radians(min(90.0, elevation_deg)))
    return 1098.0 * sin_e * math.exp(-0.057 / sin_e) if sin_e > 1e-3 else 0.0
