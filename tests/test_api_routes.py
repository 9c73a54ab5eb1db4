"""API routes against real PostgreSQL and Mosquitto: happy paths, errors, roles, live coverage."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import numpy as np
import psycopg
import pytest

from zhongdu.api import state_of
from zhongdu.cli import main as cli_main
from zhongdu.coverage import write_grid, write_stations

from ._api_fixtures import ADMIN_KEY, api_settings, make_key, running_app, small_city, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = (NOW - timedelta(hours=3)).replace(minute=0, second=0)


def _seed(url: str) -> None:
    """Registry and telemetry as the ingester would write them."""
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO stations (station_id, name, district, lon, lat) VALUES"
                     " ('bs-west', 'west', '西屯區', 120.63, 24.17), ('bs-east', 'east', '北屯區', 120.65, 24.17)")
        conn.execute("INSERT INTO sectors (station_id, sector_id, lon, lat, height_m, eirp_dbm, frequency_mhz,"
                     " bandwidth_mhz, radius_m) VALUES ('bs-west', '0', 120.63, 24.17, 30, 60, 1800, 20, 900)")
        conn.execute("INSERT INTO devices (device_id, kind, name) VALUES ('air-1', 'air', 'gate'), ('met-1', 'weather', NULL)")
        # readings: 3 per minute for 90 minutes, value = minute index + offset 0/1/2
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s + make_interval(mins => m, secs => 10 * k), 'air-1', 'pm2_5', m + k, 'ug/m3'
               FROM generate_series(0, 89) m, generate_series(0, 2) k""",
            (BASE,),
        )
        conn.execute(
            """INSERT INTO station_telemetry (time, station_id, sector_id, status, prb_utilisation, active_users)
               SELECT %s + make_interval(mins => m), 'bs-west', '0', 'up', (m %% 10) / 10.0, m
               FROM generate_series(0, 119) m""",
            (BASE,),
        )
        conn.execute(
            "INSERT INTO entity_status (kind, entity_id, status, source, observed_at) VALUES"
            " ('park', 'air-1', 'online', 'status', now())"
        )


@pytest.fixture(scope="module")
def client(pg_migrated: str, mqtt_url: str) -> Any:
    _seed(pg_migrated)
    with running_app(api_settings(pg_migrated, mqtt_url, cors_origins=["https://ops.example"])) as client:
        yield client


# --- health, metrics, openapi ------------------------------------------------------------------


def test_healthz_checks_database_and_broker(client: Any) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok", body
    assert body["checks"]["database"]["ok"] and "CONNACK" in body["checks"]["broker"]["detail"]


def test_healthz_reports_a_dead_broker(pg_migrated: str) -> None:
    settings = api_settings(pg_migrated, "mqtt://127.0.0.1:1", api_pool_size=1)
    with running_app(settings, live=False) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["broker"]["ok"] is False and answer.json()["checks"]["database"]["ok"]


def test_metrics_count_requests_by_route(pg_migrated: str, mqtt_url: str) -> None:
    settings = api_settings(pg_migrated, mqtt_url)
    with running_app(settings) as client:
        client.get("/v1/devices/air-1")
        text = client.get("/metrics").text
    assert 'zhongdu_api_requests_total{method="GET",route="/v1/devices/{device_id}",status="' in text
    share = next(line for line in text.splitlines() if line.startswith("zhongdu_live_coverage_share "))
    assert 0 < float(share.split()[1]) <= 1


def test_openapi_has_examples_and_every_route(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/coverage", "/v1/coverage/cells", "/v1/coverage/history", "/v1/stations/{station_id}/history",
                 "/v1/devices/{device_id}/history", "/v1/scenarios", "/v1/indicators", "/v1/indicators/score",
                 "/v1/indicators/{indicator_id}/actuals", "/healthz"):
        assert path in schema["paths"], path
    assert schema["components"]["schemas"]["ScenarioIn"]["examples"]
    assert schema["components"]["schemas"]["CoverageOut"]["examples"]


