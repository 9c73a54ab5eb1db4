"""The commission's yearly evaluation report (年度績效評核報告), in Traditional Chinese.

One HTML document (inline SVG charts, no external resources) that the API serves as is and that
WeasyPrint turns into the PDF; the CJK glyphs come from a system font (Debian's
fonts-wqy-microhei or fonts-noto-cjk, installed by infra/test-tools.sh), so the PDF's text stays
extractable for search and for the test that reads it back.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from zhongdu import storage
from zhongdu.api import _indicators as ind
from zhongdu.errors import ZhongduError


class ReportError(ZhongduError):
    """The report cannot be printed here (a system library is missing)."""


FONT_STACK = '"WenQuanYi Micro Hei", "Noto Sans CJK TC", "Noto Sans TC", "Droid Sans Fallback", sans-serif'
STATUS_ZH = {
    "attained": "達成",
    "behind": "落後",
    "at_risk": "預估落後",
    "on_track": "預估達成",
    "no_actual": "尚無實績",
    "no_target": "無目標值",
}
REVIEW_ZH = {
    "draft": "草稿",
    "self_assessed": "機關自評",
    "reviewed": "研考會初核",
    "returned": "退回",
    "approved": "核定",
}
#: What each criterion of the 4G indicator rests on (docs/indicators.md says more).
CRITERION_ASSUMPTIONS_ZH = {
    "outdoor": "Hata 傳播模型、RSRP ≥ −110 dBm、依 NCC 各區站數模擬之站址；任一業者涵蓋即算",
    "indoor": "同上，另計 3GPP TR 38.901 建物穿透損耗（14–25 dB）",
    "capacity": "同上，另計尖峰 5% 使用者活躍、每 20 MHz 200 人之容量",
    "indoor_every_major": "室內，且中華電信、台灣大哥大、遠傳三家皆涵蓋（不論訂閱哪家）",
}
CRITERION_ZH = {
    "outdoor": "室外訊號（任一業者，-110 dBm）",
    "indoor": "室內訊號（任一業者）",
    "capacity": "容量（任一業者）",
    "indoor_every_major": "室內訊號（三大業者皆涵蓋）",
}


def criterion_zh(criterion: str) -> str:
    if criterion.startswith("indoor_") and criterion not in CRITERION_ZH:
        return f"室內訊號（{criterion.removeprefix('indoor_')}）"
    return CRITERION_ZH.get(criterion, criterion)


def collect(
    conn: psycopg.Connection[Any], items: Sequence[Mapping[str, Any]], year: int, *, criterion: str
) -> dict[str, Any]:
    """Everything the report shows, gathered once: items, score, trends, lock, 4G by district."""
    plan_id = str(items[0]["plan_id"]) if items else ""
    trends: dict[str, dict[int, float]] = {}
    for entry in storage.queries.latest_indicator_actuals_all_years(conn, plan_id):
        trends.setdefault(str(entry["indicator_id"]), {})[int(entry["year"])] = float(entry["value"])
    districts: list[dict[str, Any]] = []
    for item in items:
        if (item.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE:
            from zhongdu.api._indicator_service import modelled_series

            series = modelled_series(criterion)
            for point_year in range(year - 4, year + 1):
                point = ind.modelled_for_year(series, point_year)
                if point is not None:
                    true = ind.year_true_point(point, point_year)
                    trends.setdefault(str(item["id"]), {})[point_year] = float(true["share"])
            point = ind.modelled_for_year(modelled_series("outdoor"), year)
            districts = list((point or {}).get("districts") or [])
    criteria: list[dict[str, Any]] = []
    engine_item = next(
        (i for i in items if (i.get("details") or {}).get("actual_source") == ind.COVERAGE_SOURCE), None
    )
    if engine_item is not None:
        from zhongdu.api._indicator_service import modelled_series

        for name in (
            "outdoor",
            "indoor",
            "indoor_every_major",
            "capacity",
            "indoor_CHT",
            "indoor_TWM",
            "indoor_FET",
        ):
            point = ind.modelled_for_year(modelled_series(name), year)
            if point is None:
                continue
            share = float(ind.year_true_point(point, year)["share"])
            criteria.append(
                {
                    "criterion": name,
                    "share": share,
                    "attainment": ind.attainment(share, engine_item["target"]),
                    "scored": name == criterion,
                }
            )
    lock = storage.queries.year_lock(conn, plan_id, year) if plan_id else None
    return {
        "plan_id": plan_id,
        "year": year,
        "criterion": criterion,
        "items": list(items),
        "score": ind.score(items, year, criterion=criterion),
        "trends": trends,
        "districts": districts,
        "criteria": criteria,
        "lock": lock,
        "generated_at": datetime.now(UTC),
    }


def _pct(value: float | None, unit: str, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "boolean" or unit == "是/否":
        return "是" if value >= 0.5 else "否"
    if unit == "%":
        return f"{100 * value:.2f}%"
    return f"{value:g} {unit}"


def trend_svg(points: Mapping[int, float], target: Mapping[str, float], unit: str) -> str:
    """A small line chart of the actuals (dots joined) against the targets (dashes), per year."""
    years = sorted({*points, *(int(y) for y in target)})
    if not years:
        return ""
    values = [*points.values(), *target.values()]
    top = max([*values, 1e-9]) * 1.1
    w, h, pad = 220, 70, 18

    def xy(year: int, value: float) -> tuple[float, float]:
        span = max(1, years[-1] - years[0])
        return pad + (w - 2 * pad) * (year - years[0]) / span, h - pad - (h - 2 * pad) * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    tgt = [xy(int(y), v) for y, v in sorted(target.items(), key=lambda kv: int(kv[0]))]
    if tgt:
        parts.append(
            '<polyline fill="none" stroke="#999" stroke-dasharray="4 3" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in tgt)
            + '"/>'
        )
    act = [xy(y, v) for y, v in sorted(points.items())]
    if act:
        parts.append(
            '<polyline fill="none" stroke="#1f5fa8" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in act)
            + '"/>'
        )
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1f5fa8"/>' for x, y in act)
    for year in years:
        x, _ = xy(year, 0)
        parts.append(f'<text x="{x:.1f}" y="{h - 4}" font-size="8" text-anchor="middle">{year - 1911}</text>')
    parts.append("</svg>")
    return "".join(parts)


def district_svg(districts: Sequence[Mapping[str, Any]]) -> str:
    """The 4G share per district as bars, lowest first: where the coverage is short stands out."""
    rows = sorted(districts, key=lambda d: float(d["share"]))
    if not rows:
        return ""
    bar_h, w, label = 13, 520, 70
    h = bar_h * len(rows) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    for i, row in enumerate(rows):
        share = float(row["share"])
        y = 5 + i * bar_h
        length = (w - label - 60) * share
        colour = "#1f8a4c" if share >= 0.95 else "#e0a100" if share >= 0.8 else "#c0392b"
        parts.append(f'<text x="0" y="{y + 10}" font-size="10">{html.escape(str(row["district"]))}</text>')
        parts.append(
            f'<rect x="{label}" y="{y + 2}" width="{length:.1f}" height="{bar_h - 4}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{label + length + 4:.1f}" y="{y + 10}" font-size="9">{100 * share:.1f}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def district_map_svg(districts: Sequence[Mapping[str, Any]]) -> str:
    """The 4G share per district on the district outlines (shipped source data), as inline SVG;
    empty when the outlines cannot be read, so the report still prints with the bars alone."""
    if not districts:
        return ""
    try:

        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap

        from zhongdu.coverage._grid_build import read_source_geojson, source_dir_or_default

        gdf = read_source_geojson(source_dir_or_default(None), "taichung_districts.geojson")
    except Exception:  # a map is a nicety: missing source data must not stop the report
        return ""
    shares = {str(d["district"]): 100 * float(d["share"]) for d in districts}
    gdf = gdf.assign(share=[shares.get(str(n)) for n in gdf["name_zh"]])
    bounds = [0, 70, 80, 90, 95, 99, 99.9, 100.01]
    cmap = ListedColormap(["#c0392b", "#e0a100", "#f1c40f", "#a3d977", "#4caf50", "#1f8a4c", "#0b5d33"])
    fig, ax = plt.subplots(figsize=(6.2, 3.6), dpi=72)
    gdf.plot(
        column="share",
        ax=ax,
        cmap=cmap,
        norm=BoundaryNorm(bounds, cmap.N),
        edgecolor="#555",
        linewidth=0.4,
        legend=True,
        legend_kwds={"shrink": 0.7, "label": "%"},
        missing_kwds={"color": "#ddd"},
    )
    ax.set_axis_off()
    return inline_svg(fig)


def inline_svg(fig: Any) -> str:
    """A matplotlib figure as an `<svg>` element to inline in a page (no XML prolog); closes it."""
    import io

    from matplotlib import pyplot as plt

    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (the PDF is this page, printed)."""
    e = html.escape
    year = int(report["year"])
    score = report["score"]
    items = report["items"]
    lock = report["lock"]
    roc = year - 1911
    rows = []
    for item in items:
        actual = item.get("actual") or {}
        review = item.get("review") or {}
        amendment = item.get("amendment")
        evidence = actual.get("evidence") or ""
        note = actual.get("note") or ""
        target_text = _pct(item["target"], item["unit"], item["kind"])
        if amendment:
            target_text += (
                f"<br><small>（修正自 {_pct(amendment.get('old_target'), item['unit'], item['kind'])}；"
                f"原因：{e(str(amendment['reason']))}；因應對策：{e(str(amendment['countermeasures']))}）</small>"
            )
        baseline = (item.get("details") or {}).get("baseline")
        if baseline:
            roc_year = int(baseline["year"]) - 1911
            target_text += f"<br><small>基準值（{roc_year} 年）：{_baseline_text(baseline, item)}</small>"
        attainment = "–" if item["attainment"] is None else f"{100 * item['attainment']:.1f}%"
        projection = item.get("projection")
        if item["attainment"] is None and projection and projection.get("attainment") is not None:
            attainment += f"<br><small>趨勢預估 {100 * projection['attainment']:.1f}%</small>"
        components = actual.get("components") or {}
        names = _component_names(item)
        comp_text = "；".join(f"{e(names.get(str(k), str(k)))} {v:g}" for k, v in components.items())
        owner = e(item.get("owner_agency_zh") or "")
        recorded_by = actual.get("recorded_by")
        computation = actual.get("computation")
        trend = trend_svg(report["trends"].get(str(item["id"]), {}), item["targets"], item["unit"])
        rows.append(
            f'<tr class="{e(item["status"])}"><td><b>{e(item["id"])}</b><br>{e(item["name_zh"])}'
            f"<br><small>{owner}・{e(_freq_zh(item.get('frequency')))}</small></td>"
            f"<td>{item['weight']:g}</td><td>{target_text}</td>"
            f"<td>{_pct(actual.get('value'), item['unit'], item['kind'])}"
            + (f"<br><small>{comp_text}</small>" if comp_text else "")
            + f"</td><td>{attainment}</td><td>{STATUS_ZH.get(item['status'], item['status'])}</td>"
            f"<td><small>{e(evidence)}{'<br>' + e(note) if note else ''}"
            f"{'<br>' + e(str(recorded_by)) if recorded_by else ''}"
            f"{'<br>計算：' + e(str(computation)) if computation else ''}</small></td>"
            f"<td><small>{REVIEW_ZH.get(str(review.get('status')), '未送審')}</small></td>"
            f"<td>{trend}</td></tr>"
        )
    dims = "".join(
        f"<tr><td>{e(d['dimension'])}</td><td>{d['score']:.2f} / {d['weight']:g}</td>"
        f"<td>{d['weight_scored']:g}</td></tr>"
        for d in score["dimensions"]
    )
    criteria_rows = "".join(
        f"<tr><td>{e(criterion_zh(str(c['criterion'])))}{'（評分準則）' if c['scored'] else ''}</td>"
        f"<td>{100 * c['share']:.2f}%</td>"
        f"<td>{_fraction_pct(c['attainment'])}</td>"
        f"<td><small>{e(_assumption_zh(str(c['criterion'])))}</small></td></tr>"
        for c in report.get("criteria") or []
    )
    missing = "、".join(score["missing"]) or "無"
    behind = "、".join(score["behind"]) or "無"
    district_note = (
        "依各行政區 4G 涵蓋率（模擬值，室外訊號準則；依國家通訊傳播委員會各區基地台數）排序，低者在前。"
        if report["districts"]
        else "本年度無各區模擬資料。"
    )
    lock_text = (
        f"本年度已於 {lock['locked_at']:%Y-%m-%d} 由 {e(str(lock['locked_by']))} 鎖定（評核完成）。"
        if lock
        else "本年度尚未鎖定：數值仍可能更正。"
    )
    return f"""<!doctype html>
<html lang="zh-Hant"><head><meta charset="utf-8">
<title>{roc} 年度中程施政計畫衡量指標績效評核報告</title>
<style>
@page {{ size: A4 landscape; margin: 12mm; }}
body {{ font-family: {FONT_STACK}; font-size: 10pt; color: #222; }}
h1 {{ font-size: 16pt; margin: 0 0 4pt; }} h2 {{ font-size: 12pt; margin: 12pt 0 4pt; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #bbb; padding: 3pt 4pt; vertical-align: top; text-align: left; }}
th {{ background: #eef2f7; white-space: nowrap; }} small {{ color: #555; }}
td:nth-child(1) {{ width: 17%; }} td:nth-child(6), td:nth-child(8) {{ white-space: nowrap; }}
td:nth-child(7) {{ width: 22%; overflow-wrap: anywhere; }}
tr.behind td:first-child, tr.at_risk td:first-child {{ border-left: 4pt solid #c0392b; }}
tr.attained td:first-child {{ border-left: 4pt solid #1f8a4c; }}
.score {{ font-size: 14pt; font-weight: bold; }}
</style></head><body>
<h1>臺中市政府研究發展考核委員會　{roc} 年度（{year}）中程施政計畫衡量指標績效評核報告</h1>
<p>計畫：{e(report["plan_id"])}　產製時間：{report["generated_at"]:%Y-%m-%d %H:%M} UTC　{lock_text}</p>
<h2>一、加權總分</h2>
<p class="score">總分 {score["score"]:.2f} / {score["max_score"]:g}</p>
<p>{e(score["summary_zh"])}</p>
<p>尚無實績值之指標：{e(missing)}　落後或預估落後之指標：{e(behind)}
　趨勢預估總分：{score["projected_score"]:.2f}</p>
<p>4G 指標（B7-2）評分準則：{e(criterion_zh(report["criterion"]))}（{e(report["criterion"])}）。
其他準則（室內、各業者、三大業者皆涵蓋、容量）之值與假設列於下表，僅供參考，不計入總分。</p>
<table><tr><th>面向</th><th>得分 / 權重</th><th>已有實績之權重</th></tr>{dims}</table>
<h2>4G 指標（B7-2）各準則之值（模擬，年底人口為分母）</h2>
<table><tr><th>準則</th><th>涵蓋率</th><th>達成度</th><th>假設</th></tr>{criteria_rows}</table>
<h2>二、各項指標</h2>
<table><tr><th>指標</th><th>權重</th><th>目標值</th><th>實績值</th><th>達成度</th><th>狀態</th>
<th>佐證資料・備註・填報人</th><th>審核</th><th>趨勢（虛線：目標）</th></tr>
{"".join(rows)}</table>
<h2>三、4G 基地台人口涵蓋率（各行政區）</h2>
<p>{district_note}</p>
<div style="display:flex; gap:12pt; align-items:flex-start">
<div>{district_map_svg(report["districts"])}</div><div>{district_svg(report["districts"])}</div></div>
</body></html>"""


