"""Incidents: open, flag, acknowledge, escalate, resolve; each change recorded as an event.

Opening relies on the partial unique index `alert_incidents_one_open` (one incident not yet
resolved per rule and source): two evaluators, or a message and a hand-raised incident arriving
together, meet in the index and the second one finds the first's incident instead of a twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from zhongdu.alerts._rules import Rule, get_rule, save_rule
from zhongdu.errors import ConfigError

STATES = ("open", "acknowledged", "resolved")
INCIDENT_FIELDS = (
    "incident_id", "rule_id", "source", "source_kind", "state", "severity", "summary", "value", "lon",
    "lat", "details", "flapping", "flaps", "opened_at", "data_time", "acked_by", "acked_at", "ack_note",
    "escalation_level", "escalated_at", "resolved_at", "resolved_by", "resolve_note", "updated_at",
)  # fmt: skip
SELECT_INCIDENTS = sql.SQL("SELECT {} FROM alert_incidents").format(
    sql.SQL(", ").join(sql.Identifier(f) for f in INCIDENT_FIELDS)
)


class IncidentError(ConfigError):
    """An incident change that does not apply (unknown id, wrong state)."""


@dataclass(frozen=True)
class Opened:
    incident_id: int
    new: bool  # False: an incident was already open for this rule and source


def _event(conn: psycopg.Connection[Any], incident_id: int, kind: str, actor: str, note: str | None) -> None:
    conn.execute(
        "INSERT INTO alert_events (incident_id, kind, actor, note) VALUES (%s, %s, %s, %s)",
        (incident_id, kind, actor, note),
    )


def open_incident(
    conn: psycopg.Connection[Any],
    rule: Rule,
    source: str,
    *,
    summary: str,
    value: float | None = None,
    data_time: datetime | None = None,
    source_kind: str = "device",
    lon: float | None = None,
    lat: float | None = None,
    details: dict[str, Any] | None = None,
    severity: str | None = None,
) -> Opened:
    """Open an incident, or find the one already open for (rule, source)."""
    row = conn.execute(
        """INSERT INTO alert_incidents (rule_id, source, source_kind, severity, summary, value, lon, lat,
                                        details, data_time)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (rule_id, source) WHERE state <> 'resolved' DO NOTHING
           RETURNING incident_id""",
        (rule.rule_id, source, source_kind, severity or rule.severity, summary, value, lon, lat,
         Jsonb(details or {}), data_time),
    ).fetchone()  # fmt: skip
    if row is not None:
        _event(conn, int(row[0]), "opened", "system", summary)
        return Opened(int(row[0]), True)
    existing = conn.execute(
        "SELECT incident_id FROM alert_incidents WHERE rule_id = %s AND source = %s AND state <> 'resolved'",
        (rule.rule_id, source),
    ).fetchone()
    if existing is None:  # resolved between the two statements: open afresh
        return open_incident(
            conn, rule, source, summary=summary, value=value, data_time=data_time, source_kind=source_kind,
            lon=lon, lat=lat, details=details, severity=severity,
        )  # fmt: skip
    return Opened(int(existing[0]), False)


def note_flap(conn: psycopg.Connection[Any], rule_id: str, source: str, *, flagged: bool) -> int | None:
    """Count a flap on the open incident; `flagged` marks it flapping (one event, once)."""
    row = conn.execute(
        """UPDATE alert_incidents SET flaps = flaps + 1, flapping = flapping OR %s, updated_at = now()
           WHERE rule_id = %s AND source = %s AND state <> 'resolved'
           RETURNING incident_id, flaps""",
        (flagged, rule_id, source),
    ).fetchone()
    if row is None:
        return None
    if flagged:
        _event(conn, int(row[0]), "flapping", "system", f"condition changed {row[1]} times; held open")
    return int(row[0])


def resolve_open(
    conn: psycopg.Connection[Any], rule_id: str, source: str, *, by: str = "auto", note: str | None = None
) -> int | None:
    """Resolve the open (or acknowledged) incident of (rule, source), if any."""
    row = conn.execute(
        """UPDATE alert_incidents SET state = 'resolved', resolved_at = now(), resolved_by = %s,
                  resolve_note = %s, updated_at = now()
           WHERE rule_id = %s AND source = %s AND state <> 'resolved' RETURNING incident_id""",
        (by, note, rule_id, source),
    ).fetchone()
    if row is None:
        return None
    _event(conn, int(row[0]), "resolved", by, note or "the condition cleared")
    return int(row[0])


def acknowledge(
    conn: psycopg.Connection[Any], incident_id: int, *, by: str, note: str | None = None
) -> dict[str, Any]:
    """Record who acknowledged an open incident and why; it still resolves when the condition clears."""
    if not by.strip():
        raise IncidentError("an acknowledgement needs a name (who)")
    row = conn.execute(
        """UPDATE alert_incidents SET state = 'acknowledged', acked_by = %s, acked_at = now(), ack_note = %s,
                  updated_at = now()
           WHERE incident_id = %s AND state = 'open' RETURNING incident_id""",
        (by, note, incident_id),
    ).fetchone()
    if row is None:
        current = get_incident(conn, incident_id)
        if current is None:
            raise IncidentError(f"no incident {incident_id}")
        raise IncidentError(
            f"incident {incident_id} is {current['state']}; only an open one can be acknowledged"
        )
    _event(conn, incident_id, "acknowledged", by, note)
    incident = get_incident(conn, incident_id)
    assert incident is not None
    return incident


def resolve(
    conn: psycopg.Connection[Any], incident_id: int, *, by: str, note: str | None = None
) -> dict[str, Any]:
    """Resolve an incident by hand. The rule's state is left alone: a condition still holding opens
    no new incident until it has cleared and crossed again (the operator closed this occurrence)."""
    row = conn.execute(
        """UPDATE alert_incidents SET state = 'resolved', resolved_at = now(), resolved_by = %s,
                  resolve_note = %s, updated_at = now()
           WHERE incident_id = %s AND state <> 'resolved' RETURNING rule_id, source""",
        (by, note, incident_id),
    ).fetchone()
    if row is None:
        if get_incident(conn, incident_id) is None:
            raise IncidentError(f"no incident {incident_id}")
        raise IncidentError(f"incident {incident_id} is already resolved")
    _event(conn, incident_id, "resolved", by, note or "resolved by hand")
    incident = get_incident(conn, incident_id)
    assert incident is not None
    return incident


def escalate_due(conn: psycopg.Connection[Any]) -> list[int]:
    """Escalate every open, unacknowledged incident whose rule's escalation time has passed since
    it opened (or since its last escalation)."""
    rows = conn.execute(
        """UPDATE alert_incidents i SET escalation_level = escalation_level + 1, escalated_at = now(),
                  updated_at = now()
           FROM alert_rules r
           WHERE r.rule_id = i.rule_id AND i.state = 'open' AND r.escalate_after_s IS NOT NULL
             AND now() - coalesce(i.escalated_at, i.opened_at) >= make_interval(secs => r.escalate_after_s)
           RETURNING i.incident_id, i.escalation_level"""
    ).fetchall()
    for incident_id, level in rows:
        _event(conn, int(incident_id), "escalated", "system", f"unacknowledged: escalation level {level}")
    return [int(r[0]) for r in rows]


def get_incident(conn: psycopg.Connection[Any], incident_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        query = sql.SQL("{} WHERE incident_id = %s").format(SELECT_INCIDENTS)
        return cur.execute(query, (incident_id,)).fetchone()


def list_incidents(
    conn: psycopg.Connection[Any],
    *,
    state: str | None = None,
    rule_id: str | None = None,
    source: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    if state is not None and state not in STATES:
        raise IncidentError(f"state must be one of {', '.join(STATES)}")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                """{} WHERE (%(state)s::text IS NULL OR state = %(state)s)
                     AND (%(rule)s::text IS NULL OR rule_id = %(rule)s)
                     AND (%(source)s::text IS NULL OR source = %(source)s)
                   ORDER BY opened_at DESC, incident_id DESC LIMIT %(limit)s"""
            ).format(SELECT_INCIDENTS),
            {"state": state, "rule": rule_id, "source": source, "limit": limit},
        ).fetchall()


def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT state, count(*) FROM alert_incidents WHERE state <> 'resolved' GROUP BY state"
    ).fetchall()
    found = {str(s): int(n) for s, n in rows}
    return {"open": found.get("open", 0), "acknowledged": found.get("acknowledged", 0)}


# -- incidents from outside the telemetry ------------------------------------------------------------


def raise_incident(
    conn: psycopg.Connection[Any],
    rule_id: str,
    source: str,
    *,
    summary: str,
    name: str | None = None,
    severity: str = "warning",
    source_kind: str = "external",
    value: float | None = None,
    lon: float | None = None,
    lat: float | None = None,
    details: dict[str, Any] | None = None,
    escalate_after_s: float | None = None,
) -> Opened:
    """Open an incident for any source (a hotspot cell, a station, another system's alarm).

    The rule `rule_id` is created as an 'external' rule on first use (so it can be listed, disabled,
    escalated and webhooked like the others); while an incident of (rule, source) is open, calling
    again returns it (`new=False`) instead of opening a second one. Clear it with
    `clear_incident`. Runs in the caller's transaction: commit to publish it.
    """
    rule = get_rule(conn, rule_id)
    if rule is None:
        rule = Rule(rule_id, name or rule_id, "external", severity=severity,
                    escalate_after_s=escalate_after_s, created_by=source_kind).validate()  # fmt: skip
        save_rule(conn, rule, replace_existing=False)
    if not rule.enabled:
        raise IncidentError(f"rule {rule_id!r} is disabled")
    return open_incident(
        conn, rule, source, summary=summary, value=value, source_kind=source_kind, lon=lon, lat=lat,
        details=details, severity=severity,
    )  # fmt: skip


def clear_incident(
    conn: psycopg.Connection[Any], rule_id: str, source: str, *, note: str | None = None
) -> int | None:
    """Resolve the incident `raise_incident` opened for (rule, source), if one is open."""
    return resolve_open(conn, rule_id, source, by="auto", note=note or "the source reported it cleared")
