"""Placement scenarios computed in child processes, never in the API's own.

A placement's memory grows with its candidates' reach (see `zhongdu.coverage._footprint`); in a
child it is the child's, handed back to the system when the child exits after its one scenario,
and the API's threads keep answering meanwhile. `workers` scenarios run at once, so one planner's
large scenario does not hold the others back for longer than it runs, and its size is bounded by
the memory limit checked before it is queued.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any


class ScenarioPool:
    """Threads that track scenarios (database updates) and processes that compute them."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zhongdu-scenario")
        self._processes = ProcessPoolExecutor(
            max_workers=workers,
            # spawn: a fork would copy the API's threads and open connections into the child
            mp_context=multiprocessing.get_context("spawn"),
            max_tasks_per_child=1,  # the child exits after its scenario: its memory goes back
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Track a scenario on a thread (it calls `compute` for the heavy part)."""
        return self._threads.submit(fn, *args)

    def compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in a child process and wait for its answer (arguments are pickled)."""
        return self._processes.submit(fn, *args).result()

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._processes.shutdown(wait=wait, cancel_futures=cancel_futures)


def plan_in_child(grid: Any, stations: Any, candidates: Any, options: dict[str, Any]) -> dict[str, Any]:
    """`zhongdu.coverage.plan` in the child; its peak memory comes back with the result."""
    from zhongdu.coverage import plan

    out: dict[str, Any] = plan(grid, stations, candidates, **options).to_dict()
    out["worker_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out
