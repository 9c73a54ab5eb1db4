// The 15 plan indicators of a chosen year, the weighted score, and the 4G chart against targets.
import uPlot from "uplot";
import { getJson } from "./api.js";
import { currentLang, fmtNum, fmtPct, t } from "./i18n.js";

function fmtValue(item, v) {
  if (v == null) return "–";
  if (item.kind === "boolean" || item.kind === "yesno" || item.unit === "yes/no") return v >= 1 ? t("yes") : t("no");
  if (item.kind === "ratio") return fmtPct(v, 2);
  return fmtNum(v, 2);
}

export async function renderIndicators(root, year, state) {
  const [list, score] = await Promise.all([
    getJson("/v1/indicators", { year }),
    getJson("/v1/indicators/score", { year }),
  ]);
  state.indicators = list;
  const en = currentLang() === "en";
  const rows = list.items.map((item) => {
    const att = item.attainment;
    const bar = att == null ? "" : `<span class="bar"><span style="width:${(100 * att).toFixed(1)}%"></span></span>`;
    return `<tr data-id="${item.id}" data-target="${item.target ?? ""}" data-actual="${item.actual ? item.actual.value : ""}" data-attainment="${att ?? ""}">
      <td class="mono">${item.id}</td>
      <td>${en ? item.name_en : item.name_zh}</td>
      <td class="num">${fmtValue(item, item.target)}</td>
      <td class="num" title="${item.actual ? item.actual.source : ""}">${fmtValue(item, item.actual ? item.actual.value : null)}</td>
      <td class="num att">${att == null ? "–" : fmtPct(att, 0)}${bar}</td>
      <td class="num">${fmtNum(item.weight, 1)}</td>
    </tr>`;
  });
  root.querySelector("#indicator-table tbody").innerHTML = rows.join("");
  root.querySelector("#score").innerHTML = `${t("score")}: <b>${fmtNum(score.score, 2)}</b> / ${fmtNum(score.max_score, 0)}
    <span class="muted">(${score.indicators_with_actual}/${score.indicators_total})</span>`;
  root.querySelector("#score").dataset.score = score.score;
}

export function targetForYear(state, year) {
  const items = state.indicators ? state.indicators.items : [];
  const item = items.find((i) => i.details && i.details.actual_source === "coverage_engine");
  if (!item) return null;
  const targets = item.targets || {};
  if (targets[String(year)] != null) return { year, value: targets[String(year)] };
  const years = Object.keys(targets).map(Number).filter((y) => y <= year).sort();
  return years.length ? { year: years[years.length - 1], value: targets[String(years[years.length - 1])] } : null;
}

let chart = null;

export async function renderChart(root, state) {
  const series = await getJson("/v1/indicators/coverage-series", { days: 30 });
  state.series = series;
  const points = new Map();
  const add = (ts, col, v) => {
    if (!points.has(ts)) points.set(ts, [null, null, null]);
    points.get(ts)[col] = v;
  };
  series.modelled.forEach((p) => add(Date.parse(p.date) / 1000, 0, 100 * p.share));
  series.live.forEach((p) => add(Math.floor(Date.parse(p.time) / 1000), 1, 100 * p.share));
  const targets = (series.indicator && series.indicator.targets) || {};
  Object.entries(targets).forEach(([y, v]) => {
    add(Date.UTC(Number(y), 0, 1) / 1000, 2, 100 * v);
    add(Date.UTC(Number(y), 11, 31) / 1000, 2, 100 * v);
  });
  const xs = [...points.keys()].sort((a, b) => a - b);
  const data = [xs, [], [], []];
  // the target holds for its whole year: a flat segment per year, a gap between plan years
  const targetAt = (x) => {
    const v = targets[String(new Date(x * 1000).getUTCFullYear())];
    return v == null ? null : 100 * v;
  };
  xs.forEach((x) => { const r = points.get(x); data[1].push(r[0]); data[2].push(r[1]); data[3].push(targetAt(x)); });
  const el = root.querySelector("#chart4g");
  const width = Math.max(280, el.clientWidth || 400);
  const opts = {
    width,
    height: Math.max(160, Math.min(260, Math.round(width * 0.45))),
    scales: { y: { range: [50, 100.5] } },
    axes: [
      { stroke: "#9fb0c3", grid: { stroke: "#223048" } },
      { stroke: "#9fb0c3", grid: { stroke: "#223048" }, values: (u, v) => v.map((x) => `${x}%`), size: 50 },
    ],
    legend: { show: true },
    cursor: { show: true, drag: { x: true, y: false } },
    series: [
      { value: (u, v) => (v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 10)) },
      { label: t("modelled"), stroke: "#56b4e9", width: 2, spanGaps: true, value: (u, v) => (v == null ? "–" : `${v.toFixed(2)}%`) },
      { label: t("liveSnapshots"), stroke: "#fee838", width: 0, points: { show: true, size: 6, fill: "#fee838" }, value: (u, v) => (v == null ? "–" : `${v.toFixed(3)}%`) },
      { label: t("targets"), stroke: "#e69f00", width: 2, dash: [6, 4], spanGaps: false, points: { show: false }, value: (u, v) => (v == null ? "–" : `${v.toFixed(0)}%`) },
    ],
  };
  if (chart) chart.destroy();
  el.innerHTML = "";
  chart = new uPlot(opts, data, el);
}
