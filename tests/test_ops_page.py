"""The operations page in a real browser (Debian's chromium via Playwright) against the API on
loopback, real PostgreSQL and Mosquitto, and a real ingester: districts, cells, indicators, a
station taken down through MQTT, a scenario run from the page. Screenshots go to build/screenshots.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu.api import start_api
from zhongdu.coverage import Grid, Stations
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester

from ._api_fixtures import ADMIN_KEY, api_settings, small_city
from ._ingest_fixtures import publish_all, publisher
from ._ops_fixtures import SCREENSHOTS, browser, screenshot, watched_page

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]

RUN = uuid.uuid4().hex[:6]  # station ids unique per run: the machine's broker is shared
WEST, EAST, FAR = (f"bs-{name}-{RUN}" for name in ("west", "east", "far"))


def _layout() -> tuple[Grid, Stations]:
    """The API tests' small city, its three stations renamed for this run."""
    grid, stations = small_city()
    return grid, replace(stations, station_id=np.array([WEST, EAST, FAR], dtype=np.str_))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO stations (station_id, name, district, lon, lat) VALUES (%s, 'west', '西屯區', 120.63, 24.17),"
            " (%s, 'east', '北屯區', 120.65, 24.17), (%s, 'far', '北屯區', 121.14, 24.17)",
            (WEST, EAST, FAR),
        )
        conn.execute(
            "INSERT INTO sectors (station_id, sector_id, lon, lat, height_m, eirp_dbm, frequency_mhz, bandwidth_mhz,"
            " radius_m) VALUES (%s, '0', 120.63, 24.17, 30, 60, 1800, 20, 900)",
            (WEST,),
        )
        conn.execute("INSERT INTO devices (device_id, kind, name) VALUES ('air-1', 'air', 'gate'), ('air-2', 'air', NULL),"
                     " ('met-1', 'weather', 'roof')")
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s - make_interval(mins => m), d, 'pm2_5', 10 + m %% 7, 'ug/m3'
               FROM generate_series(0, 50) m, unnest(ARRAY['air-1', 'air-2']) d""",
            (now,),
        )
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s - make_interval(mins => m), 'met-1', 'temperature', 20 + m / 10.0, 'Cel'
               FROM generate_series(0, 50) m""",
            (now,),
        )


def _metrics_server(registry: CollectorRegistry) -> tuple[Any, str]:
    """The ingester's registry over HTTP on a free loopback port (as `--metrics-port` serves it)."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, make_wsgi_app(registry), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/metrics"


@pytest.fixture(scope="module")
def stack(pg_migrated: str, mqtt_url: str) -> Iterator[dict[str, Any]]:
    """Ingester (own metrics registry, served over HTTP) and API on a free port, seeded."""
    _seed(pg_migrated)
    registry = CollectorRegistry()
    metrics_server, metrics_url = _metrics_server(registry)
    ingest_settings = api_settings(pg_migrated, mqtt_url, mqtt_share_group=f"ops{RUN}", auto_register=True,
                                   ingest_batch_interval_ms=20)
    ingester = Ingester(ingest_settings, client_id=f"ops-ingest-{RUN}", metrics=IngestMetrics(registry))
    ingester.start()
    assert ingester.wait_connected()
    settings = api_settings(pg_migrated, mqtt_url, ingest_metrics_url=metrics_url)
    api = start_api(settings, port=_free_port(), layout=_layout)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as http:
            deadline = time.monotonic() + 60
            while http.get("/v1/coverage").status_code != 200:
                assert time.monotonic() < deadline, "live coverage did not start"
                time.sleep(0.1)
            yield {"url": api.url, "http": http, "db": pg_migrated, "mqtt": mqtt_url}
    finally:
        api.stop()
        ingester.stop()
        metrics_server.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def _open(chromium: Any, url: str, **size: int) -> Any:
    watched = watched_page(chromium, **size)
    watched.page.goto(url + "/")
    watched.page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    return watched


def _drawn_districts(page: Any) -> list[str]:
    return sorted(page.evaluate(
        """() => [...new Set(window.zhongdu.map.queryRenderedFeatures({layers: ['district-fill']})
                  .map(f => f.properties.district))]"""
    ))


def _click_district(page: Any, name: str) -> None:
    """Click inside the district's drawn polygon (a point the map itself reports as that district)."""
    point = page.evaluate(
        """(name) => { const m = window.zhongdu.map; const c = m.getCanvas(); const r = c.getBoundingClientRect();
             const inside = [];
             for (let y = 10; y < c.clientHeight; y += 6) for (let x = 10; x < c.clientWidth; x += 6) {
               if (document.elementFromPoint(r.left + x, r.top + y) !== c) continue;  // a control or panel
               const f = m.queryRenderedFeatures([x, y], {layers: ['district-fill']})[0];
               if (f && f.properties.district === name &&
                   !m.queryRenderedFeatures([x, y], {layers: ['alerts']}).length) inside.push([x, y]); }
             return inside.length ? inside[Math.floor(inside.length / 2)] : null; }""",
        name,
    )
    assert point is not None, f"{name} is not drawn"
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])


