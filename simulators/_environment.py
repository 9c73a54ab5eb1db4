"""The park's shared surroundings: weather, traffic and air, as pure functions of (seed, time).

Every sensor in the park sees the same weather and traffic (plus its own small noise), so the
state lives here rather than in each device. Everything is a deterministic function of the seed
and the UTC time: devices may ask in any order, at any rate, and a seeded run repeats exactly.

Climate figures are Taichung's (Central Weather Administration normals, rounded): monthly mean
temperature, a diurnal swing of about 8 °C with the minimum near sunrise and the maximum in the
early afternoon, humid summers with afternoon thunderstorms and plum rains (May-June), dry
winters with northerly monsoon wind and the worst air of the year (PM2.5 around 30 ug/m3, versus
about 12 in summer).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from zhongdu.simulators._solar import solar_elevation_deg

TAIPEI_OFFSET_S = 8 * 3600  # Asia/Taipei, no daylight saving
QUANTUM_S = 10.0  # the shared surroundings are evaluated on this time grid

# Monthly normals for Taichung, January first.
MONTHLY_MEAN_TEMP_C = (16.6, 17.4, 19.8, 23.3, 26.2, 27.8, 28.8, 28.4, 27.6, 25.3, 21.9, 18.0)
MONTHLY_RAIN_EVENTS_PER_DAY = (0.15, 0.25, 0.35, 0.4, 0.7, 0.9, 0.6, 0.7, 0.4, 0.1, 0.1, 0.1)
MONTHLY_PM25_UG_M3 = (30.0, 29.0, 28.0, 23.0, 17.0, 11.0, 10.0, 11.0, 14.0, 20.0, 25.0, 29.0)
# Mean wind direction (degrees from north): NNE monsoon in winter, SW in summer.
MONTHLY_WIND_DIR_DEG = (15, 15, 20, 200, 220, 225, 225, 220, 30, 15, 15, 15)


def local_hour(t: float) -> float:
    """Hour of the day in Taipei (0..24) at UTC unix time `t`."""
    return ((t + TAIPEI_OFFSET_S) % 86400.0) / 3600.0


def local_day(t: float) -> int:
    """Days since the epoch in Taipei time (a whole number that changes at local midnight)."""
    return int((t + TAIPEI_OFFSET_S) // 86400)


def is_weekend(t: float) -> bool:
    return datetime.fromtimestamp(t + TAIPEI_OFFSET_S, UTC).weekday() >= 5


def month_position(t: float) -> float:
    """Fractional month index (0 = mid January .. 11 = mid December), for smooth interpolation."""
    d = datetime.fromtimestamp(t + TAIPEI_OFFSET_S, UTC)
    return (d.month - 1) + (d.day - 15.5) / 30.5


def monthly(table: tuple[float, ...], t: float) -> float:
    """Linear interpolation of a 12-month table between month centres (wrapping the year)."""
    pos = month_position(t)
    lo = math.floor(pos)
    frac = pos - lo
    return table[lo % 12] * (1.0 - frac) + table[(lo + 1) % 12] * frac


def bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24 h circle, 1 at `centre`."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


def traffic_index(t: float) -> float:
    """Road traffic near the park, 0..1: commuter peaks at 08:00 and 18:00, quiet 01:00-05:00."""
    h = local_hour(t)
    if is_weekend(t):
        return 0.12 + 0.45 * bump(h, 11.0, 3.0) + 0.4 * bump(h, 17.0, 3.0)
    return min(1.0, 0.1 + 0.8 * bump(h, 8.0, 1.1) + 0.85 * bump(h, 18.0, 1.4) + 0.45 * bump(h, 13.0, 3.5))


def mobile_traffic_index(t: float) -> float:
    """Mobile data demand, 0..1: night trough near 04:00, busy day, peak 21:00 (typical 4G curve)."""
    h = local_hour(t)
    base = 0.12 + 0.55 * bump(h, 12.5, 4.0) + 0.75 * bump(h, 21.0, 2.2) + 0.25 * bump(h, 8.5, 1.2)
    if is_weekend(t):
        base *= 0.92
    return min(1.0, base)


@dataclass(frozen=True)
class RainEvent:
    start: float
    end: float
    peak_mm_h: float

    def rate(self, t: float) -> float:
        """Triangular intensity profile over the event."""
        if not self.start <= t < self.end:
            return 0.0
        half = (self.end - self.start) / 2.0
        return self.peak_mm_h * (1.0 - abs(t - self.start - half) / half)


@dataclass
class Environment:
    """Weather, traffic and air quality over the park, determined by `seed` alone."""

    seed: int
    _phases: dict[str, tuple[tuple[float, float, float], ...]] = field(default_factory=dict, repr=False)
    _rain: dict[int, tuple[RainEvent, ...]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str, int], float] = field(default_factory=dict, repr=False)

    def smooth(self, t: float, key: str) -> float:
        """Slowly varying noise, roughly N(0, 1), periods of hours to days (seeded sum of sines)."""
        comps = self._phases.get(key)
        if comps is None:
            rng = random.Random(f"{self.seed}:smooth:{key}")
            # (period in hours, amplitude): slower components carry more of the variance, as in weather
            parts = ((1.7, 0.2), (4.3, 0.35), (11.0, 0.6), (29.0, 0.75), (71.0, 0.75))
            comps = tuple(
                (p * 3600.0 * rng.uniform(0.8, 1.25), rng.uniform(0, 2 * math.pi), a) for p, a in parts
            )
            self._phases[key] = comps
        return sum(a * math.sin(2 * math.pi * t / p + ph) for p, ph, a in comps)

    # -- rain ------------------------------------------------------------------------------------
    def rain_events(self, day: int) -> tuple[RainEvent, ...]:
        """The rain events starting on local day `day` (Poisson count; afternoon storms in summer)."""
        events = self._rain.get(day)
        if events is None:
            rng = random.Random(f"{self.seed}:rain:{day}")
            midday = day * 86400.0 - TAIPEI_OFFSET_S + 43200.0
            lam = monthly(MONTHLY_RAIN_EVENTS_PER_DAY, midday)
            summer = 4 <= int(month_position(midday)) % 12 <= 8
            n, p = 0, math.exp(-lam)
            u = rng.random()
            cum = p
            while u > cum and n < 6:  # Poisson by inversion
                n += 1
                p *= lam / n
                cum += p
            out = []
            for _ in range(n):
                start_h = rng.gauss(15.5, 1.5) if summer and rng.random() < 0.7 else rng.uniform(0, 24)
                start = day * 86400.0 - TAIPEI_OFFSET_S + (start_h % 24.0) * 3600.0
                duration = rng.uniform(0.4, 3.0) * 3600.0
                peak = rng.expovariate(1.0 / (14.0 if summer else 4.0)) + 0.5
                out.append(RainEvent(start, start + duration, min(peak, 120.0)))
            events = tuple(out)
            self._rain[day] = events
        return events

    def _rain_rate(self, t: float) -> float:
        """Precipitation intensity in mm/h."""
        day = local_day(t)
        return sum(e.rate(t) for d in (day - 1, day) for e in self.rain_events(d))

    def rain_between(self, t0: float, t1: float, steps: int = 6) -> float:
        """Accumulated rain (mm) between two times (trapezoid rule over the intensity)."""
        if t1 <= t0:
            return 0.0
        h = (t1 - t0) / steps
        total = 0.5 * (self.rain_rate(t0) + self.rain_rate(t1))
        total += sum(self.rain_rate(t0 + i * h) for i in range(1, steps))
        return total * h / 3600.0

    # -- weather ---------------------------------------------------------------------------------
    def _daily_mean_temperature(self, t: float) -> float:
        return monthly(MONTHLY_MEAN_TEMP_C, t) + 1.2 * self.smooth(t, "temp-synoptic")

    def _temperature(self, t: float) -> float:
        """Air temperature (°C): seasonal mean, diurnal cycle (min 05:30, max 14:00), rain cooling."""
        h = local_hour(t)
        diurnal = 4.0 * math.cos(2 * math.pi * (h - 14.0) / 24.0) + 0.8 * math.cos(
            4 * math.pi * (h - 11.0) / 24.0
        )
        rain = self.rain_rate(t)
        return (
            self.daily_mean_temperature(t)
            + diurnal
            - min(3.0, 0.4 * rain)
            + 0.3 * self.smooth(t, "temp-fast")
        )

    def _humidity(self, t: float) -> float:
        """Relative humidity (%RH): anticorrelated with the diurnal temperature, near saturation in rain."""
        excess = self.temperature(t) - self.daily_mean_temperature(t)
        rh = 76.0 - 3.4 * excess + 5.0 * self.smooth(t, "rh") + min(20.0, 4.0 * self.rain_rate(t))
        return max(25.0, min(100.0, rh))

    def _pressure(self, t: float) -> float:
        """Station pressure (hPa) at the park's ~80 m: seasonal, synoptic and semidiurnal tide."""
        season = 1016.0 - 7.0 * math.sin(2 * math.pi * (month_position(t) - 3.0) / 12.0)
        tide = 1.1 * math.cos(4 * math.pi * (local_hour(t) - 10.0) / 24.0)
        return season - 9.5 + 3.0 * self.smooth(t, "pressure") + tide

    def _wind_speed(self, t: float) -> float:
        """Mean wind (m/s): light at night, sea breeze in the afternoon, gustier in storms."""
        h = local_hour(t)
        base = 1.2 + 1.8 * bump(h, 14.5, 3.0) + 0.7 * math.exp(0.5 * self.smooth(t, "wind"))
        return max(0.0, base + 0.15 * math.sqrt(self.rain_rate(t)))

    def _wind_direction(self, t: float) -> float:
        return (monthly(MONTHLY_WIND_DIR_DEG, t) + 35.0 * self.smooth(t, "wind-dir")) % 360.0

    def _cloud_factor(self, t: float) -> float:
        """Share of clear-sky irradiance reaching the ground (1 = clear); less in rain and storms."""
        h = local_hour(t)
        pos = int(month_position(t)) % 12
        convective = 0.25 * bump(h, 15.5, 2.0) if 4 <= pos <= 8 else 0.0
        c = 0.85 - convective + 0.12 * self.smooth(t, "cloud")
        if self.rain_rate(t) > 0.0:
            c = min(c, 0.25)
        return max(0.05, min(1.0, c))

    # -- air quality ------------------------------------------------------------------------------
    def _pm25(self, t: float) -> float:
        """Background PM2.5 (ug/m3): seasonal level, rush-hour traffic, night inversion, rain washout."""
        h = local_hour(t)
        base = monthly(MONTHLY_PM25_UG_M3, t)
        inversion = 0.15 * bump(h, 2.0, 3.5)
        washout = 1.0 / (1.0 + 0.12 * self.rain_rate(t))
        level = base * (0.8 + 0.35 * traffic_index(t) + inversion) * math.exp(0.22 * self.smooth(t, "pm"))
        return max(2.0, level * washout)

    def _no2_ppb(self, t: float) -> float:
        return max(
            2.0,
            6.0
            + 20.0 * traffic_index(t)
            + 4.0 * bump(local_hour(t), 23.0, 3.0)
            + 2.0 * self.smooth(t, "no2"),
        )

    def _o3_ppb(self, t: float) -> float:
        """Photochemical ozone: builds through the sunny afternoon (lags the sun by ~1.5 h)."""
        sun = max(0.0, math.sin(math.radians(max(0.0, self.sun_elevation(t)))))
        lag = bump(local_hour(t), 14.0, 2.5)
        level = 12.0 + 30.0 * sun * self.cloud_factor(t) + 22.0 * lag * self.cloud_factor(t)
        return max(1.0, level - 0.3 * self.no2_ppb(t) + 3.0 * self.smooth(t, "o3"))

    # -- cached views: values on a 10-second grid, so thousands of devices share one computation ---
    def _cached(self, name: str, t: float, compute: Callable[[float], float]) -> float:
        key = (name, int(t // QUANTUM_S))
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) > 200_000:
                self._cache.clear()
            value = compute(key[1] * QUANTUM_S)
            self._cache[key] = value
        return value

    def sun_elevation(self, t: float) -> float:
        """Solar elevation (degrees) over the park."""
        return self._cached("sun", t, lambda q: float(solar_elevation_deg(q)))

    def rain_rate(self, t: float) -> float:
        """Precipitation intensity (mm/h)."""
        return self._cached("rain_rate", t, self._rain_rate)

    def temperature(self, t: float) -> float:
        """Air temperature (°C)."""
        return self._cached("temperature", t, self._temperature)

    def humidity(self, t: float) -> float:
        """Relative humidity (%RH)."""
        return self._cached("humidity", t, self._humidity)

    def pressure(self, t: float) -> float:
        """Station pressure (hPa)."""
        return self._cached("pressure", t, self._pressure)

    def wind_speed(self, t: float) -> float:
        """Mean wind speed (m/s)."""
        return self._cached("wind_speed", t, self._wind_speed)

    def wind_direction(self, t: float) -> float:
        """Wind direction (degrees from north)."""
        return self._cached("wind_direction", t, self._wind_direction)

    def cloud_factor(self, t: float) -> float:
        """Share of clear-sky irradiance reaching the ground (0..1)."""
        return self._cached("cloud_factor", t, self._cloud_factor)

    def pm25(self, t: float) -> float:
        """Background PM2.5 (ug/m3)."""
        return self._cached("pm25", t, self._pm25)

    def no2_ppb(self, t: float) -> float:
        """Background NO2 (ppb)."""
        return self._cached("no2_ppb", t, self._no2_ppb)

    def daily_mean_temperature(self, t: float) -> float:
        """The day's mean temperature (°C)."""
        return self._cached("daily_mean_temperature", t, self._daily_mean_temperature)

    def o3_ppb(self, t: float) -> float:
        """Ozone (ppb)."""
        return self._cached("o3_ppb", t, self._o3_ppb)
