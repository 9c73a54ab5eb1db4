"""The planner's desk in a real browser (Debian's chromium via Playwright) against the API,
PostgreSQL, Mosquitto and the ingester of tests/test_ops_page.py's stack: a candidate file uploaded
(a bad one names its lines), its picks with coordinates, exported and uploaded again for the same
picks, scenarios compared on the map, points drawn, a rename, and the language switched with nothing
left in the other language. Screenshots go to build/screenshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h3
import pytest

from ._api_fixtures import ADMIN_KEY, CENTRE
from ._ops_fixtures import screenshot
from .test_ops_page import RUN, _open, chromium, stack

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]
__all__ = ["chromium", "stack"]  # the fixtures, shared with the page's other tests

ENGLISH_DESK = ("Saved scenarios", "Compare selected", "Export", "Rename", "Candidates from", "Share after")


def _sites_csv() -> bytes:
    """Public buildings at grid cells north and south of the small city's two stations (uncovered)."""
    rows = ["id,name,lat,lng,cost,height,kind"]
    for k, cell in enumerate(h3.grid_ring(h3.latlng_to_cell(*CENTRE, 9), 8)):
        lat, lng = h3.cell_to_latlng(cell)
        if abs(lat - CENTRE[0]) > 0.015 and len(rows) <= 10:
            rows.append(f"PB-{k:03d},Hall {k},{lat!r},{lng!r},{1 + k % 2},25,public_building")
    return ("\n".join(rows) + "\n").encode()


def _upload(page: Any, name: str, content: bytes) -> None:
    page.set_input_files("#candidate-file", files=[{"name": name, "mimeType": "text/csv", "buffer": content}])


def _run(page: Any, name: str) -> list[dict[str, Any]]:
    before = page.locator("[data-scenario]").get_attribute("data-scenario") if page.locator("[data-scenario]").count() else None
    page.fill("#scenario-name", name)
    page.click("#run")
    page.wait_for_function(
        "(before) => { const el = document.querySelector('#scenario-result [data-scenario]');"
        " return el && el.dataset.scenario !== before; }", arg=before, timeout=90_000)
    rows: list[dict[str, Any]] = page.eval_on_selector_all(
        "table.picks tbody tr",
        "rows => rows.map(r => ({id: r.dataset.stationId, lon: +r.dataset.lon, lat: +r.dataset.lat,"
        " cells: [...r.querySelectorAll('td')].map(td => td.innerText)}))",
    )
    return rows


def _other_language_left(page: Any, pattern: str) -> list[str]:
    """Visible text of the scenario panel matching `pattern`, outside what users typed or uploaded."""
    found: list[str] = page.evaluate(
        """(pattern) => { const re = new RegExp(pattern); const out = [];
             const panel = document.getElementById('panel-scenarios');
             const walk = document.createTreeWalker(panel, NodeFilter.SHOW_TEXT);
             for (let n = walk.nextNode(); n; n = walk.nextNode()) {
               const el = n.parentElement; if (!el || (!el.offsetParent && el.tagName !== 'OPTION')) continue;
               if (el.closest('.user-text')) continue;
               if (re.test(n.textContent)) out.push(n.textContent.trim()); }
             for (const el of panel.querySelectorAll('[aria-label], [placeholder]')) {
               for (const v of [el.getAttribute('aria-label'), el.getAttribute('placeholder')])
                 if (v && re.test(v)) out.push(v); }
             return out; }""",
        pattern,
    )
    return found