def test_page_loads_offline_with_29_districts(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    assert _drawn_districts(page) == sorted(
        f["properties"]["district"] for f in stack["http"].get("/v1/map/districts").json()["features"]
    )
    assert len(_drawn_districts(page)) == 29
    page.wait_for_function("document.querySelectorAll('#indicator-table tbody tr').length === 15")
    screenshot(page, "city-laptop")
    assert watched.errors == [], watched.errors
    assert watched.outside == [], watched.outside
    assert any(u.endswith("/v1/map/sites") for u in watched.requests)
    page.context.close()


def test_district_click_shows_its_cells(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    _click_district(page, "西屯區")
    expected = stack["http"].get("/v1/coverage/cells", params={"district": "西屯區"}).json()
    page.wait_for_function(f"document.querySelector('#map-note').dataset.cells === '{expected['cells']}'")
    covered = sum(f["properties"]["covered"] for f in expected["features"])
    assert page.locator("#map-note").get_attribute("data-covered") == str(covered)
    popup = page.locator(".popup[data-district='西屯區']")
    assert popup.is_visible()
    live = {d["district"]: d for d in stack["http"].get("/v1/coverage").json()["districts"]}["西屯區"]
    assert f"{100 * live['share']:.2f}%" in popup.inner_text()
    # the note follows the data; the cells are drawn once the worker has tiled them
    page.wait_for_function("window.zhongdu.map.queryRenderedFeatures({layers: ['cell-fill']}).length > 0")
    screenshot(page, "district-cells")
    # a site: its sectors from the registry
    point = page.evaluate(
        f"""() => {{ const s = window.zhongdu.state; const i = s.siteIndex.get('{WEST}');
              const p = window.zhongdu.map.project([s.sites.lon[i], s.sites.lat[i]]); return [p.x, p.y]; }}"""
    )
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    site = page.locator(f".popup[data-site='{WEST}']")
    site.wait_for()
    assert site.locator("table.sectors tbody tr").count() == 1
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_indicator_table_matches_the_api(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    assert page.get_attribute("nav.tabs button[data-tab='indicators']", "aria-selected") == "true"
    assert page.get_attribute("nav.tabs button[data-tab='live']", "aria-selected") == "false"
    page.select_option("#year", "2018")
    api = stack["http"].get("/v1/indicators", params={"year": 2018}).json()["items"]
    assert len(api) == 15
    page.wait_for_function("window.zhongdu.state.indicators && window.zhongdu.state.indicators.year === 2018")
    page.wait_for_function("document.querySelectorAll('#indicator-table tbody tr').length === 15")
    rows = page.eval_on_selector_all(
        "#indicator-table tbody tr",
        "rows => rows.map(r => ({id: r.dataset.id, target: r.dataset.target, actual: r.dataset.actual,"
        " attainment: r.dataset.attainment}))",
    )
    assert [r["id"] for r in rows] == [i["id"] for i in api]
    for row, item in zip(rows, api, strict=True):
        assert (float(row["target"]) if row["target"] else None) == item["target"], item["id"]
        actual = item["actual"]["value"] if item["actual"] else None
        assert (float(row["actual"]) if row["actual"] else None) == actual, item["id"]
        assert (float(row["attainment"]) if row["attainment"] else None) == item["attainment"], item["id"]
    score = stack["http"].get("/v1/indicators/score", params={"year": 2018}).json()["score"]
    assert float(page.locator("#score").get_attribute("data-score")) == score
    assert page.locator("#chart4g canvas").count() >= 1
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def _b7_2(page: Any) -> dict[str, str]:
    return dict(page.eval_on_selector("#indicator-table tbody tr[data-id='B7-2']", "r => ({...r.dataset})"))


def test_criterion_selector_follows_the_api_and_the_chart_draws_every_criterion(
    stack: dict[str, Any], chromium: Any
) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    http = stack["http"]
    page.wait_for_function("window.zhongdu.state.indicators && window.zhongdu.state.indicators.year === 2018")
    page.wait_for_selector("#chart4g canvas")
    series = http.get("/v1/indicators/coverage-series").json()
    # the selector offers exactly the criteria the API models, and the chart draws each of them
    options = page.eval_on_selector_all("#criterion option", "os => os.map(o => o.value)")
    assert options == list(series["modelled_by_criterion"]) and options[0] == "outdoor"
    assert page.eval_on_selector("#chart4g", "e => e.dataset.criteria").split(",") == options
    legend = page.locator("#chart4g .u-legend").inner_text()
    for label in ("戶外", "室內", "容量", "室內・三大業者皆涵蓋", "即時快照", "年度目標"):
        assert label in legend, label
    outdoor = _b7_2(page)
    assert page.locator("#criterion-note").get_attribute("data-criterion") == "outdoor"
    assert "100%" in page.locator("#criterion-note").inner_text()

    page.select_option("#criterion", "indoor_every_major")
    page.wait_for_function("window.zhongdu.state.indicators.criterion === 'indoor_every_major'")
    api = http.get("/v1/indicators", params={"year": 2018, "criterion": "indoor_every_major"}).json()["items"]
    item = next(i for i in api if i["id"] == "B7-2")
    shown = _b7_2(page)
    assert float(shown["actual"]) == item["actual"]["value"]
    assert float(shown["attainment"]) == item["attainment"]
    assert float(shown["actual"]) < float(outdoor["actual"]) - 0.05  # every major, indoors: 90 %, not 99.99 %
    score = http.get("/v1/indicators/score", params={"year": 2018, "criterion": "indoor_every_major"}).json()
    assert float(page.locator("#score").get_attribute("data-score")) == score["score"]
    cell = page.locator("#indicator-table tbody tr[data-id='B7-2'] td").nth(3).inner_text()
    assert cell == f"{100 * item['actual']['value']:.2f}%"
    assert page.locator("#criterion-note").get_attribute("data-criterion") == "indoor_every_major"
    screenshot(page, "criteria")
    page.locator("#panel-indicators").screenshot(path=str(SCREENSHOTS / "criteria-panel.png"))
    page.locator("#chart4g").scroll_into_view_if_needed()
    page.locator("#chart4g").screenshot(path=str(SCREENSHOTS / "criteria-chart.png"))

    page.select_option("#year", "2017")  # the year keeps the chosen criterion
    page.wait_for_function("window.zhongdu.state.indicators.year === 2017")
    api17 = http.get("/v1/indicators", params={"year": 2017, "criterion": "indoor_every_major"}).json()["items"]
    assert float(_b7_2(page)["actual"]) == next(i for i in api17 if i["id"] == "B7-2")["actual"]["value"]
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def _district_fill(page: Any, names: list[str]) -> dict[str, float]:
    return dict(page.evaluate(
        "(names) => names.map(n => [n, window.zhongdu.map.getFeatureState({source: 'districts', id: n}).share])",
        names,
    ))


def test_map_fill_switches_criterion(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    http = stack["http"]
    outdoor = {d["district"]: d["share"] for d in http.get("/v1/coverage").json()["districts"]}
    indoor = {d["district"]: d["share"] for d in http.get("/v1/coverage", params={"criterion": "indoor"}).json()["districts"]}
    assert any(indoor[n] < outdoor[n] for n in outdoor)  # the building loss shrinks some district's share
    names = sorted(outdoor)
    assert page.eval_on_selector_all("#map-criterion option", "os => os.map(o => o.value)") == [
        "outdoor", "indoor", "capacity"
    ]
    assert _district_fill(page, names) == outdoor
    page.select_option("#map-criterion", "indoor")
    page.wait_for_function("document.getElementById('map').dataset.criterion === 'indoor'")
    assert _district_fill(page, names) == indoor
    _click_district(page, "西屯區")
    popup = page.locator(".popup[data-district='西屯區']")
    popup.wait_for()
    assert "室內" in popup.inner_text() and f"{100 * indoor['西屯區']:.2f}%" in popup.inner_text()
    # the district's cells are coloured by the map's criterion: the indoor covered flags
    query = {"district": "西屯區", "limit": 12000, "resolution": "auto", "format": "h3"}
    cells_in = http.get("/v1/coverage/cells", params={**query, "criterion": "indoor"}).json()
    cells_out = http.get("/v1/coverage/cells", params=query).json()
    assert cells_in["covered_cells"] < cells_out["covered_cells"]
    page.wait_for_function(f"document.querySelector('#map-note').dataset.covered === '{cells_in['covered_cells']}'")
    drawn = page.evaluate("window.zhongdu.state.cells.features.filter(f => f.properties.covered).length")
    assert drawn == cells_in["covered"].count("1")
    screenshot(page, "map-indoor")
    page.select_option("#map-criterion", "outdoor")
    page.wait_for_function("document.getElementById('map').dataset.criterion === 'outdoor'")
    assert _district_fill(page, names) == outdoor
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_station_down_over_mqtt_turns_red_and_coverage_changes(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    _click_district(page, "西屯區")
    page.wait_for_function("document.querySelector('#map-note').dataset.cells > 0")
    covered_before = int(page.locator("#map-note").get_attribute("data-covered"))
    share_before = float(page.locator("#kpi-share").get_attribute("data-share"))
    assert page.evaluate(f"window.zhongdu.siteStatus('{WEST}')") in ("unknown", "up")
    report = {"time": time.time(), "status": "down", "sectors": [{"sector_id": "0", "prb_utilisation": 0.0,
                                                                    "active_users": 0}]}
    with publisher(stack["mqtt"], f"ops-pub-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{WEST}/telemetry", json.dumps(report).encode())])
    page.wait_for_function(f"window.zhongdu.siteStatus('{WEST}') === 'down'", timeout=30_000)
    page.wait_for_selector(f"#outages li[data-station-id='{WEST}'][data-status='down']", state="attached")
    page.wait_for_function(f"Number(document.querySelector('#kpi-share').dataset.share) < {share_before}",
                           timeout=30_000)
    page.wait_for_function(f"Number(document.querySelector('#map-note').dataset.covered) < {covered_before}",
                           timeout=30_000)
    colour = page.evaluate(
        f"""() => {{ const m = window.zhongdu.map; const i = window.zhongdu.state.siteIndex.get('{WEST}');
              const f = m.queryRenderedFeatures({{layers: ['alerts']}}).find(x => x.id === i);
              return f ? f.layer.paint['circle-color'] : null; }}"""
    )
    assert colour is not None and round(colour["r"] * 255) == 0xD5 and round(colour["g"] * 255) == 0x5E, colour
    screenshot(page, "station-down")
    page.click("nav.tabs button[data-tab='live']")
    page.wait_for_selector("#park .park-row[data-metric='pm2_5']")
    page.wait_for_function("document.querySelector('#ingest .kv') !== null", timeout=15_000)
    screenshot(page, "live-panel")
    assert watched.errors == [] and watched.outside == []
    page.context.close()
    up = {"time": time.time(), "status": "up", "sectors": []}
    with publisher(stack["mqtt"], f"ops-pub2-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{WEST}/telemetry", json.dumps(up).encode())])


def test_scenario_run_from_the_page_shows_its_sites(stack: dict[str, Any], chromium: Any) -> None:
    http = stack["http"]
    key = http.post("/v1/admin/keys", json={"name": f"planner-{RUN}", "role": "planner"},
                    headers={"X-API-Key": ADMIN_KEY}).json()["key"]
    watched = _open(chromium, stack["url"])
    page = watched.page
    _click_district(page, "北屯區")
    page.wait_for_function("document.querySelector('#map-note').dataset.cells > 0")
    page.click("nav.tabs button[data-tab='scenarios']")
    page.fill("#planner-key", key)
    page.check("input[name=goal][value=budget]")
    page.fill("#goal-value", "3")
    page.click("#run")
    page.wait_for_selector("table.picks tbody tr", timeout=60_000)
    rows = page.eval_on_selector_all("table.picks tbody tr", "rows => rows.map(r => r.dataset.stationId)")
    assert 1 <= len(rows) <= 3
    scenario_id = page.locator("[data-scenario]").get_attribute("data-scenario")
    stored = http.get(f"/v1/scenarios/{scenario_id}").json()
    assert [p["station_id"] for p in stored["result"]["picks"]] == rows
    assert page.locator(".pick-marker").count() == len(rows)
    assert [m.inner_text() for m in page.locator(".pick-marker").all()] == [str(i + 1) for i in range(len(rows))]
    # each pick says where it is (the candidate's coordinates), in which district, and its cost
    first = page.locator("table.picks tbody tr").first
    lon, lat = float(first.get_attribute("data-lon")), float(first.get_attribute("data-lat"))
    cells = first.locator("td").all_inner_texts()
    assert cells[2] == "北屯區" and cells[3] == f"{lon:.5f}" and cells[4] == f"{lat:.5f}" and cells[5] == "1"
    if len(rows) < 3:  # fewer than the budget: the page says why
        assert "只需" in page.locator("#scenario-result .answer").inner_text()
    screenshot(page, "scenario")
    # a target already met is said plainly
    page.check("input[name=goal][value=target]")
    page.fill("#goal-value", "1")
    page.click("#run")
    page.wait_for_selector("#scenario-result .answer", timeout=60_000)
    assert "目標已達成" in page.locator("#scenario-result .answer").inner_text()
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_scenario_without_key_or_cells_says_why(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.click("nav.tabs button[data-tab='scenarios']")
    page.fill("#planner-key", "")
    page.click("#run")
    page.wait_for_selector("#scenario-result .error")
    page.fill("#planner-key", "zd_000000000000_" + "x" * 43)
    page.click("#run")
    page.wait_for_function("document.querySelector('#scenario-result .error').textContent.length > 0")
    assert "zoom" in page.locator("#scenario-result").inner_text().lower() or "網格" in page.locator(
        "#scenario-result").inner_text()
    page.context.close()


def test_english_and_wall_layout(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"], width=1920, height=1080)
    page = watched.page
    assert page.evaluate("document.body.classList.contains('wall')")
    zh = page.locator("h1").inner_text()
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent.includes('Operations Center')")
    assert page.locator("h1").inner_text() != zh
    page.wait_for_function("document.querySelectorAll('#indicator-table tbody tr').length === 15")
    # the table and the chart are redrawn in English (the rows above may still be the Chinese ones)
    page.wait_for_function("document.getElementById('score').textContent.includes('Weighted score')")
    page.wait_for_function("(document.querySelector('#chart4g .u-legend') || {}).textContent?.includes('Yearly targets')")
    assert "Indoor, every major operator" in page.locator("#chart4g .u-legend").inner_text()
    # the wall shows what is watched: the live blocks and the indicators' summary, not the desk's forms
    assert page.locator("#panel-live .blk-live").is_visible() and page.locator("#panel-scenarios").is_hidden()
    assert "Weighted score" in page.locator("#indicator-summary").inner_text()
    screenshot(page, "wall-en")
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def _cells_requests(watched: Any) -> list[str]:
    return [u for u in watched.requests if "/v1/coverage/cells" in u]


def test_large_district_opens_whole_at_a_coarser_resolution(stack: dict[str, Any], chromium: Any) -> None:
    """A district with more cells than the page asks for (和平區's 75,629 in the city) opens merged."""
    http = stack["http"]
    fine = http.get("/v1/coverage/cells", params={"district": "西屯區"}).json()
    limit = max(1, fine["cells"] // 3)
    watched = watched_page(chromium)
    page = watched.page
    page.goto(f"{stack['url']}/?cell_limit={limit}")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    _click_district(page, "西屯區")
    page.wait_for_function("document.querySelector('#map-note').dataset.resolution !== undefined")
    note = page.locator("#map-note")
    assert int(note.get_attribute("data-resolution")) < fine["resolution"]
    assert note.get_attribute("data-cells") == str(fine["cells"])  # every cell, merged
    assert note.get_attribute("data-covered") == str(fine["covered_cells"])
    assert page.locator(".popup[data-district='西屯區'] #popup-cells").inner_text() != "…"
    page.wait_for_function("window.zhongdu.map.queryRenderedFeatures({layers: ['cell-fill']}).length > 0")
    screenshot(page, "district-merged")
    assert all("resolution=auto" in u for u in _cells_requests(watched))
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def _station_codes(http: httpx.Client) -> dict[str, int]:
    sites = http.get("/v1/map/sites").json()
    names = sites["statuses"]
    counts = {name: 0 for name in names}
    for code in sites["status"]:
        counts[names[code]] += 1
    return {"serving": counts["up"] + counts["degraded"], "down": counts["down"],
            "noreport": counts["unknown"] + counts["silent"], "total": len(sites["status"])}


def _header_counts(page: Any) -> dict[str, int]:
    data = page.eval_on_selector("#kpi-serving", "e => ({...e.dataset})")
    return {k: int(data[k]) for k in ("serving", "down", "noreport", "total")}


def test_header_counts_banner_and_a_failed_cells_request_that_never_loops(
    stack: dict[str, Any], chromium: Any
) -> None:
    """The header counts what the map draws; a site going down shows the banner without a reload;
    a failed cells request is said once and not repeated on the next snapshot."""
    http = stack["http"]
    watched = _open(chromium, stack["url"])
    page = watched.page
    assert _header_counts(page) == _station_codes(http)
    assert page.locator("#outage-banner").is_hidden()
    refused: list[str] = []

    def refuse(r: Any) -> None:
        refused.append(r.request.url)
        r.fulfill(status=503, content_type="application/json", body='{"message": "test: cells refused"}')

    page.route("**/v1/coverage/cells**", refuse)
    _click_district(page, "北屯區")
    page.wait_for_function("document.querySelector('#map-note').dataset.error === '503'")
    assert "cells refused" in page.locator("#map-note").inner_text()
    assert page.locator("#popup-cells").inner_text() == "–"
    assert len(refused) == 1
    before = _header_counts(page)
    computed_at = page.evaluate("window.zhongdu.state.coverage.computed_at")
    report = {"time": time.time(), "status": "down", "sectors": []}
    with publisher(stack["mqtt"], f"ops-pub3-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{EAST}/telemetry", json.dumps(report).encode())])
    page.wait_for_function(f"window.zhongdu.siteStatus('{EAST}') === 'down'", timeout=30_000)
    page.wait_for_function("Number(document.querySelector('#kpi-serving').dataset.down) >= 1")
    after = _header_counts(page)
    assert after == _station_codes(http)
    assert after["down"] == before["down"] + 1
    banner = page.locator("#outage-banner")
    banner.wait_for(state="visible")
    assert banner.get_attribute("data-count") == str(after["down"])
    assert "中斷" in banner.inner_text()
    # the snapshot after the outage lands; the refused cells are not asked for again
    page.wait_for_function(f"window.zhongdu.state.coverage.computed_at !== '{computed_at}'", timeout=30_000)
    page.wait_for_timeout(1000)
    assert len(refused) == 1
    screenshot(page, "outage-banner")
    page.unroute("**/v1/coverage/cells**")
    since = page.evaluate(f"window.zhongdu.state.outages.get('{EAST}').since")
    # the row reaches the site by keyboard
    page.click("nav.tabs button[data-tab='live']")
    row = page.locator(f"#outages li[data-station-id='{EAST}']")
    row.focus()
    page.keyboard.press("Enter")
    page.locator(f".popup[data-site='{EAST}']").wait_for()
    assert page.evaluate("window.zhongdu.map.getZoom()") >= 14
    page.context.close()
    # a reload keeps when the outage began
    again = _open(chromium, stack["url"])
    reloaded = again.page.evaluate(f"window.zhongdu.state.outages.get('{EAST}').since")
    assert abs(datetime.fromisoformat(reloaded).timestamp() - datetime.fromisoformat(since).timestamp()) < 1.0
    assert again.page.locator("#outage-banner").is_visible()
    assert again.errors == [] and again.outside == []
    again.page.context.close()
    up = {"time": time.time(), "status": "up", "sectors": []}
    with publisher(stack["mqtt"], f"ops-pub4-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{EAST}/telemetry", json.dumps(up).encode())])


