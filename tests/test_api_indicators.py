"""Plan indicators: the catalogue against the seed plan, score arithmetic, actuals through the API."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongdu.api import _indicators as ind
from zhongdu.api import state_of

from ._api_fixtures import ADMIN_KEY, api_settings, make_key, running_app

pytestmark = pytest.mark.postgres

PLAN = "taichung-rdec-midterm-104-107"

# Transcribed independently from the plan's 衡量指標 tables (tests/data): id -> (dimension, weight, kind, targets).
SEED = {
    "B1-1": ("業務", 7, "ratio", [0.75, 0.75, 0.77, 0.77]),
    "B2-1": ("業務", 7, "count", [4, 4, 4, 4]),
    "B3-1": ("業務", 10, "ratio", [0.50, 0.50, 0.50, 0.50]),
    "B4-1": ("業務", 7, "ratio", [0.83, 0.85, 0.87, 0.89]),
    "B5-1": ("業務", 7, "count", [1, 1, 1, 1]),
    "B6-1": ("業務", 7, "ratio", [1.0, 1.0, 1.0, 1.0]),
    "B7-1": ("業務", 10, "ratio", [1.0, 1.0, 1.0, 1.0]),
    "B7-2": ("業務", 10, "ratio", [0.70, 0.80, 0.90, 0.95]),
    "B7-3": ("業務", 5, "count", [85, 90, 95, 100]),
    "M1-1": ("人力", 5, "boolean", [1, 1, 1, 1]),
    "M1-2": ("人力", 5, "ratio", [0.40, 0.40, 0.40, 0.40]),
    "M2-1": ("人力", 2, "ratio", [0.80, 0.85, 0.90, 0.90]),
    "M2-2": ("人力", 3, "ratio", [0.60, 0.62, 0.64, 0.66]),
    "F1-1": ("經費", 7, "ratio", [0.80, 0.80, 0.80, 0.80]),
    "F1-2": ("經費", 8, "ratio", [0.80, 0.80, 0.80, 0.80]),
}
SEED_TEXT_SNIPPETS = {
    "B7-2": "基地台覆蓋人口數 / 本市總人口數*100%",
    "F1-1": "(經常門實支數+應付未付數+節餘數)/經常門預算數×100%",
    "B7-3": "計算方式=使用機關數*新增服務項目數。",
}


def _catalogue() -> dict[str, Any]:
    text = resources.files("zhongdu.api").joinpath("data", "indicators_104_107.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --- the catalogue file ------------------------------------------------------------------------


def test_catalogue_has_the_seed_plans_15_indicators() -> None:
    items = _catalogue()["indicators"]
    assert len(items) == 15
    dims = [i["dimension"] for i in items]
    assert (dims.count("業務"), dims.count("人力"), dims.count("經費")) == (9, 4, 2)
    assert math.isclose(sum(i["weight"] for i in items), 100.0)
    assert {i["id"] for i in items} == set(SEED)
    for item in items:
        dimension, weight, kind, targets = SEED[item["id"]]
        assert (item["dimension"], item["weight"], item["kind"]) == (dimension, weight, kind), item["id"]
        assert [item["targets"][str(y)] for y in (2015, 2016, 2017, 2018)] == targets, item["id"]
        assert item["direction"] in ("higher", "lower")
        for key in ("name_zh", "name_en", "goal_zh", "goal_en", "formula_zh", "formula_en", "unit"):
            assert item[key].strip(), (item["id"], key)


def test_goal_weights_equal_the_sum_of_their_indicators() -> None:
    by_goal: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for item in _catalogue()["indicators"]:
        by_goal.setdefault((item["dimension"], item["goal_no"]), []).append(item)
    for (dimension, goal), items in by_goal.items():
        assert sum(i["weight"] for i in items) == items[0]["goal_weight"], (dimension, goal)
    assert by_goal[("業務", 7)][0]["goal_weight"] == 25


def test_formulas_are_transcribed_from_the_seed() -> None:
    items = {i["id"]: i for i in _catalogue()["indicators"]}
    for indicator_id, snippet in SEED_TEXT_SNIPPETS.items():
        assert snippet in items[indicator_id]["formula_zh"]


def _seed_table_rows() -> list[str]:
    """The plan's 衡量指標 table lines (shipped in tests/data, copied verbatim from the seed plan)."""
    text = (Path(__file__).parent / "data" / "plan_104_107_indicator_tables.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _seed_target(cell: str, unit: str) -> float:
    number = float(re.sub(r"[^0-9.]", "", cell))
    return number / 100 if unit == "%" else number


def test_names_weights_and_targets_match_the_plans_tables() -> None:
    """Every indicator's row in the plan: its name, its weight in brackets and its four targets."""
    rows = _seed_table_rows()
    for item in _catalogue()["indicators"]:
        name = item["name_zh"].replace(" ", "")
        matches = [row for row in rows if name in row.replace(" ", "")]
        assert len(matches) == 1, (item["id"], name)
        row = matches[0]
        weight = re.search(re.escape(name) + r"\((\d+)%\)", row.replace(" ", ""))
        assert weight is not None and int(weight.group(1)) == item["weight"], item["id"]
        cells = [cell.strip() for cell in row.split("\t") if cell.strip()][-4:]
        unit = "%" if cells[0].endswith("%") else ""
        targets = [_seed_target(cell, unit) for cell in cells]
        assert targets == pytest.approx([item["targets"][str(y)] for y in range(2015, 2019)]), item["id"]


# --- arithmetic --------------------------------------------------------------------------------


def test_attainment_rules() -> None:
    assert ind.attainment(0.6, 0.8) == pytest.approx(0.75)
    assert ind.attainment(0.9, 0.8) == 1.0
    assert ind.attainment(4, 4) == 1.0  # a count target is attained by reaching it
    assert ind.attainment(3, 4) == 0.75
    assert ind.attainment(1, 1) == 1.0 and ind.attainment(0, 1) == 0.0  # yes/no
    assert ind.attainment(None, 0.8) is None and ind.attainment(0.5, None) is None
    assert ind.attainment(2.0, 1.0, "lower") == 0.5 and ind.attainment(0.5, 1.0, "lower") == 1.0
    assert ind.attained(0.95, 0.95) and not ind.attained(0.9499, 0.95)


def _row(indicator_id: str, weight: float, kind: str, target: float, dimension: str = "業務") -> dict[str, Any]:
    return {"plan_id": "p", "indicator_id": indicator_id, "dimension": dimension, "goal": "g", "name_zh": "n",
            "name_en": "n", "weight": weight, "formula": "f", "unit": "%", "direction": "higher", "kind": kind,
            "targets": {"2016": target}, "details": {}}


def test_score_by_hand() -> None:
    rows = [_row("A", 10, "ratio", 0.8), _row("B", 5, "count", 4), _row("C", 5, "boolean", 1, "人力"),
            _row("D", 80, "ratio", 0.5)]
    recorded = {"A": {"value": 0.6}, "B": {"value": 5.0}, "C": {"value": 0.0}}
    items = ind.build_indicators(rows, 2016, recorded=recorded, engine=None)
    result = ind.score(items, 2016)
    # 10 × 0.75 + 5 × 1 + 5 × 0 = 12.5 over the 20 points that have an actual; D has none.
    assert result["score"] == pytest.approx(12.5)
    assert result["weight_scored"] == 20 and result["max_score"] == 100
    assert result["indicators_with_actual"] == 3 and result["indicators_attained"] == 1
    assert result["missing"] == ["D"]
    assert result["attainment_of_reported"] == pytest.approx(62.5)
    # the score cannot be misread as full marks: it names what is missing and its weight
    assert result["weight_missing"] == 80 and result["complete"] is False
    assert "3 of 4 indicators" in result["summary_en"] and "80 weight" in result["summary_en"]
    assert "以 0 分計" in result["summary_zh"]
    dims = {d["dimension"]: d for d in result["dimensions"]}
    assert dims["人力"]["score"] == 0 and dims["業務"]["score"] == pytest.approx(12.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 20), st.floats(0, 2), st.floats(0.01, 1)), min_size=1, max_size=15))
