"""A finished scenario's picks as files for a meeting: CSV (Excel reads it with the BOM), GeoJSON,
and a one-page A4 PDF in Chinese or English (summary, a map of the picks on the districts, the
table). The CSV and GeoJSON use the candidate file's columns, so uploaded again they plan alike.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Mapping
from typing import Any

CSV_COLUMNS = (
    "order",
    "id",
    "name",
    "lat",
    "lng",
    "district",
    "cost",
    "height",
    "kind",
    "people_added",
    "share_after",
)
PDF_ROWS = 22  # what fits one A4 page under the map; the rest are in the CSV

TEXT = {
    "zh": {
        "title": "基地臺建議站址情境",
        "scenario": "情境",
        "criterion": "涵蓋標準",
        "operator": "業者",
        "goal": "目標",
        "candidates": "候選站址",
        "picks": "建議站址數",
        "cost": "總成本",
        "added": "新增涵蓋人口",
        "share": "涵蓋率",
        "order": "順序",
        "site": "站址",
        "name": "名稱",
        "district": "行政區",
        "lat": "緯度",
        "lng": "經度",
        "gain": "新增人口",
        "after": "累計涵蓋率",
        "more": "另 {n} 站見 CSV 匯出檔",
        "outdoor": "室外",
        "indoor": "室內",
        "any": "任一業者",
        "every_major": "三大業者皆涵蓋",
        "target": "涵蓋率 {v}",
        "budget": "至多 {v} 站",
        "max_cost": "成本上限 {v}",
        "rank": "依序排列全部候選站址",
        "already": "目標已達成，不需新增站址。",
        "unreachable": "以這些候選站址無法達到目標：全部建置最多 {v}。",
        "fewer": "只需 {n} 站（預算 {b}）：其餘候選站址不再增加涵蓋人口。",
        "note": "備註",
        "base": "依據",
        "pick_cost": "成本",
        "serving_at": "{t} 服務中之基地臺",
    },
    "en": {
        "title": "Base-station placement scenario",
        "scenario": "Scenario",
        "criterion": "Criterion",
        "operator": "Operator",
        "goal": "Goal",
        "candidates": "Candidate sites",
        "picks": "Sites proposed",
        "cost": "Total cost",
        "added": "People added",
        "share": "Share",
        "order": "#",
        "site": "Site",
        "name": "Name",
        "district": "District",
        "lat": "Latitude",
        "lng": "Longitude",
        "gain": "People added",
        "after": "Share after",
        "more": "{n} more sites in the CSV export",
        "outdoor": "outdoor",
        "indoor": "indoor",
        "any": "any operator",
        "every_major": "every major operator",
        "target": "share {v}",
        "budget": "at most {v} sites",
        "max_cost": "cost at most {v}",
        "rank": "rank every candidate",
        "already": "The target is already met: no site is needed.",
        "unreachable": "These candidates cannot reach the target: building them all gives at most {v}.",
        "fewer": "{n} sites suffice (budget {b}): the other candidates add no one.",
        "note": "Note",
        "base": "Basis",
        "pick_cost": "Cost",
        "serving_at": "stations serving at {t}",
    },
}


def file_stem(row: Mapping[str, Any]) -> str:
    """A file name from the scenario's name (ASCII, so every browser keeps it) and id."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", str(row.get("name") or "")).strip("-")[:40]
    return f"{row['scenario_id']}-{name}" if name else str(row["scenario_id"])