def test_a_candidate_file_plans_exports_reloads_compares_and_switches_language(
    stack: dict[str, Any], chromium: Any, tmp_path: Path
) -> None:
    http = stack["http"]
    key = http.post("/v1/admin/keys", json={"name": f"desk-{RUN}", "role": "planner"},
                    headers={"X-API-Key": ADMIN_KEY}).json()["key"]
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.click("nav.tabs button[data-tab='scenarios']")
    page.fill("#planner-key", key)
    page.select_option("#candidate-source", "upload")
    stored_before = http.get("/v1/scenarios").json()["total"]

    # a bad file: every bad line named, nothing stored
    _upload(page, "bad.csv", b"id,name,lat,lng\nPB-1,ok,24.17,120.64\nPB 2,x,24.17,120.64\nPB-3,y,91,120.64\n")
    page.wait_for_selector("#upload-status .file-errors li")
    assert page.eval_on_selector_all(".file-errors li", "li => li.map(l => +l.dataset.line)") == [3, 4]
    refused = page.locator(".file-errors").inner_text()
    assert "第 3 筆：編號須為" in refused and "第 4 筆：座標不在臺中市" in refused
    assert http.get("/v1/scenarios").json()["total"] == stored_before
    # the browser logs the refused upload's 422 itself; that one is expected, any other error is not
    assert len(watched.errors) == 1 and "422" in watched.errors[0], watched.errors
    watched.errors.clear()

    # a good one: its sites on the map, then the picks with their coordinates
    content = _sites_csv()
    _upload(page, "public-buildings.csv", content)
    page.wait_for_selector("#upload-status [data-sites]")
    sites = {line.split(",")[0]: line.split(",") for line in content.decode().splitlines()[1:]}
    assert page.locator("#upload-status [data-sites]").get_attribute("data-sites") == str(len(sites))
    assert page.evaluate("window.zhongdu.state.desk.shown") == len(sites)
    page.select_option("#scenario-criterion", "indoor")
    page.check("input[name=goal][value=budget]")
    page.fill("#goal-value", "3")
    first = _run(page, "desk upload A")
    assert 1 <= len(first) <= 3
    for row in first:
        assert row["id"] in sites
        assert (row["lat"], row["lon"]) == (float(sites[row["id"]][2]), float(sites[row["id"]][3]))
        assert row["cells"][2] in ("西屯區", "北屯區") and row["cells"][3] == f"{row['lon']:.5f}"
        assert row["cells"][4] == f"{row['lat']:.5f}" and row["cells"][5] == sites[row["id"]][4]
    assert page.locator("#scenario-result [data-criterion]").get_attribute("data-criterion") == "indoor"
    assert page.locator(".pick-marker").count() == len(first)
    screenshot(page, "desk-upload-picks")

    # exported as the planner gets it, and uploaded again: the same picks
    with page.expect_download() as download:
        page.click("#scenario-result a[data-export=csv]")
    csv_text = Path(download.value.path()).read_bytes()
    assert csv_text.startswith("\ufeff".encode())
    assert [line.split(",")[1] for line in csv_text.decode("utf-8-sig").splitlines()[1:]] == [r["id"] for r in first]
    with page.expect_download() as download:
        page.click("#scenario-result a[data-export=geojson]")
    geojson = tmp_path / "picks.geojson"
    geojson.write_bytes(Path(download.value.path()).read_bytes())
    assert [f["id"] for f in json.loads(geojson.read_text())["features"]] == [r["id"] for r in first]
    pdf_href = page.locator("#scenario-result a[data-export=pdf]").get_attribute("href")
    assert http.get(pdf_href).content.startswith(b"%PDF") and "lang=zh" in pdf_href
    page.set_input_files("#candidate-file", str(geojson))
    page.wait_for_function(f"document.querySelector('#upload-status [data-sites]')?.dataset.sites === '{len(first)}'")
    again = _run(page, "desk reloaded B")
    assert [(r["id"], r["lat"], r["lon"]) for r in again] == [(r["id"], r["lat"], r["lon"]) for r in first]
    assert [r["cells"][6] for r in again] == [r["cells"][6] for r in first]  # people added

    # the city-wide lattice, from the page
    page.select_option("#candidate-source", "lattice")
    page.select_option("#lattice-res", "8")
    page.fill("#lattice-limit", "20")
    page.select_option("#scenario-criterion", "outdoor")
    lattice = _run(page, "desk lattice C")
    assert lattice and all(r["id"].startswith("C8-") for r in lattice)

    # the saved list: all named; two compared side by side, on the map in two shapes
    page.wait_for_function("document.querySelectorAll('#scenario-list tr[data-status=done]').length >= 3")
    done = page.eval_on_selector_all("#scenario-list tr[data-status=done]", "rows => rows.map(r => r.dataset.id)")
    ids = [done[0], done[2]]  # the lattice's (newest first) and the first upload's
    for scenario_id in ids:
        page.check(f"input[data-compare='{scenario_id}']")
    page.click("#compare-run")
    page.wait_for_selector("table.compare")
    assert page.eval_on_selector_all("table.compare thead th[data-scenario]", "th => th.map(h => h.dataset.scenario)") == ids
    compared = http.get("/v1/scenarios/compare", params={"ids": ",".join(ids)}).json()["items"]
    picks_row = page.eval_on_selector_all("table.compare tr[data-row=desk_rowPicks] td", "td => td.map(c => c.innerText)")
    assert picks_row == [str(s["picks_count"]) for s in compared]
    criteria = page.eval_on_selector_all("table.compare tr[data-row=desk_rowCriterion] td", "td => td.map(c => c.innerText)")
    assert criteria[0].startswith("戶外") and criteria[1].startswith("室內")
    assert page.locator(".compare-pin .shape-circle").count() == compared[0]["picks_count"]
    assert page.locator(".compare-pin .shape-square").count() == compared[1]["picks_count"]
    page.locator("table.compare").scroll_into_view_if_needed()
    screenshot(page, "desk-compare")

    # the two uploads picked the same sites: their pins stand side by side, not on top of each other
    for scenario_id in ids:
        page.uncheck(f"input[data-compare='{scenario_id}']")
    for scenario_id in (done[1], done[2]):
        page.check(f"input[data-compare='{scenario_id}']")
    page.click("#compare-run")
    page.wait_for_function(f"document.querySelectorAll('.compare-pin').length === {2 * len(first)}")
    pins = page.eval_on_selector_all(
        ".compare-pin .compare-marker",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })",
    )
    same = [(a, b) for i, a in enumerate(pins) for b in pins[i + 1:]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]  # fmt: skip
    assert same == [], same
    screenshot(page, "desk-compare-same-sites")

    # renamed from the list
    page.click(f"#scenario-list tr[data-id='{ids[0]}'] button[data-act=rename]")
    page.fill("#scenario-list input.rename", f"renamed {RUN}")
    page.click(f"#scenario-list tr[data-id='{ids[0]}'] button[data-act=save]")
    page.wait_for_function(f"document.querySelector(\"#scenario-list tr[data-id='{ids[0]}']\").innerText.includes('renamed {RUN}')")
    assert http.get(f"/v1/scenarios/{ids[0]}").json()["name"] == f"renamed {RUN}"

    # points drawn on the map: a click adds one, a click on it removes it
    page.select_option("#candidate-source", "drawn")
    page.click("#draw-toggle")
    assert page.get_attribute("#draw-toggle", "aria-pressed") == "true"
    box = page.locator("#map canvas").bounding_box()
    for dx in (-60, 60):
        page.mouse.click(box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2)
        page.wait_for_timeout(200)
    assert page.get_attribute("#draw-count", "data-count") == "2"
    assert page.locator(".maplibregl-popup").count() == 0  # drawing opens no district popup
    page.mouse.click(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2)
    page.wait_for_function("document.getElementById('draw-count').dataset.count === '1'")
    page.click("#draw-toggle")

    # English: nothing Chinese left in the desk but what the planner typed or uploaded; and back
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.select_option("#candidate-source", "upload")
    assert _other_language_left(page, "[\\u4e00-\\u9fff]") == []
    assert "Compare selected" in page.locator("#panel-scenarios").inner_text()
    assert "lang=en" in (page.locator("#scenario-result a[data-export=pdf]").get_attribute("href") or "")
    screenshot(page, "desk-english")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'zh-Hant'")
    left = _other_language_left(page, "|".join(ENGLISH_DESK))
    assert left == [], left
    assert watched.errors == [] and watched.outside == []
    page.context.close()