def test_score_is_bounded_by_the_scored_weight(entries: list[tuple[float, float, float]]) -> None:
    rows = [_row(f"X{i}", w, "ratio", t) for i, (w, _, t) in enumerate(entries)]
    recorded = {f"X{i}": {"value": a} for i, (_, a, _) in enumerate(entries)}
    result = ind.score(ind.build_indicators(rows, 2016, recorded=recorded, engine=None), 2016)
    assert -1e-9 <= result["score"] <= result["weight_scored"] + 1e-6
    all_met = all(a >= t for _, a, t in entries)
    assert (result["indicators_attained"] == len(entries)) == all_met


def test_engine_actual_is_live_this_year_and_modelled_before() -> None:
    series = [{"date": "2015-06-30", "share": 0.5, "stations": 10}, {"date": "2015-12-31", "share": 0.72,
               "stations": 12, "population_covered": 72.0, "population_total": 100.0}]
    live = {"share": 0.97, "population_covered": 97.0, "population_total": 100.0, "model": "hata",
            "stations_serving": 3, "computed_at": "2026-11-26T08:00:00+00:00"}
    today = date(2026, 11, 26)
    assert ind.engine_actual(2026, today=today, live=live, series=series)["source"] == "live"  # type: ignore[index]
    past = ind.engine_actual(2015, today=today, live=live, series=series)
    assert past is not None and past["source"] == "modelled" and past["value"] == 0.72  # year-end point
    assert ind.engine_actual(2016, today=today, live=live, series=series) is None


