"""The state machine of one rule for one source: pure, so the evaluator and the backtest share it.

Times are epoch seconds of the data (a reading's own time), so a replay of stored history fires
exactly when the live evaluator would have. A condition must hold for `for_s` to fire; once
firing it must stay false for `clear_for_s` to clear. A condition that comes back while clearing
is a flap: it stays the same incident, and once `flap_count` changes fall within `flap_window_s`
the incident is flagged flapping and clears only after a whole quiet window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

from zhongdu.alerts._rules import Rule

LOCAL = timezone(timedelta(hours=8), "Asia/Taipei")  # no daylight saving since 1979


class Action(Enum):
    FIRE = "fire"  # open an incident
    CLEAR = "clear"  # resolve it
    FLAP = "flap"  # came back while clearing: same incident, one more flap
    FLAPPING = "flapping"  # the flap that crossed flap_count: flag the incident once


@dataclass
class State:
    firing: bool = False
    pending_since: float | None = None
    clear_since: float | None = None
    last_time: float | None = None
    last_value: float | None = None
    transitions: list[float] = field(default_factory=list)
    flapping: bool = False


def step(state: State, rule: Rule, t: float, cond: bool) -> Action | None:
    """Advance `state` to time `t` with the condition's value; the action it calls for, if any."""
    if cond:
        state.pending_since = None if state.firing else state.pending_since
        if state.firing:
            if state.clear_since is None:
                return None
            state.clear_since = None  # it came back before clearing: a flap
            state.transitions = [x for x in state.transitions if t - x <= rule.flap_window_s]
            state.transitions.append(t)
            if not state.flapping and len(state.transitions) >= rule.flap_count:
                state.flapping = True
                return Action.FLAPPING
            return Action.FLAP
        if state.pending_since is None:
            state.pending_since = t
        if t - state.pending_since >= rule.for_s:
            state.firing, state.pending_since = True, None
            state.transitions, state.flapping = [t], False
            return Action.FIRE
        return None
    state.pending_since = None
    if not state.firing:
        return None
    if state.clear_since is None:
        state.clear_since = t
        state.transitions = [x for x in state.transitions if t - x <= rule.flap_window_s]
        state.transitions.append(t)
    needed = rule.flap_window_s if state.flapping else rule.clear_for_s
    if t - state.clear_since >= needed:
        state.firing, state.clear_since = False, None
        state.transitions, state.flapping = [], False
        return Action.CLEAR
    return None


def in_hours(rule: Rule, t: float) -> bool:
    """Whether local time `t` falls in the rule's active hours (always, without any)."""
    hours = rule.hours()
    if hours is None:
        return True
    start, end = hours
    hour = datetime.fromtimestamp(t, LOCAL).hour
    return start <= hour < end if start < end else (hour >= start or hour < end)


def condition(rule: Rule, state: State, t: float, value: float | None) -> bool | None:
    """The rule's condition for a reading; None when the reading says nothing (not a number).

    Hysteresis: once the condition holds (pending or firing), it ends only past `clear_threshold`.
    """
    if value is None:
        return None
    if not in_hours(rule, t):
        return False
    inside = state.firing or state.pending_since is not None
    kind = rule.condition
    if kind == "event":
        return value == rule.event_value
    if kind in ("rate_above", "rate_below"):
        if state.last_time is None or state.last_value is None or t <= state.last_time:
            return None
        value = (value - state.last_value) / (t - state.last_time) * 60.0  # per minute
    line = rule.threshold
    assert line is not None
    if inside and rule.clear_threshold is not None:
        line = rule.clear_threshold
    if kind in ("above", "rate_above"):
        return value > line
    return value < line


def epoch(ts: datetime | None) -> float | None:
    return None if ts is None else ts.timestamp()


def as_time(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)
