"""The indicator entry form in a real browser (Debian's chromium): a planner keys a value, the
table updates without a reload, the history names who entered it; B7-1 is a checklist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._api_fixtures import api_settings, make_key, small_city
from ._ops_fixtures import api_serving, browser, screenshot, watched_page

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def stack(pg_migrated: str, mqtt_url: str) -> Iterator[dict[str, Any]]:
    with api_serving(api_settings(pg_migrated, mqtt_url), small_city) as (url, http):
        yield {"url": url, "http": http}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def _key(stack: dict[str, Any], role: str, name: str) -> str:
    class _Client:  # make_key speaks TestClient's interface; httpx.Client has the same post()
        def post(self, *args: Any, **kwargs: Any) -> Any:
            return stack["http"].post(*args, **kwargs)

    return make_key(_Client(), role, name)  # type: ignore[arg-type]


def _open(chromium: Any, url: str) -> Any:
    watched = watched_page(chromium)
    watched.page.set_default_timeout(60_000)  # two shared cores: a busy machine, not a slow page
    watched.page.goto(url + "/")
    watched.page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
    watched.page.select_option("#year", "2016")
    watched.page.wait_for_function("window.zhongdu.state.indicators && window.zhongdu.state.indicators.year === 2016")
    return watched


def _row(page: Any, indicator_id: str) -> dict[str, str]:
    return dict(page.eval_on_selector(f"#indicator-table tbody tr[data-id='{indicator_id}']", "r => ({...r.dataset})"))


def test_the_form_stores_an_actual_and_the_table_updates_without_a_reload(
    stack: dict[str, Any], chromium: Any
) -> None:
    key = _key(stack, "planner", "綜合規劃組 王小明")
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.evaluate("window.__notReloaded = true")
    assert _row(page, "B4-1")["actual"] == ""
    page.click("#indicator-table tbody tr[data-id='B4-1'] button.enter")
    page.wait_for_selector("#entry-form")
    page.fill("#entry-form input[name=numerator]", "800")
    page.fill("#entry-form input[name=denominator]", "1000")
    page.fill("#entry-form input[name=evidence]", "府授研管字第1050001號")
    page.fill("#entry-key", key)
    page.click("#entry-save")
    page.wait_for_function(
        "document.querySelector(\"#indicator-table tbody tr[data-id='B4-1']\").dataset.actual !== ''"
    )
    row = _row(page, "B4-1")
    assert float(row["actual"]) == pytest.approx(0.8) and row["status"] == "behind"  # target 85 %
    assert page.locator("#indicator-table tbody tr[data-id='B4-1'] .flag").count() == 1
    page.wait_for_selector("#entry-history tr[data-entry]")
    history = page.locator("#entry-history").inner_text()
    assert "綜合規劃組 王小明" in history and "府授研管字第1050001號" in history
    assert page.evaluate("window.__notReloaded") is True
    api = stack["http"].get("/v1/indicators", params={"year": 2016}).json()["items"]
    assert {i["id"]: i for i in api}["B4-1"]["actual"]["recorded_by"] == "綜合規劃組 王小明"
    score = stack["http"].get("/v1/indicators/score", params={"year": 2016}).json()
    page.wait_for_function(f"Number(document.querySelector('#score').dataset.score) === {score['score']}")
    assert page.locator("#score-criterion").get_attribute("data-criterion") == "outdoor"
    screenshot(page, "indicator_form_b4_1")

    # B7-1: the year's milestones as checkboxes; 3 of 4 ticked gives 75 %
    page.click("#indicator-table tbody tr[data-id='B7-1'] button.enter")
    page.wait_for_function("document.querySelector('#indicator-entry').dataset.id === 'B7-1'")
    boxes = page.locator("#entry-form input[type=checkbox]")
    assert boxes.count() == 4
    for i in (0, 1, 3):
        boxes.nth(i).check()
    page.click("#entry-save")
    page.wait_for_function(
        "document.querySelector(\"#indicator-table tbody tr[data-id='B7-1']\").dataset.attainment !== ''"
    )
    assert float(_row(page, "B7-1")["attainment"]) == pytest.approx(0.75)
    screenshot(page, "indicator_form_b7_1")

    # the yearly cycle from the form: the agency's self-assessment passes, approval needs an admin
    page.click("#entry-review button[data-review='self_assessed']")
    page.wait_for_function("document.querySelector('#review-status').textContent.includes('機關自評')")
    page.click("#entry-review button[data-review='approved']")
    page.wait_for_function("document.querySelector('#review-status').dataset.error")
    assert "admin" in page.locator("#review-status").inner_text()
    items = {i["id"]: i for i in stack["http"].get("/v1/indicators", params={"year": 2016}).json()["items"]}
    assert items["B7-1"]["review"]["status"] == "self_assessed"
    assert [e for e in watched.errors if e.startswith("page error")] == []
    page.context.close()


def test_a_csv_from_the_page_fills_the_table(stack: dict[str, Any], chromium: Any, tmp_path: Any) -> None:
    key = _key(stack, "planner", "人事室")
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.evaluate(f"sessionStorage.setItem('zd-planner-key', '{key}')")
    bad = tmp_path / "bad.csv"
    bad.write_text("indicator_id,year,value\nM1-2,2016,abc\n", encoding="utf-8")
    page.set_input_files("#import-csv", str(bad))
    page.wait_for_function("document.querySelector('#import-status').textContent.includes('第 2 行')")
    assert _row(page, "M1-2")["actual"] == ""
    good = tmp_path / "good.csv"
    good.write_text("\ufeffindicator_id,year,value,numerator,denominator\nM1-2,2016,,45,100\n", encoding="utf-8")
    page.set_input_files("#import-csv", str(good))
    page.wait_for_function(
        "document.querySelector(\"#indicator-table tbody tr[data-id='M1-2']\").dataset.actual !== ''"
    )
    assert float(_row(page, "M1-2")["actual"]) == pytest.approx(0.45)
    page.context.close()


def test_a_viewer_key_is_refused_and_nothing_changes(stack: dict[str, Any], chromium: Any) -> None:
    key = _key(stack, "viewer", "訪客")
    watched = _open(chromium, stack["url"])
    page = watched.page
    page.click("#indicator-table tbody tr[data-id='B2-1'] button.enter")
    page.wait_for_selector("#entry-form")
    page.fill("#entry-form input[name=value]", "4")
    page.fill("#entry-key", key)
    page.click("#entry-save")
    page.wait_for_function("document.querySelector('#entry-status').dataset.error")
    assert "planner" in page.locator("#entry-status").inner_text()
    assert _row(page, "B2-1")["actual"] == ""
    page.context.close()