def test_cors_headers(client: Any) -> None:
    answer = client.get("/v1/coverage", headers={"Origin": "https://ops.example"})
    assert answer.headers["access-control-allow-origin"] == "https://ops.example"
    assert "access-control-allow-origin" not in client.get("/v1/coverage", headers={"Origin": "https://evil.example"}).headers


# --- coverage ----------------------------------------------------------------------------------


def test_live_coverage_follows_station_status(client: Any, pg_migrated: str) -> None:
    live = state_of(client.app).live
    before = client.get("/v1/coverage").json()
    assert before["model"] == "disk" and before["stations_total"] == 3
    assert 0 < before["share"] < 1 and {d["district"] for d in before["districts"]} == {"西屯區", "北屯區"}
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("INSERT INTO entity_status (kind, entity_id, status, source, observed_at)"
                     " VALUES ('bs', 'bs-west', 'down', 'telemetry', now())")
    assert wait_for(lambda: live.snapshot.summary["stations_serving"] == before["stations_serving"] - 1)
    after = client.get("/v1/coverage").json()
    assert after["share"] < before["share"] and after["trigger"] == "status-change"
    west = {d["district"]: d["share"] for d in after["districts"]}["西屯區"]
    assert west < {d["district"]: d["share"] for d in before["districts"]}["西屯區"]
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("UPDATE entity_status SET status = 'up', observed_at = now() WHERE entity_id = 'bs-west'")
    assert wait_for(lambda: live.snapshot.summary["share"] == pytest.approx(before["share"]))
    history = client.get("/v1/coverage/history").json()["items"]
    triggers = [h["trigger"] for h in history]
    assert triggers.count("status-change") >= 2 and triggers[-1] == "schedule"  # newest first; startup last
    shares = {h["share"] for h in history}
    assert after["share"] in shares and before["share"] in shares


