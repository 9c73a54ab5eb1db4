"""Data migration: reload the indicator catalogue (version 2 adds the B7-1 checklist, the M1-1
counts, the plan's baselines, reporting frequency and owner agency). Same upsert as the first
load, so it is safe to re-run."""

from __future__ import annotations

import importlib
from typing import Any

import psycopg


def apply(conn: psycopg.Connection[Any], timescale: bool) -> None:
    importlib.import_module("zhongdu.migrations.0002_indicators_104_107").apply(conn, timescale)
