"""The operations wall in Chromium against the real API, PostgreSQL, Mosquitto and ingester: an
outage that matters only indoors changes the header, the map and the outage rows without a
reload; the timeline, replay and incident history; cluster counts and the chooser where dots
overlap; the sortable district list; the rotating focus; both languages whole; the shipped CJK
font. Screenshots at 1920x1080 and 1366x768 go to build/screenshots."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester

from ._api_fixtures import api_settings, wait_for
from ._ingest_fixtures import publish_all, publisher
from ._ops_fixtures import REPO_ROOT, api_serving, browser, screenshot, watched_page
from ._wall_city import wall_city

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]

RUN = uuid.uuid4().hex[:6]  # station ids unique per run: the machine's broker is shared
PREFIX = f"bw{RUN}"
EDGE, CHT, FET, TWM = (f"{PREFIX}-{n}" for n in ("edge", "cht", "fet", "twm"))
CJK = r"[\u3000-\u9fff\uff00-\uffef]"


@pytest.fixture(scope="module")
def stack(pg_migrated: str, mqtt_url: str) -> Iterator[dict[str, Any]]:
    settings = api_settings(pg_migrated, mqtt_url, mqtt_share_group=f"wall{RUN}", auto_register=True,
                            ingest_batch_interval_ms=20)  # fmt: skip
    ingester = Ingester(settings, client_id=f"wall-ingest-{RUN}", metrics=IngestMetrics(CollectorRegistry()))
    ingester.start()
    assert ingester.wait_connected()
    try:
        with api_serving(api_settings(pg_migrated, mqtt_url), lambda: wall_city(PREFIX)) as (url, http):
            yield {"url": url, "http": http, "mqtt": mqtt_url}
    finally:
        ingester.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def _status(stack: dict[str, Any], station: str, status: str) -> None:
    report = {"time": time.time(), "status": status, "sectors": []}
    with publisher(stack["mqtt"], f"wall-pub-{RUN}") as client:
        publish_all(client, [(f"zhongdu/v1/bs/{station}/telemetry", json.dumps(report).encode())])


def _open(chromium: Any, url: str, query: str = "", **size: int) -> Any:
    watched = watched_page(chromium, **size)
    watched.page.goto(f"{url}/{query}")
    watched.page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    return watched


def _wait_effect(page: Any, criterion: str, operator: str) -> None:
    page.wait_for_function(
        f"""() => {{ const e = window.zhongdu.state.outageEffect;
                    return e && e.criterion === '{criterion}' && e.operator === '{operator}'; }}""",
        timeout=30_000,
    )


def _label_share(page: Any, district: str) -> float:
    return float(page.locator(f".district-label[data-district='{district}']").get_attribute("data-share"))


def test_an_indoor_outage_moves_header_map_and_rows_without_reload(stack: dict[str, Any], chromium: Any) -> None:
    """Outdoors nothing moves when the edge site goes down (the centre sites reach everyone);
    indoors the header's share, the district's fill and label, the banner and the row all say what
    it costs, equal to the API's outage effect."""
    http = stack["http"]
    watched = _open(chromium, stack["url"], "?layout=wall", width=1920, height=1080)
    page = watched.page
    page.select_option("#map-criterion", "indoor")
    page.wait_for_function("document.getElementById('map').dataset.criterion === 'indoor'")
    before = http.get("/v1/coverage", params={"criterion": "indoor"}).json()
    page.wait_for_function(f"Number(document.querySelector('#kpi-share').dataset.share) === {before['share']}")
    east_before = _label_share(page, "北屯區")
    assert page.locator("#outage-banner").is_hidden()
    screenshot(page, "wall-1920x1080")
    _status(stack, EDGE, "down")
    page.wait_for_selector(f"#outages li[data-station-id='{EDGE}'] .effect[data-people]", state="attached",
                           timeout=30_000)  # fmt: skip
    effect = http.get("/v1/ops/outages", params={"criterion": "indoor"}).json()
    row = effect["outages"][0]
    assert row["station_id"] == EDGE and row["people"] > 0 and row["cells"] > 0
    shown = page.locator(f"#outages li[data-station-id='{EDGE}'] .effect")
    assert int(shown.get_attribute("data-people")) == round(row["people"])
    assert int(shown.get_attribute("data-cells")) == row["cells"]
    assert f"{row['share_pp']:.3f} pp" in shown.inner_text()
    # the header: the view's share dropped, the outages tile counts the people affected
    page.wait_for_function(f"Number(document.querySelector('#kpi-share').dataset.share) < {before['share']}",
                           timeout=30_000)  # fmt: skip
    after = http.get("/v1/coverage", params={"criterion": "indoor"}).json()
    assert float(page.locator("#kpi-share").get_attribute("data-share")) == after["share"]
    page.wait_for_function("document.querySelector('#kpi-outages').dataset.people !== ''")
    assert int(page.locator("#kpi-outages").get_attribute("data-people")) == round(effect["people"])
    # the map: the east district's fill and label moved
    assert _label_share(page, "北屯區") < east_before
    assert _label_share(page, "北屯區") == next(d["share"] for d in after["districts"] if d["district"] == "北屯區")
    banner = page.locator("#outage-banner")
    banner.wait_for(state="visible")
    assert float(banner.get_attribute("data-people")) == pytest.approx(effect["people"], abs=1)
    assert int(banner.get_attribute("data-cells")) == effect["cells"]
    screenshot(page, "wall-outage-indoor-1920x1080")
    # outdoors the same outage costs nobody: the row says 0
    page.select_option("#map-criterion", "outdoor")
    _wait_effect(page, "outdoor", "any")
    page.wait_for_selector(f"#outages li[data-station-id='{EDGE}'] .effect[data-people='0']", state="attached")
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_timeline_replay_and_incident_history(stack: dict[str, Any], chromium: Any) -> None:
    """Needs the edge site down (the test above): the timeline draws the three views and the
    outage, the replay before it shows nothing down and after it the site, the incident history
    lists it as ongoing and its row flies to the site."""
    http = stack["http"]
    if http.get("/v1/ops/outages").json()["outages"] == []:
        _status(stack, EDGE, "down")
    watched = _open(chromium, stack["url"], "?layout=wall", width=1920, height=1080)
    page = watched.page
    page.wait_for_function("Number(document.getElementById('timeline-chart').dataset.incidents) >= 1",
                           timeout=30_000)  # fmt: skip
    series = page.locator("#timeline-chart").get_attribute("data-series").split(",")
    assert set(series) == {"outdoor_any", "indoor_any", "indoor_every_major"}
    assert page.locator("#timeline-chart canvas").count() >= 1
    described = page.get_attribute("#timeline-chart", "aria-label")
    assert described.startswith("近時趨勢") and "室內・任一業者" in described
    incident = page.locator(f"#incidents li[data-station-id='{EDGE}']")
    incident.wait_for()
    assert incident.get_attribute("data-ongoing") == "true" and "進行中" in incident.inner_text()
    started = next(i for i in http.get("/v1/ops/incidents").json()["items"] if i["station_id"] == EDGE)
    from datetime import datetime

    start_s = datetime.fromisoformat(started["started_at"]).timestamp()

    def replay(at: float) -> None:
        page.evaluate(f"""() => {{ const s = document.getElementById('replay'); s.value = {at};
                                 s.dispatchEvent(new Event('input', {{bubbles: true}})); }}""")

    replay(start_s - 60)
    note = page.locator("#replay-note")
    assert note.get_attribute("data-down") == "" and page.locator("#replay-live").is_visible()
    assert page.evaluate("document.body.classList.contains('replaying')")
    replay(start_s + 1)
    assert note.get_attribute("data-down") == EDGE
    page.wait_for_timeout(300)
    drawn = page.evaluate("window.zhongdu.map.querySourceFeatures('alerts').map(f => f.properties.id)")
    assert EDGE in drawn
    screenshot(page, "wall-replay-1920x1080")
    page.click("#replay-live")
    assert not page.evaluate("document.body.classList.contains('replaying')")
    incident.focus()
    page.keyboard.press("Enter")
    page.locator(f".popup[data-site='{EDGE}']").wait_for()
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_clusters_at_city_zoom_and_the_chooser_where_dots_overlap(stack: dict[str, Any], chromium: Any) -> None:
    """Two sites down at the same place cluster with a count at city zoom; zoomed in, a click there
    lists the three co-located sites instead of opening one."""
    _status(stack, EDGE, "up")  # the edge site (2.2 km away) would join the cluster at city zoom
    assert wait_for(lambda: stack["http"].get("/v1/ops/outages").json()["outages"] == [])
    _status(stack, CHT, "down")
    _status(stack, FET, "degraded")
    try:
        watched = _open(chromium, stack["url"], width=1366, height=768)
        page = watched.page
        page.wait_for_function(f"window.zhongdu.siteStatus('{CHT}') === 'down' && window.zhongdu.siteStatus('{FET}') === 'degraded'",
                               timeout=30_000)  # fmt: skip
        assert page.evaluate("window.zhongdu.map.getZoom()") < 11
        count = page.locator(".cluster-count[data-count='2']")
        count.wait_for(timeout=15_000)
        assert count.get_attribute("data-down") == "1" and count.inner_text() == "2"
        screenshot(page, "clusters-1366x768")
        centre = page.evaluate(f"""() => {{ const s = window.zhongdu.state; const i = s.siteIndex.get('{CHT}');
                                            return [s.sites.lon[i], s.sites.lat[i]]; }}""")
        page.evaluate(f"window.zhongdu.map.jumpTo({{center: {centre}, zoom: 14}})")
        page.wait_for_function("document.querySelectorAll('.cluster-count').length === 0", timeout=15_000)
        box = page.locator("#map").bounding_box()
        point = page.evaluate(f"window.zhongdu.map.project({centre})")
        page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
        chooser = page.locator(".site-chooser")
        chooser.wait_for()
        assert chooser.get_attribute("data-count") == "3"
        ids = chooser.locator("button[data-index] .mono").all_inner_texts()
        assert sorted(ids) == sorted([CHT, FET, TWM])
        screenshot(page, "site-chooser-1366x768")
        chooser.locator("button[data-index]", has_text=FET).click()
        page.locator(f".popup[data-site='{FET}']").wait_for()
        assert watched.errors == [] and watched.outside == []
        page.context.close()
    finally:
        _status(stack, CHT, "up")
        _status(stack, FET, "up")