def picks(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The picks with their sites' coordinates; a scenario stored before picks carried them takes
    them from its request's candidates."""
    result = row.get("result") or {}
    sites: dict[str, Mapping[str, Any]] = {}
    for cand in (row.get("request") or {}).get("candidates") or ():
        sites.setdefault(str(cand["station_id"]), cand)
    out = []
    for order, pick in enumerate(result.get("picks") or (), start=1):
        site = sites.get(str(pick["station_id"]), {})
        out.append(
            {
                "order": order,
                "id": pick["station_id"],
                "name": pick.get("name", site.get("name")),
                "lat": pick.get("lat", site.get("lat")),
                "lng": pick.get("lng", site.get("lon")),
                "district": pick.get("district", ""),
                "cost": pick.get("cost"),
                "height": pick.get("height", site.get("height_m", 30.0)),
                "kind": pick.get("kind") or site.get("kind") or "",
                "people_added": pick.get("gain"),
                "share_after": pick.get("share"),
            }
        )
    return out


def to_csv(row: Mapping[str, Any], *, bom: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # Excel's own line ends
    writer.writerow(CSV_COLUMNS)
    for pick in picks(row):
        writer.writerow(["" if pick[c] is None else _cell(pick[c]) for c in CSV_COLUMNS])
    return ("\ufeff" if bom else "").encode() + buffer.getvalue().encode()


def _cell(value: Any) -> str:
    # repr keeps every digit of a coordinate, so a re-upload plans on the very same points
    return repr(value) if isinstance(value, float) else str(value)


def to_geojson(row: Mapping[str, Any]) -> bytes:
    features = [
        {
            "type": "Feature",
            "id": p["id"],
            "geometry": {"type": "Point", "coordinates": [p["lng"], p["lat"]]},
            "properties": {k: v for k, v in p.items() if k not in ("lat", "lng")},
        }
        for p in picks(row)
    ]
    doc = {
        "type": "FeatureCollection",
        "name": row.get("name"),
        "scenario_id": row["scenario_id"],
        "features": features,
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()


def _pct(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


def _int(value: Any) -> str:
    return "–" if value is None else f"{float(value):,.0f}"


def answer(row: Mapping[str, Any], lang: str) -> str:
    """The plain answer the page gives: already met, unreachable, or fewer sites than the budget."""
    tx, result = TEXT[lang], row.get("result") or {}
    target, shown = result.get("target"), picks(row)
    if target is not None and result.get("share_before", 0) >= target:
        return tx["already"]
    if target is not None and result.get("target_feasible") is False:
        return tx["unreachable"].format(v=_pct(result.get("best_reachable_share")))
    budget = result.get("budget")
    if budget is not None and len(shown) < budget:
        return tx["fewer"].format(n=len(shown), b=budget)
    return ""


def goal_text(row: Mapping[str, Any], lang: str) -> str:
    tx, request = TEXT[lang], row.get("request") or {}
    parts = []
    if request.get("target_share") is not None:
        parts.append(tx["target"].format(v=_pct(request["target_share"], 2)))
    if request.get("budget") is not None:
        parts.append(tx["budget"].format(v=request["budget"]))
    if request.get("max_cost") is not None:
        parts.append(tx["max_cost"].format(v=request["max_cost"]))
    return ", ".join(parts) or tx["rank"]


def map_svg(shown: list[dict[str, Any]]) -> str:
    """The picks, numbered, on the district outlines (matplotlib, inline SVG); empty when the
    outlines cannot be read, so the page still prints with its table."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        from zhongdu.coverage._grid_build import read_source_geojson, source_dir_or_default

        gdf = read_source_geojson(source_dir_or_default(None), "taichung_districts.geojson")
    except Exception:  # a map is a nicety: missing source data must not stop the export
        return ""
    # ~50 m: invisible at this size, and the page stays a few hundred KiB rather than the source's MB
    gdf = gdf.assign(geometry=gdf.geometry.simplify(0.0005))
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=72)
    gdf.plot(ax=ax, color="#eeeeee", edgecolor="#777777", linewidth=0.4)
    if shown:
        lng = [p["lng"] for p in shown]
        lat = [p["lat"] for p in shown]
        ax.scatter(lng, lat, s=22, c="#d55e00", edgecolors="black", linewidths=0.5, zorder=3)
        for p in shown[:PDF_ROWS]:
            ax.annotate(
                str(p["order"]), (p["lng"], p["lat"]), xytext=(3, 3), textcoords="offset points", fontsize=6
            )
        # the picks' neighbourhood, not the mountains: Taichung is 100 km wide, the picks a few km apart
        pad = 0.03
        ax.set_xlim(min(lng) - pad, max(lng) + pad)
        ax.set_ylim(min(lat) - pad, max(lat) + pad)
    ax.set_aspect(1 / 0.913)  # cos(24.2°): true shape at Taichung's latitude
    ax.set_axis_off()
    from zhongdu.api._indicator_report import inline_svg

    return inline_svg(fig)


def render_html(row: Mapping[str, Any], lang: str) -> str:
    from zhongdu.api._indicator_report import FONT_STACK

    tx, result, request = TEXT[lang], row.get("result") or {}, row.get("request") or {}
    shown = picks(row)
    esc = html.escape
    criterion = tx.get(str(result.get("criterion", "outdoor")), str(result.get("criterion")))
    operator = str(result.get("operator") or "any")
    operator = tx.get(operator, operator)
    people = (result.get("covered_after") or 0) - (result.get("covered_before") or 0)
    source = request.get("candidate_source")
    candidates = result.get("candidate_sites") or len(
        {c["station_id"] for c in request.get("candidates") or ()}
    )
    plain = answer(row, lang)
    summary = [
        (tx["criterion"], f"{criterion} · {operator}"),
        (tx["goal"], goal_text(row, lang)),
        (tx["candidates"], f"{candidates:,}" + (f" (H3 r{source['resolution']})" if source else "")),
        (tx["picks"], f"{len(shown):,}"),
        (tx["cost"], _int(result.get("total_cost"))),
        (tx["added"], _int(people)),
        (tx["share"], f"{_pct(result.get('share_before'))} → {_pct(result.get('share_after'))}"),
    ]
    rows = "".join(
        f"<tr><td>{p['order']}</td><td>{esc(str(p['id']))}</td><td>{esc(str(p['name'] or ''))}</td>"
        f"<td>{esc(str(p['district'] or ''))}</td><td>{p['lat']:.5f}</td><td>{p['lng']:.5f}</td>"
        f"<td>{_int(p['cost'])}</td><td>{_int(p['people_added'])}</td><td>{_pct(p['share_after'])}</td></tr>"
        for p in shown[:PDF_ROWS]
    )
    more = (
        f"<p class='muted'>{esc(tx['more'].format(n=len(shown) - PDF_ROWS))}</p>"
        if len(shown) > PDF_ROWS
        else ""
    )
    note = f"<p>{esc(tx['note'])}：{esc(str(row['note']))}</p>" if row.get("note") else ""
    # `base` is "stations serving at <ISO time>": the time, in the page's words
    served_at = str(result.get("base", "")).removeprefix("stations serving at ")[:16].replace("T", " ")
    subtitle = " · ".join(
        (
            f"{tx['scenario']} {row['scenario_id']}",
            str(row.get("finished_at") or "")[:19],
            f"{tx['base']}: {tx['serving_at'].format(t=served_at)}",
        )
    )
    heads = "".join(f"<th>{esc(tx[k])}</th>" for k in TABLE_KEYS)
    facts = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in summary)
    plain_html = f'<p class="answer">{esc(plain)}</p>' if plain else ""
    title = f"{tx['title']}：{row.get('name') or row['scenario_id']}"
    return f"""<!doctype html><html lang="{"zh-Hant" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<title>{esc(title)}</title><style>{CSS.replace("FONTS", FONT_STACK)}</style></head><body>
<h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p>{note}{plain_html}
<table class="summary">{facts}</table>
{map_svg(shown)}
<table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>{more}
</body></html>"""


TABLE_KEYS = ("order", "site", "name", "district", "lat", "lng", "pick_cost", "gain", "after")
CSS = """
@page { size: A4; margin: 12mm; }
body { font-family: FONTS; font-size: 9pt; color: #222; }
h1 { font-size: 14pt; margin: 0 0 2pt; } .muted { color: #666; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 0.5pt solid #ccc; padding: 1.5pt 3pt; text-align: left; }
table.summary td:first-child { color: #555; width: 30%; } .answer { font-weight: bold; }
svg { width: 100%; height: auto; max-height: 80mm; }
"""


def to_pdf(row: Mapping[str, Any], *, lang: str = "zh") -> bytes:
    from zhongdu.api._indicator_report import to_pdf as print_pdf

    return print_pdf(render_html(row, lang))
