"""The planner's desk through a real uvicorn, PostgreSQL and Mosquitto: candidate files checked line
by line, the city-wide lattice, criterion and operator, named scenarios, comparison, and exports
that uploaded again give the same picks."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import h3
import httpx
import pytest

from ._api_fixtures import CENTRE, api_settings, make_key, running_app, served, small_city, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


@pytest.fixture(scope="module")
def desk(pg_migrated: str, mqtt_url: str) -> Iterator[dict[str, Any]]:
    with running_app(api_settings(pg_migrated, mqtt_url)) as client:
        planner, viewer = make_key(client, "planner"), make_key(client, "viewer")
        with served(client.app) as url, httpx.Client(base_url=url, timeout=120) as http:
            yield {"http": http, "planner": {"X-API-Key": planner}, "viewer": {"X-API-Key": viewer}}


def uncovered_sites(n: int) -> list[tuple[str, float, float]]:
    """Sites at grid cells away from the small city's two stations (north and south of them)."""
    grid, _ = small_city()
    sites = []
    for k, cell in enumerate(h3.grid_ring(h3.latlng_to_cell(*CENTRE, 9), 8)):
        lat, lng = h3.cell_to_latlng(cell)
        if abs(lat - CENTRE[0]) > 0.015:
            sites.append((f"PB-{k:03d}", lat, lng))
    assert len(sites) >= n and len(grid) > 200
    return sites[:n]


def csv_of(sites: list[tuple[str, float, float]]) -> bytes:
    lines = ["id,name,lat,lng,cost,height,kind"]
    lines += [f"{sid},公有建物 {sid},{lat!r},{lng!r},{1 + i % 3},25,public_building" for i, (sid, lat, lng) in enumerate(sites)]
    return ("\n".join(lines) + "\n").encode()


def run(desk: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    http = desk["http"]
    created = http.post("/v1/scenarios", json=body, headers=desk["planner"])
    assert created.status_code == 202, created.text
    href = created.json()["href"]
    assert wait_for(lambda: http.get(href).json()["status"] in ("done", "failed"), 120)
    scenario: dict[str, Any] = http.get(href).json()
    assert scenario["status"] == "done", scenario["error"]
    return scenario


def upload(desk: dict[str, Any], content: bytes, **params: str) -> httpx.Response:
    return desk["http"].post("/v1/scenarios/candidates", content=content, params=params, headers=desk["planner"])


def scenario_count(desk: dict[str, Any]) -> int:
    total: int = desk["http"].get("/v1/scenarios").json()["total"]
    return total


def test_a_bad_candidate_file_names_every_bad_line_and_stores_nothing(desk: dict[str, Any]) -> None:
    before = scenario_count(desk)
    bad = (
        b"id,name,lat,lng,cost\n"
        b"PB-1,ok,24.17,120.64,1\n"
        b"PB 2,space in id,24.17,120.64,1\n"
        b"PB-3,far away,35.0,139.7,1\n"
        b"PB-4,bad cost,24.17,120.64,cheap\n"
        b"PB-1,repeat,24.18,120.65,1\n"
        b"PB-6,no lat,,120.65,1\n"
    )
    answer = upload(desk, bad)
    assert answer.status_code == 422, answer.text
    errors = {e["line"]: e["reason"] for e in answer.json()["detail"]}
    assert sorted(errors) == [3, 4, 5, 6, 7]
    codes = {e["line"]: (e["code"], e["field"]) for e in answer.json()["detail"]}
    assert codes == {3: ("bad_id", "id"), 4: ("out_of_area", None), 5: ("not_number", "cost"),
                     6: ("repeat", "id"), 7: ("missing", "lat")}
    assert "id" in errors[3] and "outside Taichung" in errors[4] and "not a number" in errors[5]
    assert "repeats line 2" in errors[6] and "lat is missing" in errors[7]
    assert "5 bad line(s)" in answer.json()["message"]
    assert upload(desk, b"name,lat\nx,24\n").json()["detail"][0]["line"] == 1  # header lacks id, lng
    assert upload(desk, b"").json()["code"] == "empty"
    assert upload(desk, b"id,lat,lng\nA,24\x00,120\n").json()["detail"][0]["code"] == "not_number"
    assert upload(desk, b'{"type": "FeatureCollection", "features": [{"type": "Feature"}]}').json()["detail"] == [
        {"line": 1, "code": "not_feature", "field": None, "reason": "not a Feature with a geometry"}
    ]
    assert upload(desk, b"x" * (2 * 1024 * 1024 + 1)).status_code == 413
    viewer = desk["http"].post("/v1/scenarios/candidates", content=csv_of(uncovered_sites(2)), headers=desk["viewer"])
    assert viewer.status_code == 403
    assert scenario_count(desk) == before
    metrics = desk["http"].get("/metrics").text
    refused = re.search(r'zhongdu_api_candidate_files_total\{outcome="refused"\} (\S+)', metrics)
    assert refused and float(refused.group(1)) >= 6  # the six refused above, counted


def test_geojson_polygons_become_a_point_inside_them(desk: dict[str, Any]) -> None:
    ring = [[120.60, 24.20], [120.62, 24.20], [120.62, 24.21], [120.60, 24.21], [120.60, 24.20]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "LAND-1", "geometry": {"type": "Polygon", "coordinates": [ring]},
             "properties": {"name": "市有地", "kind": "public_land", "cost": 2}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.65, 24.16]},
             "properties": {"id": "PB-9", "height": 18}},
        ],
    }
    answer = upload(desk, json.dumps(doc).encode())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["format"] == "geojson"
    land, building = body["sites"]
    assert land["id"] == "LAND-1" and 120.60 < land["lng"] < 120.62 and 24.20 < land["lat"] < 24.21
    assert land["kind"] == "public_land" and land["cost"] == 2 and building["height"] == 18
    assert len(body["candidates"]) == 6 and {c["azimuth_deg"] for c in body["candidates"]} == {0, 120, 240}