def test_district_list_sorts_and_selects(stack: dict[str, Any], chromium: Any) -> None:
    http = stack["http"]
    watched = _open(chromium, stack["url"], width=1366, height=768)
    page = watched.page
    page.click("nav.tabs button[data-tab='ops']")
    table = page.locator("#district-list")
    table.locator("tbody tr").first.wait_for()
    districts = http.get("/v1/coverage").json()["districts"]
    assert table.locator("tbody tr").count() == len(districts)

    def column(attr: str) -> list[float]:
        return [float(x) for x in table.locator(f"tbody td[data-{attr}]").evaluate_all(
            f"els => els.map(e => e.dataset.{attr})")]  # fmt: skip

    shares = column("share")
    assert shares == sorted(shares)  # the default: the lowest share on top
    assert sorted(shares) == sorted(d["share"] for d in districts)
    table.locator("button[data-sort='uncovered']").click()
    assert table.get_attribute("data-sort") == "uncovered" and table.get_attribute("data-dir") == "-1"
    uncovered = column("uncovered")
    assert uncovered == sorted(uncovered, reverse=True)
    assert table.locator("th[aria-sort='descending'] button[data-sort='uncovered']").count() == 1
    table.locator("button[data-sort='uncovered']").click()
    assert column("uncovered") == sorted(uncovered)
    table.locator("button[data-sort='name']").click()
    first = table.locator("tbody tr").first
    name = first.get_attribute("data-district")
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.zhongdu.state.selected === '{name}'")
    assert table.locator(f"tbody tr[data-district='{name}']").get_attribute("aria-selected") == "true"
    screenshot(page, "district-list-1366x768")
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_rotating_focus_cycles_and_pauses(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"], "?layout=wall&focus=rotate&rotate_s=3", width=1920, height=1080)
    page = watched.page
    page.wait_for_function("document.body.dataset.focus !== undefined", timeout=15_000)
    first = page.evaluate("document.body.dataset.focus")
    page.wait_for_function(f"document.body.dataset.focus !== '{first}'", timeout=15_000)
    assert page.evaluate("window.zhongdu.state.selected") == page.evaluate("document.body.dataset.focus")
    page.click("#focus-pause")
    assert page.get_attribute("#focus-pause", "aria-pressed") == "true"
    held = page.evaluate("document.body.dataset.focus")
    page.wait_for_timeout(4000)
    assert page.evaluate("document.body.dataset.focus") == held
    page.select_option("#focus-choice", "city")
    page.wait_for_function("window.zhongdu.state.selected === null")
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_both_languages_whole_and_the_wall_fixes(stack: dict[str, Any], chromium: Any) -> None:
    """English leaves no Chinese on screen (the new panels included), Chinese back leaves none of
    the new panels' English; a year without targets says so; the criterion note speaks in words."""
    watched = _open(chromium, stack["url"], "?layout=wall", width=1920, height=1080)
    page = watched.page
    page.wait_for_selector("#district-list tbody tr")
    page.wait_for_selector("#incidents li")
    page.click("#layout")  # the year and criterion are the desk's (the wall has no form): checked there
    note = page.locator("#criterion-note").inner_text()
    assert "docs/" not in note and "−110 dBm" in note
    page.select_option("#year", str(page.evaluate("new Date().getFullYear()")))
    page.wait_for_selector("#no-targets")
    assert page.locator("#no-targets").inner_text() == "本年度無目標" and " / 100" not in page.locator("#score").inner_text()
    page.click("#layout")
    page.wait_for_function("document.body.classList.contains('wall')")
    assert page.locator("#sum-score").inner_text() == "本年度無目標"  # the wall's summary says it too
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_function("document.getElementById('score').textContent.includes('no targets for this year')")
    page.wait_for_timeout(500)
    left = page.evaluate(
        f"""() => {{ const out = []; const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
             for (let n = walk.nextNode(); n; n = walk.nextNode()) {{
               const el = n.parentElement; if (!el || !el.offsetParent && el.tagName !== 'OPTION') continue;
               if (el.closest('#lang')) continue;
               if (/{CJK}/.test(n.textContent)) out.push(n.textContent.trim()); }}
             return out; }}"""
    )
    assert left == [], left
    labels = page.eval_on_selector_all("#panel-ops [aria-label], .focus-bar [aria-label]",
                                       "els => els.map(e => e.getAttribute('aria-label'))")  # fmt: skip
    assert labels and not any(__import__("re").search(CJK, x) for x in labels), labels
    screenshot(page, "wall-english-1920x1080")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'zh-Hant'")
    page.wait_for_timeout(300)
    english = ["The last hours", "Districts", "Incident history", "Sort by", "Whole city", "Replay at", "Share",
               "Not covered", "Down", "ongoing", "lasted", "Petition hotspots", "Focus", "Operations"]  # fmt: skip
    text = page.evaluate("[...document.querySelectorAll('#panel-ops, .focus-bar, .legend, header')].map(e => e.innerText).join('\\n')")
    assert [w for w in english if w in text] == []
    assert "陳情熱點" in text and "新增" in text  # the hotspot layer's legend
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_the_shipped_cjk_font_loads_and_is_used(stack: dict[str, Any], chromium: Any) -> None:
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.wait_for_function("document.fonts.status === 'loaded'")
    faces = page.evaluate("[...document.fonts].map(f => [f.family.replace(/\"/g, ''), f.status])")
    assert ["Zhongdu CJK", "loaded"] in faces, faces
    assert page.evaluate("document.fonts.check('16px \"Zhongdu CJK\"', '臺中市智慧營運中心西屯區')")
    served = stack["http"].get("/static/NotoSansCJKtc-zhongdu.woff2")
    assert served.status_code == 200 and served.content == (REPO_ROOT / "api/ui/fonts/NotoSansCJKtc-zhongdu.woff2").read_bytes()
    assert "SIL OPEN FONT LICENSE" in stack["http"].get("/static/NotoSansCJKtc-zhongdu.OFL.txt").text
    assert watched.errors == [] and watched.outside == []
    page.context.close()


def test_no_csp_violation_with_the_policy_enforced(stack: dict[str, Any], chromium: Any) -> None:
    """The other tests bypass the page's CSP (Playwright's waits evaluate strings); here the policy
    is enforced, and the full wall (map, outage panel, font, clusters) loads without a refusal."""
    context = chromium.new_context(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    answer = page.goto(f"{stack['url']}/?layout=wall")
    assert answer is not None and "default-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    page.wait_for_selector("#district-list tbody tr", state="attached")
    page.wait_for_selector("#incidents li", state="attached")
    page.wait_for_selector("#timeline-chart[data-series]", state="attached")
    page.wait_for_timeout(1000)
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    assert errors == []
    context.close()