# --- through the API ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(pg_migrated: str, mqtt_url: str) -> Any:
    with running_app(api_settings(pg_migrated, mqtt_url)) as client:
        yield client


def test_migration_loaded_the_catalogue(pg_migrated: str) -> None:
    with psycopg.connect(pg_migrated) as conn:
        rows = conn.execute("SELECT indicator_id, weight, targets FROM indicators WHERE plan_id = %s",
                            (PLAN,)).fetchall()
    assert len(rows) == 15 and math.isclose(sum(r[1] for r in rows), 100.0)
    assert {r[0]: r[2]["2018"] for r in rows}["B7-2"] == 0.95


def test_list_indicators_for_a_plan_year(client: Any) -> None:
    answer = client.get("/v1/indicators", params={"year": 2017})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["plan_id"] == PLAN and body["year"] == 2017 and len(body["items"]) == 15
    item = {i["id"]: i for i in body["items"]}["B7-2"]
    assert item["target"] == 0.90 and item["weight"] == 10 and item["formula_zh"].startswith("基地台覆蓋人口數")
    assert [i["dimension"] for i in body["items"]][:9] == ["業務"] * 9


def test_current_year_4g_actual_is_live(client: Any) -> None:
    year = datetime.now(UTC).year
    item = {i["id"]: i for i in client.get("/v1/indicators", params={"year": year}).json()["items"]}["B7-2"]
    live = state_of(client.app).live.snapshot.summary
    assert item["actual"]["source"] == "live"
    assert item["actual"]["value"] == pytest.approx(live["share"])
    assert item["target"] is None and item["attainment"] is None  # the plan has no target this year


def test_past_4g_actuals_are_the_modelled_series(client: Any) -> None:
    from zhongdu.coverage import modelled_indicator_series

    series = modelled_indicator_series()
    for year in (2015, 2016, 2017, 2018):
        year_end = max((p for p in series if p["date"].startswith(str(year))), key=lambda p: p["date"])
        item = {i["id"]: i for i in client.get("/v1/indicators", params={"year": year}).json()["items"]}["B7-2"]
        assert item["actual"]["source"] == "modelled", year
        # the year-end layout's district shares, weighted by that year's district populations
        true = ind.year_true_point(year_end, year)
        assert item["actual"]["value"] == pytest.approx(true["share"])
        assert item["actual"]["value"] == pytest.approx(year_end["share"], abs=1e-3)
        assert item["actual"]["denominator"] == pytest.approx(true["population_total"])
        assert item["attainment"] == pytest.approx(min(1.0, true["share"] / item["target"]))
        assert year_end["date"] in item["actual"]["evidence"]