def test_an_uploaded_file_plans_exports_and_reloads_to_the_same_picks(desk: dict[str, Any]) -> None:
    from pypdf import PdfReader

    http = desk["http"]
    uploaded = upload(desk, csv_of(uncovered_sites(12)))
    assert uploaded.status_code == 200, uploaded.text
    goal = {"model": "disk", "budget": 4, "criterion": "outdoor"}
    first = run(desk, {"name": "公有建物 第一輪", "note": "校舍", "candidate_origin": "upload",
                       "candidates": uploaded.json()["candidates"], **goal})
    picks = first["result"]["picks"]
    assert 1 <= len(picks) <= 4
    for pick in picks:  # every pick with its site's coordinates, name and district
        site = next(s for s in uploaded.json()["sites"] if s["id"] == pick["station_id"])
        assert (pick["lat"], pick["lng"]) == (site["lat"], site["lng"])
        assert pick["name"] == f"公有建物 {site['id']}" and pick["district"] in ("西屯區", "北屯區")
    url = f"/v1/scenarios/{first['scenario_id']}/export"

    csv_answer = http.get(url, params={"format": "csv", "bom": "true"})
    assert csv_answer.status_code == 200 and csv_answer.content.startswith("\ufeff".encode())
    assert "attachment" in csv_answer.headers["content-disposition"]
    rows = csv_answer.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("order,id,name,lat,lng,district") and len(rows) == len(picks) + 1

    geojson = http.get(url, params={"format": "geojson"})
    assert geojson.headers["content-type"].startswith("application/geo+json")
    features = geojson.json()["features"]
    assert [f["id"] for f in features] == [p["station_id"] for p in picks]
    assert features[0]["geometry"]["coordinates"] == [picks[0]["lng"], picks[0]["lat"]]
    assert features[0]["properties"]["people_added"] == picks[0]["gain"]

    for lang, word in (("zh", "基地臺建議站址情境"), ("en", "Base-station placement scenario")):
        pdf = http.get(url, params={"format": "pdf", "lang": lang})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        reader = PdfReader(io.BytesIO(pdf.content))
        assert len(reader.pages) == 1
        text = reader.pages[0].extract_text()
        assert word in text and picks[0]["station_id"] in text

    for exported in (csv_answer.content, geojson.content):  # reload: the same picks, in order
        again = upload(desk, exported)
        assert again.status_code == 200, again.text
        second = run(desk, {"name": "reloaded", "candidates": again.json()["candidates"], **goal})
        assert [p["station_id"] for p in second["result"]["picks"]] == [p["station_id"] for p in picks]
        assert [p["gain"] for p in second["result"]["picks"]] == [p["gain"] for p in picks]

    assert http.get("/v1/scenarios/sc_000000000000/export").status_code == 404
    assert http.get(url, params={"format": "xls"}).status_code == 422


def test_the_city_wide_lattice_with_criterion_and_operator(desk: dict[str, Any]) -> None:
    body = {
        "name": "北屯 lattice",
        "model": "disk",
        "budget": 3,
        "criterion": "indoor",
        "operator": "CHT",
        "candidate_source": {"source": "lattice", "resolution": 8, "limit": 30, "districts": ["北屯區"]},
    }
    scenario = run(desk, body)
    result = scenario["result"]
    assert result["criterion"] == "indoor" and result["operator"] == "CHT"
    assert 1 <= result["candidate_sites"] <= 30 and len(result["picks"]) == 3
    assert all(p["station_id"].startswith("C8-") and p["kind"] == "public_land" for p in result["picks"])
    assert all(24.1 < p["lat"] < 24.25 and p["district"] for p in result["picks"])
    city = run(desk, {**body, "name": "whole city", "candidate_source": {"source": "lattice", "resolution": 8}})
    assert city["result"]["candidate_sites"] > result["candidate_sites"]  # both districts' people count
    listed = {i["scenario_id"]: i for i in desk["http"].get("/v1/scenarios").json()["items"]}
    assert listed[scenario["scenario_id"]]["source"] == "lattice"
    assert listed[scenario["scenario_id"]]["criterion"] == "indoor"

    http = desk["http"]
    bad = {**body, "candidate_source": {"source": "lattice", "districts": ["火星區"]}}
    answer = http.post("/v1/scenarios", json=bad, headers=desk["planner"])
    assert answer.status_code == 422 and "火星區" in answer.text
    both = {**body, "candidates": [{"station_id": "x", "lon": 120.6, "lat": 24.1, "radius_m": 500}]}
    assert http.post("/v1/scenarios", json=both, headers=desk["planner"]).status_code == 422
    neither = {k: v for k, v in body.items() if k != "candidate_source"}
    assert http.post("/v1/scenarios", json=neither, headers=desk["planner"]).status_code == 422