def test_operator_view_moves_with_an_outage(stack: dict[str, Any], chromium: Any) -> None:
    """Indoor by one operator (the small city's west site is CHT's): the fill, the header and the
    labels are that view's, its scale spans its shares, and the site going down moves them without
    a reload. (Every major operator is 0 % everywhere in this 3-site city: nothing to move.)"""
    http = stack["http"]
    params = {"criterion": "indoor", "operator": "CHT"}
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.select_option("#map-criterion", "indoor")
    assert "every_major" in page.eval_on_selector_all("#map-operator option", "os => os.map(o => o.value)")
    page.select_option("#map-operator", "CHT")
    page.wait_for_function("document.getElementById('map').dataset.operator === 'CHT'")
    api = http.get("/v1/coverage", params=params).json()
    shares = {d["district"]: d["share"] for d in api["districts"]}
    assert _district_fill(page, sorted(shares)) == shares
    assert float(page.locator("#kpi-share").get_attribute("data-share")) == api["share"]
    assert "室內・中華電信" in page.locator("#map-view").inner_text()
    assert "室內・中華電信" in page.locator("#kpi-view").inner_text()
    steps = [float(x) for x in page.locator("#share-ticks").get_attribute("data-steps").split(",")]
    assert len(steps) == 6 and steps == sorted(steps) and steps[0] < steps[-1]
    assert steps[0] <= max(shares.values()) and steps[-1] >= min(shares.values())  # spans what is shown
    label = page.locator(".district-label[data-district='西屯區']")
    assert float(label.get_attribute("data-share")) == shares["西屯區"]
    screenshot(page, "operator-view")
    before = api["share"]
    computed_at = page.evaluate("window.zhongdu.state.coverage.computed_at")
    report = {"time": time.time(), "status": "down", "sectors": []}
    with publisher(stack["mqtt"], f"ops-pub5-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{WEST}/telemetry", json.dumps(report).encode())])
    try:
        page.wait_for_function(f"window.zhongdu.state.coverage.computed_at !== '{computed_at}'", timeout=30_000)
        page.wait_for_function(f"Number(document.querySelector('#kpi-share').dataset.share) < {before}",
                               timeout=30_000)
        after = http.get("/v1/coverage", params=params).json()
        page.wait_for_function(f"Number(document.querySelector('#kpi-share').dataset.share) === {after['share']}")
        assert _district_fill(page, sorted(shares)) == {d["district"]: d["share"] for d in after["districts"]}
        banner = page.locator("#outage-banner")
        banner.wait_for(state="visible")
        people = before * api["population_total"] - after["share"] * after["population_total"]
        assert float(banner.get_attribute("data-people")) == pytest.approx(people, abs=1)
        screenshot(page, "operator-view-outage")
        assert watched.errors == [] and watched.outside == []
    finally:
        page.context.close()
        up = {"time": time.time(), "status": "up", "sectors": []}
        with publisher(stack["mqtt"], f"ops-pub6-{RUN}") as client:
            publish_all(client, [(f"zhongdu/v1/bs/{WEST}/telemetry", json.dumps(up).encode())])