def test_coverage_cells_geojson(client: Any) -> None:
    answer = client.get("/v1/coverage/cells", params={"district": "西屯區"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    grid = state_of(client.app).live.grid
    assert body["type"] == "FeatureCollection"
    assert body["cells"] == int((grid.district_index == grid.districts.index("西屯區")).sum())
    feature = body["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 7 and 120 < ring[0][0] < 121
    assert feature["properties"]["district"] == "西屯區" and isinstance(feature["properties"]["covered"], bool)
    pop = sum(f["properties"]["population"] for f in body["features"] if f["properties"]["covered"])
    live_district = {d["district"]: d for d in client.get("/v1/coverage").json()["districts"]}["西屯區"]
    assert pop == pytest.approx(live_district["covered"])
    boxed = client.get("/v1/coverage/cells", params={"bbox": "120.62,24.16,120.64,24.18"}).json()
    assert 0 < boxed["cells"] < len(grid.cells)


def test_coverage_cells_are_gzipped_when_asked(client: Any) -> None:
    params = {"district": "西屯區"}
    plain = client.get("/v1/coverage/cells", params=params, headers={"Accept-Encoding": "identity"})
    packed = client.get("/v1/coverage/cells", params=params, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) * 4 < len(plain.content)  # sent compressed
    assert packed.json()["features"] == plain.json()["features"]  # the client decompressed it


def test_coverage_cells_h3_columns_match_the_geojson(client: Any) -> None:
    """`format=h3`: the same cells, flags and populations as the GeoJSON, as columns, gzipped."""
    params = {"district": "西屯區", "format": "h3"}
    answer = client.get("/v1/coverage/cells", params=params, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-encoding"] == "gzip"
    cols = answer.json()
    geo = client.get("/v1/coverage/cells", params={"district": "西屯區"}).json()
    features = geo["features"]
    assert cols["format"] == "h3" and cols["cells"] == geo["cells"] == len(cols["h3"]) == len(cols["covered"])
    assert cols["h3"] == [f["id"] for f in features] == sorted(cols["h3"])
    assert cols["covered"] == "".join("1" if f["properties"]["covered"] else "0" for f in features)
    assert cols["population"] == [round(f["properties"]["population"], 2) for f in features]
    assert cols["districts"] == ["西屯區"] and cols["district"] == [0] * cols["cells"]
    boxed = client.get("/v1/coverage/cells", params={"bbox": "119,23,122,25", "format": "h3"}).json()
    names = [boxed["districts"][i] for i in boxed["district"]]
    grid = state_of(client.app).live.grid
    assert names == [grid.districts[i] for i in grid.district_index[np.argsort(grid.cells)]]
    assert cols["covered_cells"] == geo["covered_cells"] == cols["covered"].count("1") > 0
    assert "best_rsrp_dbm" not in cols and "cell_counts" not in cols
    with_rsrp = client.get("/v1/coverage/cells", params={**params, "rsrp": "true"}).json()
    assert with_rsrp["best_rsrp_dbm"] is None  # the test layout is disk: no RSRP
    plain = client.get("/v1/coverage/cells", params=params, headers={"Accept-Encoding": "identity"})
    assert len(plain.content) * 3 < len(client.get("/v1/coverage/cells", params={"district": "西屯區"},
                                                   headers={"Accept-Encoding": "identity"}).content)
    merged = client.get("/v1/coverage/cells", params={**params, "limit": cols["cells"] // 3, "resolution": "auto"}).json()
    assert merged["resolution"] < merged["grid_resolution"] and len(merged["h3"]) == merged["cells"]
    assert sum(merged["cell_counts"]) == cols["cells"] and sum(merged["covered_counts"]) == cols["covered_cells"]


@pytest.mark.parametrize("fmt", ["h3", "geojson"])
def test_coverage_cells_follow_the_criterion_and_operator(client: Any, fmt: str) -> None:
    """The covered flags are those of the criterion and operator asked for, as `/v1/coverage`'s."""
    def covered(params: dict[str, str]) -> tuple[set[str], float]:
        body = client.get("/v1/coverage/cells", params={"district": "西屯區", "format": fmt, **params}).json()
        if fmt == "h3":
            pop = sum(p for p, c in zip(body["population"], body["covered"], strict=True) if c == "1")
            return {h for h, c in zip(body["h3"], body["covered"], strict=True) if c == "1"}, pop
        on = [f for f in body["features"] if f["properties"]["covered"]]
        return {f["id"] for f in on}, sum(f["properties"]["population"] for f in on)

    def district(params: dict[str, str]) -> float:
        body = client.get("/v1/coverage", params=params).json()
        return next(d["covered"] for d in body["districts"] if d["district"] == "西屯區")

    every, _ = covered({})
    views = ({"criterion": "indoor"}, {"operator": "CHT"}, {"operator": "TWM"}, {"operator": "every_major"})
    seen = {}
    for params in views:
        cells, pop = covered(params)
        assert cells <= every, params  # no more than outdoor by any operator
        assert pop == pytest.approx(district(params), abs=0.01 * len(cells) + 1e-6), params
        seen[str(params)] = len(cells)
    assert seen["{'criterion': 'indoor'}"] < len(every) and seen["{'operator': 'TWM'}"] < len(every), seen
    assert seen["{'operator': 'every_major'}"] == 0  # FET's one station is far away


def test_coverage_cells_coarser_resolution_keeps_every_cell(client: Any) -> None:
    """A district too large for `limit` comes whole at a coarser resolution, nothing dropped."""
    grid = state_of(client.app).live.grid
    fine = client.get("/v1/coverage/cells", params={"district": "西屯區"}).json()
    assert fine["resolution"] == fine["grid_resolution"] == grid.resolution
    assert fine["source_cells"] == fine["cells"] and all(f["properties"]["cells"] == 1 for f in fine["features"])
    limit = fine["cells"] // 3
    refused = client.get("/v1/coverage/cells", params={"district": "西屯區", "limit": limit})
    assert refused.status_code == 422 and "resolution=auto" in refused.text
    coarse = client.get("/v1/coverage/cells", params={"district": "西屯區", "limit": limit, "resolution": "auto"}).json()
    assert coarse["resolution"] < grid.resolution and 0 < coarse["cells"] <= limit
    props = [f["properties"] for f in coarse["features"]]
    assert sum(p["cells"] for p in props) == coarse["source_cells"] == fine["cells"]
    covered_fine = sum(f["properties"]["covered"] for f in fine["features"])
    assert sum(p["covered_cells"] for p in props) == coarse["covered_cells"] == fine["covered_cells"] == covered_fine
    assert sum(p["population"] for p in props) == pytest.approx(sum(f["properties"]["population"] for f in fine["features"]))
    parents = {h3.cell_to_parent(f["id"], coarse["resolution"]) for f in fine["features"]}
    assert {f["id"] for f in coarse["features"]} == parents
    for f in coarse["features"]:
        assert f["properties"]["covered"] == (2 * f["properties"]["covered_cells"] >= f["properties"]["cells"])
    explicit = client.get("/v1/coverage/cells", params={"district": "西屯區", "resolution": coarse["resolution"]})
    assert {f["id"] for f in explicit.json()["features"]} == parents


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"district": "西屯區", "resolution": "16"}, "resolution must be between"),
        ({"district": "西屯區", "resolution": "4"}, "resolution must be between"),
        ({"district": "西屯區", "resolution": "fine"}, "should match pattern"),
        ({}, "exactly one of"),
        ({"district": "大安區x"}, "unknown district"),
        ({"bbox": "1,2,3"}, "4 numbers"),
        ({"bbox": "120.7,24,120.6,24.2"}, "min_lon < max_lon"),
        ({"bbox": "a,b,c,d"}, "4 numbers"),
        ({"bbox": "119,23,122,25", "limit": 10}, "more than limit=10"),
        ({"district": "西屯區", "limit": 0}, "greater than or equal to 1"),
        ({"district": "西屯區", "limit": 20_001}, "at most 20000 for GeoJSON"),
        ({"district": "西屯區", "format": "h3", "limit": 1_000_001}, "less than or equal to 1000000"),
        ({"district": "西屯區", "format": "xml"}, "'geojson' or 'h3'"),
        ({"district": "西屯區", "rsrp": "true"}, "rsrp applies to format=h3"),
        ({"district": "西屯區", "criterion": "roof"}, "'outdoor', 'indoor' or 'capacity'"),
        ({"district": "西屯區", "operator": "ZZZ"}, "ZZZ"),
        ({"district": "西屯區", "format": "h3", "operator": "drop table"}, "should match pattern"),
    ],
)
def test_coverage_cells_errors(client: Any, params: dict[str, Any], fragment: str) -> None:
    answer = client.get("/v1/coverage/cells", params=params)
    assert answer.status_code == 422 and fragment in answer.text, answer.text


def test_coverage_history_range_limits(client: Any) -> None:
    assert client.get("/v1/coverage/history", params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}).status_code == 422
    answer = client.get("/v1/coverage/history", params={"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert answer.status_code == 422 and "exceeds the maximum" in answer.json()["detail"]


# --- stations and devices ----------------------------------------------------------------------


def test_stations_list_and_detail(client: Any) -> None:
    body = client.get("/v1/stations", params={"limit": 1}).json()
    assert body["total"] == 2 and [s["station_id"] for s in body["items"]] == ["bs-east"]
    second = client.get("/v1/stations", params={"limit": 1, "offset": 1}).json()["items"]
    assert [s["station_id"] for s in second] == ["bs-west"]
    detail = client.get("/v1/stations/bs-west").json()
    assert detail["sectors"][0]["radius_m"] == 900
    latest = detail["latest_load"][0]
    assert latest["time"].startswith((BASE + timedelta(minutes=119)).strftime("%Y-%m-%dT%H:%M"))
    assert latest["active_users"] == 119
    assert client.get("/v1/stations/nope").status_code == 404
    assert client.get("/v1/stations/bad%20id").status_code == 422


def test_station_history_buckets(client: Any) -> None:
    params = {"from": BASE.isoformat(), "to": (BASE + timedelta(hours=2)).isoformat(), "bucket": "1h"}
    items = client.get("/v1/stations/bs-west/history", params=params).json()["items"]
    assert sum(i["n"] for i in items) == 120
    assert min(i["users_min"] for i in items) == 0 and max(i["users_max"] for i in items) == 119
    minute = client.get("/v1/stations/bs-west/history", params={**params, "bucket": "1m"}).json()["items"]
    assert len(minute) == 120 and minute[5]["prb_avg"] == pytest.approx(0.5)


def test_devices_list_detail_history(client: Any) -> None:
    body = client.get("/v1/devices").json()
    assert body["total"] == 2 and body["items"][0]["status"] == "online"
    assert client.get("/v1/devices", params={"kind": "weather"}).json()["total"] == 1
    detail = client.get("/v1/devices/air-1").json()
    assert detail["latest"][0]["metric"] == "pm2_5" and detail["latest"][0]["value"] == 89 + 2
    start = BASE.replace(second=0)
    params = {"metric": "pm2_5", "from": start.isoformat(), "to": (start + timedelta(minutes=10)).isoformat(),
              "bucket": "1m"}
    items = client.get("/v1/devices/air-1/history", params=params).json()["items"]
    assert len(items) == 10
    assert (items[3]["min"], items[3]["avg"], items[3]["max"], items[3]["n"]) == (3, 4, 5, 3)


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("/v1/devices/air-1/history", {"metric": "pm10"}, 422, "reports: pm2_5"),
        ("/v1/devices/air-1/history", {}, 422, "metric"),
        ("/v1/devices/air-1/history", {"metric": "pm2_5", "bucket": "5m"}, 422, "bucket"),
        ("/v1/devices/air-1/history", {"metric": "pm2_5", "bucket": "1m", "from": "2026-01-01T00:00:00Z",
                                       "to": "2026-01-05T00:00:00Z"}, 422, "exceeds the maximum"),
        ("/v1/devices/air-1/history", {"metric": "pm2_5", "from": "0001-01-01T00:00:00Z"}, 422, "between"),
        ("/v1/devices/nope/history", {"metric": "pm2_5"}, 404, "no device"),
        ("/v1/devices", {"limit": 5000}, 422, "less than or equal to 1000"),
        ("/v1/devices/air-1/history", {"metric": "pm2_5", "to": "not a date"}, 422, "datetime"),
    ],
)
def test_telemetry_errors(client: Any, path: str, params: dict[str, Any], status: int, fragment: str) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == status and fragment in answer.text, answer.text


def test_register_device_needs_operator(client: Any) -> None:
    device = {"device_id": "noise-9", "kind": "noise", "name": "stage", "lon": 120.64, "lat": 24.17}
    assert client.post("/v1/devices", json=device).status_code == 401
    viewer = make_key(client, "viewer")
    assert client.post("/v1/devices", json=device, headers={"X-API-Key": viewer}).status_code == 403
    operator = make_key(client, "operator", "ops-desk")
    created = client.post("/v1/devices", json=device, headers={"X-API-Key": operator})
    assert created.status_code == 201 and created.json()["metadata"]["registered_by"] == "ops-desk"
    assert client.post("/v1/devices", json=device, headers={"X-API-Key": operator}).status_code == 409
    bad = client.post("/v1/devices", json={**device, "device_id": "has space"}, headers={"X-API-Key": operator})
    assert bad.status_code == 422 and "device_id" in bad.json()["message"]
    nul = client.post("/v1/devices", json={**device, "device_id": "x1", "name": "a\u0000b"},
                      headers={"X-API-Key": operator})
    assert nul.status_code == 422


# --- keys and roles ----------------------------------------------------------------------------


def test_keys_are_hashed_and_revocable(client: Any, pg_migrated: str) -> None:
    created = client.post("/v1/admin/keys", json={"name": "temp", "role": "planner"}, headers={"X-API-Key": ADMIN_KEY})
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert key.startswith(f"zd_{key_id}_")
    with psycopg.connect(pg_migrated) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()[0]
    secret = key.removeprefix(f"zd_{key_id}_")  # URL-safe base64: may itself contain "_"
    assert len(secret) >= 32 and stored.startswith("scrypt$") and secret not in stored
    listed = client.get("/v1/admin/keys", headers={"X-API-Key": ADMIN_KEY}).json()["items"]
    assert key_id in {k["key_id"] for k in listed} and "key" not in listed[0]
    assert client.get("/v1/scenarios", headers={"X-API-Key": key}).status_code == 200
    assert client.delete(f"/v1/admin/keys/{key_id}", headers={"X-API-Key": ADMIN_KEY}).status_code == 204
    answer = client.get("/v1/scenarios", headers={"X-API-Key": key})
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert client.delete(f"/v1/admin/keys/{key_id}", headers={"X-API-Key": ADMIN_KEY}).status_code == 404


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({}, 401, "needs an API key"),
        ({"X-API-Key": "zd_short"}, 401, "malformed"),
        ({"X-API-Key": "zd_0123456789ab_" + "A" * 43}, 401, "invalid or revoked"),
        ({"Authorization": "Bearer zd_0123456789ab_" + "A" * 43}, 401, "invalid or revoked"),
    ],
)
def test_bad_keys_get_401(client: Any, headers: dict[str, str], status: int, fragment: str) -> None:
    answer = client.get("/v1/admin/keys", headers=headers)
    assert answer.status_code == status and fragment in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


