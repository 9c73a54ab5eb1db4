"""The wall as seen from across the room, in Chromium against the real API and PostgreSQL with a
city of all 29 districts: no desk form on the wall (only the view's own controls), every district
row on screen without scrolling, no block that scrolls inside, the key figures large, the map at
least half the width, the indicators' summary equal to the API, empty sections that say why, and
district labels that never overlap at city zoom (in both languages). Screenshot at 1920x1080."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import h3
import numpy as np
import pytest
from shapely.geometry import shape

from zhongdu.api._boundaries import district_geojson
from zhongdu.coverage import Grid, Stations

from ._api_fixtures import api_settings
from ._ops_fixtures import api_serving, browser, screenshot, watched_page

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RUN = uuid.uuid4().hex[:6]

# What a wall may offer: the view's controls (language, layout, focus, the map's criterion and
# operator, sorting, replay, zooming into a cluster), never a form that changes data.
VIEW_CONTROLS = ", ".join([
    "#lang", "#layout", "#focus-choice", "#focus-pause", "#map-criterion", "#map-operator", "#clear-selection",
    "#replay", "#replay-live", "#district-list th button", ".cluster-count", ".maplibregl-ctrl button",
    ".maplibregl-popup-close-button",
])  # fmt: skip
DESK_FORMS = ["#ack-by", "#ack-key", "#import-csv", "#lock-year", "#year", "#criterion", "#planner-key", "#run",
              "#scenario-form", "#indicator-table", "#ingest", "#events"]  # fmt: skip


def city_of_29(prefix: str) -> tuple[Grid, Stations]:
    """Seven res-9 cells around a point inside each of the 29 districts, and one omni site at each
    point whose radius grows district by district: shares from one cell in seven to all."""
    features = json.loads(district_geojson())["features"]
    assert len(features) == 29
    rng = np.random.default_rng(29)
    cells: dict[int, str] = {}
    lon, lat = [], []
    for f in features:
        point = shape(f["geometry"]).representative_point()
        lon.append(point.x)
        lat.append(point.y)
        for c in h3.grid_disk(h3.latlng_to_cell(point.y, point.x, 9), 1):
            cells.setdefault(h3.str_to_int(c), f["properties"]["district"])  # the dense centre: first keeps it
    ids = sorted(cells)
    grid = Grid.from_arrays(ids, rng.uniform(50, 500, len(ids)).round(1), np.array([cells[i] for i in ids]))
    n = len(features)
    stations = Stations.from_columns(
        station_id=[f"{prefix}-{i:02d}" for i in range(n)],
        sector_id=["0"] * n,
        lon=lon,
        lat=lat,
        radius_m=[100.0 + 25.0 * i for i in range(n)],
        extra={"operator": np.array(["CHT", "TWM", "FET"] * 10)[:n]},
    )
    return grid, stations


@pytest.fixture(scope="module")
def stack(pg_migrated: str, mqtt_url: str) -> Iterator[dict[str, Any]]:
    with api_serving(api_settings(pg_migrated, mqtt_url), lambda: city_of_29(f"w29{RUN}")) as (url, http):
        yield {"url": url, "http": http}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def _wall(chromium: Any, url: str) -> Any:
    watched = watched_page(chromium, width=1920, height=1080)
    page = watched.page
    page.goto(f"{url}/?layout=wall")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('#district-list tbody tr').length === 29")
    page.wait_for_selector("#timeline-chart[data-series]", state="attached")
    page.wait_for_function("document.querySelector('#indicator-summary').dataset.actual !== undefined")
    page.wait_for_function("window.zhongdu.state.labels !== undefined")
    page.wait_for_timeout(500)
    return watched


def _visible_labels(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('.district-label')]
             .filter(e => !e.hidden && !e.classList.contains('collided') && e.textContent)
             .map(e => { const r = e.getBoundingClientRect();
                         return {d: e.dataset.district, share: Number(e.dataset.share),
                                 x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; })"""
    )


def _overlaps(labels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["d"], b["d"]) for i, a in enumerate(labels) for b in labels[i + 1:]
            if a["x0"] < b["x1"] and b["x0"] < a["x1"] and a["y0"] < b["y1"] and b["y0"] < a["y1"]]  # fmt: skip


