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
    out["worker_peak_mb"] = round(peak_rss_kib() / 1024)
    return out


def peak_rss_kib() -> int:
    """This process's own peak resident memory in KiB.

    Linux's `ru_maxrss` survives `exec`: a spawned child reports at least the size of the process it
    was forked from (the API, or a test runner of a gigabyte). The peak of the child's own address
    space is `VmHWM` in /proc/self/status; other systems fall back to `ru_maxrss`.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def lattice_in_child(grid: Any, stations: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    """City-wide lattice candidates (`generate_candidates`) as scenario sector rows, in the child:
    the uncovered mask is a whole-city coverage computation. With `districts`, only those districts'
    uncovered people count, so the lattice cells elsewhere hold none and are not proposed."""
    import dataclasses

    import numpy as np

    from zhongdu.coverage._candidates import generate_candidates

    districts = options.get("districts")
    if districts:
        wanted = np.isin(np.asarray(grid.districts), list(districts))
        grid = dataclasses.replace(
            grid, population=np.where(wanted[grid.district_index], grid.population, 0.0)
        )
    operator = options.get("operator")
    sites = generate_candidates(
        grid,
        stations,
        model=options["model"],
        threshold_dbm=options["threshold_dbm"],
        resolution=options["resolution"],
        min_population=max(options["min_population"], 1e-9),  # a cell with nobody is never a candidate
        limit=options["limit"],
        criterion=options["criterion"],
        operator=None if operator in (None, "any") else operator,
    )
    cost, kind = sites.extra["cost"], sites.extra["kind"]
    return [
        {
            "station_id": str(sites.station_id[i]),
            "sector_id": str(sites.sector_id[i]),
            "lon": float(sites.lon[i]),
            "lat": float(sites.lat[i]),
            "height_m": float(sites.height_m[i]),
            "eirp_dbm": float(sites.eirp_dbm[i]),
            "frequency_mhz": float(sites.frequency_mhz[i]),
            "bandwidth_mhz": float(sites.bandwidth_mhz[i]),
            "azimuth_deg": float(sites.azimuth_deg[i]),
            "beamwidth_deg": float(sites.beamwidth_deg[i]),
            "radius_m": float(sites.radius_m[i]),
            "cost": float(cost[i]),
            "kind": str(kind[i]),
        }
        for i in range(len(sites))
    ]