def test_role_ladder(client: Any) -> None:
    keys = {role: make_key(client, role) for role in ("viewer", "planner", "operator")}
    for role, key in keys.items():
        assert client.get("/v1/admin/keys", headers={"X-API-Key": key}).status_code == 403, role
        assert client.get("/v1/coverage", headers={"X-API-Key": key}).status_code == 200, role
    assert client.post("/v1/admin/keys", json={"name": "x", "role": "root"}, headers={"X-API-Key": ADMIN_KEY}).status_code == 422


def test_rate_limit(pg_migrated: str, mqtt_url: str) -> None:
    settings = api_settings(pg_migrated, mqtt_url, rate_limit_per_minute=5, api_pool_size=1)
    with running_app(settings, live=False) as client:
        key = make_key(client, "viewer")  # spends one of this address's 5 tokens
        codes = [client.get("/v1/devices").status_code for _ in range(6)]
        assert codes[:4] == [200] * 4 and codes[4:] == [429, 429]
        limited = client.get("/v1/devices")
        assert int(limited.headers["retry-after"]) >= 1 and "rate limit" in limited.json()["detail"]
        assert client.get("/healthz").status_code == 200  # probes are exempt
        # another client (a key) has its own bucket
        assert client.get("/v1/devices", headers={"X-API-Key": key}).status_code == 200


