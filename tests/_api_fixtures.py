"""Helpers for the API tests: a small synthetic city, settings, a started app, keys per role."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h3
import numpy as np

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; httpx (a declared dependency) still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from zhongdu.api import create_app, state_of
from zhongdu.coverage import Grid, Stations
from zhongdu.settings import Settings

ADMIN_KEY = "test-bootstrap-admin-key-0123456789"
CENTRE = (24.17, 120.64)  # 水湳, Taichung


def small_city(seed: int = 7) -> tuple[Grid, Stations]:
    """~270 res-9 cells around 水湳 in two districts, and three omni disk stations."""
    rng = np.random.default_rng(seed)
    centre = h3.latlng_to_cell(*CENTRE, 9)
    cells = sorted(h3.grid_disk(centre, 9))
    lng = np.array([h3.cell_to_latlng(c)[1] for c in cells])
    district = np.where(lng < CENTRE[1], "西屯區", "北屯區")
    population = rng.uniform(50, 500, len(cells)).round(1)
    grid = Grid.from_arrays([h3.str_to_int(c) for c in cells], population, district)
    stations = Stations.from_columns(
        station_id=["bs-west", "bs-east", "bs-far"],
        sector_id=["0", "0", "0"],
        lon=[CENTRE[1] - 0.01, CENTRE[1] + 0.01, CENTRE[1] + 0.5],
        lat=[CENTRE[0], CENTRE[0], CENTRE[0]],
        radius_m=[900.0, 900.0, 500.0],
        extra={"operator": np.array(["CHT", "TWM", "FET"])},
    )
    return grid, stations


def api_settings(db_url: str, mqtt_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "mqtt_url": mqtt_url,
        "coverage_model": "disk",
        "coverage_poll_interval_s": 0.2,
        "coverage_snapshot_interval_s": 3600.0,
        "admin_api_key": ADMIN_KEY,
        "api_pool_size": 4,
        "api_public_metrics": True,  # tests read /metrics through their client (off by default)
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_app(settings: Settings, *, live: bool = True) -> Iterator[TestClient]:
    """A started app (lifespan run) whose live coverage is ready."""
    app = create_app(settings, layout=small_city, live_coverage=live)
    with TestClient(app) as client:
        if live:
            state = state_of(app)
            assert state.live is not None
            assert state.live.ready.wait(60), "live coverage did not start"
            assert state.live.snapshot is not None, state.live.error
        yield client


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` behind a real uvicorn socket on a free loopback port (for clients that are not
    TestClient: browsers, third-party libraries); yields its base URL."""
    import threading

    import uvicorn

    from zhongdu.services import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_key(client: TestClient, role: str, name: str | None = None) -> str:
    answer = client.post(
        "/v1/admin/keys", json={"name": name or f"{role}-{time.monotonic_ns()}", "role": role},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
