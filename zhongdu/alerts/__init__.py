"""Alerts on telemetry and station outages: rules, evaluation, incidents, delivery, backtests.

Any other part raises an incident for its own sources (a hotspot cell, a station) with
`raise_incident(conn, rule_id, source, summary=...)` and clears it with `clear_incident`.
"""

from zhongdu.alerts._incidents import (
    IncidentError,
    Opened,
    acknowledge,
    clear_incident,
    get_incident,
    list_incidents,
    raise_incident,
    resolve,
)
from zhongdu.alerts._rules import DEFAULT_RULES, Rule, rule_from_mapping

__all__ = [
    "DEFAULT_RULES",
    "IncidentError",
    "Opened",
    "Rule",
    "acknowledge",
    "clear_incident",
    "get_incident",
    "list_incidents",
    "raise_incident",
    "resolve",
    "rule_from_mapping",
]