def _component_names(item: Mapping[str, Any]) -> dict[str, str]:
    """Chinese names of an entry's components: the year's milestones or the indicator's parts."""
    details = item.get("details") or {}
    parts = list(details.get("components") or []) + list(
        (details.get("checklist") or {}).get(str(item.get("year"))) or []
    )
    return {str(p["key"]): str(p["name_zh"]) for p in parts if "key" in p}


def _baseline_text(baseline: Mapping[str, Any], item: Mapping[str, Any]) -> str:
    """The plan's quoted baseline in the indicator's unit (its sentence is in the catalogue)."""
    if baseline.get("numerator") is not None and baseline.get("denominator"):
        share = float(baseline["numerator"]) / float(baseline["denominator"])
        return f"{baseline['numerator']:,} / {baseline['denominator']:,} = {100 * share:.2f}%"
    if baseline.get("count") is not None:
        other = "（另一口徑，僅供參考）" if baseline.get("note") else ""
        return f"{baseline['count']:,} {item.get('unit', '')}{other}"
    return "–"


def _fraction_pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _assumption_zh(criterion: str) -> str:
    if criterion in CRITERION_ASSUMPTIONS_ZH:
        return CRITERION_ASSUMPTIONS_ZH[criterion]
    return f"室內，僅計 {criterion.removeprefix('indoor_')} 之基地台（依其站址占比）"


def _freq_zh(frequency: Any) -> str:
    return {"monthly": "每月填報", "quarterly": "每季填報", "yearly": "每年填報"}.get(
        str(frequency), str(frequency)
    )


def to_pdf(document: str) -> bytes:
    """The HTML printed to PDF by WeasyPrint (imported here: it loads Pango, a slow first import)."""
    import logging

    for name in ("weasyprint", "weasyprint.progress", "fontTools"):  # narrates layout, warns on SVG CSS
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from weasyprint import HTML
    except OSError as exc:  # Pango missing: the HTML form still works
        raise ReportError(
            f"the PDF needs Pango (Debian libpango-1.0-0, libpangoft2-1.0-0): {exc}; "
            "ask for format=html, or install it"
        ) from exc

    pdf: bytes = HTML(string=document).write_pdf()
    return pdf
