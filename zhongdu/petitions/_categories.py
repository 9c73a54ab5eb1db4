"""The case categories and statuses the 104-107 plan names for the 1999 hotline's dispatch work.

The plan (貳、一(七)1) lists the dispatch items that matter to daily life: 路霸, 違規停車, 人與動物噪音,
路燈故障, 道路坑洞, 交通號誌不亮, 道路側溝清淤. A city's export may carry others: any short category is
accepted and kept as given; the known ones are also accepted by their Chinese names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    #: relative share of cases in the simulator (not a measured figure)
    weight: float
    #: months (1-12) with more cases, and how many times more (simulator only)
    peak_months: tuple[int, ...] = ()
    peak_factor: float = 1.0


CATEGORIES: tuple[Category, ...] = (
    Category("illegal_parking", "違規停車", "illegal parking", 0.30),
    Category("road_obstruction", "路霸", "road obstruction", 0.12),
    Category("noise", "人與動物噪音", "noise from people and animals", 0.15, (6, 7, 8), 1.4),
    Category("streetlight", "路燈故障", "streetlight out", 0.16, (11, 12, 1), 1.3),
    Category("pothole", "道路坑洞", "pothole or road damage", 0.12, (5, 6, 7, 8, 9), 1.6),
    Category("traffic_signal", "交通號誌不亮", "traffic signal out", 0.05, (7, 8, 9), 1.5),
    # the plum rains (梅雨, May-June) and the typhoon season fill road-side drains
    Category("drain", "道路側溝清淤", "road-side drain clearing", 0.10, (5, 6, 7, 8, 9), 2.5),
)
BY_CODE = {c.code: c for c in CATEGORIES}
_BY_NAME = {c.name_zh: c.code for c in CATEGORIES} | {c.name_en: c.code for c in CATEGORIES}

#: received → dispatched (a work order exists) → resolved; withdrawn closes without a fix.
STATUSES: tuple[str, ...] = ("received", "dispatched", "resolved", "withdrawn")
CLOSED_STATUSES = frozenset({"resolved", "withdrawn"})
_STATUS_NAMES = {
    "open": "received",
    "new": "received",
    "已受理": "received",
    "受理": "received",
    "處理中": "dispatched",
    "已派工": "dispatched",
    "派工": "dispatched",
    "in_progress": "dispatched",
    "closed": "resolved",
    "已結案": "resolved",
    "結案": "resolved",
    "已完成": "resolved",
    "撤案": "withdrawn",
    "已撤銷": "withdrawn",
}
_CODE = re.compile(r"^[^\x00-\x1f]{1,64}$")


def normalise_category(text: str) -> str:
    """The category's code (known names map to their code; others are kept as given)."""
    value = text.strip()
    if not value or not _CODE.match(value):
        raise ValueError(f"category must be 1-64 printable characters, got {text!r}")
    return _BY_NAME.get(value, value)


def normalise_status(text: str) -> str:
    value = text.strip().lower() if text.strip().isascii() else text.strip()
    value = _STATUS_NAMES.get(value, value)
    if value not in STATUSES:
        raise ValueError(
            f"status must be one of {', '.join(STATUSES)} (or 已受理/已派工/已結案), got {text!r}"
        )
    return value