def test_record_actuals_by_kind_and_score(client: Any) -> None:
    operator = make_key(client, "operator", "研考會 operator")
    headers = {"X-API-Key": operator}
    ratio = client.post("/v1/indicators/B4-1/actuals", headers=headers,
                        json={"year": 2016, "numerator": 850, "denominator": 1000, "evidence": "105 年度績效報告"})
    assert ratio.status_code == 201, ratio.text
    assert ratio.json()["value"] == pytest.approx(0.85) and ratio.json()["recorded_by"] == "研考會 operator"
    count = client.post("/v1/indicators/B2-1/actuals", headers=headers, json={"year": 2016, "count": 3})
    yes_no = client.post("/v1/indicators/M1-1/actuals", headers=headers, json={"year": 2016, "achieved": True})
    assert count.status_code == 201 and yes_no.status_code == 201
    # a later record supersedes: B2-1 becomes 4 of 4
    assert client.post("/v1/indicators/B2-1/actuals", headers=headers, json={"year": 2016, "count": 4}).status_code == 201

    body = client.get("/v1/indicators", params={"year": 2016}).json()
    items = {i["id"]: i for i in body["items"]}
    assert items["B2-1"]["actual"]["value"] == 4 and items["B2-1"]["attained"] is True
    assert items["B4-1"]["attainment"] == pytest.approx(1.0) and items["B4-1"]["actual"]["source"] == "recorded"
    assert items["B4-1"]["actual"]["evidence"] == "105 年度績效報告"

    score = client.get("/v1/indicators/score", params={"year": 2016}).json()
    engine_points = items["B7-2"]["attainment"]
    expected = 7 * 1.0 + 7 * 1.0 + 5 * 1.0 + (10 * engine_points if engine_points is not None else 0.0)
    assert score["score"] == pytest.approx(expected)
    assert score["indicators_attained"] >= 3
    history = client.get("/v1/indicators/B2-1/actuals", params={"year": 2016}).json()["items"]
    assert [h["value"] for h in history] == [4, 3]  # the audit trail, newest first


@pytest.mark.parametrize(
    ("indicator", "body", "fragment"),
    [
        ("B4-1", {"year": 2016, "count": 3}, "numerator"),
        ("B4-1", {"year": 2016, "numerator": 1, "denominator": 0}, "greater than 0"),
        ("B2-1", {"year": 2016, "numerator": 1, "denominator": 2}, "count"),
        ("M1-1", {"year": 2016, "count": 1}, "achieved"),
        ("B7-2", {"year": 2016, "numerator": 1, "denominator": 2}, "coverage engine"),
        ("B4-1", {"year": 1800, "numerator": 1, "denominator": 2}, "greater than or equal to 1990"),
        ("B4-1", {"year": 2016, "numerator": 1, "denominator": 2, "bogus": 1}, "Extra inputs"),
    ],
)
def test_bad_actuals_get_clear_422s(client: Any, indicator: str, body: dict[str, Any], fragment: str) -> None:
    operator = make_key(client, "operator")
    answer = client.post(f"/v1/indicators/{indicator}/actuals", headers={"X-API-Key": operator}, json=body)
    assert answer.status_code == 422, answer.text
    assert fragment in answer.text


def test_actuals_need_a_planner(client: Any) -> None:
    body = {"year": 2016, "count": 4}
    assert client.post("/v1/indicators/B2-1/actuals", json=body).status_code == 401
    viewer = make_key(client, "viewer")
    answer = client.post("/v1/indicators/B2-1/actuals", json=body, headers={"X-API-Key": viewer})
    assert answer.status_code == 403 and "planner" in answer.json()["detail"]
    planner = make_key(client, "planner", "研考會 planner")
    answer = client.post("/v1/indicators/B2-1/actuals", json=body, headers={"X-API-Key": planner})
    assert answer.status_code == 201 and answer.json()["recorded_by"] == "研考會 planner"
    assert client.post("/v1/indicators/B2-1/actuals", json=body,
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 201
    assert client.post("/v1/indicators/Z9-9/actuals", json=body, headers={"X-API-Key": ADMIN_KEY}).status_code == 404


def test_unknown_plan_and_year_out_of_range(client: Any) -> None:
    assert client.get("/v1/indicators", params={"plan": "no-such-plan", "year": 2016}).status_code == 422
    answer = client.get("/v1/indicators/score", params={"year": 3000})
    assert answer.status_code == 422 and "year" in answer.json()["message"]
