"""Building penetration loss for the `indoor` criterion: 3GPP TR 38.901 section 7.4.3 (O2I).

The plan's targets were set for coverage people experience, mostly indoors. TR 38.901 Table
7.4.3-2 gives the outdoor-to-indoor loss as a through-wall part, frequency-dependent, plus an
indoor part:

    PL_tw = 5 - 10 log10(sum_i p_i 10^(-L_i / 10))      (dB)
    low-loss  building: 30 % standard glass, 70 % concrete
    high-loss building: 70 % IRR (metal-coated) glass, 30 % concrete
    L_glass = 2 + 0.2 f,  L_IRRglass = 23 + 0.3 f,  L_concrete = 5 + 4 f   (f in GHz)
    PL_in = 0.5 d_2D-in, d_2D-in uniform on 0-25 m (UMa/UMi) or 0-10 m (RMa): mean 12.5 / 5 m

Per environment (an assumption, documented in docs/coverage.md#criteria) a share of high-loss
buildings; the loss is the share-weighted mean of the two in dB (a typical building, not the mean
received power) plus the mean indoor distance loss. No random spread (sigma_P): the criterion is
deterministic, like the models it extends.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CRITERIA",
    "HIGH_LOSS_SHARE",
    "INDOOR_DEPTH_M",
    "indoor_loss_db",
    "o2i_high_loss_db",
    "o2i_low_loss_db",
]

#: Coverage criteria: signal outdoors (docs/coverage.md#models), indoors (this module), and outdoor
#: signal within the serving sector's capacity (`_capacity`).
CRITERIA: tuple[str, ...] = ("outdoor", "indoor", "capacity")

#: Share of high-loss (IRR-glass) buildings per environment code (0 urban, 1 suburban, 2 rural).
HIGH_LOSS_SHARE: tuple[float, ...] = (0.5, 0.2, 0.0)
#: Mean indoor distance d_2D-in (m) per environment: uniform 0-25 m (UMa), 0-10 m (RMa) in TR 38.901.
INDOOR_DEPTH_M: tuple[float, ...] = (12.5, 12.5, 5.0)

F64 = NDArray[np.float64]


def _through_wall(f_ghz: F64, glass: F64, p_glass: float) -> F64:
    concrete = 5.0 + 4.0 * f_ghz
    mix = p_glass * 10.0 ** (-glass / 10.0) + (1.0 - p_glass) * 10.0 ** (-concrete / 10.0)
    return np.asarray(5.0 - 10.0 * np.log10(mix), dtype=np.float64)


def o2i_low_loss_db(frequency_mhz: ArrayLike) -> F64:
    """TR 38.901 low-loss through-wall loss PL_tw (30 % glass, 70 % concrete), dB."""
    f = np.asarray(frequency_mhz, dtype=np.float64) / 1000.0
    return _through_wall(f, 2.0 + 0.2 * f, 0.3)


def o2i_high_loss_db(frequency_mhz: ArrayLike) -> F64:
    """TR 38.901 high-loss through-wall loss PL_tw (70 % IRR glass, 30 % concrete), dB."""
    f = np.asarray(frequency_mhz, dtype=np.float64) / 1000.0
    return _through_wall(f, 23.0 + 0.3 * f, 0.7)


def indoor_loss_db(frequency_mhz: ArrayLike, environment: ArrayLike) -> F64:
    """Building penetration loss (dB) added to the path loss indoors, per frequency and environment."""
    env = np.asarray(environment, dtype=np.int64)
    share = np.asarray(HIGH_LOSS_SHARE)[env]
    depth = np.asarray(INDOOR_DEPTH_M)[env]
    tw = share * o2i_high_loss_db(frequency_mhz) + (1.0 - share) * o2i_low_loss_db(frequency_mhz)
    return np.asarray(tw + 0.5 * depth, dtype=np.float64)
