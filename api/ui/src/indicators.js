// The 15 plan indicators of a chosen year, the weighted score, and the 4G chart against targets.
import { loadUplot } from "./lazy.js";
import { getJson } from "./api.js";
import { CRITERION_COLOURS, LIVE_COLOUR, TARGET_COLOUR } from "./colours.js";
import { currentLang, fmtNum, fmtPct, t } from "./i18n.js";

function fmtValue(item, v) {
  if (v == null) return "–";
  if (item.kind === "boolean" || item.kind === "yesno" || item.unit === "yes/no") return v >= 1 ? t("yes") : t("no");
  if (item.kind === "ratio") return fmtPct(v, 2);
  return fmtNum(v, 2);
}

// The criteria of the engine-fed 4G indicator the page offers: coverage/_indicator.py's
// SERIES_CRITERIA (the API's `modelled_by_criterion` keys; a test checks they agree).
export const CRITERIA = ["outdoor", "indoor", "capacity", "indoor_every_major"];

export function criterionOptions(root, state) {
  root.querySelector("#criterion").innerHTML = CRITERIA.map((c) => `<option value="${c}" ${c === state.criterion ? "selected" : ""}>${t("crit_" + c)}</option>`).join("");
  const note = root.querySelector("#criterion-note");
  note.textContent = t("critNote_" + state.criterion);
  note.dataset.criterion = state.criterion;
}

let ticket = 0; // the latest request wins when year or criterion change faster than the API answers

export async function renderIndicators(root, year, state) {
  const criterion = state.criterion;
  const mine = ++ticket;
  const [list, score, cycle] = await Promise.all([
    getJson("/v1/indicators", { year, criterion }),
    getJson("/v1/indicators/score", { year, criterion }),
    getJson(`/v1/indicators/years/${year}`).catch(() => null),
  ]);
  if (mine !== ticket) return;
  list.criterion = criterion;
  state.indicators = list;
  state.indicatorCycle = cycle;
  const en = currentLang() === "en";
  const rows = list.items.map((item) => {
    const att = item.attainment;
    const bar = att == null ? "" : `<span class="bar"><span style="width:${(100 * att).toFixed(1)}%"></span></span>`;
    const flag = item.status === "behind" || item.status === "at_risk"
      ? ` <span class="flag ${item.status}" title="${t("flag_" + item.status)}">▼</span>` : "";
    return `<tr data-id="${item.id}" data-target="${item.target ?? ""}" data-actual="${item.actual ? item.actual.value : ""}" data-attainment="${att ?? ""}" data-status="${item.status}" class="st-${item.status}">
      <td class="mono">${item.id}${flag}</td>
      <td>${en ? item.name_en : item.name_zh}</td>
      <td class="num">${fmtValue(item, item.target)}</td>
      <td class="num" title="${item.actual ? item.actual.source : ""}">${fmtValue(item, item.actual ? item.actual.value : null)}</td>
      <td class="num att">${att == null ? "–" : fmtPct(att, 0)}${bar}</td>
      <td class="num">${fmtNum(item.weight, 1)}</td>
      <td><button type="button" class="enter" data-enter="${item.id}">${t("enter")}</button></td>
    </tr>`;
  });
  const tbody = root.querySelector("#indicator-table tbody");
  tbody.innerHTML = rows.join("");
  tbody.querySelectorAll("button.enter").forEach((b) => b.addEventListener("click", () => {
    // the entry form is the desk's: its chunk loads on the first click
    import("./indicator_form.js")
      .then(({ openEntryForm }) => openEntryForm(root, state, b.dataset.enter, () => renderIndicators(root, state.year, state)))
      .catch((err) => console.warn(err));
  }));
  const recorded = score.criterion_4g_recorded;
  const other = recorded && criterion !== recorded ? ` — ${t("viewingOther")}` : "";
  // a year the plan set no target for has no score to speak of: say so instead of "0 / 100"
  const targetless = !list.items.some((item) => item.target != null);
  const scoreText = targetless ? `<b id="no-targets">${t("noTargetsYear")}</b>`
    : `<b>${fmtNum(score.score, 2)}</b> / ${fmtNum(score.max_score, 0)}
    <span class="muted">(${score.indicators_with_actual}/${score.indicators_total})</span>
    <br><span class="note" id="score-summary">${en ? score.summary_en : score.summary_zh}</span>`;
  root.querySelector("#score").innerHTML = `${t("score")}: ${scoreText}
    ${cycle && cycle.lock ? `<br><span class="note" id="year-lock">${t("locked")}: ${cycle.lock.locked_by} ${new Date(cycle.lock.locked_at).toLocaleDateString()}</span>` : ""}
    <br><span class="note" id="score-criterion" data-criterion="${recorded || ""}">${t("scoredOn")}: ${t("crit_" + (recorded || criterion))} (${t("recordedChoice")})${other}</span>`;
  root.querySelector("#score").dataset.score = score.score;
  renderSummary(root, year, list, score, targetless);
  const exportLink = root.querySelector("#export-csv");
  if (exportLink) exportLink.href = `/v1/indicators/export?year=${year}&format=csv`;
  const reportLink = root.querySelector("#report-pdf");
  if (reportLink) reportLink.href = `/v1/indicators/report?year=${year}&format=pdf`;
}

