"""The commission's year through the API and the CLI, on the real database: a CSV in, the export
back identical, bad files refused whole, corrections, locks, amendments, reviews and the report."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest

from zhongdu.cli import main

from ._api_fixtures import ADMIN_KEY, api_settings, make_key, running_app, wait_for

pytestmark = pytest.mark.postgres

HEADER = "indicator_id,year,value,numerator,denominator,components,evidence,note"
# A complete 2015 for the 14 indicators that are keyed in (B7-2 comes from the coverage engine),
# in the export's own form: each row as import reads it and export writes it back.
YEAR_2015 = [
    "B1-1,2015,,12,15,,104 年度研究發展成果報告,",
    "B2-1,2015,4,,,,民意調查報告 104-01~04,",
    "B3-1,2015,,5,8,,中彰投首長會議紀錄,",
    "B4-1,2015,,1480,1728,,標案管考系統 104 年 12 月報表,",
    "B5-1,2015,2,,,,工程會金質獎參賽名單,",
    "B6-1,2015,,,,analysis_reports=12; improvement_reviews=4; training_evaluation=1,陳情案件質量分析報告,",
    "B7-1,2015,,,,m1=1; m2=1; m3=1; m4=0; m5=1,智慧城市推動小組紀錄,營運中心細部規劃延至 105 年",
    "B7-3,2015,86,,,,線上申辦服務統計,",
    "M1-1,2015,,,,disabled_employed=31; disabled_required=29; indigenous_employed=3; indigenous_required=3,人事處,",
    "M1-2,2015,42.5,,,,,",
    "M2-1,2015,,4100,5000,,終身學習入口網,",
    "M2-2,2015,,610,1000,,,",
    "F1-1,2015,81.3,,,,會計報告,",
    'F1-2,2015,,790,1000,,"會計報告, 資本門",',
]


def _csv(lines: list[str], bom: bool = True) -> bytes:
    return (("\ufeff" if bom else "") + "\r\n".join([HEADER, *lines]) + "\r\n").encode("utf-8")


@pytest.fixture(scope="module")
def client(pg_migrated: str, mqtt_url: str) -> Any:
    with running_app(api_settings(pg_migrated, mqtt_url), live=False) as client:
        yield client


@pytest.fixture(scope="module")
def planner(client: Any) -> dict[str, str]:
    return {"X-API-Key": make_key(client, "planner", "研考會 綜合規劃組")}


def _count(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM indicator_actuals").fetchone()
    assert row is not None
    return int(row[0])


def test_a_csv_brings_a_year_complete_and_exports_back_identical(client: Any, planner: dict[str, str]) -> None:
    data = _csv(YEAR_2015)
    answer = client.post("/v1/indicators/import", content=data, headers={**planner, "Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 14 and answer.json()["unchanged"] == 0

    exported = client.get("/v1/indicators/export", params={"year": 2015, "format": "csv"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.content == data  # byte for byte, BOM and CRLF included

    again = client.post("/v1/indicators/import", content=exported.content, headers=planner)
    assert again.json() == {"imported": 0, "unchanged": 14, "dry_run": False, "entries": []}
    as_json = client.get("/v1/indicators/export", params={"year": 2015, "format": "json"}).json()
    assert len(as_json["entries"]) == 14 and as_json["entries"][0]["recorded_by"] == "研考會 綜合規劃組"
    back = client.post("/v1/indicators/import", json=as_json, headers=planner)
    assert back.status_code == 200 and back.json()["unchanged"] == 14

    score = client.get("/v1/indicators/score", params={"year": 2015}).json()
    assert score["indicators_with_actual"] == 15 and score["complete"] is True and score["missing"] == []
    assert score["criterion_4g"] == "outdoor" and "15 of 15 indicators" in score["summary_en"]
    items = {i["id"]: i for i in client.get("/v1/indicators", params={"year": 2015}).json()["items"]}
    assert items["B7-1"]["attainment"] == pytest.approx(0.8)  # 4 of the year's 5 milestones
    assert items["B7-1"]["status"] == "behind" and items["B2-1"]["status"] == "attained"
    assert items["B6-1"]["actual"]["components"]["analysis_reports"] == 12
    assert items["M1-1"]["actual"]["value"] == 1.0
    assert items["B7-1"]["actual"]["note"] == "營運中心細部規劃延至 105 年"


def test_a_malformed_csv_changes_nothing_and_names_its_bad_rows(
    client: Any, planner: dict[str, str], pg_migrated: str
) -> None:
    before = _count(pg_migrated)
    lines = [
        "B2-1,2016,4,,,,,",  # good
        "B4-1,2016,eighty,,,,,",  # line 3: not a number
        "Z9-9,2016,1,,,,,",  # line 4: no such indicator
        "B7-1,2016,,,,m1=1; m9=1,,",  # line 5: no such milestone
        "B7-2,2016,90,,,,,",  # line 6: engine-fed
        "B2-1,2016,3,,,,,",  # line 7: the same indicator and year twice
        "M1-1,16,1,,,,,",  # line 8: ROC year
    ]
    answer = client.post("/v1/indicators/import", content=_csv(lines), headers=planner)
    assert answer.status_code == 422, answer.text
    errors = {e["line"]: e for e in answer.json()["errors"]}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8]
    assert "not a number" in errors[3]["message"] and "Z9-9" in errors[4]["message"]
    assert "m9" in errors[5]["message"] and "coverage engine" in errors[6]["message"]
    assert "line 2" in errors[7]["message"] and "AD year" in errors[8]["message"]
    assert _count(pg_migrated) == before  # not even the good row
    metrics = client.get("/metrics").text
    assert 'zhongdu_indicator_entries_total{via="import"} 14.0' in metrics
    assert "zhongdu_indicator_import_rejected_rows_total 6.0" in metrics


def test_a_viewer_cannot_enter_or_import(client: Any) -> None:
    viewer = {"X-API-Key": make_key(client, "viewer")}
    assert client.post("/v1/indicators/import", content=_csv(YEAR_2015[:1]), headers=viewer).status_code == 403
    body = {"year": 2016, "value": 4}
    assert client.post("/v1/indicators/B2-1/actuals", json=body, headers=viewer).status_code == 403


def test_entries_are_append_only_and_corrections_say_what_they_correct(
    client: Any, planner: dict[str, str], pg_migrated: str
) -> None:
    first = client.post("/v1/indicators/B5-1/actuals", json={"year": 2016, "value": 1}, headers=planner).json()
    second = client.post(
        "/v1/indicators/B5-1/actuals",
        json={"year": 2016, "value": 2, "corrects": first["id"], "note": "漏列一件"},
        headers=planner,
    )
    assert second.status_code == 201 and second.json()["corrects"] == first["id"]
    stale = client.post(
        "/v1/indicators/B5-1/actuals", json={"year": 2016, "value": 3, "corrects": first["id"]}, headers=planner
    )
    assert stale.status_code == 409 and str(second.json()["id"]) in stale.json()["detail"]
    history = client.get("/v1/indicators/B5-1/actuals", params={"year": 2016}).json()["items"]
    assert [h["value"] for h in history] == [2, 1] and history[0]["note"] == "漏列一件"
    with psycopg.connect(pg_migrated) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE indicator_actuals SET value = 9 WHERE id = %s", (first["id"],))


def test_b7_1_attainment_follows_the_checklist(client: Any, planner: dict[str, str]) -> None:
    for done, expected in (({"m1": 1}, 0.25), ({"m1": 1, "m2": 1, "m4": 1}, 0.75)):
        answer = client.post("/v1/indicators/B7-1/actuals", json={"year": 2016, "components": done}, headers=planner)
        assert answer.status_code == 201, answer.text
        items = {i["id"]: i for i in client.get("/v1/indicators", params={"year": 2016}).json()["items"]}
        assert items["B7-1"]["attainment"] == pytest.approx(expected)
        assert items["B7-1"]["actual"]["components"] == {k: float(k in done) for k in ("m1", "m2", "m3", "m4")}


def test_amendment_review_and_lock(client: Any, planner: dict[str, str], pg_migrated: str) -> None:
    operator = {"X-API-Key": make_key(client, "operator", "研考會 管制考核組")}
    body = {"year": 2017, "new_target": 0.8, "reason": "標案大量新增", "countermeasures": "每月召開進度會報"}
    assert client.post("/v1/indicators/B4-1/amendments", json=body, headers=planner).status_code == 403
    amended = client.post("/v1/indicators/B4-1/amendments", json=body, headers=operator)
    assert amended.status_code == 201 and amended.json()["old_target"] == pytest.approx(0.87)
    no_reason = client.post("/v1/indicators/B4-1/amendments", json={**body, "reason": ""}, headers=operator)
    assert no_reason.status_code == 422
    client.post("/v1/indicators/B4-1/actuals", json={"year": 2017, "value": 82}, headers=planner)
    item = {i["id"]: i for i in client.get("/v1/indicators", params={"year": 2017}).json()["items"]}["B4-1"]
    assert item["target"] == 0.8 and item["plan_target"] == 0.87 and item["attained"] is True
    assert item["amendment"]["countermeasures"] == "每月召開進度會報"

    review = {"year": 2017, "status": "self_assessed"}
    assert client.post("/v1/indicators/B4-1/review", json=review, headers=planner).status_code == 201
    approve = {"year": 2017, "status": "approved"}
    assert client.post("/v1/indicators/B4-1/review", json=approve, headers=operator).status_code == 403
    assert client.post("/v1/indicators/B4-1/review", json=approve, headers={"X-API-Key": ADMIN_KEY}).status_code == 201
    item = {i["id"]: i for i in client.get("/v1/indicators", params={"year": 2017}).json()["items"]}["B4-1"]
    assert item["review"]["status"] == "approved"

    assert client.post("/v1/indicators/years/2017/lock", headers=operator).status_code == 403
    locked = client.post("/v1/indicators/years/2017/lock", json={"note": "106 年度評核完成"},
                         headers={"X-API-Key": ADMIN_KEY})
    assert locked.status_code == 201
    before = _count(pg_migrated)
    relock = client.post("/v1/indicators/years/2017/lock", headers={"X-API-Key": ADMIN_KEY})
    assert relock.status_code == 201 and relock.json()["note"] == "106 年度評核完成"  # the first lock stays
    assert _count(pg_migrated) == before
    refused = client.post("/v1/indicators/B4-1/actuals", json={"year": 2017, "value": 90}, headers=planner)
    assert refused.status_code == 409 and "locked" in refused.json()["detail"]
    imported = client.post("/v1/indicators/import", content=_csv(["B2-1,2017,4,,,,,"]), headers=planner)
    assert imported.status_code == 422 and "locked" in imported.json()["errors"][0]["message"]
    assert client.post("/v1/indicators/B4-1/amendments", json=body, headers=operator).status_code == 409
    assert _count(pg_migrated) == before
    assert client.get("/v1/indicators/years/2017").json()["lock"]["locked_by"]
    # the 4G value the year was evaluated on is stored with its computation, and is what it shows
    frozen = {i["id"]: i for i in client.get("/v1/indicators", params={"year": 2017}).json()["items"]}["B7-2"]
    assert frozen["actual"]["entry_id"] is not None and frozen["actual"]["source"] == "modelled"
    assert frozen["actual"]["computation"].startswith("zhongdu.coverage.indicator_4g@")
    assert frozen["actual"]["note"] == "criterion outdoor"


def test_the_report_names_every_indicator_and_the_score(client: Any) -> None:
    from pypdf import PdfReader

    score = client.get("/v1/indicators/score", params={"year": 2015}).json()
    pdf = client.get("/v1/indicators/report", params={"year": 2015, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    squeezed = text.replace(" ", "").replace("\n", "")
    for indicator_id in ("B1-1", "B2-1", "B3-1", "B4-1", "B5-1", "B6-1", "B7-1", "B7-2", "B7-3",
                         "M1-1", "M1-2", "M2-1", "M2-2", "F1-1", "F1-2"):
        assert indicator_id in squeezed, indicator_id
    assert f"總分{score['score']:.2f}/100" in squeezed
    assert "績效評核報告" in squeezed and "室外訊號" in squeezed  # Chinese text, and the 4G criterion named
    page = client.get("/v1/indicators/report", params={"year": 2015, "format": "html"})
    assert page.status_code == 200 and "<svg" in page.text and "北屯區" in page.text


def test_cli_import_refuses_a_bad_file_and_takes_a_good_one(
    pg_migrated: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZHONGDU_DATABASE_URL", pg_migrated)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv(["M2-1,2018,,1,0,,,"], bom=False))
    assert main(["indicator", "import", str(bad), "--by", "cli"]) == 1
    assert "line 2 M2-1" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_bytes(_csv(["B2-1,2018,4,,,,,", "M2-1,2018,,900,1000,,,"]))  # catalogue order
    assert main(["indicator", "import", str(good), "--by", "cli"]) == 0
    assert "imported 2 entries" in capsys.readouterr().out
    out = tmp_path / "2018.csv"
    assert main(["indicator", "export", "--year", "2018", "--out", str(out)]) == 0
    assert out.read_bytes() == good.read_bytes()
    report = tmp_path / "report.html"
    assert main(["indicator", "report", "--year", "2018", "--out", str(report)]) == 0
    assert "M2-1" in report.read_text("utf-8")


def test_a_scenario_plans_for_every_major_operator(pg_migrated: str, mqtt_url: str) -> None:
    """The planner's question: which sites bring coverage up when every major operator must reach
    a person, not just anyone's network (small city: each of its three sites is another operator's)."""

    with running_app(api_settings(pg_migrated, mqtt_url)) as live_client:
        planner = {"X-API-Key": make_key(live_client, "planner")}
        live = live_client.get("/v1/coverage").json()
        request = {
            "name": "三大業者共站", "budget": 1, "model": "disk", "operator": "every_major",
            "candidates": [{"station_id": "cand-shared", "lon": 120.64, "lat": 24.17, "radius_m": 900}],
        }
        bad = live_client.post("/v1/scenarios", json={**request, "operator": "every-major"}, headers=planner)
        assert bad.status_code == 422
        created = live_client.post("/v1/scenarios", json=request, headers=planner)
        assert created.status_code == 202, created.text
        url = f"/v1/scenarios/{created.json()['scenario_id']}"
        assert wait_for(lambda: live_client.get(url).json()["status"] in ("done", "failed"), 60)
        body = live_client.get(url).json()
        assert body["status"] == "done", body["error"]
        result = body["result"]
        assert result["operator"] == "every_major"
        assert result["share_before"] < live["share"]  # fewer people are reached by all three
        assert result["share_after"] > result["share_before"]
