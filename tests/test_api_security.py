"""The API as an attacker or a heavy planner meets it, over real HTTP (uvicorn on loopback, real
PostgreSQL): a key with the right id and a wrong secret, a scenario too large to run, the largest
scenario allowed while `/healthz` keeps answering and the API's memory stays within its budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from zhongdu import services
from zhongdu.api import default_layout, start_api
from zhongdu.api._serve import RunningApi

from ._api_fixtures import ADMIN_KEY, api_settings, small_city, wait_for

pytestmark = [pytest.mark.postgres]


def _admin(http: httpx.Client, role: str) -> str:
    answer = http.post(
        "/v1/admin/keys", json={"name": f"{role}-{time.monotonic_ns()}", "role": role},
        headers={"X-API-Key": ADMIN_KEY},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


@pytest.fixture(scope="module")
def small_api(pg_migrated: str) -> Iterator[RunningApi]:
    api = start_api(api_settings(pg_migrated, None), port=services.free_port(), layout=small_city)
    try:
        yield api
    finally:
        api.stop()


def test_right_key_id_with_a_wrong_secret_is_refused_over_http(small_api: RunningApi) -> None:
    with httpx.Client(base_url=small_api.url, timeout=30) as http:
        key = _admin(http, "planner")
        prefix, secret = key[: len("zd_") + 12 + 1], key[len("zd_") + 12 + 1 :]
        wrong = prefix + ("A" if secret[0] != "A" else "B") + secret[1:]  # one character off
        for attempt in (wrong, key, wrong):  # also after the right key was verified and cached
            answer = http.get("/v1/scenarios", headers={"X-API-Key": attempt})
            if attempt == key:
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 401, answer.text
                assert answer.json()["detail"] == f"invalid or revoked API key {key[3:15]}"
                assert secret not in answer.text
        bearer = http.get("/v1/scenarios", headers={"Authorization": f"Bearer {wrong}"})
        assert bearer.status_code == 401


def _candidates(n: int, radius_m: float, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"station_id": f"big-{seed}-{i}", "lon": float(lon), "lat": float(lat), "radius_m": radius_m}
        for i, (lon, lat) in enumerate(zip(rng.uniform(120.55, 120.85, n), rng.uniform(24.05, 24.3, n), strict=True))
    ]


LIMIT_MB = 256
API_BUDGET_MB = 250  # the API process's growth while the largest allowed scenario runs


@pytest.mark.slow
def test_scenarios_are_bounded_and_run_outside_the_api(pg_migrated: str) -> None:
    from zhongdu.coverage import Stations
    from zhongdu.coverage._footprint import placement_footprint

    settings = api_settings(pg_migrated, None, scenario_max_mb=LIMIT_MB, coverage_model="disk")
    layout = default_layout(settings)  # the shipped grid: 168,000 cells, 47,000 sectors
    api = start_api(settings, port=services.free_port(), layout=layout)
    me = psutil.Process()
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            assert wait_for(lambda: http.get("/v1/coverage").status_code == 200, 180)
            planner = {"X-API-Key": _admin(http, "planner")}
            # the attack: as many candidates as a request may hold, each reaching the whole city
            refused = http.post(
                "/v1/scenarios", headers=planner,
                json={"name": "too big", "model": "disk", "candidates": _candidates(5000, 50_000)},
            )  # fmt: skip
            assert refused.status_code == 422, refused.text
            detail = refused.json()["detail"]
            assert f"the limit is {LIMIT_MB:,} MB (ZHONGDU_SCENARIO_MAX_MB)" in detail, detail
            assert "zhongdu_api_scenarios_refused_total 1.0" in http.get("/metrics").text

            # the largest scenario at 50 km the limit allows
            grid, _ = layout()

            def estimate(n: int) -> float:
                rows = _candidates(n, 50_000)
                st = Stations.from_columns(
                    station_id=[r["station_id"] for r in rows], lon=[r["lon"] for r in rows],
                    lat=[r["lat"] for r in rows], radius_m=50_000.0,
                )  # fmt: skip
                return placement_footprint(grid, st, model="disk", threshold_dbm=-110.0).megabytes

            lo, hi = 1, 5000  # the largest n under the limit: estimate(lo) <= limit < estimate(hi)
            assert estimate(lo) <= LIMIT_MB < estimate(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if estimate(mid) <= LIMIT_MB else (lo, mid)
            n = lo
            assert estimate(n + 1) > LIMIT_MB
            baseline = me.memory_info().rss
            big = http.post(
                "/v1/scenarios", headers=planner,
                json={"name": "largest allowed", "model": "disk", "budget": 5, "candidates": _candidates(n, 50_000)},
            )  # fmt: skip
            assert big.status_code == 202, big.text
            small = http.post(
                "/v1/scenarios", headers=planner,
                json={"name": "a second planner", "model": "disk", "budget": 1,
                      "candidates": _candidates(3, 800, seed=9)},
            )  # fmt: skip
            assert small.status_code == 202, small.text
            ids = {"big": big.json()["scenario_id"], "small": small.json()["scenario_id"]}
            finished: dict[str, float] = {}
            health_s: list[float] = []
            peak_rss = baseline
            started = time.monotonic()
            overlapped = False  # the small one running (or done) while the big one was not done yet
            while len(finished) < 2 and time.monotonic() - started < 600:
                t = time.monotonic()
                assert http.get("/healthz").status_code in (200, 503)
                health_s.append(time.monotonic() - t)
                peak_rss = max(peak_rss, me.memory_info().rss)
                status = {name: http.get(f"/v1/scenarios/{sid}").json()["status"] for name, sid in ids.items()}
                for name, now in status.items():
                    if name not in finished and now in ("done", "failed"):
                        finished[name] = time.monotonic() - started
                overlapped |= status["small"] in ("running", "done") and status["big"] in ("pending", "running")
                time.sleep(0.05)
            bodies = {name: http.get(f"/v1/scenarios/{sid}").json() for name, sid in ids.items()}
            after = me.memory_info().rss
    finally:
        api.stop()
    growth_mb = (peak_rss - baseline) / 2**20
    print(
        f"\nlargest allowed: {n} candidates at 50 km (estimate {estimate(n):.0f} MB, limit {LIMIT_MB} MB); "
        f"worker peak {bodies['big']['result']['worker_peak_mb']} MB; API grew {growth_mb:.0f} MB "
        f"(after {((after - baseline) / 2**20):.0f} MB); /healthz max {max(health_s) * 1000:.0f} ms over "
        f"{len(health_s)} polls; small done after {finished['small']:.1f} s, big after {finished['big']:.1f} s"
    )
    assert bodies["big"]["status"] == "done", bodies["big"]["error"]
    assert bodies["small"]["status"] == "done", bodies["small"]["error"]
    # the second planner did not wait for the first: with one worker the small one would stay
    # `pending` until the big one is done
    assert overlapped, finished
    assert growth_mb < API_BUDGET_MB
    assert max(health_s) < 2.0
    assert bodies["big"]["result"]["worker_peak_mb"] < LIMIT_MB + 600  # the child's own imports and layout


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]], ids=["no-proxy", "behind-a-proxy"])
def test_the_rate_limit_trusts_x_forwarded_for_only_from_configured_proxies(
    pg_migrated: str, trusted: list[str]
) -> None:
    settings = api_settings(pg_migrated, None, rate_limit_per_minute=3, api_trusted_proxies=trusted)
    api = start_api(settings, port=services.free_port(), layout=small_city)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            # a client rotating the header to get a fresh bucket on every request
            spoofed = [http.get("/v1/devices", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                       for i in range(6)]  # fmt: skip
            # one client behind the proxy, always the same address
            same = [http.get("/v1/devices", headers={"X-Forwarded-For": "198.51.100.7"}).status_code
                    for _ in range(5)]  # fmt: skip
    finally:
        api.stop()
    if trusted:  # the proxy's header names each client: six clients, one request each
        assert spoofed == [200] * 6 and same == [200, 200, 200, 429, 429]
    else:  # the header is ignored: one client (the TCP peer) over its limit
        assert spoofed == [200, 200, 200, 429, 429, 429] and same == [429] * 5
