"""The live loop's memory for the operations page: outage incidents opened and closed as sites
change status (with the people affected at worst), and the city share per criterion at each
snapshot, pruned after `ops_history_days`.

An incident's start is stored when it opens, so after an API restart the open incident gives the
site's true start time (the latest status report would only say when it was last heard).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from zhongdu import storage

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from zhongdu.api._live import LiveCoverage, LiveSnapshot

log = logging.getLogger(__name__)

OUT = (3, 4)  # SITE_STATUSES codes of down and silent: not serving
STATUS_NAME = {3: "down", 4: "silent"}
# the criteria the page's timeline draws (criterion, operator)
HISTORY_VIEWS: tuple[tuple[str, str], ...] = (
    ("outdoor", "any"),
    ("indoor", "any"),
    ("indoor", "every_major"),
)
# an incident's people at worst: the criterion whose level moves (the plan's B7-2 by every major
# operator), else indoor by any operator when the layout lacks a major operator
INCIDENT_VIEWS: tuple[tuple[str, str], ...] = (("indoor", "every_major"), ("indoor", "any"))
PRUNE_EVERY_S = 3600.0


def _at(epoch: float, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(epoch, UTC) if np.isfinite(epoch) else fallback


class OpsHistory:
    """Writes incidents and share history; every method is called from the live thread."""

    def __init__(self, pool: ConnectionPool[Any], keep_days: float) -> None:
        self._pool = pool
        self._keep = timedelta(days=keep_days)
        self._started = False
        self._last_prune = float("-inf")

    def track_sites(
        self,
        ids: NDArray[np.str_],
        previous: NDArray[np.int8] | None,
        codes: NDArray[np.int8],
        since: NDArray[np.float64],
        now: datetime,
    ) -> NDArray[np.float64]:
        """Open and close incidents for the sites whose outage began or ended; on the first call,
        reconcile with the incidents left open and return `since` with their true starts."""
        out = np.isin(codes, OUT)
        with self._pool.connection() as conn:
            if not self._started:
                since = since.copy()
                still_open = storage.ops_history.open_incidents(conn)
                for sid, row in still_open.items():
                    i = int(np.searchsorted(ids, sid))
                    if i < len(ids) and ids[i] == sid and out[i]:
                        since[i] = row["started_at"].timestamp()
                        if row["status"] != STATUS_NAME[int(codes[i])]:
                            storage.ops_history.open_incident(
                                conn, sid, STATUS_NAME[int(codes[i])], row["started_at"]
                            )
                    else:
                        ended = since[i] if i < len(ids) and ids[i] == sid else np.nan
                        storage.ops_history.close_incident(conn, sid, _at(ended, now))
                for i in np.flatnonzero(out).tolist():
                    if str(ids[i]) not in still_open:
                        storage.ops_history.open_incident(
                            conn, str(ids[i]), STATUS_NAME[int(codes[i])], _at(since[i], now)
                        )
                self._started = True
                return since
            assert previous is not None
            was = np.isin(previous, OUT)
            for i in np.flatnonzero(out & (~was | (previous != codes))).tolist():
                storage.ops_history.open_incident(
                    conn, str(ids[i]), STATUS_NAME[int(codes[i])], _at(since[i], now)
                )
            for i in np.flatnonzero(was & ~out).tolist():
                storage.ops_history.close_incident(conn, str(ids[i]), _at(since[i], now))
        return since

    def record(self, live: LiveCoverage, snapshot: LiveSnapshot) -> None:
        """The shares of HISTORY_VIEWS at this snapshot, and the open incidents' worst effect."""
        import json

        from zhongdu.coverage import CoverageError

        codes = live.site_status
        down = int(np.count_nonzero(np.isin(codes, OUT))) if codes is not None else 0
        rows = []
        for criterion, operator in HISTORY_VIEWS:
            try:
                summary = (
                    snapshot.summary
                    if (criterion, operator) == ("outdoor", "any")
                    else json.loads(live.summary_for(criterion, operator))
                )
            except (CoverageError, ValueError):  # a layout without operators: that series is absent
                continue
            rows.append((snapshot.computed_at, criterion, operator, float(summary["share"]),
                         float(summary["population_covered"]), down))  # fmt: skip
        worst: list[tuple[str, float, int]] = []
        view = INCIDENT_VIEWS[0]
        if down:
            for view in INCIDENT_VIEWS:
                try:
                    out_ids, effect = live.outage_effect(*view)
                except (CoverageError, ValueError):
                    continue
                worst = [
                    (sid, e.people, e.cells)
                    for sid, e in zip(out_ids, effect.sites, strict=True)
                    if e is not None
                ]
                break
        with self._pool.connection() as conn:
            storage.ops_history.insert_shares(conn, rows)
            if worst:
                storage.ops_history.update_worst(conn, worst, criterion=view[0], operator=view[1])
            if time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
                storage.ops_history.prune(conn, before=snapshot.computed_at - self._keep)
                self._last_prune = time.monotonic()
