"""The alerts on the operations page, in Debian's chromium against the API on loopback and real
PostgreSQL: a new incident appears (banner, count, list, device colour) without a reload, and the
park's devices are on the map with their readings a click away. Screenshots go to build/screenshots."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from zhongdu import storage
from zhongdu.alerts._evaluator import Evaluator, EvaluatorMetrics
from zhongdu.alerts._rules import Rule, save_rule
from zhongdu.api import start_api
from zhongdu.settings import Settings

from ._api_fixtures import ADMIN_KEY, api_settings, small_city
from ._ops_fixtures import browser, screenshot, watched_page

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# three Shuinan park devices (水湳經貿園區), as the park simulator places them
DEVICES = [("shuinan-air-001", "air", 120.6425, 24.1795), ("shuinan-noise-001", "noise", 120.6452, 24.1812),
           ("shuinan-security-001", "security", 120.6401, 24.1826)]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(pg_migrated: str) -> Iterator[tuple[str, str]]:
    now = datetime.now(UTC)
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("UPDATE alert_rules SET enabled = false")
        for device_id, kind, lon, lat in DEVICES:
            conn.execute("INSERT INTO devices (device_id, kind, name, lon, lat) VALUES (%s, %s, %s, %s, %s)",
                         (device_id, kind, device_id.replace("-", " "), lon, lat))  # fmt: skip
        conn.execute("INSERT INTO readings (time, device_id, metric, value, unit) VALUES "
                     "(%s, 'shuinan-air-001', 'pm2_5', 12.5, 'ug/m3'), (%s, 'shuinan-noise-001', 'noise_laeq', 58, 'dB'),"
                     "(%s, 'shuinan-security-001', 'intrusion', 0, NULL)", (now, now, now))  # fmt: skip
    with storage.connect(pg_migrated) as conn:
        save_rule(conn, Rule("t-intrusion", "Intrusion alarm", "event", metric="intrusion", device_kind="security",
                             threshold=1.0, severity="critical"))  # fmt: skip
        conn.commit()
    api = start_api(api_settings(pg_migrated, None), port=_free_port(), layout=small_city)
    try:
        yield api.url, pg_migrated
    finally:
        api.stop()


def _operator_key(url: str) -> str:
    answer = httpx.post(f"{url}/v1/admin/keys", json={"name": "wall", "role": "operator"},
                        headers={"X-API-Key": ADMIN_KEY})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def test_a_new_alert_shows_on_the_wall_without_a_reload(site: tuple[str, str]) -> None:
    url, db = site
    evaluator = Evaluator(Settings(database_url=db), metrics=EvaluatorMetrics(CollectorRegistry()))
    evaluator.run_once()
    with browser() as b:
        watched = watched_page(b, width=1920, height=1080)
        page = watched.page
        page.goto(url + "/?layout=wall")
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)
        page.wait_for_function("document.querySelector('#kpi-alerts').textContent === '0'")
        page.wait_for_function("window.zhongdu.map.querySourceFeatures('park-devices').length === 3")
        states = page.evaluate(
            "window.zhongdu.map.querySourceFeatures('park-devices').map(f => f.properties.state)"
        )
        assert set(states) == {"online"}
        page.evaluate("window.zhongdu.pageId = 'same page'")  # gone if the page reloads

        with psycopg.connect(db) as conn:
            conn.execute("INSERT INTO readings (time, device_id, metric, value) VALUES (%s, 'shuinan-security-001', "
                         "'intrusion', 1)", (datetime.now(UTC),))  # fmt: skip
        evaluator.run_once()
        banner = page.locator("#alert-banner")
        banner.wait_for(state="visible", timeout=15_000)
        assert "shuinan-security-001" in banner.inner_text()
        page.wait_for_function("document.querySelector('#kpi-alerts').textContent === '1'")
        assert page.evaluate("window.zhongdu.pageId") == "same page"
        row = page.locator("#alerts-list li.alert-row")
        assert row.count() == 1 and "shuinan-security-001" in row.inner_text()
        page.wait_for_function(
            "window.zhongdu.map.querySourceFeatures('park-devices')"
            ".some(f => f.properties.id === 'shuinan-security-001' && f.properties.state === 'alert')"
        )
        page.evaluate("window.zhongdu.map.jumpTo({center: [120.6426, 24.181], zoom: 15.5})")
        page.wait_for_timeout(800)
        shot = screenshot(page, "alerts-wall")
        assert shot.stat().st_size > 50_000

        # a click on a device shows its latest readings
        x, y = page.evaluate(
            "(() => { const p = window.zhongdu.map.project([120.6425, 24.1795]); return [p.x, p.y]; })()"
        )
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        popup = page.locator(".popup[data-device='shuinan-air-001']")
        popup.wait_for(timeout=10_000)
        assert "pm2_5" in popup.inner_text() and "12.5" in popup.inner_text()
        screenshot(page, "alerts-device-popup")

        # acknowledged at the desk by the operator on duty (the wall has no form): the count drops,
        # the device turns orange
        assert page.locator("#alerts-list button.ack").is_hidden() and page.locator("#ack-key").is_hidden()
        page.click("#layout")
        page.click("nav.tabs button[data-tab='live']")
        operator = _operator_key(url)
        page.fill("#ack-by", "值班員 張")
        page.locator("#alerts-list button.ack").click()
        page.wait_for_function("document.querySelector('#ack-note').textContent !== ''")
        assert (
            "key" in page.locator("#ack-note").inner_text()
            or "金鑰" in page.locator("#ack-note").inner_text()
        )
        page.fill("#ack-key", operator)
        page.locator("#alerts-list button.ack").click()
        page.wait_for_function("document.querySelector('#kpi-alerts').textContent === '0'")
        page.wait_for_function(
            "window.zhongdu.map.querySourceFeatures('park-devices')"
            ".some(f => f.properties.id === 'shuinan-security-001' && f.properties.state === 'acked')"
        )
        assert "值班員 張" in page.locator("#alerts-list").inner_text()
        banner.wait_for(state="hidden")  # handled: the banner gives way
        with storage.connect(db) as conn:
            from zhongdu.alerts import list_incidents

            [incident] = list_incidents(conn, state="acknowledged")
        assert incident["acked_by"] == "值班員 張"
        page.click("#layout")
        page.wait_for_function("document.body.classList.contains('wall')")
        screenshot(page, "alerts-acknowledged")
        assert watched.outside == [] and watched.errors == [], (watched.outside, watched.errors)
    evaluator.close()
