"""The operations page's routes against real PostgreSQL (and a real uvicorn for the event stream):
boundaries, site columns, events, park trends, ingester health, the 4G series, the page itself."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from zhongdu.api import start_api, state_of
from zhongdu.api._http import CSP
from zhongdu.api._ingest_health import IngestHealth, summarise
from zhongdu.ingest import Reason
from zhongdu.ingest._prometheus import IngestMetrics

from ._api_fixtures import api_settings, running_app, small_city, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


def _seed(url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind) VALUES ('air-1', 'air'), ('air-2', 'air'), ('met-1', 'weather')")
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s - make_interval(mins => m), d, 'pm2_5', m, 'ug/m3'
               FROM generate_series(0, 29) m, unnest(ARRAY['air-1', 'air-2']) d""",
            (now,),
        )
        conn.execute(  # one device's reading far in the past: outside the window
            "INSERT INTO readings (time, device_id, metric, value, unit) VALUES (%s, 'met-1', 'temperature', 1, 'Cel')",
            (now - timedelta(days=3),),
        )


@pytest.fixture(scope="module")
def client(pg_migrated: str, mqtt_url: str) -> Any:
    _seed(pg_migrated)
    with running_app(api_settings(pg_migrated, mqtt_url)) as client:
        yield client


def test_districts_geojson_is_simplified_and_complete(client: Any) -> None:
    answer = client.get("/v1/map/districts", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
    assert answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    names = [f["properties"]["district"] for f in body["features"]]
    assert len(names) == 29 and names == sorted(names) and "西屯區" in names
    assert sum(f["properties"]["population"] for f in body["features"]) > 2_800_000
    assert len(answer.content) < 250_000  # simplified: the source file is 1.3 MB
    assert int(answer.headers["content-length"]) < 80_000  # on the wire
    ring = body["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and all(len(str(x).split(".")[-1]) <= 6 for x in ring[0])
    plain = client.get("/v1/map/districts", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == body


def test_sites_are_columns_with_live_status(client: Any, pg_migrated: str) -> None:
    body = client.get("/v1/map/sites").json()
    assert body["count"] == 3 and body["ids"] == ["bs-east", "bs-far", "bs-west"]
    assert len(body["lon"]) == len(body["lat"]) == len(body["status"]) == 3 and body["sectors"] == [1, 1, 1]
    assert body["statuses"][body["status"][0]] == "unknown"
    with psycopg.connect(pg_migrated) as conn:
        conn.execute(
            "INSERT INTO entity_status (kind, entity_id, status, source, observed_at) VALUES"
            " ('bs', 'bs-east', 'degraded', 'telemetry', now()), ('bs', 'bs-far', 'up', 'telemetry', now() - interval '2 hours')"
        )
    live = state_of(client.app).live

    def statuses() -> list[str]:
        b = client.get("/v1/map/sites").json()
        return [b["statuses"][c] for c in b["status"]]

    assert wait_for(lambda: statuses() == ["degraded", "silent", "unknown"]), statuses()
    assert live.site_status is not None
    with psycopg.connect(pg_migrated) as conn:
        conn.execute("DELETE FROM entity_status WHERE kind = 'bs'")
    assert wait_for(lambda: statuses() == ["unknown", "unknown", "unknown"])


def test_park_trends_average_each_kind(client: Any) -> None:
    body = client.get("/v1/park/trends", params={"minutes": 60}).json()
    items = {(i["kind"], i["metric"]): i for i in body["items"]}
    assert set(items) == {("air", "pm2_5")}  # met-1's only reading is 3 days old
    air = items[("air", "pm2_5")]
    assert air["devices"] == 2 and air["unit"] == "ug/m3" and body["bucket_s"] == 60
    assert 25 <= len(air["points"]) <= 31 and air["latest"] == air["points"][-1][1]
    assert air["latest"] == pytest.approx(0.0)  # the newest minute holds m = 0 for both devices
    assert client.get("/v1/park/trends", params={"minutes": 1}).status_code == 422


def test_coverage_series_has_model_live_and_targets(client: Any) -> None:
    body = client.get("/v1/indicators/coverage-series").json()
    assert body["indicator"]["targets"] == {"2015": 0.7, "2016": 0.8, "2017": 0.9, "2018": 0.95}
    assert len(body["modelled"]) > 50 and body["modelled"][-1]["stations"] == 15788
    assert body["live"] and body["live"][-1]["share"] == pytest.approx(client.get("/v1/coverage").json()["share"])


def test_coverage_series_carries_every_criterion_of_the_model(client: Any) -> None:
    from zhongdu.coverage import SERIES_CRITERIA, modelled_indicator_series

    body = client.get("/v1/indicators/coverage-series").json()
    by_criterion = body["modelled_by_criterion"]
    assert list(by_criterion) == list(SERIES_CRITERIA)
    assert set(SERIES_CRITERIA) >= {"outdoor", "indoor", "capacity", "indoor_every_major"}
    for criterion in SERIES_CRITERIA:
        expected = [(p["date"], p["share"]) for p in modelled_indicator_series(criterion)]
        assert [(p["date"], p["share"]) for p in by_criterion[criterion]] == expected, criterion
    # `modelled` stays the outdoor series (compatibility), and the criteria really differ
    assert [(p["date"], p["share"]) for p in body["modelled"]] == [
        (p["date"], p["share"]) for p in by_criterion["outdoor"]
    ]
    at = {c: dict((p["date"], p["share"]) for p in by_criterion[c]) for c in SERIES_CRITERIA}
    assert at["outdoor"]["2017-12-31"] > 0.999
    assert at["indoor_every_major"]["2017-12-31"] < body["indicator"]["targets"]["2017"] == 0.9
    assert at["indoor"]["2014-06-30"] < at["outdoor"]["2014-06-30"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CoverageSeriesOut"]
    assert "modelled_by_criterion" in schema["required"]
    assert "indoor_every_major" in schema["properties"]["modelled_by_criterion"]["description"]


def test_ingest_health_from_metrics() -> None:
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    metrics.messages.labels("bs").inc(90)
    metrics.messages.labels("park").inc(10)
    metrics.committed.inc(97)
    metrics.rejected.labels(Reason.BAD_JSON.value).inc(3)
    for lag in (0.02, 0.03, 2.0):
        metrics.lag.observe(lag)
    metrics.queue_depth.set(5)
    metrics.connected.set(1)
    summary = summarise(generate_latest(registry).decode())
    assert summary is not None
    assert summary["received"] == 100 and summary["received_by_kind"] == {"bs": 90, "park": 10}
    assert summary["committed"] == 97 and summary["rejected"] == {Reason.BAD_JSON.value: 3}
    assert summary["lag_mean_s"] == pytest.approx(2.05 / 3) and summary["lag_p95_s"] == 2.5
    assert summary["queue_depth"] == 5 and summary["broker_connected"] == 1
    assert summarise("# nothing\nother_metric 1\n") is None


def test_ingest_health_route_says_when_unavailable(client: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
    health = IngestHealth(dead, timeout_s=1.0).read()
    assert health["available"] is False and dead in health["detail"]
    body = client.get("/v1/ops/ingest").json()
    # this test process's default registry may or may not hold an ingester's metrics
    assert body["available"] is (summarise(generate_latest().decode()) is not None), body


def test_page_and_assets_are_served_with_a_strict_csp(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"] == CSP and "connect-src 'self'" in CSP
    assert '<script type="module" src="/static/app.js">' in page.text
    assert "https://" not in page.text and "http://" not in page.text
    for asset in ("/static/app.js", "/static/app.css", "/static/maplibre-gl-worker.mjs", "/static/LICENSES.txt"):
        assert client.get(asset).status_code == 200, asset
    assert "maplibre-gl" in client.get("/static/LICENSES.txt").text
    schema = client.get("/openapi.json").json()
    for path in ("/v1/map/districts", "/v1/map/sites", "/v1/events", "/v1/park/trends", "/v1/ops/ingest",
                 "/v1/indicators/coverage-series"):
        assert path in schema["paths"], path
    assert "/" not in schema["paths"]


def _events(url: str, seconds: float) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    with httpx.stream("GET", url + "/v1/events", params={"max_seconds": seconds}, timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
                name = None
    return events


def test_event_stream_reports_status_and_coverage_changes(pg_migrated: str, mqtt_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = start_api(api_settings(pg_migrated, mqtt_url), port=port, layout=small_city)
    try:
        with httpx.Client(base_url=api.url) as http:
            assert wait_for(lambda: http.get("/v1/coverage").status_code == 200, 60)
            before = http.get("/v1/coverage").json()
        import threading

        def take_down() -> None:
            time.sleep(1.5)
            with psycopg.connect(pg_migrated) as conn:
                conn.execute("INSERT INTO entity_status (kind, entity_id, status, source, observed_at)"
                             " VALUES ('bs', 'bs-west', 'down', 'telemetry', now())")

        threading.Thread(target=take_down).start()
        events = _events(api.url, 5.0)
    finally:
        api.stop()
        with psycopg.connect(pg_migrated) as conn:
            conn.execute("DELETE FROM entity_status WHERE kind = 'bs'")
    names = [n for n, _ in events]
    assert names[:2] == ["coverage", "stations"], names
    assert events[0][1]["share"] == before["share"] and events[1][1]["initial"] is True
    changes = [e for n, e in events[2:] if n == "stations"]
    assert changes and [(c["station_id"], c["status"]) for c in changes[0]["changes"]] == [("bs-west", "down")]
    assert changes[0]["counts"]["down"] == 1
    # since: the report's time (the row's observed_at), not the moment the event was sent
    since = datetime.fromisoformat(changes[0]["changes"][0]["since"])
    assert since <= datetime.fromisoformat(changes[0]["at"])
    assert (datetime.fromisoformat(changes[0]["at"]) - since).total_seconds() < 10
    later = [e for n, e in events[2:] if n == "coverage"]
    assert later and later[-1]["share"] < before["share"] and later[-1]["trigger"] == "status-change"


def test_gzip_sites_body_decodes(client: Any) -> None:
    small = client.get("/v1/map/sites", headers={"Accept-Encoding": "gzip"})
    assert small.json()["count"] == 3
    assert "content-encoding" not in small.headers  # 3 sites: too small to be worth compressing
    raw = client.get("/v1/map/sites?format=geojson", headers={"Accept-Encoding": "gzip"})
    assert raw.headers.get("content-encoding") == "gzip"
    assert len(raw.json()["features"]) == 3  # httpx decoded it
    assert int(raw.headers["content-length"]) < len(raw.content)


def test_stopping_the_api_ends_open_event_streams(pg_migrated: str, mqtt_url: str) -> None:
    """A wall screen left open must not hold a stop: the stream ends cleanly, the stop is quick."""
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = start_api(api_settings(pg_migrated, mqtt_url), port=port, layout=small_city)
    ended: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", api.url + "/v1/events", timeout=60) as answer:
                for _ in answer.iter_lines():
                    pass
            ended.append("clean")
        except httpx.HTTPError as exc:
            ended.append(type(exc).__name__)

    try:
        assert wait_for(lambda: httpx.get(api.url + "/v1/coverage").status_code == 200, 60)
        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(1.0)
    finally:
        started = time.monotonic()
        api.stop()
        took = time.monotonic() - started
    listener.join(10)
    assert ended == ["clean"] and took < 3.0, (ended, took)


def test_sites_say_since_when_each_holds_its_status(client: Any) -> None:
    body = client.get("/v1/map/sites").json()
    assert len(body["since"]) == body["count"] == len(body["status"])
    unknown = body["statuses"].index("unknown")
    for code, since in zip(body["status"], body["since"], strict=True):
        assert (since is None) == (code == unknown)
