"""A scenario child reports its own peak memory, not the size of the process it was spawned from."""

from __future__ import annotations

import multiprocessing
import resource
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from zhongdu.api._scenario_pool import peak_rss_kib


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss surviving exec is Linux's behaviour")
def test_a_spawned_child_does_not_report_its_parents_memory() -> None:
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: 400 MB resident
    spawn = multiprocessing.get_context("spawn")  # as the scenario pool starts its children
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        inherited = pool.submit(resource.getrusage, resource.RUSAGE_SELF).result(timeout=120).ru_maxrss
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        own = pool.submit(peak_rss_kib).result(timeout=120)
    del ballast
    assert inherited > 400 * 1024  # what ru_maxrss says in the child after exec: the parent's size
    assert own < 200 * 1024, own  # the child's own peak: an interpreter and the pool's imports
