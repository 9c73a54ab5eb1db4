"""Live coverage kept in memory: recomputed when the serving set of stations changes, never per request.

A background thread builds the coverage engine from the station layout, then polls the stations'
latest status (`entity_status`) every `coverage_poll_interval_s`. When the set of serving stations
changes (a status change, or a station falling silent past the timeout) it updates the engine
incrementally, stores a snapshot (trigger `status-change`) and swaps in a new immutable
`LiveSnapshot` whose JSON body is serialised once; a snapshot is also stored at least every
`coverage_snapshot_interval_s` (trigger `schedule`). `GET /v1/coverage` just returns that body.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from zhongdu import storage

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from zhongdu.api._ops_history import OpsHistory
    from zhongdu.api._outage_effect import OutageEffect
    from zhongdu.coverage import CoverageEngine, Grid, Stations
    from zhongdu.settings import Settings

log = logging.getLogger(__name__)

LayoutFactory = Callable[[], "tuple[Grid, Stations]"]
Clock = Callable[[], datetime]

# What the map shows per site, as small integer codes (index into this tuple): `unknown` never
# reported (it serves as its layout says), `silent` up or degraded but unheard past the timeout.
SITE_STATUSES: tuple[str, ...] = ("unknown", "up", "degraded", "down", "silent")
_STATUS_CODE = {"up": 1, "degraded": 2, "down": 3}


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_layout(settings: Settings) -> LayoutFactory:
    """The configured grid and stations files, else the shipped grid and the generated layout."""

    def build() -> tuple[Grid, Stations]:
        from zhongdu import coverage

        grid = (
            coverage.load_grid(settings.grid_path)
            if settings.grid_path
            else coverage.load_default_grid(settings.h3_resolution)
        )
        stations = (
            coverage.load_stations(settings.stations_path)
            if settings.stations_path
            else coverage.generate_layout(grid)
        )
        return grid, stations

    return build


@dataclass(frozen=True)
class LiveSnapshot:
    """One immutable live result; readers never see a half-updated one."""

    computed_at: datetime
    trigger: str
    summary: dict[str, Any]  # the body of GET /v1/coverage
    body: bytes  # `summary` serialised once
    serving: NDArray[np.bool_]  # per station id of the layout (sorted), serving now?


class LiveCoverage:
    """Owns the coverage engine of one API process and its refresh thread."""

    def __init__(
        self,
        layout: LayoutFactory,
        pool: ConnectionPool[Any] | None,
        settings: Settings,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._layout = layout
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: CoverageEngine | None = None
        self._station_ids: NDArray[np.str_] | None = None
        self._layout_serving: NDArray[np.bool_] | None = None
        self._last_stored = float("-inf")
        self._centres: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self._criterion_cache: dict[tuple[datetime, str, str], bytes] = {}
        # per (snapshot, criterion, operator): the cells covered, for the district cells route
        self._covered_cache: dict[tuple[datetime, str, str], NDArray[np.bool_]] = {}
        # One computation at a time: every open page asks for its criterion when a snapshot lands,
        # and N concurrent 0.5 s computations of the same answer would stall the API's 2 cores.
        self._criterion_compute = threading.Lock()
        self.grid: Grid | None = None
        self.stations: Stations | None = None
        self.snapshot: LiveSnapshot | None = None
        self.site_status: NDArray[np.int8] | None = None  # per site (sorted ids), codes of SITE_STATUSES
        # per site, since when (epoch s) it holds that status; NaN unknown. Kept across reads so a
        # page loaded mid-outage shows when the outage began, not when the page asked.
        self.site_since: NDArray[np.float64] | None = None
        self._sites: dict[str, Any] | None = None
        self._outage_cache: dict[tuple[Any, ...], tuple[list[str], OutageEffect]] = {}
        self._history: OpsHistory | None = None
        if pool is not None:
            from zhongdu.api._ops_history import OpsHistory

            self._history = OpsHistory(pool, settings.ops_history_days)
        self.error: str | None = None
        self.ready = threading.Event()

    @property
    def model(self) -> Literal["disk", "hata"]:
        return self._settings.coverage_model

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Build the engine and keep the snapshot fresh in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="zhongdu-live-coverage", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def build(self) -> None:
        """Load the layout and build the engine (seconds on the full city grid)."""
        from zhongdu.coverage import CoverageEngine

        grid, stations = self._layout()
        engine = CoverageEngine(
            grid, stations, model=self.model, threshold_dbm=self._settings.rsrp_threshold_dbm
        )
        with self._lock:
            self.grid, self.stations, self._engine = grid, stations, engine
            ids = np.asarray(stations.station_id, dtype=str)
            self._station_ids = np.unique(ids)
            # a station serves by layout when any of its sectors is `up` there
            layout = np.zeros(len(self._station_ids), dtype=bool)
            layout[np.searchsorted(self._station_ids, ids[np.asarray(stations.up, dtype=bool)])] = True
            self._layout_serving = layout

    def _run(self) -> None:
        try:
            self.build()
            self.refresh("schedule")
        except Exception as exc:  # the API keeps serving everything else and says why
            log.exception("live coverage could not start")
            self.error = f"live coverage could not start: {type(exc).__name__}: {exc}"
            self.ready.set()
            return
        self.ready.set()
        if self.snapshot is not None:
            self._record(self.snapshot)
        while not self._stop.wait(self._settings.coverage_poll_interval_s):
            try:
                self.poll()
            except Exception:  # a database hiccup must not end live coverage
                log.exception("live coverage poll failed; retrying at the next interval")

    # --- refreshing --------------------------------------------------------------------------

    def _read_statuses(self) -> dict[str, tuple[str, datetime]]:
        if self._pool is None:
            return {}
        with self._pool.connection() as conn:
            return storage.queries.station_statuses(conn)

    def _serving(self, statuses: dict[str, tuple[str, datetime]], now: datetime) -> NDArray[np.bool_]:
        """Per station (sorted unique ids): serving now? Up/degraded and heard within the timeout;
        a station without any status serves as its layout says (the engine's documented rule)."""
        assert self._station_ids is not None and self._layout_serving is not None
        serving = self._layout_serving.copy()
        if statuses:
            ids = self._station_ids
            keys = np.fromiter(statuses.keys(), dtype=ids.dtype, count=len(statuses))
            pos = np.minimum(np.searchsorted(ids, keys), len(ids) - 1)
            known = ids[pos] == keys
            timeout = self._settings.station_silence_timeout_s
            values = statuses.values()
            states = np.fromiter((st for st, _ in values), dtype=object, count=len(values))
            seen = np.fromiter(((now - t).total_seconds() for _, t in values), dtype=float, count=len(values))
            ok = np.isin(states, ["up", "degraded"]) & (seen <= timeout)
            serving[pos[known]] = ok[known]
        return serving

    def poll(self) -> LiveSnapshot | None:
        """Refresh when the serving set changed, or store a scheduled snapshot when one is due."""
        statuses = self._read_statuses()
        now = self._clock()
        self._update_site_status(statuses, now)
        current = self.snapshot
        if current is None or not np.array_equal(self._serving(statuses, now), current.serving):
            return self.refresh("status-change", statuses=statuses)
        if time.monotonic() - self._last_stored >= self._settings.coverage_snapshot_interval_s:
            return self.refresh("schedule", statuses=statuses)
        return None

    def refresh(
        self, trigger: str, *, statuses: dict[str, tuple[str, datetime]] | None = None
    ) -> LiveSnapshot:
        """Recompute from the latest statuses, publish the new snapshot, store its record.

        Only the totals are computed here (milliseconds, incremental); per-cell best servers are
        computed per request for the cells asked for (`cells_detail`).
        """
        from zhongdu.coverage import StationStatus, live_coverage, snapshot_record

        if statuses is None:
            statuses = self._read_statuses()
            self._update_site_status(statuses, self._clock())
        with self._lock:
            engine = self._engine
            if engine is None:
                raise RuntimeError("the coverage engine is not built yet")
            now = self._clock()
            result = live_coverage(
                engine,
                {sid: StationStatus(status=s, observed_at=t) for sid, (s, t) in statuses.items()},
                now=now,
                silence_timeout_s=self._settings.station_silence_timeout_s,
            )
            record = snapshot_record(result, time=now, model=self.model, trigger=trigger)
            snapshot = self._make_snapshot(record, result, self._serving(statuses, now), now, trigger)
            self.snapshot = snapshot  # published under the lock: it always matches the engine state
        self.error = None
        if self._pool is not None:
            with self._pool.connection() as conn:
                storage.queries.insert_coverage_snapshot(conn, record)
        self._last_stored = time.monotonic()
        if self.ready.is_set():  # the first snapshot's is recorded once the API serves (`_run`)
            self._record(snapshot)
        return snapshot

    def _record(self, snapshot: LiveSnapshot) -> None:
        """The share history and the open incidents' worst effect (other criteria: seconds on the
        full city, so never before the first snapshot is published)."""
        if self._history is None:
            return
        try:
            self._history.record(self, snapshot)
        except Exception:  # the page's history must not stop live coverage
            log.exception("could not record the share history and incidents' effect")

    def _make_snapshot(
        self, record: dict[str, Any], result: Any, serving: NDArray[np.bool_], now: datetime, trigger: str
    ) -> LiveSnapshot:
        assert self._station_ids is not None
        summary = {
            "model": self.model,
            "threshold_dbm": self._settings.rsrp_threshold_dbm if self.model == "hata" else None,
            "computed_at": now.isoformat(),
            "trigger": trigger,
            "stations_serving": int(record.get("stations_serving") or np.count_nonzero(serving)),
            "stations_total": len(self._station_ids),
            "population_total": float(result.population_total),
            "population_covered": float(result.population_covered),
            "share": float(result.share),
            "districts": [
                {
                    "district": d.district,
                    "population": float(d.population),
                    "covered": float(d.covered),
                    "share": float(d.share),
                }
                for d in result.districts
            ],
        }
        return LiveSnapshot(
            computed_at=now,
            trigger=trigger,
            summary=summary,
            body=json.dumps(summary, ensure_ascii=False, separators=(",", ":")).encode(),
            serving=serving,
        )

    def summary_for(self, criterion: str, operator: str) -> bytes:
        """The snapshot's JSON body for another criterion/operator, computed once per snapshot."""
        snapshot = self.snapshot
        assert snapshot is not None
        key = (snapshot.computed_at, criterion, operator)
        with self._criterion_compute:
            with self._lock:
                cached = self._criterion_cache.get(key)
            if cached is not None:
                return cached
            body = self._criterion_body(snapshot, criterion, operator)
            with self._lock:
                self._criterion_cache = {k: v for k, v in self._criterion_cache.items() if k[0] == key[0]}
                self._criterion_cache[key] = body
            return body

    def covered_for(self, criterion: str, operator: str) -> NDArray[np.bool_]:
        """Per grid cell, covered under a criterion and operator by the stations serving now.

        Outdoor by any operator is the engine's kept state (no computation); any other view is
        computed once per snapshot, with its summary (`summary_for`), and kept until the next.
        """
        if criterion == "outdoor" and operator == "any":
            return self.covered_now()
        snapshot = self.snapshot
        assert snapshot is not None
        key = (snapshot.computed_at, criterion, operator)
        with self._lock:
            cached = self._covered_cache.get(key)
        if cached is None:
            self.summary_for(criterion, operator)  # computes and keeps the flags too
            with self._lock:
                cached = self._covered_cache.get(key)
        if cached is None:  # summary cached before a concurrent snapshot: compute the flags alone
            with self._criterion_compute:
                self._criterion_body(snapshot, criterion, operator)
            with self._lock:
                cached = self._covered_cache[key]
        return cached

    def _criterion_body(self, snapshot: LiveSnapshot, criterion: str, operator: str) -> bytes:
        """`snapshot`'s summary recomputed for a criterion/operator against the stations serving now."""
        from zhongdu.coverage._by_operator import compute_by_operator

        assert self.grid is not None
        every_major = operator == "every_major"
        results = compute_by_operator(
            self.grid,
            self.serving_stations(),
            operator="each" if every_major else operator,
            model=self.model,
            threshold_dbm=self._settings.rsrp_threshold_dbm,
            criterion=criterion,  # type: ignore[arg-type]
        )
        if every_major and "every_major" not in results:
            raise ValueError("the layout lacks one of the major operators (CHT, TWM, FET)")
        # every_major: the map's fill and the header for the share a subscriber of any major
        # operator gets, district by district (the cells all three cover)
        main = results["every_major"] if every_major else results.get("any") or next(iter(results.values()))
        if main.covered is not None:
            key = (snapshot.computed_at, criterion, operator)
            with self._lock:
                self._covered_cache = {k: v for k, v in self._covered_cache.items() if k[0] == key[0]}
                self._covered_cache[key] = np.asarray(main.covered, dtype=bool)
        summary = dict(snapshot.summary)
        summary.update(
            criterion=criterion,
            operator=operator if operator in ("any", "each", "every_major") else next(iter(results)),
            population_covered=float(main.population_covered),
            share=float(main.share),
            districts=[
                {"district": d.district, "population": float(d.population), "covered": float(d.covered),
                 "share": float(d.share)}
                for d in main.districts
            ],
        )  # fmt: skip
        if operator in ("each", "every_major"):
            summary["by_operator"] = {
                k: {"share": float(v.share), "population_covered": float(v.population_covered)}
                for k, v in results.items()
                if k not in ("any", "every_major")
            }
            if "every_major" in results:
                every = results["every_major"]
                summary["every_major"] = {
                    "share": float(every.share),
                    "population_covered": float(every.population_covered),
                }
        return json.dumps(summary, ensure_ascii=False, separators=(",", ":")).encode()

    def covered_now(self) -> NDArray[np.bool_]:
        """Per grid cell, covered by the stations serving now: the engine's kept state, no new
        computation (what merged cells need; best RSRP would mean best servers for every cell)."""
        with self._lock:
            assert self._engine is not None
            covered = self._engine.result().covered
        assert covered is not None
        return np.asarray(covered, dtype=bool)

    def cells_detail(self, rows: NDArray[np.intp]) -> tuple[NDArray[np.bool_], NDArray[np.float64] | None]:
        """(covered, best RSRP dBm) of the grid cells `rows` under the stations serving now.

        Computed on the sub-grid alone: the engine evaluates only sector-cell pairs in reach of
        these cells (a district of ~3,000 cells against the whole city takes under a second),
        where best servers for the whole city would take minutes.
        """
        from zhongdu.coverage import compute_coverage

        assert self.grid is not None
        result = compute_coverage(
            self.grid.take(rows),
            self.serving_stations(),
            model=self.model,
            threshold_dbm=self._settings.rsrp_threshold_dbm,
            per_cell=True,
        )
        assert result.covered is not None
        rsrp = None if self.model == "disk" or result.best_rsrp_dbm is None else result.best_rsrp_dbm
        return np.asarray(result.covered, dtype=bool), rsrp

    def _update_site_status(self, statuses: dict[str, tuple[str, datetime]], now: datetime) -> None:
        """Classify every site (vectorised) and publish the array; readers diff it to send events."""
        ids = self._station_ids
        if ids is None:
            return
        codes = np.zeros(len(ids), dtype=np.int8)
        at = np.full(len(ids), np.nan)
        if statuses:
            keys = np.fromiter(statuses.keys(), dtype=ids.dtype, count=len(statuses))
            pos = np.minimum(np.searchsorted(ids, keys), len(ids) - 1)
            known = ids[pos] == keys
            values = statuses.values()
            state = np.fromiter(
                (_STATUS_CODE.get(st, 3) for st, _ in values), dtype=np.int8, count=len(values)
            )
            seen = np.fromiter(((now - t).total_seconds() for _, t in values), dtype=float, count=len(values))
            silent = (state != 3) & (seen > self._settings.station_silence_timeout_s)
            state[silent] = SITE_STATUSES.index("silent")
            codes[pos[known]] = state[known]
            # when the status began, as far as this process can tell: the report that set it, or
            # for silence the moment the timeout ran out
            observed = np.fromiter((t.timestamp() for _, t in values), dtype=float, count=len(values))
            timeout = self._settings.station_silence_timeout_s
            at[pos[known]] = np.where(silent, observed + timeout, observed)[known]
        previous, since = self.site_status, self.site_since
        if previous is None or since is None or len(previous) != len(codes):
            since = at
        else:
            changed = previous != codes
            since = np.where(changed, at, since)
        if self._history is not None:
            try:
                since = self._history.track_sites(ids, previous, codes, since, now)
            except Exception:  # retried at the next poll; the map keeps its statuses meanwhile
                log.exception("could not write outage incidents")
        self.site_since = since
        self.site_status = codes

    def sites(self) -> dict[str, Any]:
        """Sites of the layout (sorted ids) with one position and their sector count, built once."""
        with self._lock:
            if self._sites is None:
                assert self.stations is not None and self._station_ids is not None
                ids = np.asarray(self.stations.station_id, dtype=str)
                unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
                assert np.array_equal(unique, self._station_ids)
                self._sites = {
                    "ids": self._station_ids,
                    "lon": np.asarray(self.stations.lon, dtype=np.float64)[first],
                    "lat": np.asarray(self.stations.lat, dtype=np.float64)[first],
                    "sectors": counts,
                }
            return self._sites

    def outage_effect(self, criterion: str, operator: str) -> tuple[list[str], OutageEffect]:
        """The sites out now (down or silent, sorted ids) and what each costs under a criterion and
        operator; computed once per snapshot and status read."""
        from zhongdu.api._outage_effect import outage_effect

        snapshot, codes = self.snapshot, self.site_status
        assert snapshot is not None and codes is not None and self.grid is not None
        key = (snapshot.computed_at, codes.tobytes(), criterion, operator)
        with self._criterion_compute:
            cached = self._outage_cache.get(key)
            if cached is not None:
                return cached
            sites = self.sites()
            out = np.flatnonzero((codes == 3) | (codes == 4))
            ids = [str(x) for x in sites["ids"][out]]
            assert self.stations is not None
            effect = outage_effect(
                self.grid,
                self.cell_centres(),
                self.stations,
                self.serving_stations(),
                ids,
                [(float(sites["lat"][i]), float(sites["lon"][i])) for i in out.tolist()],
                criterion=criterion,
                operator=operator,
                model=self.model,
                threshold_dbm=self._settings.rsrp_threshold_dbm,
            )
            self._outage_cache = {k: v for k, v in self._outage_cache.items() if k[:2] == key[:2]}
            self._outage_cache[key] = (ids, effect)
            return ids, effect

    # --- helpers for the other routes --------------------------------------------------------

    def cell_centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lng) of every grid cell centre, computed once on first use."""
        with self._lock:
            if self._centres is None:
                assert self.grid is not None
                lat, lng = self.grid.latlng_deg()
                self._centres = (np.asarray(lat, dtype=np.float64), np.asarray(lng, dtype=np.float64))
            return self._centres

    def serving_stations(self) -> Stations:
        """The layout with `up` set to what serves now (the base of a scenario)."""
        assert self.stations is not None and self._station_ids is not None
        snapshot = self.snapshot
        if snapshot is None:
            return self.stations
        ids = np.asarray(self.stations.station_id, dtype=str)
        up = snapshot.serving[np.searchsorted(self._station_ids, ids)]
        return dataclasses.replace(self.stations, up=up)


class EventBus:
    """Named events for the page's stream besides coverage and stations (e.g. `petition_hotspot`).

    Publishers call `publish` from any thread; each open stream remembers the last sequence number
    it sent and asks `since(seq)`. The newest `keep` events are kept, so a stream that falls behind
    skips the oldest instead of growing without bound.
    """

    def __init__(self, keep: int = 200) -> None:
        from collections import deque

        self._lock = threading.Lock()
        self._events: deque[tuple[int, str, Any]] = deque(maxlen=keep)
        self._seq = 0

    def publish(self, name: str, data: Any) -> int:
        with self._lock:
            self._seq += 1
            self._events.append((self._seq, name, data))
            return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> list[tuple[int, str, Any]]:
        with self._lock:
            return [e for e in self._events if e[0] > seq]


def event_bus(extras: dict[str, Any]) -> EventBus:
    """The app's bus, kept in `ApiState.extras` (created on first use)."""
    bus = extras.get("event_bus")
    if bus is None:
        bus = extras.setdefault("event_bus", EventBus())
    assert isinstance(bus, EventBus)
    return bus