def test_scenarios_are_named_renamed_compared_and_deleted(desk: dict[str, Any]) -> None:
    http = desk["http"]
    candidates = upload(desk, csv_of(uncovered_sites(8))).json()["candidates"]
    one = run(desk, {"name": "方案 A", "model": "disk", "budget": 2, "candidates": candidates})
    two = run(desk, {"name": "方案 B", "model": "disk", "budget": 5, "criterion": "indoor", "candidates": candidates})
    a, b = one["scenario_id"], two["scenario_id"]

    renamed = http.patch(f"/v1/scenarios/{a}", json={"name": "方案 A′", "note": "先做兩站"}, headers=desk["planner"])
    assert renamed.status_code == 200 and renamed.json()["name"] == "方案 A′" and renamed.json()["note"] == "先做兩站"
    assert http.patch(f"/v1/scenarios/{a}", json={"note": None}, headers=desk["planner"]).json()["note"] is None
    assert http.get(f"/v1/scenarios/{a}").json()["name"] == "方案 A′"
    assert http.patch(f"/v1/scenarios/{a}", json={"name": "x"}, headers=desk["viewer"]).status_code == 403
    assert http.patch(f"/v1/scenarios/{a}", json={}, headers=desk["planner"]).status_code == 422
    assert http.patch(f"/v1/scenarios/{a}", json={"name": None}, headers=desk["planner"]).status_code == 422
    assert http.patch("/v1/scenarios/sc_000000000000", json={"name": "x"}, headers=desk["planner"]).status_code == 404

    compared = http.get("/v1/scenarios/compare", params={"ids": f"{a},{b}"})
    assert compared.status_code == 200, compared.text
    left, right = compared.json()["items"]
    assert (left["scenario_id"], right["scenario_id"]) == (a, b)
    assert (left["criterion"], right["criterion"]) == ("outdoor", "indoor")
    assert left["picks_count"] == len(one["result"]["picks"]) == len(left["picks"])
    assert right["people_added"] == pytest.approx(two["result"]["covered_after"] - two["result"]["covered_before"])
    assert left["share_before"] == one["result"]["share_before"] and right["share_after"] == two["result"]["share_after"]
    assert left["total_cost"] == one["result"]["total_cost"]
    assert all("lat" in p and "lng" in p for p in right["picks"])
    assert http.get("/v1/scenarios/compare", params={"ids": a}).status_code == 422
    assert http.get("/v1/scenarios/compare", params={"ids": f"{a},sc_000000000000"}).status_code == 404
    assert http.get("/v1/scenarios/compare", params={"ids": f"{a},{a}"}).status_code == 422

    assert http.delete(f"/v1/scenarios/{b}", headers=desk["viewer"]).status_code == 403
    assert http.delete(f"/v1/scenarios/{b}", headers=desk["planner"]).status_code == 204
    assert http.get(f"/v1/scenarios/{b}").status_code == 404
    assert http.delete(f"/v1/scenarios/{b}", headers=desk["planner"]).status_code == 404


def test_a_big5_csv_as_excel_in_chinese_saves_it_is_read() -> None:
    from zhongdu.api import _candidate_files as files

    body = "id,name,lat,lng\nPB-1,北屯區公所,24.1826,120.6862\n".encode("cp950")
    fmt, sites = files.parse(body)
    assert fmt == "csv" and sites[0].name == "北屯區公所" and sites[0].lng == 120.6862
    assert [r["sector_id"] for r in files.sector_rows(sites)] == ["1", "2", "3"]


def test_a_scenario_stored_before_picks_had_coordinates_still_exports() -> None:
    """Older results list only station ids; the export takes the sites from the request."""
    from zhongdu.api import _scenario_export as export

    row = {
        "scenario_id": "sc_0123456789ab",
        "name": "old",
        "request": {"candidates": [{"station_id": "c1", "lon": 120.64, "lat": 24.17, "name": "舊", "kind": "public_land"}]},
        "result": {"picks": [{"station_id": "c1", "gain": 120.0, "share": 0.5, "cost": 2.0, "kind": "public_land"}]},
    }
    lines = export.to_csv(row).decode().splitlines()
    assert lines == [",".join(export.CSV_COLUMNS), "1,c1,舊,24.17,120.64,,2.0,30.0,public_land,120.0,0.5"]
    feature = json.loads(export.to_geojson(row))["features"][0]
    assert feature["geometry"]["coordinates"] == [120.64, 24.17] and feature["properties"]["name"] == "舊"
