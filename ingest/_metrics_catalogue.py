"""The metric catalogue: every metric a park device may send, with its SenML unit and physical range.

The ingester rejects a SenML record whose metric is not listed here (`unknown_metric`), whose unit
differs from the listed one (`bad_unit`), whose value type does not fit (`bad_value`) or whose value
lies outside the physical range (`out_of_range`). Simulators build their packs from the same table.

Units come from the IANA SenML registries:
- primary units of RFC 8428 (`Cel`, `%RH`, `m/s`, `W`, `V`, `A`, `Hz`, `W/m2`, `dB`, `count`,
  `/`, `%`) and of RFC 8798 (`deg` for angles, `var` for reactive power);
- secondary units of RFC 8798 (`ug/m3`, `ppm`, `hPa`, `mm`, `mm/h`, `Wh`), which the RFC lets
  a sender use when the receiver is known to understand them, as this ingester does. They are the
  units the field instruments and Taiwan's EPA report in, so no conversion hides in the devices.

Choices worth knowing:
- `o3` and `no2` in `ug/m3` (mass concentration): SenML registers no `ppb`. `co` and `co2` in
  `ppm` (secondary unit).
- Noise: SenML has no `dBA`; `noise_laeq` / `noise_lmax` are A-weighted levels in `dB` re 20 µPa,
  the weighting being part of the metric's definition.
- `rain` is the accumulation since the previous report (`mm`); `rain_rate` the intensity (`mm/h`).
- `energy` is a cumulative register (`Wh`); `power_active` is signed (negative = export).
- Boolean metrics travel as SenML `vb` and string metrics as `vs`; both have no unit (`None`),
  and their min/max are `None`. `charger_status` takes the OCPP 1.6 connector states, lower case.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple


class MetricSpec(NamedTuple):
    """One catalogue entry. `unit`, `min` and `max` are None for boolean and string metrics."""

    unit: str | None
    min: float | None
    max: float | None
    description: str


def _num(unit: str, lo: float, hi: float, description: str) -> MetricSpec:
    return MetricSpec(unit, lo, hi, description)


def _flag(description: str) -> MetricSpec:
    return MetricSpec(None, None, None, description)


METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {
        # air quality
        "pm1": _num("ug/m3", 0, 1000, "PM1 mass concentration"),
        "pm2_5": _num("ug/m3", 0, 1000, "PM2.5 mass concentration"),
        "pm10": _num("ug/m3", 0, 2000, "PM10 mass concentration"),
        "o3": _num("ug/m3", 0, 1200, "ozone mass concentration"),
        "no2": _num("ug/m3", 0, 2000, "nitrogen dioxide mass concentration"),
        "co": _num("ppm", 0, 1000, "carbon monoxide volume fraction"),
        "co2": _num("ppm", 0, 40000, "carbon dioxide volume fraction"),
        # weather
        "temperature": _num("Cel", -40, 60, "air temperature"),
        "humidity": _num("%RH", 0, 100, "relative humidity"),
        "pressure": _num("hPa", 800, 1100, "barometric pressure at station height"),
        "wind_speed": _num("m/s", 0, 90, "mean wind speed"),
        "wind_gust": _num("m/s", 0, 110, "maximum gust since the previous report"),
        "wind_direction": _num("deg", 0, 360, "wind direction, degrees from true north"),
        "rain": _num("mm", 0, 500, "precipitation since the previous report"),
        "rain_rate": _num("mm/h", 0, 500, "precipitation intensity"),
        "irradiance": _num("W/m2", 0, 1500, "global horizontal (or plane-of-array) irradiance"),
        # noise
        "noise_laeq": _num("dB", 0, 140, "A-weighted equivalent sound level over the interval"),
        "noise_lmax": _num("dB", 0, 150, "A-weighted maximum sound level over the interval"),
        # smart-grid meter, solar inverter, EV charger
        "power_active": _num("W", -1e7, 1e7, "active power, negative when exporting"),
        "power_reactive": _num("var", -1e7, 1e7, "reactive power"),
        "power": _num("W", 0, 1e7, "power produced (solar) or delivered (EV charger)"),
        "energy": _num("Wh", 0, 1e13, "cumulative energy register"),
        "voltage": _num("V", 0, 1000, "RMS voltage"),
        "current": _num("A", 0, 5000, "RMS current"),
        "power_factor": _num("/", -1, 1, "power factor (ratio)"),
        "frequency": _num("Hz", 45, 65, "grid frequency"),
        "module_temperature": _num("Cel", -40, 100, "PV module temperature"),
        "charger_status": _flag("EV connector state (OCPP 1.6, lower case)"),
        "plugged": _flag("a vehicle is plugged in"),
        # security
        "door_open": _flag("door or gate is open"),
        "intrusion": _flag("intrusion alarm is active"),
        "intrusion_count": _num("count", 0, 1e9, "intrusion events since installation"),
        "camera_online": _flag("camera is streaming"),
        # any battery-powered device
        "battery": _num("%", 0, 100, "battery charge"),
    }
)

BOOLEAN_METRICS: frozenset[str] = frozenset({"plugged", "door_open", "intrusion", "camera_online"})
STRING_METRICS: frozenset[str] = frozenset({"charger_status"})

#: Allowed values of string metrics (anything else is `out_of_range`).
STRING_VALUES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "charger_status": frozenset(
            {
                "available",
                "preparing",
                "charging",
                "suspended",
                "finishing",
                "reserved",
                "unavailable",
                "faulted",
            }
        ),
    }
)

#: The park's device kinds and the metrics each publishes (the simulators follow this table).
DEVICE_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "air": ("pm1", "pm2_5", "pm10", "o3", "no2", "co", "co2", "temperature", "humidity"),
        "weather": (
            "temperature",
            "humidity",
            "pressure",
            "wind_speed",
            "wind_gust",
            "wind_direction",
            "rain",
            "rain_rate",
            "irradiance",
        ),
        "noise": ("noise_laeq", "noise_lmax"),
        "meter": (
            "power_active",
            "power_reactive",
            "energy",
            "voltage",
            "current",
            "power_factor",
            "frequency",
        ),
        "solar": ("power", "energy", "irradiance", "module_temperature"),
        "ev_charger": ("power", "energy", "charger_status", "plugged"),
        "security": ("door_open", "intrusion", "intrusion_count", "camera_online", "battery"),
    }
)

ValueType = Literal["v", "vb", "vs"]


def value_type(metric: str) -> ValueType:
    """The SenML value field a metric travels in: `v` (number), `vb` (boolean) or `vs` (string)."""
    if metric in BOOLEAN_METRICS:
        return "vb"
    if metric in STRING_METRICS:
        return "vs"
    return "v"


def guess_device_kind(metrics: set[str] | frozenset[str]) -> str:
    """The device kind whose metric list covers most of `metrics` (for auto-registration).

    >>> guess_device_kind({"pm2_5", "temperature"})
    'air'
    >>> guess_device_kind({"bogus"})
    'unknown'
    """
    best, best_hits = "unknown", 0
    for kind, names in DEVICE_KINDS.items():
        hits = len(metrics.intersection(names))
        if hits > best_hits:
            best, best_hits = kind, hits
    return best


def _check_catalogue() -> None:
    """Guard against an edit that leaves the tables inconsistent (runs at import)."""
    for name, spec in METRICS.items():
        numeric = value_type(name) == "v"
        if numeric != (spec.unit is not None and spec.min is not None and spec.max is not None):
            raise AssertionError(f"catalogue entry {name!r} is inconsistent: {spec}")
    for kind, names in DEVICE_KINDS.items():
        missing = [n for n in names if n not in METRICS]
        if missing:
            raise AssertionError(f"device kind {kind!r} lists unknown metrics {missing}")


_check_catalogue()
