"""Propagation models of docs/coverage.md#models, exactly as defined there, on NumPy arrays.

`hata`: COST-231 / Okumura-Hata path loss (hm = 1.5 m, d clamped to >= 0.02 km, C = 3 dB in
urban areas above 1500 MHz; suburban and rural corrections) with the 3GPP horizontal sector
pattern A(θ) = -min(12 (θ/bw)², 25) dB and RSRP = EIRP - 10 log10(12 N_RB) + A(θ) - L,
N_RB = 5 x bandwidth_mhz. `disk`: covered within `radius_m`.

The loss is linear in log10(d): L = K + B log10(d). The engine uses that split (`hata_terms`) to
invert the model for each sector's maximum reach, so it evaluates only pairs that can reach the
threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EARTH_RADIUS_M",
    "HM_M",
    "MIN_DISTANCE_KM",
    "great_circle_m",
    "hata_path_loss",
    "hata_terms",
    "max_reach_m",
    "reference_signal_dbm",
    "rsrp_dbm",
    "sector_gain_db",
]

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), docs/coverage.md#models
HM_M = 1.5  # mobile antenna height
MIN_DISTANCE_KM = 0.02  # Hata is not defined at the mast; closer cells get the 20 m loss
URBAN, SUBURBAN, RURAL = 0, 1, 2

F64 = NDArray[np.float64]


def great_circle_m(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> F64:
    """Haversine distance in metres between points given in degrees (sphere of EARTH_RADIUS_M)."""
    p1, l1, p2, l2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2))
    s_lat = np.sin((p2 - p1) * 0.5)
    s_lng = np.sin((l2 - l1) * 0.5)
    a = s_lat * s_lat + np.cos(p1) * np.cos(p2) * s_lng * s_lng
    return np.asarray(2.0 * np.arctan2(np.sqrt(a), np.sqrt(1.0 - a)) * EARTH_RADIUS_M, dtype=np.float64)


def hata_terms(frequency_mhz: ArrayLike, height_m: ArrayLike, environment: ArrayLike) -> tuple[F64, F64]:
    """(K, B) with L = K + B log10(d_km) for d >= 0.02 km (Hata, as docs/coverage.md#models defines it)."""
    f = np.asarray(frequency_mhz, dtype=np.float64)
    hb = np.asarray(height_m, dtype=np.float64)
    env = np.asarray(environment)
    lf = np.log10(f)
    lhb = np.log10(hb)
    a_hm = (1.1 * lf - 0.7) * HM_M - (1.56 * lf - 0.8)
    high = f > 1500.0
    base = np.where(high, 46.3 + 33.9 * lf, 69.55 + 26.16 * lf) - 13.82 * lhb - a_hm
    c = np.where(high & (env == URBAN), 3.0, 0.0)
    suburban = -2.0 * np.log10(f / 28.0) ** 2 - 5.4
    rural = -4.78 * lf**2 + 18.33 * lf - 40.94
    corr = np.where(env == SUBURBAN, suburban, np.where(env == RURAL, rural, 0.0))
    k = base + c + corr
    b = 44.9 - 6.55 * lhb
    return np.asarray(k, dtype=np.float64), np.asarray(b + 0.0 * k, dtype=np.float64)


def hata_path_loss(
    distance_km: ArrayLike, frequency_mhz: ArrayLike, height_m: ArrayLike, environment: ArrayLike = URBAN
) -> F64:
    """Path loss in dB; `environment` 0 urban, 1 suburban, 2 rural; distance clamped to >= 0.02 km."""
    k, b = hata_terms(frequency_mhz, height_m, environment)
    d = np.maximum(np.asarray(distance_km, dtype=np.float64), MIN_DISTANCE_KM)
    return np.asarray(k + b * np.log10(d), dtype=np.float64)


def sector_gain_db(theta_deg: ArrayLike, beamwidth_deg: ArrayLike) -> F64:
    """3GPP horizontal pattern -min(12 (θ/bw)², 25); θ folded to [0, 180]; 0 where bw is NaN (omni)."""
    t = np.abs(np.asarray(theta_deg, dtype=np.float64)) % 360.0
    t = np.minimum(t, 360.0 - t)
    bw = np.asarray(beamwidth_deg, dtype=np.float64)
    gain = -np.minimum(12.0 * (t / bw) ** 2, 25.0)
    return np.asarray(np.where(np.isnan(bw), 0.0, gain), dtype=np.float64)


def reference_signal_dbm(eirp_dbm: ArrayLike, bandwidth_mhz: ArrayLike) -> F64:
    """Power per resource element: EIRP - 10 log10(12 N_RB), N_RB = 5 x bandwidth in MHz."""
    n_rb = 5.0 * np.asarray(bandwidth_mhz, dtype=np.float64)
    return np.asarray(np.asarray(eirp_dbm, dtype=np.float64) - 10.0 * np.log10(12.0 * n_rb), dtype=np.float64)


def rsrp_dbm(
    distance_km: ArrayLike,
    theta_deg: ArrayLike,
    *,
    eirp_dbm: ArrayLike,
    bandwidth_mhz: ArrayLike,
    frequency_mhz: ArrayLike,
    height_m: ArrayLike,
    beamwidth_deg: ArrayLike,
    environment: ArrayLike = URBAN,
) -> F64:
    """RSRP in dBm of one sector at a point `distance_km` away, `theta_deg` off its boresight."""
    return np.asarray(
        reference_signal_dbm(eirp_dbm, bandwidth_mhz)
        + sector_gain_db(theta_deg, beamwidth_deg)
        - hata_path_loss(distance_km, frequency_mhz, height_m, environment),
        dtype=np.float64,
    )


def max_reach_m(
    *,
    eirp_dbm: ArrayLike,
    bandwidth_mhz: ArrayLike,
    frequency_mhz: ArrayLike,
    height_m: ArrayLike,
    environment: ArrayLike,
    threshold_dbm: ArrayLike,
) -> F64:
    """Largest distance (m) at which RSRP at boresight still reaches the threshold; 0 if nowhere.

    Inverts RSRP = P - K - B log10(d) at A = 0: log10(d) = (P - K - threshold) / B. A sector whose
    RSRP at 20 m is already below the threshold covers nothing (distances below 20 m are clamped).
    """
    p = reference_signal_dbm(eirp_dbm, bandwidth_mhz)
    k, b = hata_terms(frequency_mhz, height_m, environment)
    margin = p - k - np.asarray(threshold_dbm, dtype=np.float64)
    log_d = margin / b
    reach_km = np.where(log_d >= np.log10(MIN_DISTANCE_KM), 10.0**log_d, 0.0)
    return np.asarray(reach_km * 1000.0, dtype=np.float64)