# --- scenarios ---------------------------------------------------------------------------------


def test_scenario_runs_in_background(client: Any) -> None:
    planner = make_key(client, "planner", "planner-a")
    live = client.get("/v1/coverage").json()
    request = {
        "name": "北屯 infill", "target_share": 0.999, "model": "disk",
        "candidates": [
            {"station_id": "cand-north", "lon": 120.655, "lat": 24.185, "radius_m": 700, "cost": 1},
            {"station_id": "cand-south", "lon": 120.64, "lat": 24.15, "radius_m": 700, "cost": 1},
            {"station_id": "cand-useless", "lon": 121.5, "lat": 25.0, "radius_m": 100, "cost": 1},
        ],
    }
    assert client.post("/v1/scenarios", json=request).status_code == 401
    viewer = make_key(client, "viewer")
    assert client.post("/v1/scenarios", json=request, headers={"X-API-Key": viewer}).status_code == 403
    created = client.post("/v1/scenarios", json=request, headers={"X-API-Key": planner})
    assert created.status_code == 202, created.text
    scenario_id = created.json()["scenario_id"]

    def finished() -> bool:
        return client.get(f"/v1/scenarios/{scenario_id}").json()["status"] in ("done", "failed")

    assert wait_for(finished, 60)
    body = client.get(f"/v1/scenarios/{scenario_id}").json()
    assert body["status"] == "done", body["error"]
    result = body["result"]
    assert result["share_before"] == pytest.approx(live["share"])
    picks = [p["station_id"] for p in result["picks"]]
    assert "cand-useless" not in picks and picks and result["share_after"] > result["share_before"]
    shares = [p["share"] for p in result["picks"]]
    assert shares == sorted(shares) and body["created_by"] == "planner-a"
    listed = client.get("/v1/scenarios").json()
    assert listed["total"] >= 1 and listed["items"][0]["scenario_id"] == scenario_id


