"""The evaluator: beside the ingest path, it reads what the ingesters committed and runs the rules.

It follows the `readings` table by data time (with a short overlap for readings committed a little
late), so it sees every ingest worker's rows however many there are, costs the ingesters nothing
per message, and never alerts on data the database did not keep. One evaluator leads at a time (a
PostgreSQL advisory lock); a second one waits as a standby. Rule state, the cursor and incidents
are saved in the same transaction after every pass, so a restart resumes without repeating or
losing a transition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from zhongdu import storage
from zhongdu.alerts import _incidents as incidents
from zhongdu.alerts._machine import Action, State, as_time, condition, step
from zhongdu.alerts._rules import Rule, load_rules
from zhongdu.errors import StorageError
from zhongdu.settings import Settings

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x7A68_616C_6572_74  # "zhalert"
READING_CONDITIONS = frozenset({"above", "below", "rate_above", "rate_below", "event", "no_data"})
CURSOR = "evaluator"
REGISTRY_TTL_S = 30.0
SAVE_LAST_TIME_S = 60.0


class EvaluatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.readings = Counter(
            "zhongdu_alerts_readings_evaluated", "readings the alert evaluator read", registry=registry
        )
        self.reread = Counter(
            "zhongdu_alerts_readings_reread",
            "readings read again in the overlap before the cursor (skipped when already seen)",
            registry=registry,
        )
        self.pass_seconds = Histogram(
            "zhongdu_alerts_pass_seconds", "time of one evaluation pass (read, evaluate, save)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=registry,
        )  # fmt: skip
        self.actions = Counter(
            "zhongdu_alerts_transitions",
            "incident changes made by the evaluator",
            ["action"],
            registry=registry,
        )
        self.leader = Gauge(
            "zhongdu_alerts_evaluator_leader", "1 while this evaluator leads", registry=registry
        )
        self.lag = Gauge(
            "zhongdu_alerts_cursor_lag_seconds",
            "wall time minus the newest reading evaluated",
            registry=registry,
        )


_default_metrics: EvaluatorMetrics | None = None
_metrics_lock = threading.Lock()


def default_metrics() -> EvaluatorMetrics:
    global _default_metrics
    with _metrics_lock:
        if _default_metrics is None:
            _default_metrics = EvaluatorMetrics(REGISTRY)
        return _default_metrics


@dataclass
class Source:
    kind: str | None
    area: str | None
    lon: float | None
    lat: float | None
    registered: float  # epoch seconds


@dataclass
class PassResult:
    readings: int = 0  # rows read, including those re-read in the overlap
    reread: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Evaluator:
    """Runs the enabled rules over new readings and station statuses; `run_once` is one pass."""

    def __init__(
        self,
        settings: Settings,
        *,
        database_url: str | None = None,
        schema: str | None = None,
        metrics: EvaluatorMetrics | None = None,
        batch_limit: int = 200_000,
    ) -> None:
        url = database_url or settings.database_url
        if not url:
            raise StorageError("the alert evaluator needs a database: set ZHONGDU_DATABASE_URL")
        self.url = url
        self.schema = schema
        self.settings = settings
        self.metrics = metrics or default_metrics()
        self.batch_limit = batch_limit
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._rules: list[Rule] = []
        self._states: dict[tuple[str, str], State] = {}
        self._devices: dict[str, Source] = {}
        self._devices_at = 0.0
        self._data_clock: float | None = None
        self._last_read = 0  # rows the last pass read (== batch_limit: a backlog is being worked off)
        self._saved: dict[tuple[str, str], tuple[Any, ...]] = {}
        # newest data time evaluated per (device, metric); None: not known yet (re-read the overlap)
        self._seen: dict[tuple[str, str], float] | None = None
        self._loaded_rules: list[Rule] | None = None
        self.leader = False

    # -- connections and leadership --------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = storage.connect(self.url, schema=self.schema)
        return self._conn

    def try_lead(self) -> bool:
        """Take the leader lock if free (kept for this connection's life)."""
        if self.leader and self._lock_conn is not None and not self._lock_conn.closed:
            return True
        self._lock_conn = storage.connect(self.url, schema=self.schema, autocommit=True)
        row = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
        self.leader = bool(row and row[0])
        self._loaded_rules = None  # a new leadership starts from the saved states
        self._seen = None
        if not self.leader:
            self._lock_conn.close()
            self._lock_conn = None
        self.metrics.leader.set(1 if self.leader else 0)
        return self.leader

    def close(self) -> None:
        for conn in (self._conn, self._lock_conn):
            if conn is not None and not conn.closed:
                conn.close()
        self._conn = self._lock_conn = None
        self._loaded_rules = None
        self.leader = False
        self.metrics.leader.set(0)

    # -- loading ---------------------------------------------------------------------------------

    def _load_states(self, conn: psycopg.Connection[Any]) -> None:
        """Every saved state, once per leadership (and after a rule change or a failed pass): while
        it holds the leader lock, this evaluator is the only one that writes them."""
        self._states = {
            (row[0], row[1]): State(
                bool(row[2]), _f(row[3]), _f(row[4]), _f(row[5]), row[6], list(row[7] or []), bool(row[8])
            )
            for row in conn.execute(
                """SELECT rule_id, source, firing, extract(epoch FROM pending_since),
                          extract(epoch FROM clear_since), extract(epoch FROM last_time), last_value,
                          transitions, flapping FROM alert_state"""
            )
        }
        self._saved = {key: _persisted(state) for key, state in self._states.items()}
        self._loaded_rules = list(self._rules)

    def _refresh_devices(self, conn: psycopg.Connection[Any]) -> None:
        self._devices = {
            str(r[0]): Source(r[1], r[2], r[3], r[4], float(r[5]))
            for r in conn.execute(
                """SELECT device_id, kind, metadata->>'area', lon, lat, extract(epoch FROM registered_at)
                   FROM devices"""
            )
        }
        self._devices_at = time.monotonic()

    # -- one pass --------------------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> PassResult:
        """Read new readings, advance every rule's state, save incidents, states and the cursor."""
        started = time.perf_counter()
        conn = self._connection()
        result = PassResult()
        try:
            self._rules = load_rules(conn, enabled_only=True)
            if self._loaded_rules is None or self._rules != self._loaded_rules:
                self._load_states(conn)
            if time.monotonic() - self._devices_at > REGISTRY_TTL_S:
                self._refresh_devices(conn)
            actions: list[tuple[Rule, str, Action, float, float | None, str]] = []
            dirty: set[tuple[str, str]] = set()
            result.readings, result.reread = self._readings(conn, actions, dirty)
            now = time.time() if now is None else now
            self._tick(conn, now, actions, dirty)
            self._apply(conn, actions)
            incidents.escalate_due(conn)
            self._save_states(conn, dirty)
            conn.commit()
        except Exception:
            conn.rollback()
            self._loaded_rules = None  # this pass's changes were not saved: start again from the saved ones
            self._seen = None
            raise
        for *_, action, _t, _v, _k in actions:
            result.actions[action.value] = result.actions.get(action.value, 0) + 1
            self.metrics.actions.labels(action.value).inc()
        result.seconds = time.perf_counter() - started
        self.metrics.readings.inc(result.readings)
        self.metrics.reread.inc(result.reread)
        self.metrics.pass_seconds.observe(result.seconds)
        return result

    def _readings(
        self,
        conn: psycopg.Connection[Any],
        actions: list[tuple[Rule, str, Action, float, float | None, str]],
        dirty: set[tuple[str, str]],
    ) -> tuple[int, int]:
        by_metric: dict[str, list[Rule]] = defaultdict(list)
        for rule in self._rules:
            if rule.condition in READING_CONDITIONS and rule.metric:
                by_metric[rule.metric].append(rule)
        if not by_metric:
            return 0, 0
        row = conn.execute(
            "SELECT extract(epoch FROM position)::float8 FROM alert_cursors WHERE name = %s", (CURSOR,)
        ).fetchone()
        overlap = self.settings.alerts_overlap_s
        if row is None or row[0] is None:
            start = time.time() - overlap  # a new evaluator alerts from now on; history is for backtests
        else:
            start = float(row[0]) - overlap
            if self._data_clock is None:
                self._data_clock = float(row[0])
        seen = self._seen
        if seen is None:
            # first pass of a leadership (or after a failed one): re-read the overlap, the saved
            # states tell what was evaluated
            rows = conn.execute(
                """SELECT device_id, metric, extract(epoch FROM time)::float8, value FROM readings
                   WHERE time > to_timestamp(%s) AND metric = ANY(%s) ORDER BY time LIMIT %s""",
                (start, list(by_metric), self.batch_limit),
            ).fetchall()
            seen = self._seen = {}
        else:
            # New rows past the cursor, plus, per (device, metric) already known, rows inside the
            # overlap newer than the last one evaluated (committed late): found through the primary
            # key, so a backlog's overlap is not read again and again.
            keys = [(d, m, t) for (d, m), t in seen.items() if m in by_metric]
            rows = conn.execute(
                """(SELECT device_id, metric, extract(epoch FROM time)::float8 AS t, value FROM readings
                    WHERE time > to_timestamp(%(cursor)s) AND metric = ANY(%(metrics)s)
                    ORDER BY time LIMIT %(limit)s)
                   UNION ALL
                   (SELECT k.d, k.m, r.t, r.value
                    FROM unnest(%(devices)s::text[], %(keys)s::text[], %(lasts)s::float8[]) AS k(d, m, last)
                    CROSS JOIN LATERAL (
                        SELECT extract(epoch FROM time)::float8 AS t, value FROM readings
                        WHERE device_id = k.d AND metric = k.m
                          AND time > to_timestamp(greatest(k.last, %(start)s) - 0.000001)
                          AND time <= to_timestamp(%(cursor)s)) r
                    WHERE r.t > k.last)
                   ORDER BY t""",
                {
                    "cursor": start + overlap, "metrics": list(by_metric), "limit": self.batch_limit,
                    "start": start, "devices": [k[0] for k in keys], "keys": [k[1] for k in keys],
                    "lasts": [k[2] for k in keys],
                },
            ).fetchall()  # fmt: skip
        states = self._states
        newest = cursor = start + overlap
        reread = 0
        for device_id, metric, t, value in rows:
            if t > seen.get((device_id, metric), 0.0):
                seen[(device_id, metric)] = t
            source = self._devices.get(device_id)
            if source is None:
                self._refresh_devices(conn)
                source = self._devices.get(device_id) or Source(None, None, None, None, t)
                self._devices[device_id] = source
            if t > newest:
                newest = t
            elif t <= cursor:
                reread += 1
            for rule in by_metric[metric]:
                if not rule.applies_to(device_id, source.kind, source.area):
                    continue
                key = (rule.rule_id, device_id)
                state = states.get(key)
                if state is None:
                    state = states[key] = State()
                elif state.last_time is not None and t <= state.last_time:
                    continue  # seen in an earlier pass (the overlap)
                dirty.add(key)
                if rule.condition == "no_data":
                    state.last_time = t
                    continue
                cond = condition(rule, state, t, value)
                state.last_time, state.last_value = t, value
                if cond is None:
                    continue
                action = step(state, rule, t, cond)
                if action is not None:
                    actions.append((rule, device_id, action, t, value, "device"))
        conn.execute(
            """INSERT INTO alert_cursors (name, position) VALUES (%s, to_timestamp(%s))
               ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position""",
            (CURSOR, newest),
        )
        self.metrics.lag.set(max(0.0, time.time() - newest))
        self._last_read = len(rows)
        if rows:
            self._data_clock = newest
        return len(rows), reread

    def _tick(
        self,
        conn: psycopg.Connection[Any],
        now: float,
        actions: list[tuple[Rule, str, Action, float, float | None, str]],
        dirty: set[tuple[str, str]],
    ) -> None:
        """Wall-clock work: sustained conditions whose source fell quiet, silence, station outages."""
        by_id = {r.rule_id: r for r in self._rules}
        clock = self._data_clock
        for key, state in self._states.items():
            rule = by_id.get(key[0])
            if (
                clock is None
                or rule is None
                or rule.condition not in READING_CONDITIONS
                or rule.condition == "no_data"
            ):
                continue
            # The last reading holds until the next one, on the data's own clock (the newest reading
            # seen from any device): a sustained value fires and a cleared one resolves even when its
            # source reports rarely, and replayed history keeps its own timing.
            if state.pending_since is not None or state.clear_since is not None:
                action = step(state, rule, clock, state.pending_since is not None)
                dirty.add(key)
                if action is not None:
                    actions.append((rule, key[1], action, clock, state.last_value, "device"))
        # While working off a backlog (the last read hit its limit), newer readings are still
        # unread: judging silences now would call every busy device silent.
        catching_up = self._last_read >= self.batch_limit
        for rule in self._rules:
            if rule.condition == "no_data" and not catching_up:
                for device_id, source in self._devices.items():
                    if not rule.applies_to(device_id, source.kind, source.area):
                        continue
                    key = (rule.rule_id, device_id)
                    state = self._states.setdefault(key, State())
                    last = state.last_time if state.last_time is not None else source.registered
                    silent = now - last
                    action = step(state, rule, now, silent > (rule.no_data_s or 0))
                    dirty.add(key)
                    if action is not None:
                        actions.append((rule, device_id, action, now, silent, "device"))
        station_rules = [r for r in self._rules if r.condition == "station_down"]
        if station_rules:
            silence = self.settings.station_silence_timeout_s
            rows = conn.execute(
                """SELECT e.entity_id, e.status, extract(epoch FROM e.observed_at)::float8, s.district
                   FROM entity_status e LEFT JOIN stations s ON s.station_id = e.entity_id
                   WHERE e.kind = 'bs'"""
            ).fetchall()
            for station_id, status, observed, district in rows:
                down = status == "down" or now - observed > silence
                for rule in station_rules:
                    if not rule.applies_to(station_id, None, district):
                        continue
                    key = (rule.rule_id, station_id)
                    state = self._states.setdefault(key, State())
                    action = step(state, rule, now, down)
                    dirty.add(key)
                    if action is not None:
                        actions.append((rule, station_id, action, now, 1.0 if down else 0.0, "station"))

    def _apply(
        self, conn: psycopg.Connection[Any], actions: list[tuple[Rule, str, Action, float, float | None, str]]
    ) -> None:
        for rule, source, action, t, value, kind in actions:
            if action is Action.FIRE:
                where = self._devices.get(source)
                lon, lat = (where.lon, where.lat) if where is not None and kind == "device" else (None, None)
                if kind == "station":
                    found = conn.execute(
                        "SELECT lon, lat FROM stations WHERE station_id = %s", (source,)
                    ).fetchone()
                    lon, lat = (found[0], found[1]) if found else (None, None)
                incidents.open_incident(
                    conn, rule, source, summary=summarise(rule, source, value), value=value,
                    data_time=datetime.fromtimestamp(t, UTC), source_kind=kind, lon=lon, lat=lat,
                    details={"metric": rule.metric, "threshold": rule.threshold, "condition": rule.condition},
                )  # fmt: skip
            elif action is Action.CLEAR:
                if rule.auto_resolve:  # otherwise a person resolves it; the rule re-arms meanwhile
                    incidents.resolve_open(conn, rule.rule_id, source)
            else:
                incidents.note_flap(conn, rule.rule_id, source, flagged=action is Action.FLAPPING)

    def _save_states(self, conn: psycopg.Connection[Any], touched: set[tuple[str, str]]) -> None:
        """Save the states whose machine changed, and the others' last reading now and then.

        Most readings only move `last_time`; saving it every pass would cost more than evaluating.
        It is saved when the machine changes, for rate rules (the last value is half the rate), and
        otherwise once it is `SAVE_LAST_TIME_S` (or a tenth of a no-data window) newer than saved: after
        a restart, the overlap re-reads at most that much, and no-data silences stay right.
        One COPY into a temporary table and one upsert.
        """
        by_id = {r.rule_id: r for r in self._rules}
        dirty = set()
        for key in touched:
            now, old = _persisted(self._states[key]), self._saved.get(key)
            rule = by_id.get(key[0])
            if old is None or now[:5] != old[:5] or (rule is not None and rule.condition.startswith("rate")):
                dirty.add(key)
                continue
            every = SAVE_LAST_TIME_S
            if rule is not None and rule.no_data_s:
                every = min(every, rule.no_data_s / 10)
            if now[5] is not None and (old[5] is None or now[5] - old[5] >= every):
                dirty.add(key)
        if not dirty:
            return
        conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS alert_state_in
                   (LIKE alert_state INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
        )
        with conn.cursor().copy(
            "COPY alert_state_in (rule_id, source, firing, pending_since, clear_since, last_time, "
            "last_value, transitions, flapping) FROM STDIN"
        ) as copy:
            for key in sorted(dirty):
                s = self._states[key]
                copy.write_row((key[0], key[1], s.firing, as_time(s.pending_since), as_time(s.clear_since),
                                as_time(s.last_time), s.last_value, s.transitions, s.flapping))  # fmt: skip
        conn.execute(
            """INSERT INTO alert_state (rule_id, source, firing, pending_since, clear_since, last_time,
                                        last_value, transitions, flapping)
               SELECT rule_id, source, firing, pending_since, clear_since, last_time, last_value, transitions,
                      flapping FROM alert_state_in ORDER BY rule_id, source
               ON CONFLICT (rule_id, source) DO UPDATE SET firing = EXCLUDED.firing,
                   pending_since = EXCLUDED.pending_since, clear_since = EXCLUDED.clear_since,
                   last_time = EXCLUDED.last_time, last_value = EXCLUDED.last_value,
                   transitions = EXCLUDED.transitions, flapping = EXCLUDED.flapping"""
        )
        for key in dirty:
            self._saved[key] = _persisted(self._states[key])

    # -- loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Evaluate every `alerts_poll_interval_s` until `stop` is set; wait as standby while
        another evaluator leads; retry the database with backoff."""
        delay = 1.0
        while not stop.is_set():
            try:
                if not self.try_lead():
                    stop.wait(5.0)
                    continue
                self.run_once()
                delay = 1.0
            except (psycopg.OperationalError, psycopg.InterfaceError, StorageError) as exc:
                log.warning("alert evaluation failed (%s); retrying in %.0f s", exc, delay)
                self.close()
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            stop.wait(self.settings.alerts_poll_interval_s)
        self.close()


def summarise(rule: Rule, source: str, value: float | None) -> str:
    """One line for the wall and the webhook: what, where, how much, against what."""
    shown = "" if value is None else f"{value:g}"
    if rule.condition in ("above", "below", "rate_above", "rate_below"):
        sign = ">" if "above" in rule.condition else "<"
        per = "/min" if rule.condition.startswith("rate") else ""
        return f"{rule.name}: {source} {rule.metric} {shown}{per} {sign} {rule.threshold:g}"
    if rule.condition == "no_data":
        return f"{rule.name}: {source} silent for {shown} s (limit {rule.no_data_s:g} s)"
    if rule.condition == "station_down":
        return f"{rule.name}: station {source}"
    return f"{rule.name}: {source} ({rule.metric})"


def _persisted(state: State) -> tuple[Any, ...]:
    """What is saved of a state: the machine first (compared on every pass), then the last reading."""
    return (state.firing, state.pending_since, state.clear_since, tuple(state.transitions), state.flapping,
            state.last_time, state.last_value)  # fmt: skip


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def run_alerts(settings: Settings, stop: threading.Event, *, webhooks: bool = True) -> None:
    """The evaluator in this thread and, with `webhooks`, the dispatcher in another, until `stop`
    (what `zhongdu alerts run` and `zhongdu demo` run)."""
    from zhongdu.alerts._webhooks import Dispatcher

    dispatcher = None
    if webhooks:
        dispatcher = threading.Thread(
            target=Dispatcher(settings).run, args=(stop,), name="alerts-webhooks", daemon=True
        )
        dispatcher.start()
    try:
        Evaluator(settings).run(stop)
    finally:
        stop.set()
        if dispatcher is not None:
            dispatcher.join(30)