// The wall's summary: the weighted score and the 4G indicator against its target, no form.
const FOURG = "B7-2"; // the engine-fed 4G indicator

function renderSummary(root, year, list, score, targetless) {
  const el = root.querySelector("#indicator-summary");
  if (!el) return;
  const item = list.items.find((i) => i.id === FOURG);
  const actual = item && item.actual ? item.actual.value : null;
  const scoreText = targetless ? t("noTargetsYear") : `${fmtNum(score.score, 2)} <small>/ ${fmtNum(score.max_score, 0)}</small>`;
  el.dataset.score = targetless ? "" : score.score;
  el.dataset.actual = actual ?? "";
  el.dataset.target = item && item.target != null ? item.target : "";
  el.innerHTML = `<div class="sum-figure"><span>${t("score")} ${year}</span><b id="sum-score">${scoreText}</b></div>
    <div class="sum-figure ${item && item.status ? "st-" + item.status : ""}"><span>${t("fourG")} · ${t("crit_" + list.criterion)}</span>
      <b id="sum-4g">${actual == null ? "–" : fmtPct(actual, 2)}</b>
      <small>${t("target")} ${item && item.target != null ? fmtPct(item.target, 0) : "–"}</small></div>`;
}

// Lock the shown year (an admin key): asks first, since a lock is final.
export async function lockYear(root, state) {
  const status = root.querySelector("#import-status");
  const key = sessionStorage.getItem("zd-planner-key") || (root.querySelector("#planner-key") || {}).value || "";
  if (!key) { status.textContent = t("needKey"); return; }
  if (!window.confirm(`${t("lockYear")}: ${state.year}?`)) return;
  const answer = await fetch(`/v1/indicators/years/${state.year}/lock`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-API-Key": key },
    body: "{}",
  });
  const body = await answer.json();
  status.textContent = answer.ok ? t("locked") : `${t("failed")}: ${body.detail || body.message}`;
  await renderIndicators(root, state.year, state);
}