def test_plan_candidates_file_posts_as_written(client: Any, tmp_path: Path) -> None:
    """The rows `zhongdu plan candidates` writes (status, uncovered_population and all) are a valid request."""
    grid, stations = small_city()
    write_grid(grid, tmp_path / "grid.csv")
    write_stations(stations, tmp_path / "stations.csv")
    out = tmp_path / "candidates.csv"
    assert cli_main(["plan", "candidates", "--grid", str(tmp_path / "grid.csv"), "--stations",
                     str(tmp_path / "stations.csv"), "--model", "disk", "--resolution", "8", "--out", str(out)]) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"status", "uncovered_population"} <= set(rows[0])

    text = {"station_id", "sector_id", "status", "kind"}  # every other column is a number
    candidates = [{k: v if k in text else float(v) for k, v in row.items() if v != ""} for row in rows]
    planner = make_key(client, "planner")
    created = client.post("/v1/scenarios", json={"name": "lattice", "model": "disk", "candidates": candidates},
                          headers={"X-API-Key": planner})
    assert created.status_code == 202, created.text
    href = created.json()["href"]
    assert wait_for(lambda: client.get(href).json()["status"] in ("done", "failed"), 60)
    body = client.get(href).json()
    assert body["status"] == "done", body["error"]
    assert body["result"]["picks"] and body["result"]["share_after"] > body["result"]["share_before"]


