"""Unit conversion by table: every convertible SenML unit as a linear function of a base unit.

RFC 8798 section 3 defines SenML's secondary units exactly this way (value in the primary unit =
scale * value + offset), so one table covers them all; a conversion from unit `a` to unit `b`
goes through their common base unit. Sources of the rows:
- RFC 8798 table 2 (secondary units registry): `ms`, `min`, `h`, `MHz`, `kW`, `kVA`, `kvar`,
  `Ah`, `Wh`, `kWh`, `varh`, `kvarh`, `kVAh`, `Wh/km`, `KiB`, `GB`, `Mbit/s`, `B/s`, `MB/s`,
  `mV`, `mA`, `dBm`, `ug/m3`, `mm/h`, `m/h`, `ppm`, `/100`, `/1000`, `hPa`, `mm`, `cm`, `km`,
  `km/h`;
- RFC 8428 table 6, units marked NOT RECOMMENDED but to be understood by consumers: `g`, `l`,
  `l/s`, `1/min`, `beat/min`;
- SI definitions between primary units: `Cel` = `K` - 273.15; `deg` (RFC 8798) = pi/180 `rad`;
- `degF`: not registered (RFC 8428 section 12.1 lists it among symbols to avoid), accepted
  because off-the-shelf firmware sends it; converted by its definition.
Units not in the table convert to nothing but themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class Linear(NamedTuple):
    """value in `base` = scale * value + offset."""

    base: str
    scale: float
    offset: float = 0.0


UNITS: Mapping[str, Linear] = MappingProxyType(
    {
        # RFC 8798 secondary units
        "ms": Linear("s", 1e-3),
        "min": Linear("s", 60.0),
        "h": Linear("s", 3600.0),
        "MHz": Linear("Hz", 1e6),
        "kW": Linear("W", 1e3),
        "kVA": Linear("VA", 1e3),
        "kvar": Linear("var", 1e3),
        "Ah": Linear("C", 3600.0),
        "Wh": Linear("J", 3600.0),
        "kWh": Linear("J", 3.6e6),
        "varh": Linear("vars", 3600.0),
        "kvarh": Linear("vars", 3.6e6),
        "kVAh": Linear("VAs", 3.6e6),
        "Wh/km": Linear("J/m", 3.6),
        "KiB": Linear("B", 1024.0),
        "GB": Linear("B", 1e9),
        "Mbit/s": Linear("bit/s", 1e6),
        "B/s": Linear("bit/s", 8.0),
        "MB/s": Linear("bit/s", 8e6),
        "mV": Linear("V", 1e-3),
        "mA": Linear("A", 1e-3),
        "dBm": Linear("dBW", 1.0, -30.0),
        "ug/m3": Linear("kg/m3", 1e-9),
        "mm/h": Linear("m/s", 1 / 3.6e6),
        "m/h": Linear("m/s", 1 / 3600),
        "ppm": Linear("/", 1e-6),
        "/100": Linear("/", 1e-2),
        "/1000": Linear("/", 1e-3),
        "hPa": Linear("Pa", 100.0),
        "mm": Linear("m", 1e-3),
        "cm": Linear("m", 1e-2),
        "km": Linear("m", 1e3),
        "km/h": Linear("m/s", 1 / 3.6),
        # RFC 8428 units to be understood by consumers (not to be produced)
        "g": Linear("kg", 1e-3),
        "l": Linear("m3", 1e-3),
        "l/s": Linear("m3/s", 1e-3),
        "1/min": Linear("1/s", 1 / 60),
        "beat/min": Linear("1/s", 1 / 60),
        # SI relations between primary units, and one unregistered unit devices send anyway
        "Cel": Linear("K", 1.0, 273.15),
        "deg": Linear("rad", math.pi / 180),
        "degF": Linear("K", 5 / 9, 273.15 - 32 * 5 / 9),
    }
)


def conversion(source: str, target: str) -> tuple[float, float] | None:
    """(scale, offset) turning a value in `source` into `target`, or None when they do not convert.

    >>> conversion("K", "Cel")
    (1.0, -273.15)
    >>> conversion("Pa", "hPa")
    (0.01, 0.0)
    >>> conversion("Cel", "hPa") is None
    True
    """
    if source == target:
        return 1.0, 0.0
    a = UNITS.get(source, Linear(source, 1.0))
    b = UNITS.get(target, Linear(target, 1.0))
    if a.base != b.base:
        return None
    # target = (a.scale * v + a.offset - b.offset) / b.scale
    scale = a.scale / b.scale
    offset = (a.offset - b.offset) / b.scale
    return _tidy(scale), _tidy(offset)


def _tidy(number: float) -> float:
    """Round away float noise in the table's quotients (1e-2 / 1 stays 0.01, not 0.010000000000000002)."""
    return float(f"{number:.15g}")
