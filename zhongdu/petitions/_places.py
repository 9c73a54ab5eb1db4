"""Villages (里) and districts with their population-weighted centres, for cases without coordinates.

The table `data/villages.csv` is derived from the MOI village population (2026-09) and village
polygons, weighting the shipped resolution-10 population grid inside each village (see
`data/README.md`); a district's centre weights its villages' centres by population.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Village:
    code: str
    district: str
    district_en: str
    name: str
    population: int
    lon: float
    lat: float


class Places:
    """Look-ups by district (Chinese or English name) and village name."""

    def __init__(self, villages: list[Village]) -> None:
        self.villages = villages
        self._village = {(v.district, v.name): v for v in villages}
        self._district_alias = {v.district_en.lower(): v.district for v in villages}
        self._district_alias.update({v.district: v.district for v in villages})
        self._district_alias.update({v.district[:-1]: v.district for v in villages})  # 西屯 → 西屯區
        self._district_centre: dict[str, tuple[float, float]] = {}
        totals: dict[str, list[float]] = {}
        for v in villages:
            entry = totals.setdefault(v.district, [0.0, 0.0, 0.0])
            weight = max(v.population, 1)
            entry[0] += weight * v.lon
            entry[1] += weight * v.lat
            entry[2] += weight
        for name, (x, y, w) in totals.items():
            self._district_centre[name] = (x / w, y / w)

    @property
    def districts(self) -> list[str]:
        return sorted(self._district_centre)

    def district_name(self, text: str | None) -> str | None:
        """The district's Chinese name; ValueError for a name that is not one of Taichung's 29."""
        if text is None:
            return None
        name = self._district_alias.get(text.strip()) or self._district_alias.get(text.strip().lower())
        if name is None:
            raise ValueError(f"unknown district {text!r} (one of Taichung's 29, e.g. 西屯區 or Xitun)")
        return name

    def centre(self, district: str | None, village: str | None) -> tuple[float, float]:
        """(lon, lat) of the village, else the district; ValueError when neither is known."""
        if district is None:
            raise ValueError("no lon/lat: give the district (and village) so the case can be placed")
        if village is not None:
            found = self._village.get((district, village))
            if found is None:
                raise ValueError(f"unknown village {village!r} in {district}")
            return found.lon, found.lat
        return self._district_centre[district]


@lru_cache(maxsize=1)
def load_places() -> Places:
    """The shipped villages (625)."""
    text = resources.files("zhongdu.petitions").joinpath("data/villages.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return Places(
        [
            Village(
                r["village_code"],
                r["district_zh"],
                r["district_en"],
                r["village_zh"],
                int(r["population"]),
                float(r["lon"]),
                float(r["lat"]),
            )
            for r in rows
        ]
    )