def test_scenario_failures_are_stored(client: Any) -> None:
    planner = make_key(client, "planner")
    clash = {"name": "clash", "budget": 1, "model": "disk",
             "candidates": [{"station_id": "bs-west", "lon": 120.6, "lat": 24.1, "radius_m": 100}]}
    scenario_id = client.post("/v1/scenarios", json=clash, headers={"X-API-Key": planner}).json()["scenario_id"]
    assert wait_for(lambda: client.get(f"/v1/scenarios/{scenario_id}").json()["status"] == "failed", 60)
    assert "already used" in client.get(f"/v1/scenarios/{scenario_id}").json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "x", "candidates": []}, "at least 1"),
        ({"name": "x", "model": "disk", "candidates": [{"station_id": "c", "lon": 120.6, "lat": 24.1}]}, "radius_m"),
        ({"name": "x", "candidates": [{"station_id": "c", "lon": 10, "lat": 24.1}]}, "lon"),
        ({"name": "x", "target_share": 1.5, "candidates": [{"station_id": "c", "lon": 120.6, "lat": 24.1}]}, "target_share"),
    ],
)
def test_scenario_validation(client: Any, body: dict[str, Any], fragment: str) -> None:
    planner = make_key(client, "planner")
    answer = client.post("/v1/scenarios", json=body, headers={"X-API-Key": planner})
    assert answer.status_code == 422 and fragment in answer.text, answer.text


def test_unknown_scenario(client: Any) -> None:
    assert client.get("/v1/scenarios/sc_000000000000").status_code == 404
    assert client.get("/v1/scenarios/whatever").status_code == 422


# --- criteria: indoor, capacity, per operator ----------------------------------------------------


