"""Petitions end to end on real PostgreSQL: the CSV import command (idempotent, bad rows kept with
their reason), the batch API, hotspots as GeoJSON, trends with breakpoints, emerging hot spots,
Open311 in and out, and a new hotspot announced on the page's event stream (real uvicorn)."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import httpx
import psycopg
import pytest

from zhongdu.api import start_api
from zhongdu.cli import main
from zhongdu.petitions._simulate import Cluster, simulate, write_csv

from ._api_fixtures import api_settings, make_key, running_app, small_city

pytestmark = [pytest.mark.postgres]

CLUSTER = (120.6846, 24.1375)  # around Taichung City Hall
END = datetime(2026, 10, 1, tzinfo=UTC)
GOOD_ROW = {
    "case_id": "T-0001",
    "received_at": "2026-06-01 09:30",  # naive: Taiwan time
    "category": "道路坑洞",
    "lon": "120.65",
    "lat": "24.16",
    "district": "西屯區",
    "village": "",
    "status": "已派工",
    "closed_at": "",
}


@pytest.fixture(scope="module")
def sim_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = simulate(
        6000,
        start=END - timedelta(days=365),
        end=END,
        seed=4,
        clusters=(Cluster(CLUSTER[0], CLUSTER[1], 250.0, 600, "drain"),),
        now=END + timedelta(days=60),
    )
    path = tmp_path_factory.mktemp("petitions") / "petitions.csv"
    write_csv(df, path)
    return path


@pytest.fixture(scope="module")
def loaded(pg_migrated: str, sim_csv: Path) -> str:
    _cli(pg_migrated, "petitions", "import", str(sim_csv))
    return pg_migrated


def _cli(url: str, *argv: str) -> tuple[int, str]:
    import contextlib
    import os

    out = io.StringIO()
    old = os.environ.get("ZHONGDU_DATABASE_URL")
    os.environ["ZHONGDU_DATABASE_URL"] = url
    try:
        with contextlib.redirect_stdout(out):
            code = main(list(argv))
    finally:
        if old is None:
            os.environ.pop("ZHONGDU_DATABASE_URL", None)
        else:
            os.environ["ZHONGDU_DATABASE_URL"] = old
    return code, out.getvalue()


def test_csv_import_is_idempotent_and_keeps_bad_rows(loaded: str, sim_csv: Path, tmp_path: Path) -> None:
    with psycopg.connect(loaded) as conn:
        n, synthetic, coarse = conn.execute(
            "SELECT count(*), bool_and(synthetic), count(*) FILTER (WHERE coarse) FROM petitions"
        ).fetchone()
    assert n == 6600 and synthetic and 0 < coarse < 600
    code, out = _cli(loaded, "petitions", "import", str(sim_csv))
    assert code == 0 and "0 new, 0 updated, 6600 unchanged, 0 rejected" in out

    rows = [
        GOOD_ROW,
        {**GOOD_ROW, "case_id": "T-0002", "received_at": "not a time"},
        {**GOOD_ROW, "case_id": "T-0003", "lon": "121.9"},
        {**GOOD_ROW, "case_id": "T-0004", "status": "已結案"},  # resolved without closed_at
        {**GOOD_ROW, "case_id": "T-0005", "lon": "", "lat": "", "district": "北屯區", "village": "不存在里"},
        {**GOOD_ROW, "case_id": "T-0001"},  # twice in one file
        {**GOOD_ROW, "case_id": "T-0006", "lon": "", "lat": "", "district": "北屯區", "village": "仁和里"},
    ]
    path = tmp_path / "city.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # a BOM, as spreadsheet exports write
        writer = csv.DictWriter(f, fieldnames=list(GOOD_ROW))
        writer.writeheader()
        writer.writerows(rows)
    code, out = _cli(loaded, "petitions", "import", str(path))
    assert code == 1  # some rows were rejected
    assert "7 rows: 2 new, 0 updated, 0 unchanged, 5 rejected" in out
    assert "row 2 (T-0002): received_at is not an ISO 8601 time" in out
    assert "row 3 (T-0003): lon 121.9 is outside Taichung" in out
    assert "row 4 (T-0004): status resolved needs closed_at" in out
    assert "row 5 (T-0005): unknown village '不存在里' in 北屯區" in out
    assert "row 6 (T-0001): case_id T-0001 appears twice" in out
    with psycopg.connect(loaded) as conn:
        stored = conn.execute(
            "SELECT category, status, received_at, coarse FROM petitions WHERE case_id = 'T-0001'"
        ).fetchone()
        assert stored[:2] == ("pothole", "dispatched")
        assert stored[2] == datetime(2026, 6, 1, 1, 30, tzinfo=UTC)  # 09:30 Taiwan time
        placed = conn.execute("SELECT coarse, lon, lat FROM petitions WHERE case_id = 'T-0006'").fetchone()
        assert placed[0] is True and 120.6 < placed[1] < 120.8 and 24.1 < placed[2] < 24.3
        rejects = conn.execute(
            "SELECT row_number, case_id, reason, raw FROM petition_rejects ORDER BY row_number"
        ).fetchall()
    assert [r[0] for r in rejects] == [2, 3, 4, 5, 6]
    assert rejects[1][3]["lon"] == "121.9"  # the raw row is kept
    # the same file again: nothing new, the bad rows answered again
    code, out = _cli(loaded, "petitions", "import", str(path))
    assert "7 rows: 0 new, 0 updated, 2 unchanged, 5 rejected" in out
    # a later export where the case was resolved: an update
    rows2 = [{**GOOD_ROW, "status": "resolved", "closed_at": "2026-06-03T10:00:00+08:00"}]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(GOOD_ROW))
        writer.writeheader()
        writer.writerows(rows2)
    code, out = _cli(loaded, "petitions", "import", str(path))
    assert code == 0 and "1 rows: 0 new, 1 updated, 0 unchanged, 0 rejected" in out


def test_cli_export_and_open311_file_import(loaded: str, tmp_path: Path) -> None:
    """`export --format open311` then `import FILE.json` under new ids: the same cases again."""
    out = tmp_path / "requests.json"
    code, _ = _cli(
        loaded, "petitions", "export", "--format", "open311", "--category", "drain", "--out", str(out)
    )
    assert code == 0
    requests = json.loads(out.read_text("utf-8"))
    assert requests and all(r["service_code"] == "drain" for r in requests)
    renamed = tmp_path / "renamed.json"
    renamed.write_text(
        json.dumps([{**r, "service_request_id": "J-" + r["service_request_id"]} for r in requests[:30]])
    )
    code, text = _cli(loaded, "petitions", "import", str(renamed))
    assert code == 0 and "30 rows: 30 new" in text
    csv_out = tmp_path / "cases.csv"
    assert _cli(loaded, "petitions", "export", "--category", "drain", "--out", str(csv_out))[0] == 0
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text("utf-8"))))
    assert len(rows) == len(requests) + 30 and rows[0]["category"] == "drain"
    code, text = _cli(loaded, "petitions", "emerging", "--months", "12")
    assert code == 0 and "(SYNTHETIC)" in text and "new" in text


def test_a_file_without_the_columns_is_refused(pg_migrated: str, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("id,when,what\n1,2026-01-01,x\n", "utf-8")
    code = _cli(pg_migrated, "petitions", "import", str(path))[0]
    assert code == 2
    assert "lacks column(s) case_id, received_at, category, status" in capsys.readouterr().err


def test_batch_api(loaded: str) -> None:
    with running_app(api_settings(loaded, None), live=False) as client:
        batch = {
            "cases": [{**GOOD_ROW, "case_id": "API-1"}, {**GOOD_ROW, "case_id": "API-2", "category": ""}]
        }
        assert client.post("/v1/petitions", json=batch).status_code == 401
        viewer = make_key(client, "viewer")
        assert client.post("/v1/petitions", json=batch, headers={"X-API-Key": viewer}).status_code == 403
        key = make_key(client, "operator")
        answer = client.post("/v1/petitions", json=batch, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["inserted"], body["rejected"]) == (1, 1)
        assert body["rejections"] == [
            {"row": 2, "case_id": "API-2", "reason": "category must be 1-64 printable characters, got ''"}
        ]
        again = client.post("/v1/petitions", json=batch, headers={"X-API-Key": key}).json()
        assert (again["inserted"], again["unchanged"], again["rejected"]) == (0, 1, 1)
        metrics = client.get("/metrics").text
        assert 'zhongdu_petition_rows_total{outcome="rejected"} 2.0' in metrics
        assert 'zhongdu_petition_rows_total{outcome="unchanged"} 1.0' in metrics
        rejects = client.get("/v1/petitions/rejects", params={"batch_id": body["batch_id"]}).json()["items"]
        assert rejects[0]["reason"].startswith("category must be") and rejects[0]["source"].startswith("api:")
        # a NUL (which PostgreSQL cannot store) or a year-1 date is one rejected row, not a failed batch
        odd = {
            "cases": [
                {**GOOD_ROW, "case_id": "API-3\u0000"},
                {**GOOD_ROW, "case_id": "API-4", "received_at": "0001-01-01T00:00:00"},
                {**GOOD_ROW, "case_id": "API-5", "village": "x\u0000"},
                {**GOOD_ROW, "case_id": "API-6"},
            ]
        }
        answer = client.post("/v1/petitions", json=odd, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        reasons = [r["reason"] for r in answer.json()["rejections"]]
        assert answer.json()["inserted"] == 1 and len(reasons) == 3, reasons
        assert "NUL" in reasons[0] and "outside 1990" in reasons[1] and "NUL" in reasons[2]
        bad = client.post("/v1/petitions", json={"cases": "nope"}, headers={"X-API-Key": key})
        assert bad.status_code == 422 and "cases" in bad.json()["message"]


def test_hotspots_route_finds_the_planted_cluster(loaded: str) -> None:
    with running_app(api_settings(loaded, None), live=False) as client:
        params = {"category": "drain", "from": "2025-10-01T00:00:00Z", "to": "2026-10-01T00:00:00Z", "res": 9}
        answer = client.get("/v1/petitions/hotspots", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["synthetic"] is True and body["category"] == "drain"
        assert (
            body["method"]["neighbourhood"].startswith("H3 grid disk k=1")
            and body["method"]["resolution"] == 9
        )
        assert "Benjamini-Hochberg" in body["method"]["multiple_testing"]
        top = body["features"][0]["properties"]
        assert top["verdict"] == "hot" and top["q"] <= 0.05
        lat, lon = h3.cell_to_latlng(top["cell"])
        assert h3.great_circle_distance((lat, lon), (CLUSTER[1], CLUSTER[0]), unit="m") < 600
        assert body["features"][0]["geometry"]["type"] == "Polygon"
        # the Chinese name works too, and rates per resident
        rate = client.get(
            "/v1/petitions/hotspots", params={**params, "category": "道路側溝清淤", "measure": "rate"}
        )
        assert rate.status_code == 200 and rate.json()["hot"] >= 1
        assert client.get("/v1/petitions/hotspots", params={**params, "res": 7}).status_code == 422
        assert (
            client.get("/v1/petitions/hotspots", params={**params, "to": "2025-01-01T00:00:00Z"}).status_code
            == 422
        )


def test_trends_time_to_close_and_breakpoints(loaded: str) -> None:
    with running_app(api_settings(loaded, None), live=False) as client:
        key = make_key(client, "operator")
        bp = {
            "at": "2026-05-01T00:00:00+08:00",
            "kind": "policy",
            "note": "drain dredging contract",
            "category": "drain",
        }
        assert client.post("/v1/petitions/breakpoints", json=bp).status_code == 401
        made = client.post("/v1/petitions/breakpoints", json=bp, headers={"X-API-Key": key})
        assert made.status_code == 201, made.text
        body = client.get("/v1/petitions/trends", params={"category": "drain"}).json()
        assert body["synthetic"] is True and body["timezone"] == "Asia/Taipei"
        points = body["series"][0]["points"]
        assert len(points) >= 12 and body["series"][0]["category"] == "drain"
        by_month = {p["month"]: p["received"] for p in points}
        # the rainy season's drain complaints
        assert by_month["2026-06"] > 1.5 * by_month["2025-12"]
        close = body["time_to_close"][0]
        assert close["category"] == "drain" and 0 < close["dispatch_median_h"] < close["close_median_h"]
        assert (
            body["breakpoints"][0]["month"] == "2026-05" and body["breakpoints"][0]["mean_before"] is not None
        )
        district = client.get("/v1/petitions/trends", params={"district": "Xitun"}).json()
        assert district["district"] == "西屯區" and district["series"]
        assert client.get("/v1/petitions/trends", params={"district": "Atlantis"}).status_code == 422
        cats = client.get("/v1/petitions/categories").json()["items"]
        assert {c["code"] for c in cats} >= {"drain", "pothole", "illegal_parking"}


def test_emerging_route(loaded: str) -> None:
    with running_app(api_settings(loaded, None), live=False) as client:
        answer = client.get("/v1/petitions/emerging", params={"months": 12, "res": 8})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["months"]) == 12 and body["months"][-1] == "2026-10"
        assert set(body["counts"]) == {"new", "intensifying", "persistent", "diminishing", "sporadic"}
        assert "Mann-Kendall" in body["method"]["trend"]
        assert client.get("/v1/petitions/emerging", params={"months": 2}).status_code == 422


def test_open311_round_trip(loaded: str) -> None:
    with running_app(api_settings(loaded, None), live=False) as client:
        key = make_key(client, "operator")
        requests = client.get("/v1/open311/requests.json", params={"limit": 50}).json()
        assert len(requests) == 50
        statuses = {r["zhongdu_status"] for r in requests}
        assert requests[0]["status"] in ("open", "closed") and statuses
        dispatched = {**GOOD_ROW, "case_id": "WO-1"}
        client.post("/v1/petitions", json={"cases": [dispatched]}, headers={"X-API-Key": key})
        wo = [
            r
            for r in client.get("/v1/open311/requests.json", params={"limit": 10000}).json()
            if r["service_request_id"] == "WO-1"
        ]
        assert wo[0]["status"] == "open" and wo[0]["status_notes"] == "work order created"
        # back in under new ids: statuses, work order and closing times survive
        copies = [{**r, "service_request_id": "O311-" + r["service_request_id"]} for r in requests[:20] + wo]
        answer = client.post("/v1/open311/requests", json=copies, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        assert answer.json()["inserted"] == 21 and answer.json()["rejected"] == 0
    with psycopg.connect(loaded) as conn:
        pairs = conn.execute(
            "SELECT a.status = b.status AND a.closed_at IS NOT DISTINCT FROM b.closed_at"
            " AND a.dispatched_at IS NOT DISTINCT FROM b.dispatched_at AND a.category = b.category"
            " FROM petitions a JOIN petitions b ON b.case_id = 'O311-' || a.case_id"
        ).fetchall()
    assert len(pairs) == 21 and all(p[0] for p in pairs)


def test_a_new_hotspot_is_announced_on_the_event_stream(pg_migrated: str) -> None:
    from zhongdu.petitions._service import HOTSPOT_LISTENERS

    heard: list[list[dict[str, Any]]] = []
    HOTSPOT_LISTENERS.append(heard.append)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = start_api(api_settings(pg_migrated, None), port=port, layout=small_city)
    events: list[tuple[str, Any]] = []
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            from ._api_fixtures import ADMIN_KEY

            key = http.post(
                "/v1/admin/keys", json={"name": "feed", "role": "operator"}, headers={"X-API-Key": ADMIN_KEY}
            ).json()["key"]

            def listen() -> None:
                with httpx.stream(
                    "GET", api.url + "/v1/events", params={"max_seconds": 8}, timeout=30
                ) as answer:
                    name = None
                    for line in answer.iter_lines():
                        if line.startswith("event: "):
                            name = line[7:]
                        elif line.startswith("data: ") and name:
                            events.append((name, json.loads(line[6:])))

            listener = threading.Thread(target=listen)
            listener.start()
            time.sleep(1.5)
            # a month of cases later than anything stored, with a knot of pothole reports in one place
            end = datetime(2026, 11, 30, tzinfo=UTC)
            df = simulate(
                1500,
                start=end - timedelta(days=60),
                end=end,
                seed=8,
                now=end + timedelta(days=30),
                clusters=(Cluster(120.64, 24.17, 150.0, 120, "pothole", end - timedelta(days=20)),),
            )
            out = io.StringIO()
            write_csv(df, out)
            rows = [
                {**r, "case_id": "EV-" + r["case_id"]} for r in csv.DictReader(io.StringIO(out.getvalue()))
            ]
            answer = http.post(
                "/v1/petitions", json={"cases": rows, "synthetic": True}, headers={"X-API-Key": key}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["new_hotspots"], answer.json()["rejected"]
            # the operations center is alerted: one open incident per new hotspot cell
            alerts = http.get("/v1/alerts", params={"state": "open", "rule_id": "petition-hotspot"}).json()
            cells = {h["cell"] for h in answer.json()["new_hotspots"]}
            assert {a["source"] for a in alerts["items"]} == cells, alerts
            listener.join(20)
    finally:
        api.stop()
        HOTSPOT_LISTENERS.remove(heard.append)
    hot = [e for n, e in events if n == "petition_hotspot"]
    assert hot, [n for n, _ in events]
    assert hot[0]["synthetic"] is True and hot[0]["res"] == 8
    assert any(
        h3.great_circle_distance(h3.cell_to_latlng(e["cell"]), (24.17, 120.64), unit="m") < 1500 for e in hot
    )
    assert heard and heard[0][0]["cell"] == hot[0]["cell"]
