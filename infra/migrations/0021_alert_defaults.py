"""The shipped default alert rules (AQI, noise standard, intrusion, silent meters, station outages).

Rules edited since are kept: only missing ones are added. The thresholds and their sources are in
`zhongdu.alerts._rules.DEFAULT_RULES` and docs/alerts.md.
"""

from __future__ import annotations

from typing import Any

import psycopg


def apply(conn: psycopg.Connection[Any], timescale: bool) -> None:
    from zhongdu.alerts._rules import install_defaults

    install_defaults(conn)