def test_coverage_by_criterion_and_operator(client: Any) -> None:
    default = client.get("/v1/coverage").json()
    indoor = client.get("/v1/coverage", params={"criterion": "indoor"}).json()
    assert indoor["criterion"] == "indoor" and indoor["operator"] == "any"
    assert indoor["share"] <= default["share"] and indoor["population_total"] == default["population_total"]
    again = client.get("/v1/coverage", params={"criterion": "indoor"}).json()
    assert again == indoor  # kept until the next snapshot
    each = client.get("/v1/coverage", params={"criterion": "indoor", "operator": "each"})
    assert each.status_code == 200, each.text  # the default layout has the operator column
    body = each.json()
    assert body["share"] == indoor["share"]
    assert set(body["by_operator"]) >= {"CHT", "TWM", "FET"}
    assert body["every_major"]["share"] <= min(body["by_operator"][c]["share"] for c in ("CHT", "TWM", "FET"))
    one = client.get("/v1/coverage", params={"operator": "CHT"}).json()
    assert one["operator"] == "CHT" and one["share"] <= default["share"]
    bad = client.get("/v1/coverage", params={"operator": "NOPE"})
    assert bad.status_code == 422 and "unknown operator" in bad.text
    # every_major: the map's fill for the people all three major operators cover, district by district
    every = client.get("/v1/coverage", params={"criterion": "indoor", "operator": "every_major"}).json()
    assert every["operator"] == "every_major" and every["share"] == body["every_major"]["share"]
    assert every["population_covered"] == pytest.approx(sum(d["covered"] for d in every["districts"]))
    assert every["population_covered"] == pytest.approx(body["every_major"]["population_covered"])
    any_op = {d["district"]: d["share"] for d in indoor["districts"]}
    assert all(d["share"] <= any_op[d["district"]] for d in every["districts"])
    assert client.get("/v1/coverage", params={"criterion": "basement"}).status_code == 422


def test_indicators_by_criterion(client: Any) -> None:
    from zhongdu.coverage import modelled_indicator_series

    def engine_item(params: dict[str, Any]) -> dict[str, Any]:
        items = client.get("/v1/indicators", params=params).json()["items"]
        (item,) = [i for i in items if i["actual"] and i["actual"]["source"] == "modelled"]
        return dict(item)

    outdoor = engine_item({"year": 2016})
    indoor = engine_item({"year": 2016, "criterion": "indoor_every_major"})
    expected = next(r for r in modelled_indicator_series("indoor_every_major") if r["date"] == "2016-12-31")
    assert indoor["actual"]["value"] == expected["share"] < outdoor["actual"]["value"]
    assert "indoor_every_major" in indoor["actual"]["evidence"]
    score = client.get("/v1/indicators/score", params={"year": 2016, "criterion": "indoor"})
    assert score.status_code == 200
    bad = client.get("/v1/indicators", params={"year": 2016, "criterion": "indoor_XYZ"})
    assert bad.status_code == 422 and "criterion" in bad.text


def test_scenario_for_indoor_coverage(client: Any) -> None:
    planner = make_key(client, "planner", "planner-indoor")
    request = {
        "name": "北屯 indoor",
        "budget": 2,
        "model": "disk",
        "criterion": "indoor",
        "candidates": [
            {"station_id": "cand-in-1", "lon": 120.655, "lat": 24.185, "radius_m": 700, "cost": 1},
            {"station_id": "cand-in-2", "lon": 120.64, "lat": 24.15, "radius_m": 700, "cost": 1},
        ],
    }
    created = client.post("/v1/scenarios", json=request, headers={"X-API-Key": planner})
    assert created.status_code == 202, created.text
    scenario_id = created.json()["scenario_id"]
    assert wait_for(
        lambda: client.get(f"/v1/scenarios/{scenario_id}").json()["status"] in ("done", "failed"), 60
    )
    body = client.get(f"/v1/scenarios/{scenario_id}").json()
    assert body["status"] == "done", body["error"]
    assert body["result"]["criterion"] == "indoor"
    indoor_now = client.get("/v1/coverage", params={"criterion": "indoor"}).json()["share"]
    assert body["result"]["share_before"] == pytest.approx(indoor_now)
    bad = client.post(
        "/v1/scenarios", json={**request, "criterion": "capacity"}, headers={"X-API-Key": planner}
    )
    assert bad.status_code == 422
