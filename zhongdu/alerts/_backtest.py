"""Backtest: run a rule over stored readings and list the incidents it would have opened.

The same state machine as the live evaluator, on the readings' own times, so the answer is when
the rule would have fired, how long each incident lasted and which ones would have flapped;
nothing is written. The condition is checked on arrays where it allows (thresholds without
hysteresis state are not the common case, so the machine still walks reading by reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from zhongdu.alerts._machine import Action, State, as_time, condition, step
from zhongdu.alerts._rules import Rule
from zhongdu.errors import ConfigError


@dataclass
class WouldBe:
    source: str
    opened_at: datetime
    resolved_at: datetime | None
    peak: float | None
    flaps: int
    flapping: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "peak": self.peak,
            "flaps": self.flaps,
            "flapping": self.flapping,
        }


def backtest(
    conn: psycopg.Connection[Any], rule: Rule, start: datetime, end: datetime, *, limit_rows: int = 5_000_000
) -> dict[str, Any]:
    """The incidents `rule` would have opened between `start` and `end`, and what it read."""
    if rule.condition not in ("above", "below", "rate_above", "rate_below", "event"):
        raise ConfigError(f"backtests replay readings: a {rule.condition!r} rule cannot be replayed")
    if end <= start:
        raise ConfigError("the backtest window must end after it starts")
    devices = {
        str(r[0]): (r[1], r[2])
        for r in conn.execute("SELECT device_id, kind, metadata->>'area' FROM devices")
    }
    rows = conn.execute(
        """SELECT device_id, extract(epoch FROM time)::float8, value FROM readings
           WHERE metric = %s AND time >= %s AND time < %s AND (%s::text IS NULL OR device_id = %s)
           ORDER BY device_id, time LIMIT %s""",
        (rule.metric, start, end, rule.device_id, rule.device_id, limit_rows),
    ).fetchall()
    found: list[WouldBe] = []
    open_by_source: dict[str, WouldBe] = {}
    states: dict[str, State] = {}
    sources: set[str] = set()
    for device_id, t, value in rows:
        kind, area = devices.get(device_id, (None, None))
        if not rule.applies_to(device_id, kind, area):
            continue
        sources.add(device_id)
        state = states.setdefault(device_id, State())
        cond = condition(rule, state, t, value)
        state.last_time, state.last_value = t, value
        current = open_by_source.get(device_id)
        if (
            current is not None
            and value is not None
            and (current.peak is None or _worse(rule, value, current.peak))
        ):
            current.peak = value
        if cond is None:
            continue
        action = step(state, rule, t, cond)
        if action is Action.FIRE:
            current = WouldBe(device_id, as_time(t), None, value, 0, False)  # type: ignore[arg-type]
            open_by_source[device_id] = current
            found.append(current)
        elif action is Action.CLEAR and current is not None:
            current.resolved_at = as_time(t)
            del open_by_source[device_id]
        elif action in (Action.FLAP, Action.FLAPPING) and current is not None:
            current.flaps += 1
            current.flapping = current.flapping or action is Action.FLAPPING
    return {
        "rule_id": rule.rule_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "readings": len(rows),
        "sources": len(sources),
        "truncated": len(rows) >= limit_rows,
        "incidents": [w.as_dict() for w in found],
    }


def _worse(rule: Rule, value: float, peak: float) -> bool:
    return value < peak if rule.condition in ("below", "rate_below") else value > peak