def test_the_wall_shows_what_is_watched_whole_and_no_form(stack: dict[str, Any], chromium: Any) -> None:
    http = stack["http"]
    watched = _wall(chromium, stack["url"])
    page = watched.page
    page.wait_for_function("document.querySelector('#park').textContent.trim() !== ''")
    screenshot(page, "wall-city-zh-1920x1080")
    # no form: every visible control is one of the view's own
    controls = page.evaluate(
        f"""() => [...document.querySelectorAll('input, select, textarea, button')]
             .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
             .filter(e => !e.matches({json.dumps(VIEW_CONTROLS)}))
             .map(e => e.id || e.className || e.outerHTML.slice(0, 80))"""
    )
    assert controls == [], controls
    for sel in DESK_FORMS:
        assert page.locator(sel).first.is_hidden(), sel
    # every district row inside the viewport and inside its block (not cut off), worst first
    rows = page.eval_on_selector_all(
        "#district-list tbody tr",
        """rows => { const box = document.querySelector('.blk-districts').getBoundingClientRect();
             return rows.map(r => { const b = r.getBoundingClientRect();
               return {top: b.top, bottom: b.bottom, right: b.right, h: b.height, inBlock: b.bottom <= box.bottom + 0.5,
                       share: Number(r.querySelector('[data-share]').dataset.share)}; }); }""",
    )
    assert len(rows) == 29
    assert all(r["h"] > 0 and r["top"] >= 0 and r["bottom"] <= 1080 and r["right"] <= 1920 and r["inBlock"] for r in rows), rows
    shares = [r["share"] for r in rows]
    assert shares == sorted(shares) and shares[0] < shares[-1]
    # nothing scrolls: not the page, not a block
    scrolled = page.evaluate(
        """() => [document.scrollingElement, ...document.querySelectorAll('.blk, .district-list-wrap, .map-wrap')]
             .filter(e => e.getClientRects().length && e.scrollHeight > e.clientHeight + 1)
             .map(e => `${e.className}: ${e.scrollHeight} > ${e.clientHeight}`)"""
    )
    assert scrolled == [], scrolled
    # read from a few metres: key figures large, the map at least half the width
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('#kpi-share')).fontSize)") >= 30
    assert page.evaluate("document.querySelector('#map').getBoundingClientRect().width") >= 960
    # the indicators' summary: the score and the 4G indicator with its target, as the API says
    score = http.get("/v1/indicators/score", params={"year": 2018}).json()
    b72 = next(i for i in http.get("/v1/indicators", params={"year": 2018}).json()["items"] if i["id"] == "B7-2")
    summary = page.locator("#indicator-summary")
    assert float(summary.get_attribute("data-score")) == score["score"]
    assert float(summary.get_attribute("data-target")) == b72["target"]
    assert float(summary.get_attribute("data-actual")) == b72["actual"]["value"]
    assert summary.is_visible() and f"{100 * b72['actual']['value']:.2f}%" in summary.inner_text()
    # an empty section says why instead of a bare heading
    for sel in ("#outages", "#incidents", "#park"):
        assert page.locator(sel).inner_text().strip() != "", sel
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_district_labels_never_overlap_at_city_zoom(stack: dict[str, Any], chromium: Any) -> None:
    watched = _wall(chromium, stack["url"])
    page = watched.page
    labels = _visible_labels(page)
    hidden = page.evaluate("document.querySelectorAll('.district-label.collided').length")
    # the dense centre collides at city zoom: some give way, the rest stand apart
    assert hidden > 0 and len(labels) >= 8, (hidden, labels)
    assert _overlaps(labels) == []
    # the worst district (lowest share, then most people) keeps its label
    districts = stack["http"].get("/v1/coverage").json()["districts"]
    worst = min(districts, key=lambda d: (d["share"], -d["population"]))["district"]
    assert worst in {x["d"] for x in labels}
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_timeout(300)
    labels = _visible_labels(page)
    assert len(labels) >= 8 and _overlaps(labels) == []
    screenshot(page, "wall-city-en-1920x1080")
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_a_capped_wall_list_says_how_many_more_it_holds(stack: dict[str, Any], chromium: Any) -> None:
    """The wall shows the incidents that fit (4 at most); the others are counted in a last row, in the
    page's language, and no row runs out of the block."""
    watched = _wall(chromium, stack["url"])
    page = watched.page
    shown = "() => [...document.querySelectorAll('#incidents > li')].filter(e => e.getClientRects().length)"
    six_rows = """() => { const list = document.querySelector('#incidents');
                          list.replaceChildren(...[1, 2, 3, 4, 5, 6].map(k => {
                            const li = document.createElement('li'); li.textContent = `site ${k}`; return li; })); }"""
    page.evaluate(six_rows)
    page.wait_for_function("document.querySelector('#incidents > li.more') !== null")
    visible = page.evaluate(f"({shown})().map(e => e.textContent)")
    rows = visible[:-1]
    assert 1 <= len(rows) <= 4 and rows == [f"site {k}" for k in range(1, len(rows) + 1)], visible
    assert f"還有 {6 - len(rows)} 筆" in visible[-1], visible
    # nothing shown runs out of the block
    overflow = page.evaluate(
        f"""() => {{ const bottom = document.querySelector('#incidents').closest('.blk').getBoundingClientRect().bottom;
                     return ({shown})().filter(e => e.getBoundingClientRect().bottom > bottom + 0.5).length; }}"""
    )
    assert overflow == 0
    page.click("#lang")  # the switch redraws the lists from the API: the rows are put back after it
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_timeout(300)
    page.evaluate(six_rows)
    page.wait_for_function(
        f"(document.querySelector('#incidents > li.more') || {{}}).textContent === '{6 - len(rows)} more (laptop layout)'"
    )
    page.click("#layout")  # the laptop layout shows every row and no count
    page.wait_for_function("document.querySelector('#incidents > li.more') === null")
    displayed = "[...document.querySelectorAll('#incidents > li')].map(e => getComputedStyle(e).display)"
    assert len(page.evaluate(displayed)) == 6 and "none" not in page.evaluate(displayed)
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_the_desk_keeps_its_forms(stack: dict[str, Any], chromium: Any) -> None:
    """The laptop/desk layout still offers what the wall leaves out."""
    watched = watched_page(chromium, width=1440, height=900)
    page = watched.page
    page.goto(f"{stack['url']}/?layout=laptop")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    assert page.locator("#year").is_visible() and page.locator("#import-csv").count() == 1
    assert page.locator("#indicator-summary").is_hidden()
    page.click("nav.tabs button[data-tab='live']")
    assert page.locator("#ack-key").is_visible() and page.locator("#events li").first.is_visible()
    page.click("nav.tabs button[data-tab='scenarios']")
    assert page.locator("#planner-key").is_visible() and page.locator("#run").is_visible()
    assert watched.errors == [] and watched.outside == []
    page.context.close()
