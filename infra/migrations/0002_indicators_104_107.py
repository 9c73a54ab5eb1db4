"""Data migration: load the 104-107 mid-term plan's indicator catalogue into `indicators`.

The catalogue is data, not code: `zhongdu/api/data/indicators_104_107.json` (transcribed from the
seed plan's 衡量指標 tables). A later plan gets its own JSON file and its own migration beside this
one. Upserting keeps the migration safe to re-run against a hand-edited table.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

CATALOGUE = "indicators_104_107.json"

# Columns of `indicators`; everything else of an entry goes into `details`.
_COLUMNS = {"id", "dimension", "goal_zh", "name_zh", "name_en", "weight", "formula_zh", "unit",
            "direction", "kind", "targets"}


def load_catalogue(name: str = CATALOGUE) -> dict[str, Any]:
    """The catalogue file shipped with `zhongdu.api`, parsed."""
    text = resources.files("zhongdu.api").joinpath("data", name).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def apply(conn: psycopg.Connection[Any], timescale: bool) -> None:
    """Insert or update every indicator of the catalogue (runs inside the migration's transaction)."""
    catalogue = load_catalogue()
    plan_id = catalogue["plan_id"]
    rows = [
        (
            plan_id, item["id"], item["dimension"], item["goal_zh"], item["name_zh"], item["name_en"],
            float(item["weight"]), item["formula_zh"], item["unit"], item["direction"], item["kind"],
            Jsonb(item["targets"]),
            Jsonb({key: value for key, value in item.items() if key not in _COLUMNS}),
        )
        for item in catalogue["indicators"]
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO indicators (plan_id, indicator_id, dimension, goal, name_zh, name_en, weight,
                                       formula, unit, direction, kind, targets, details)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (plan_id, indicator_id) DO UPDATE SET
                   dimension = EXCLUDED.dimension, goal = EXCLUDED.goal, name_zh = EXCLUDED.name_zh,
                   name_en = EXCLUDED.name_en, weight = EXCLUDED.weight, formula = EXCLUDED.formula,
                   unit = EXCLUDED.unit, direction = EXCLUDED.direction, kind = EXCLUDED.kind,
                   targets = EXCLUDED.targets, details = EXCLUDED.details""",
            rows,
        )
