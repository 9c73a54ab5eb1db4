"""Alert rules: what to watch, when it counts as a problem, and the defaults the city starts with.

A rule names a metric of the ingester's catalogue (or a station's status), which sources it
covers (one device, a device kind, an area, or all), a condition and how long the condition must
hold (`for_s`) or stay cleared (`clear_for_s`) before anything changes. `clear_threshold` gives
hysteresis: a value hovering at the line neither opens nor resolves incidents on every reading.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from zhongdu.errors import ConfigError
from zhongdu.ingest._metrics_catalogue import BOOLEAN_METRICS, DEVICE_KINDS, METRICS

CONDITIONS = ("above", "below", "rate_above", "rate_below", "no_data", "event", "station_down", "external")
SEVERITIES = ("info", "warning", "critical")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")


@dataclass(frozen=True)
class Rule:
    """One alert rule (a row of `alert_rules`)."""

    rule_id: str
    name: str
    condition: str
    metric: str | None = None
    device_id: str | None = None
    device_kind: str | None = None
    area: str | None = None
    threshold: float | None = None
    clear_threshold: float | None = None
    no_data_s: float | None = None
    for_s: float = 0.0
    clear_for_s: float = 0.0
    active_hours: str | None = None
    severity: str = "warning"
    escalate_after_s: float | None = None
    flap_window_s: float = 600.0
    flap_count: int = 4
    auto_resolve: bool = True
    enabled: bool = True
    source_note: str = ""
    created_by: str = "system"

    def validate(self) -> Rule:
        """The rule itself, or a ConfigError saying what is wrong with it."""
        problems = []
        if not _RULE_ID.match(self.rule_id):
            problems.append(
                "rule_id must be 1-64 of a-z, 0-9, '_', '.', '-' (starting with a letter or digit)"
            )
        if self.condition not in CONDITIONS:
            problems.append(f"condition must be one of {', '.join(CONDITIONS)}")
        if self.severity not in SEVERITIES:
            problems.append(f"severity must be one of {', '.join(SEVERITIES)}")
        telemetry = self.condition in ("above", "below", "rate_above", "rate_below", "no_data", "event")
        if telemetry:
            if not self.metric:
                problems.append(f"a {self.condition!r} rule needs a metric")
            elif self.metric not in METRICS:
                problems.append(f"metric {self.metric!r} is not in the catalogue")
            elif (
                self.condition != "no_data"
                and METRICS[self.metric].unit is None
                and self.condition != "event"
            ):
                problems.append(f"metric {self.metric!r} is not numeric: use condition 'event'")
        if self.device_kind is not None and self.device_kind not in DEVICE_KINDS:
            problems.append(f"device_kind must be one of {', '.join(DEVICE_KINDS)}")
        if self.condition in ("above", "below", "rate_above", "rate_below") and self.threshold is None:
            problems.append(f"a {self.condition!r} rule needs a threshold")
        if self.condition == "no_data" and not self.no_data_s:
            problems.append("a 'no_data' rule needs no_data_s (seconds of silence)")
        if self.clear_threshold is not None and self.threshold is not None:
            if self.condition in ("above", "rate_above") and self.clear_threshold > self.threshold:
                problems.append("clear_threshold must not be above threshold for an 'above' rule")
            if self.condition in ("below", "rate_below") and self.clear_threshold < self.threshold:
                problems.append("clear_threshold must not be below threshold for a 'below' rule")
        if self.active_hours is not None:
            match = _HOURS.match(self.active_hours)
            if not match or int(match[1]) > 24 or int(match[2]) > 24 or match[1] == match[2]:
                problems.append("active_hours must be 'HH-HH' in local time, e.g. '07-20' or '23-07'")
        if self.for_s < 0 or self.clear_for_s < 0:
            problems.append("for_s and clear_for_s must be >= 0")
        if self.flap_count < 2 or self.flap_window_s <= 0:
            problems.append("flap_count must be >= 2 and flap_window_s > 0")
        if problems:
            raise ConfigError(f"rule {self.rule_id!r}: " + "; ".join(problems))
        return self

    @property
    def event_value(self) -> float:
        """The value an 'event' rule fires on (boolean metrics: true = 1)."""
        return 1.0 if self.threshold is None else self.threshold

    def hours(self) -> tuple[int, int] | None:
        if self.active_hours is None:
            return None
        match = _HOURS.match(self.active_hours)
        assert match is not None
        return int(match[1]) % 24, int(match[2]) % 24

    def applies_to(self, device_id: str, kind: str | None, area: str | None) -> bool:
        return (
            (self.device_id is None or self.device_id == device_id)
            and (self.device_kind is None or self.device_kind == kind)
            and (self.area is None or self.area == area)
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RULE_FIELDS = tuple(f.name for f in fields(Rule))


def rule_from_mapping(values: dict[str, Any]) -> Rule:
    """A validated rule from a dict (API body, database row); unknown keys are refused."""
    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown rule fields: {', '.join(sorted(unknown))}")
    try:
        rule = Rule(**values)
    except TypeError as exc:
        raise ConfigError(f"incomplete rule: {exc}") from exc
    return rule.validate()


# -- defaults ---------------------------------------------------------------------------------------

_AQI = (
    "Taiwan AQI (空氣品質指標, Ministry of Environment, in force since 2016-12-01): the lower bound of "
    "the orange band 'unhealthy for sensitive groups' (AQI 101)"
)
_NOISE = (
    "環境音量標準 (ambient noise standard under the 噪音管制法; the 噪音管制標準 use the same zone "
    "classes and periods), general area, class 3 control zone (commercial/mixed: the Shuinan "
    "park's zoning, an assumption to check against the city's 噪音管制區 map)"
)

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "aqi-pm2_5",
        "PM2.5 unhealthy for sensitive groups",
        "above",
        metric="pm2_5",
        device_kind="air",
        threshold=35.5,
        clear_threshold=30.0,
        for_s=3600,
        clear_for_s=600,
        severity="warning",
        escalate_after_s=3600,
        source_note=f"{_AQI}: PM2.5 35.5 µg/m³; the AQI averages over hours "
        "(0.5 × 12 h + 0.5 × 4 h), here one hour sustained",
    ),
    Rule(
        "aqi-pm2_5-unhealthy",
        "PM2.5 unhealthy",
        "above",
        metric="pm2_5",
        device_kind="air",
        threshold=54.5,
        clear_threshold=50.0,
        for_s=3600,
        clear_for_s=600,
        severity="critical",
        escalate_after_s=1800,
        source_note="Taiwan AQI: lower bound of the red band 'unhealthy' (AQI 151), PM2.5 54.5 µg/m³",
    ),
    Rule(
        "aqi-pm10",
        "PM10 unhealthy for sensitive groups",
        "above",
        metric="pm10",
        device_kind="air",
        threshold=126.0,
        clear_threshold=115.0,
        for_s=3600,
        clear_for_s=600,
        severity="warning",
        escalate_after_s=3600,
        source_note=f"{_AQI}: PM10 126 µg/m³ (24-hour average; here one hour sustained)",
    ),
    Rule(
        "aqi-o3",
        "Ozone unhealthy for sensitive groups",
        "above",
        metric="o3",
        device_kind="air",
        threshold=139.0,
        clear_threshold=125.0,
        for_s=3600,
        clear_for_s=600,
        severity="warning",
        escalate_after_s=3600,
        source_note=f"{_AQI}: O3 8-hour 0.071 ppm = 139 µg/m³ at 25 °C "
        "(1 ppb = 1.963 µg/m³); here one hour sustained",
    ),
    Rule(
        "noise-day",
        "Noise over the daytime limit",
        "above",
        metric="noise_laeq",
        device_kind="noise",
        threshold=65.0,
        clear_threshold=63.0,
        for_s=600,
        clear_for_s=300,
        active_hours="07-20",
        severity="warning",
        source_note=f"{_NOISE}: L日 65 dB(A), 07:00-20:00",
    ),
    Rule(
        "noise-evening",
        "Noise over the evening limit",
        "above",
        metric="noise_laeq",
        device_kind="noise",
        threshold=60.0,
        clear_threshold=58.0,
        for_s=600,
        clear_for_s=300,
        active_hours="20-23",
        severity="warning",
        source_note=f"{_NOISE}: L晚 60 dB(A), 20:00-23:00",
    ),
    Rule(
        "noise-night",
        "Noise over the night limit",
        "above",
        metric="noise_laeq",
        device_kind="noise",
        threshold=55.0,
        clear_threshold=53.0,
        for_s=600,
        clear_for_s=300,
        active_hours="23-07",
        severity="warning",
        source_note=f"{_NOISE}: L夜 55 dB(A), 23:00-07:00",
    ),
    Rule(
        "intrusion",
        "Intrusion alarm",
        "event",
        metric="intrusion",
        device_kind="security",
        threshold=1.0,
        severity="critical",
        escalate_after_s=300,
        auto_resolve=False,
        source_note="the park's security plan: an intrusion alarm is acted on at once (no delay) and "
        "stays open until a person resolves it, even when the detector resets",
    ),
    Rule(
        "meter-silent",
        "Smart meter silent",
        "no_data",
        metric="energy",
        device_kind="meter",
        no_data_s=900,
        severity="warning",
        escalate_after_s=7200,
        source_note="meters report every minute; 15 minutes of silence is 15 missed reports",
    ),
    Rule(
        "station-down",
        "Base station out of service",
        "station_down",
        for_s=60,
        clear_for_s=60,
        severity="critical",
        escalate_after_s=1800,
        source_note="station status 'down', or silent past ZHONGDU_STATION_SILENCE_TIMEOUT_S",
    ),
)
assert all(r.validate() for r in DEFAULT_RULES)
assert all(r.metric is None or r.metric in BOOLEAN_METRICS or METRICS[r.metric].unit for r in DEFAULT_RULES)


# -- storage ----------------------------------------------------------------------------------------

_COLUMNS = sql.SQL(", ").join(sql.Identifier(f) for f in RULE_FIELDS)
_PLACEHOLDERS = sql.SQL(", ").join(sql.Placeholder(f) for f in RULE_FIELDS)
_UPDATES = sql.SQL(", ").join(
    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(f), sql.Identifier(f))
    for f in RULE_FIELDS
    if f not in ("rule_id", "created_by")
)
_SELECT = sql.SQL("SELECT {} FROM alert_rules").format(_COLUMNS)


def load_rules(conn: psycopg.Connection[Any], *, enabled_only: bool = False) -> list[Rule]:
    query = sql.SQL("{} WHERE enabled OR NOT %s ORDER BY rule_id").format(_SELECT)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, (enabled_only,)).fetchall()
    return [Rule(**row) for row in rows]


def get_rule(conn: psycopg.Connection[Any], rule_id: str) -> Rule | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql.SQL("{} WHERE rule_id = %s").format(_SELECT), (rule_id,)).fetchone()
    return Rule(**row) if row else None


def save_rule(conn: psycopg.Connection[Any], rule: Rule, *, replace_existing: bool = True) -> bool:
    """Insert or (with `replace_existing`) update the rule; True when it is new.

    Changing a rule resets its evaluation state: pending and flapping counts of the old condition
    mean nothing under the new one. Open incidents stay (they resolve when the condition clears).
    """
    rule.validate()
    conflict = (
        sql.SQL("DO UPDATE SET {}, updated_at = now()").format(_UPDATES)
        if replace_existing
        else sql.SQL("DO NOTHING")
    )
    query = sql.SQL(
        "INSERT INTO alert_rules ({}) VALUES ({}) ON CONFLICT (rule_id) {} RETURNING (xmax = 0)"
    ).format(_COLUMNS, _PLACEHOLDERS, conflict)
    row = conn.execute(query, rule.as_dict()).fetchone()
    if row is not None and not row[0]:
        conn.execute(
            "UPDATE alert_state SET pending_since = NULL, transitions = '{}' WHERE rule_id = %s",
            (rule.rule_id,),
        )
    return bool(row and row[0])


def delete_rule(conn: psycopg.Connection[Any], rule_id: str) -> bool:
    """Delete a rule with its state and incidents' history (use `enabled=False` to keep them)."""
    cur = conn.execute("DELETE FROM alert_rules WHERE rule_id = %s", (rule_id,))
    return cur.rowcount > 0


def install_defaults(conn: psycopg.Connection[Any]) -> int:
    """Add the shipped default rules that are missing (edited ones are kept); how many were added."""
    return sum(save_rule(conn, rule, replace_existing=False) for rule in DEFAULT_RULES)


def with_changes(rule: Rule, **changes: Any) -> Rule:
    return replace(rule, **changes).validate()
