"""HTTP as clients nobody here wrote expect it (GDAL/QGIS, browsers, proxies, Prometheus): HEAD on
every GET route, strong validators and 304s, gzip without buffering the event stream, media types
that match the OpenAPI schema, GeoJSON sites, docs without a CDN, security headers, metrics kept
off the public port. Against a started app on real PostgreSQL and Mosquitto."""

from __future__ import annotations

import re
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from zhongdu.api import create_app
from zhongdu.api._http import CSP
from zhongdu.services import free_port

from ._api_fixtures import api_settings, running_app, served, small_city

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


@pytest.fixture(scope="module")
def client(pg_migrated: str, mqtt_url: str) -> Any:
    with running_app(api_settings(pg_migrated, mqtt_url)) as client:
        yield client


def _plain_get_paths(schema: dict[str, Any]) -> list[str]:
    """GET routes a client can call with no parameter (no path parameter, no required query) and
    that answer a complete body (event streams are tested apart)."""
    paths = []
    for path, item in schema["paths"].items():
        get = item.get("get")
        if get is None or "{" in path:
            continue
        if "text/event-stream" in get.get("responses", {}).get("200", {}).get("content", {}):
            continue
        if any(p.get("required") for p in get.get("parameters", [])):
            continue
        paths.append(path)
    return paths


