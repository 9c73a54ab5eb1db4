"""Indicator entries as the commission keys them: structured indicators, the CSV form, projections."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from zhongdu.api import _indicator_entries as entries
from zhongdu.api import _indicators as ind

_loader = importlib.import_module("zhongdu.migrations.0002_indicators_104_107")


def _rows() -> dict[str, dict[str, Any]]:
    """The catalogue as the database holds it (columns + `details`), without a database."""
    out = {}
    for item in _loader.load_catalogue()["indicators"]:
        out[item["id"]] = {
            "plan_id": "p",
            "indicator_id": item["id"],
            "kind": item["kind"],
            "unit": item["unit"],
            "targets": item["targets"],
            "details": {k: v for k, v in item.items() if k not in _loader._COLUMNS},
        }
    return out


ROWS = _rows()


def test_every_indicator_has_a_structure_owner_and_frequency() -> None:
    kinds = {i: entries.structure(r) for i, r in ROWS.items()}
    assert kinds["B7-1"] == "checklist" and kinds["B6-1"] == "parts" and kinds["M1-1"] == "quota"
    assert kinds["B2-1"] == "count" and kinds["B4-1"] == "ratio"
    for indicator_id, row in ROWS.items():
        assert row["details"]["owner_agency_zh"], indicator_id
        assert row["details"]["frequency"] in ("monthly", "quarterly", "yearly"), indicator_id


def test_b7_1_checklist_follows_the_plans_work_items() -> None:
    row = ROWS["B7-1"]
    assert [len(entries.checklist_for(row, y)) for y in (2015, 2016, 2017, 2018)] == [5, 4, 4, 4]
    assert "協同合作發展平台" in entries.checklist_for(row, 2015)[0]["name_zh"]
    entry = entries.make_entry(row, 2016, components={"m1": 1, "m2": 1, "m3": 0, "m4": 1})
    assert entry.value == pytest.approx(0.75) and (entry.numerator, entry.denominator) == (3, 4)
    # an unticked milestone counts as not done; an unknown one is refused
    assert entries.make_entry(row, 2015, components={"m1": 1}).value == pytest.approx(0.2)
    with pytest.raises(entries.EntryError, match="no milestone m9"):
        entries.make_entry(row, 2016, components={"m9": 1})
    with pytest.raises(entries.EntryError, match="checklist"):
        entries.make_entry(row, 2016, value=75)


def test_b6_1_parts_cannot_hide_a_missing_training() -> None:
    row = ROWS["B6-1"]
    full = {"analysis_reports": 12, "improvement_reviews": 4, "training_evaluation": 1}
    assert entries.make_entry(row, 2016, components=full).value == 1.0
    extra = {"analysis_reports": 20, "improvement_reviews": 4, "training_evaluation": 0}
    entry = entries.make_entry(row, 2016, components=extra)
    assert entry.value == pytest.approx(16 / 17) and entry.numerator == 16 and entry.denominator == 17
    with pytest.raises(entries.EntryError, match="training_evaluation"):
        entries.make_entry(row, 2016, components={"analysis_reports": 12})


def test_m1_1_is_yes_when_both_quotas_are_met() -> None:
    row = ROWS["M1-1"]
    counts = {"disabled_employed": 30, "disabled_required": 28, "indigenous_employed": 2, "indigenous_required": 2}
    assert entries.make_entry(row, 2016, components=counts).value == 1.0
    assert entries.make_entry(row, 2016, components={**counts, "indigenous_employed": 1}).value == 0.0
    assert entries.make_entry(row, 2016, value=1).value == 1.0
    with pytest.raises(entries.EntryError, match="1 or 0"):
        entries.make_entry(row, 2016, value=0.5)


def test_ratio_value_is_in_the_plans_percent() -> None:
    assert entries.make_entry(ROWS["B4-1"], 2016, value=85).value == pytest.approx(0.85)
    assert entries.make_entry(ROWS["B4-1"], 2016, numerator=850, denominator=1000).value == pytest.approx(0.85)
    with pytest.raises(entries.EntryError, match="denominator"):
        entries.make_entry(ROWS["B4-1"], 2016, numerator=1, denominator=0)
    with pytest.raises(entries.EntryError, match="ratio"):
        entries.make_entry(ROWS["B4-1"], 2016, value=85, numerator=1, denominator=2)
    with pytest.raises(entries.EntryError, match="write 85"):  # a fraction typed into a percent
        entries.make_entry(ROWS["B4-1"], 2016, value=0.85)
    assert entries.make_entry(ROWS["B4-1"], 2016, value=0).value == 0.0


def test_baselines_quote_the_plan() -> None:
    baseline = ROWS["B4-1"]["details"]["baseline"]
    assert (baseline["numerator"], baseline["denominator"]) == (1335, 1728)
    assert "1,335" in baseline["source_zh"] and baseline["year"] == 2014
    assert ROWS["B7-3"]["details"]["baseline"]["count"] == 280


def test_csv_reads_excel_bom_and_names_bad_lines() -> None:
    text = "indicator_id,year,value,numerator,denominator,components,evidence,note\r\nB2-1,2016,4,,,,,\r\n"
    rows, errors = entries.read_csv(("\ufeff" + text).encode("utf-8"))
    assert not errors and rows[0]["indicator_id"] == "B2-1" and rows[0]["_line"] == "2"
    _, errors = entries.read_csv(b"id,year\nB2-1,2016\n")
    assert errors and "missing column(s) indicator_id" in errors[0].message
    _, errors = entries.read_csv("indicator_id,year\n".encode("big5") + "測".encode("big5"))
    assert errors and "not UTF-8" in errors[0].message
    assert entries.parse_components("m1=是; m2=否；m3=1") == {"m1": 1.0, "m2": 0.0, "m3": 1.0}
    with pytest.raises(entries.EntryError, match="key=value"):
        entries.parse_components("m1")


@pytest.mark.parametrize(
    ("indicator_id", "kwargs"),
    [
        ("B4-1", {"numerator": 1335, "denominator": 1728}),
        ("B4-1", {"value": 77.26}),
        ("B2-1", {"value": 4}),
        ("B7-1", {"components": {"m1": 1, "m2": 0, "m3": 1, "m4": 1}}),
        ("B6-1", {"components": {"analysis_reports": 11, "improvement_reviews": 4, "training_evaluation": 1}}),
        ("M1-1", {"value": 0}),
    ],
)
def test_export_cells_import_back_to_the_same_entry(indicator_id: str, kwargs: dict[str, Any]) -> None:
    row = ROWS[indicator_id]
    entry = entries.make_entry(row, 2016, evidence="105 年度績效報告", **kwargs)
    stored = {**entry.__dict__, "id": 1}
    cells = entries.export_cells(row, stored)
    again = entries.entry_from_cells(row, cells, 2016)
    assert entries.same_entry(again, stored)
    assert entries.export_cells(row, {**again.__dict__}) == cells


def test_projection_and_status() -> None:
    assert ind.project({2015: 0.6, 2016: 0.7}, 2017)["value"] == pytest.approx(0.8)  # type: ignore[index]
    assert ind.project({}, 2017) is None
    assert ind.status_of(0.5, 0.8, "higher", None) == "behind"
    assert ind.status_of(None, 0.8, "higher", {"value": 0.7}) == "at_risk"
    assert ind.status_of(None, 0.8, "higher", {"value": 0.9}) == "on_track"
    assert ind.status_of(None, 0.8, "higher", None) == "no_actual"
    assert ind.status_of(0.9, None, "higher", None) == "no_target"


def test_4g_denominators_are_the_years_own_population() -> None:
    from zhongdu.api import _population_years as pop

    june_2017, basis = pop.population_at(2017, 6)
    assert round(sum(june_2017.values())) == 2_775_618 and "2017-06" in basis  # 最小統計區 2017-06
    assert round(sum(pop.population_at(2024, 4)[0].values())) == 2_850_285  # MOI table 2024-04
    end_2015, basis = pop.population_at(2015)
    assert end_2015 == june_2017 and "held" in basis  # no district figures before 2017-06
    end_2018, basis = pop.population_at(2018)
    assert "interpolated" in basis and 2_775_618 < sum(end_2018.values()) < 2_850_285
    assert len(end_2018) == 29
    # the share follows the district weights: a district that is half covered weighs by its people
    point = {"date": "2018-12-31", "share": 0.0, "districts": [
        {"district": d, "share": 0.5 if d == "北屯區" else 1.0} for d in end_2018
    ]}
    true = pop.year_true(point, 2018)
    expected = 1.0 - 0.5 * end_2018["北屯區"] / sum(end_2018.values())
    assert true["share"] == pytest.approx(expected) and true["population_total"] == pytest.approx(sum(end_2018.values()))
    other = pop.year_true({**point, "share": 0.9, "criterion": "indoor_every_major"}, 2018)
    assert other["share"] == 0.9 and "city share" in other["method"]