// Upload a CSV with the planner key; the answer names every bad line (nothing is imported then).
export async function importCsv(root, state, file) {
  const status = root.querySelector("#import-status");
  const key = sessionStorage.getItem("zd-planner-key") || (root.querySelector("#planner-key") || {}).value || "";
  if (!key) { status.textContent = t("needKey"); return; }
  const answer = await fetch("/v1/indicators/import", {
    method: "POST",
    headers: { "Content-Type": "text/csv", Accept: "application/json", "X-API-Key": key },
    body: await file.arrayBuffer(),
  });
  const body = await answer.json();
  if (answer.ok) {
    status.textContent = `${t("imported")} ${body.imported}, ${t("unchanged")} ${body.unchanged}`;
    await renderIndicators(root, state.year, state);
  } else {
    const lines = (body.errors || []).map((e) => `${t("line").replace("{n}", e.line)}: ${e.message}`);
    status.textContent = `${t("failed")}: ${body.detail || body.message}${lines.length ? " — " + lines.join("; ") : ""}`;
  }
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
const Y_MIN = 50; // % : the targets' range stays readable; points below are listed under the chart

let uPlot = null; // the chart library, loaded with the first chart

export async function renderChart(root, state) {
  const [series, lib] = await Promise.all([getJson("/v1/indicators/coverage-series", { days: 30 }), loadUplot()]);
  state.series = series;
  uPlot = lib;
  drawChart(root, state);
}

// One column per modelled criterion, then the live snapshots, then the targets; the criterion
// chosen for the table is drawn thicker.
export function drawChart(root, state) {
  const series = state.series;
  if (!series) return;
  const byCriterion = series.modelled_by_criterion && Object.keys(series.modelled_by_criterion).length
    ? series.modelled_by_criterion
    : { outdoor: series.modelled };
  const criteria = Object.keys(byCriterion);
  const nCols = criteria.length + 1;
  const points = new Map();
  const row = (ts) => {
    if (!points.has(ts)) points.set(ts, new Array(nCols).fill(null));
    return points.get(ts);
  };
  const add = (ts, col, v) => { row(ts)[col] = v; };
  criteria.forEach((c, col) => byCriterion[c].forEach((p) => add(Date.parse(p.date) / 1000, col, 100 * p.share)));
  series.live.forEach((p) => add(Math.floor(Date.parse(p.time) / 1000), criteria.length, 100 * p.share));
  const targets = (series.indicator && series.indicator.targets) || {};
  Object.keys(targets).forEach((y) => { row(Date.UTC(Number(y), 0, 1) / 1000); row(Date.UTC(Number(y), 11, 31) / 1000); });
  const xs = [...points.keys()].sort((a, b) => a - b);
  const data = [xs, ...Array.from({ length: nCols + 1 }, () => [])];
  // the target holds for its whole year: a flat segment per year, a gap between plan years
  const targetAt = (x) => {
    const v = targets[String(new Date(x * 1000).getUTCFullYear())];
    return v == null ? null : 100 * v;
  };
  xs.forEach((x) => {
    const values = points.get(x);
    for (let i = 0; i < nCols; i += 1) data[i + 1].push(values[i]);
    data[nCols + 1].push(targetAt(x));
  });
  // the live snapshots stay visible whatever their level (a small test city sits far below 50 %)
  const liveMin = Math.min(...series.live.map((p) => 100 * p.share));
  const yMin = liveMin < Y_MIN ? Math.max(0, 10 * Math.floor(liveMin / 10)) : Y_MIN;
  const sep = currentLang() === "en" ? ": " : "：";
  const pct = (digits) => (u, v) => (v == null ? "–" : `${v.toFixed(digits)}%`);
  const el = root.querySelector("#chart4g");
  const width = Math.max(280, el.clientWidth || 400);
  const opts = {
    width,
    height: Math.max(180, Math.min(300, Math.round(width * 0.5))),
    scales: { y: { range: [yMin, 100.5] } },
    axes: [
      { stroke: "#9fb0c3", grid: { stroke: "#223048" } },
      { stroke: "#9fb0c3", grid: { stroke: "#223048" }, values: (u, v) => v.map((x) => `${x}%`), size: 50 },
    ],
    legend: { show: true },
    cursor: { show: true, drag: { x: true, y: false } },
    series: [
      { label: t("date"), value: (u, v) => (v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 10)) },
      ...criteria.map((c) => ({
        label: t("crit_" + c), // the heading says these are modelled
        stroke: CRITERION_COLOURS[c] || "#9fb0c3",
        width: c === state.criterion ? 3 : 1.5,
        spanGaps: true,
        value: pct(2),
      })),
      { label: t("liveSnapshots"), stroke: LIVE_COLOUR, width: 0, points: { show: true, size: 6, fill: LIVE_COLOUR }, value: pct(3) },
      { label: t("targets"), stroke: TARGET_COLOUR, width: 1.5, dash: [6, 4], spanGaps: false, points: { show: false }, value: pct(0) },
    ],
  };
  if (chart) chart.destroy();
  el.innerHTML = "";
  el.dataset.criteria = criteria.join(",");
  chart = new uPlot(opts, data, el);
  // what the axis cuts off (4G's launch month, with few sites), so nothing is hidden silently
  const below = [];
  criteria.forEach((c) => byCriterion[c].forEach((p) => {
    if (100 * p.share < yMin) below.push(`${p.date} ${t("crit_" + c)} ${fmtPct(p.share, 1)}`);
  }));
  const note = root.querySelector("#chart-note");
  if (note) note.textContent = below.length ? `${t("belowAxis")} ${yMin}%${sep}${below.join(" · ")}` : "";
}