def test_head_answers_every_get_route_with_the_get_headers_and_no_body(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    paths = [*_plain_get_paths(schema), "/", "/docs", "/openapi.json"]
    assert len(paths) > 10
    for path in paths:
        get = client.get(path, headers={"Accept-Encoding": "identity"})
        head = client.head(path, headers={"Accept-Encoding": "identity"})
        assert head.status_code == get.status_code != 405, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path
        if client.get(path, headers={"Accept-Encoding": "identity"}).headers.get("etag") == get.headers.get("etag"):
            # a body that does not change between requests (some carry "now")
            for name in ("content-length", "etag"):
                assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_head_on_the_event_stream_returns_at_once(client: Any) -> None:
    head = client.head("/v1/events?max_seconds=30")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    assert head.content == b""


def test_strong_etag_and_last_modified_give_304(client: Any) -> None:
    for path in ("/v1/coverage", "/v1/map/districts", "/v1/coverage/cells?district=西屯區", "/v1/indicators"):
        first = client.get(path)
        assert first.status_code == 200, path
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}(-gzip)?"', etag), (path, etag)
        assert first.headers["last-modified"].endswith("GMT")
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == etag
        stale = client.get(path, headers={"If-None-Match": '"0123456789abcdef0123456789abcdef"'})
        assert stale.status_code == 200 and stale.content == first.content
        since = client.get(path, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304, path


def test_gzip_for_large_bodies_with_its_own_etag(client: Any) -> None:
    plain = client.get("/v1/map/districts", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    packed = client.get("/v1/map/districts", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["etag"] != plain.headers["etag"]  # a strong validator per coding
    assert packed.content == plain.content  # httpx decodes it
    assert int(packed.headers["content-length"]) < len(plain.content) / 3
    refused = client.get("/v1/map/districts", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_the_event_stream_is_not_buffered_or_compressed(client: Any) -> None:
    with client.stream("GET", "/v1/events?max_seconds=3", headers={"Accept-Encoding": "gzip"}) as answer:
        assert "content-encoding" not in answer.headers
        first = next(answer.iter_raw())
    assert first.startswith(b"retry:")


def test_served_media_types_match_the_openapi_schema(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    checked = 0
    for path in _plain_get_paths(schema):
        answer = client.get(path)
        if answer.status_code != 200:
            continue
        declared = schema["paths"][path]["get"]["responses"]["200"].get("content", {})
        served = answer.headers["content-type"].split(";")[0]
        assert served in declared, (path, served, list(declared))
        checked += 1
    assert checked > 8
    cells = schema["paths"]["/v1/coverage/cells"]["get"]["responses"]
    assert sorted(cells["200"]["content"]) == ["application/geo+json", "application/json"]  # format=h3
    served = client.get("/v1/coverage/cells?district=西屯區&format=h3").headers["content-type"]
    assert served.split(";")[0] == "application/json"
    assert list(cells["422"]["content"]) == ["application/json"]


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def test_sites_as_a_geojson_layer_with_rounded_coordinates(client: Any) -> None:
    answer = client.get("/v1/map/sites?format=geojson")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/geo+json"
    layer = answer.json()
    assert layer["type"] == "FeatureCollection"
    columns = client.get("/v1/map/sites").json()
    assert len(layer["features"]) == columns["count"] == 3  # the small city's three sites
    for feature, station, status in zip(layer["features"], columns["ids"], columns["status"], strict=True):
        assert feature["geometry"]["type"] == "Point"
        assert feature["properties"]["station_id"] == station
        assert feature["properties"]["status"] == columns["statuses"][status]
        assert all(_decimals(c) <= 6 for c in feature["geometry"]["coordinates"])
    cells = client.get("/v1/coverage/cells?district=西屯區").json()
    ring = cells["features"][0]["geometry"]["coordinates"][0]
    assert all(_decimals(c) <= 6 for point in ring for c in point)
    assert client.get("/v1/map/sites?format=kml").status_code == 422


def test_docs_pages_load_nothing_from_elsewhere(client: Any) -> None:
    assert client.get("/redoc").status_code == 404  # FastAPI's would load from a CDN
    for path in ("/docs",):
        page = client.get(path)
        assert page.status_code == 200
        assert not re.search(r"(src|href)=\"https?://", page.text), page.text
        assert page.headers["content-security-policy"] == CSP
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
            assert client.get(asset).status_code == 200, asset
    init = client.get("/docs/init.js").text
    assert "/openapi.json" in init


def test_security_headers_on_every_html_and_json_response(client: Any) -> None:
    for path in ("/", "/static/index.html", "/docs", "/v1/coverage", "/no/such/route"):
        answer = client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert answer.headers["content-security-policy"] == CSP, path


def test_metrics_are_off_the_public_port_and_on_their_own(pg_migrated: str, mqtt_url: str) -> None:
    port = free_port()
    settings = api_settings(pg_migrated, mqtt_url, api_metrics_port=port, api_public_metrics=False)
    from fastapi.testclient import TestClient

    app = create_app(settings, layout=small_city, live_coverage=False, serve_metrics=True)
    with TestClient(app) as client:
        hidden = client.get("/metrics")
        assert hidden.status_code == 404 and "ZHONGDU_API_METRICS_PORT" in hidden.json()["detail"]
        client.get("/v1/coverage")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    assert 'zhongdu_api_requests_total{method="GET",route="/v1/coverage",status="503"}' in text
    with pytest.raises(OSError):  # closed with the app
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_served_districts_fit_together_without_gaps_or_overlaps(client: Any) -> None:
    """Point-in-district joins and the map's seams need a clean coverage: no two districts overlap
    and no gap opens between them, above 1 m² (areas in TWD97)."""
    import geopandas as gpd
    import shapely

    layer = client.get("/v1/map/districts").json()
    assert len(layer["features"]) == 29
    served = gpd.GeoDataFrame.from_features(layer["features"], crs=4326).to_crs(3826)
    geoms = served.geometry.values
    union = shapely.union_all(geoms)
    overlap = sum(g.area for g in geoms) - union.area
    assert overlap < 1.0, f"{overlap:.1f} m² of overlaps"
    parts = getattr(union, "geoms", [union])
    assert len(parts) == 1, "the city falls apart into pieces"
    gaps = [shapely.Polygon(ring).area for ring in parts[0].interiors]
    assert max(gaps, default=0.0) < 1.0, f"{len(gaps)} gaps, largest {max(gaps):.1f} m²"
    # simplified, yet the same city: each district within 2 % of its official area
    for feature, geom in zip(layer["features"], geoms, strict=True):
        assert abs(geom.area / 1e6 - feature["properties"]["area_km2"]) < 0.02 * feature["properties"]["area_km2"]


def test_reference_pages_render_in_chromium_under_the_csp(pg_migrated: str, mqtt_url: str) -> None:
    """Swagger UI draws the API's operations with the page's CSP enforced, no console
    error and no request leaving loopback (an operations center has no internet)."""
    from playwright.sync_api import sync_playwright

    from ._ops_fixtures import CHROMIUM_ARGS, LOOPBACK, chromium_path, screenshot

    app = create_app(api_settings(pg_migrated, mqtt_url), layout=small_city, live_coverage=False)
    with served(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            for path, ready in (("/docs", ".opblock-tag"),):
                page = browser.new_page(viewport={"width": 1280, "height": 800})  # CSP not bypassed
                errors: list[str] = []
                outside: list[str] = []
                page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.on(
                    "request",
                    lambda r, outside=outside: urlsplit(r.url).hostname not in LOOPBACK
                    and r.url.startswith("http")
                    and outside.append(r.url),
                )
                page.goto(base + path)
                page.wait_for_selector(ready, timeout=30_000)
                screenshot(page, f"api-reference{path.replace('/', '-')}")
                assert errors == [], (path, errors)
                assert outside == [], (path, outside)
                page.close()
        finally:
            browser.close()
