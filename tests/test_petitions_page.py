"""The petition layer of the operations page in a real browser (Debian's chromium via Playwright)
against the API on loopback and real PostgreSQL: the hotspot layer and panel marked synthetic, the
filters asking the API, and a new hotspot shown without a reload. Screenshots go to build/screenshots.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import httpx
import pytest

from zhongdu.api import start_api
from zhongdu.petitions._simulate import Cluster, simulate, write_csv

from ._api_fixtures import ADMIN_KEY, api_settings, small_city
from ._ops_fixtures import browser, screenshot, watched_page

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

END = datetime(2026, 9, 1, tzinfo=UTC)
CLUSTER = (120.6846, 24.1375)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(df: Any, prefix: str = "") -> list[dict[str, str]]:
    out = io.StringIO()
    write_csv(df, out)
    return [{**r, "case_id": prefix + r["case_id"]} for r in csv.DictReader(io.StringIO(out.getvalue()))]


@pytest.fixture(scope="module")
def stack(pg_migrated: str) -> Iterator[dict[str, Any]]:
    api = start_api(api_settings(pg_migrated, None), port=_free_port(), layout=small_city)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            key = http.post(
                "/v1/admin/keys", json={"name": "page", "role": "operator"}, headers={"X-API-Key": ADMIN_KEY}
            ).json()["key"]
            df = simulate(
                4000,
                start=END - timedelta(days=180),
                end=END,
                seed=21,
                clusters=(Cluster(CLUSTER[0], CLUSTER[1], 250.0, 300, "drain"),),
                now=END + timedelta(days=30),
            )
            answer = http.post("/v1/petitions", json={"cases": _rows(df)}, headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 60
            while http.get("/v1/coverage").status_code != 200:
                assert time.monotonic() < deadline, "live coverage did not start"
                time.sleep(0.1)
            yield {"url": api.url, "http": http, "key": key}
    finally:
        api.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def test_hotspot_layer_filters_and_a_new_hotspot_without_reload(stack: dict[str, Any], chromium: Any) -> None:
    http = stack["http"]
    watched = watched_page(chromium)
    page = watched.page
    page.goto(stack["url"] + "/")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    page.click("#tab-petitions")
    page.wait_for_function("document.getElementById('panel-petitions').dataset.loaded", timeout=30_000)
    panel = page.locator("#panel-petitions")
    assert panel.is_visible()
    # simulated data is labelled as such
    assert page.locator("#pet-synthetic").is_visible()
    assert "合成資料" in page.locator("#pet-synthetic").inner_text()

    api = http.get("/v1/petitions/hotspots", params={"res": 9}).json()
    assert int(page.locator("#pet-summary").get_attribute("data-hot")) == api["hot"] > 0
    top_api = next(f["properties"]["cell"] for f in api["features"] if f["properties"]["verdict"] == "hot")
    assert page.locator("#pet-top tbody tr").first.get_attribute("data-cell") == top_api
    # the layer holds the API's significant cells and draws them where the page flies
    assert page.evaluate("window.zhongdu.petitions.drawn") == len(api["features"])
    page.locator(f"#pet-top a[data-fly='{top_api}']").click()
    page.wait_for_function(
        "window.zhongdu.map.queryRenderedFeatures({layers: ['petition-hot']}).length > 0", timeout=30_000
    )
    # clicking the cell opens its popup (not the district's)
    lat, lon = h3.cell_to_latlng(top_api)
    point = page.evaluate(
        f"(() => {{ const p = window.zhongdu.map.project([{lon}, {lat}]); return [p.x, p.y]; }})()"
    )
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    page.locator(f".popup[data-cell='{top_api}']").wait_for(timeout=10_000)
    assert page.locator(".popup[data-district]").count() == 0
    screenshot(page, "petitions-hotspots")

    # filters: a category and a period are asked of the API
    before = page.locator("#panel-petitions").get_attribute("data-loaded")
    with page.expect_request(lambda r: "/v1/petitions/hotspots" in r.url and "category=drain" in r.url):
        page.select_option("#pet-category", "drain")
    page.wait_for_function(f"document.getElementById('panel-petitions').dataset.loaded !== '{before}'")
    drain = http.get("/v1/petitions/hotspots", params={"res": 9, "category": "drain"}).json()
    page.wait_for_function(
        f"document.getElementById('pet-summary').dataset.hot === '{drain['hot']}'", timeout=30_000
    )
    assert page.locator(".pet-trend").count() == 1  # one category's trend
    assert page.locator("#pet-trends .pet-trend").first.get_attribute("data-category") == "drain"
    with page.expect_request(lambda r: "/v1/petitions/trends" in r.url and "from=2026-04-01" in r.url):
        page.fill("#pet-from", "2026-04")
        page.dispatch_event("#pet-from", "change")
    page.select_option("#pet-measure", "rate")
    page.wait_for_function(
        "document.getElementById('pet-method').textContent.includes('empirical-Bayes')", timeout=30_000
    )

    # a month later, a knot of pothole reports: the page shows it without a reload
    later = END + timedelta(days=40)
    df = simulate(
        800,
        start=later - timedelta(days=60),
        end=later,
        seed=5,
        clusters=(Cluster(120.64, 24.17, 150.0, 100, "pothole", later - timedelta(days=20)),),
        now=later + timedelta(days=30),
    )
    page.evaluate("window.zhongdu.noReload = true")
    answer = http.post("/v1/petitions", json={"cases": _rows(df, "P2-")}, headers={"X-API-Key": stack["key"]})
    assert answer.status_code == 200 and answer.json()["new_hotspots"], answer.text
    fresh = answer.json()["new_hotspots"][0]["cell"]
    page.wait_for_selector(f"#pet-new li[data-cell='{fresh}']", timeout=30_000)
    assert page.evaluate("window.zhongdu.noReload") is True
    assert "新陳情熱點" in page.locator("#events").inner_text()
    screenshot(page, "petitions-new-hotspot")
    assert watched.errors == [], watched.errors
    assert watched.outside == [], watched.outside
    page.context.close()