def test_english_leaves_no_chinese_outside_names(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"], width=1920, height=1080)
    page = watched.page
    _click_district(page, "西屯區")
    page.wait_for_function("document.querySelector('#map-note').dataset.cells > 0")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_function("document.getElementById('score').textContent.includes('Weighted score')")
    page.wait_for_timeout(500)
    left = page.evaluate(
        """() => { const out = []; const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
             for (let n = walk.nextNode(); n; n = walk.nextNode()) {
               const el = n.parentElement; if (!el || !el.offsetParent && el.tagName !== 'OPTION') continue;
               if (el.closest('#lang')) continue;  // the button back to Chinese says 中文
               if (/[\\u4e00-\\u9fff]/.test(n.textContent)) out.push(n.textContent.trim()); }
             return out; }"""
    )
    page.wait_for_selector("#park .park-row[data-metric='pm2_5']")
    pm = page.locator("#park .park-row[data-metric='pm2_5']").inner_text()
    assert "PM2.5" in pm and "µg/m³" in pm and "pm2_5" not in pm
    temperature = page.locator("#park .park-row[data-metric='temperature']").inner_text()
    assert "Temperature" in temperature and "°C" in temperature and "Cel" not in temperature
    # labels a screen reader reads, in the page's language too
    assert page.get_attribute("#map-operator", "aria-label") == "Operator"
    assert page.get_attribute("#map-criterion", "aria-label") == "Criterion"
    screenshot(page, "english-district")
    assert left == [], left
    page.context.close()


def test_every_catalogue_metric_has_a_readable_name() -> None:
    """The page names every metric the ingester accepts, in both languages."""
    import re

    from zhongdu.ingest._metrics_catalogue import METRICS

    source = (SCREENSHOTS.parents[1] / "api" / "ui" / "src" / "metric_names.js").read_text()
    table = source[source.index("METRIC_NAMES = {"):source.index("};")]
    named = dict(re.findall(r'^\s+(\w+): \[("[^"]+", "[^"]+")\],$', table, re.MULTILINE))
    assert sorted(named) == sorted(METRICS)
