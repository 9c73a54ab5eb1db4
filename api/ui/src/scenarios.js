// Scenarios: a planner (with a key) sets a target share or a budget, a criterion and an operator;
// the candidates are the uncovered, most populated cells on the map, the city-wide lattice, a file
// of public buildings and land, or points drawn on the map (planner_desk.js); the picks are drawn
// on the map in order and the result can be exported.
import { getJson, postJson } from "./api.js";
import { addStrings, currentLang, fmtInt, fmtPct, t } from "./i18n.js";

addStrings({
  alreadyMet: ["目標已達成：目前涵蓋率 {now} ≥ 目標 {target}，不需新增站址。", "The target is already met: {now} now ≥ {target}; no site is needed."],
  targetUnreachable: ["以這些候選站址無法達到目標：全部建置最多 {best}。", "These candidates cannot reach the target: building them all gives at most {best}."],
  fewerSuffice: ["只需 {n} 站（預算 {budget}）：其餘候選站址不再增加涵蓋人口。", "{n} sites suffice (budget {budget}): the other candidates add no one."],
  lon: ["經度", "Longitude"],
  lat: ["緯度", "Latitude"],
  cost: ["成本", "Cost"],
});

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, k) => values[k]);
}

const MAX_CANDIDATES = 150;
const DISTRICT_OF = new Map(); // candidate id -> district of its cell, for picks stored without one

export function candidatesFrom(cells, model) {
  const open = cells.features.filter((f) => !f.properties.covered && f.properties.population > 0);
  open.sort((a, b) => b.properties.population - a.properties.population);
  return open.slice(0, MAX_CANDIDATES).map((f, i) => {
    const ring = f.geometry.coordinates[0];
    const n = ring.length - 1;
    const lon = ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n;
    const lat = ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n;
    const c = { station_id: `cand-${String(i + 1).padStart(3, "0")}`, lon: +lon.toFixed(6), lat: +lat.toFixed(6), kind: "public_building", cost: 1 };
    DISTRICT_OF.set(c.station_id, f.properties.district);
    if (model === "disk") c.radius_m = 700;
    return c;
  });
}

// The scenario's body from the desk's form: name and note, criterion and operator, the goal, and
// the candidates from the chosen source (cells on screen, the city-wide lattice, a file, drawn).
async function scenarioBody(root, state, key) {
  const model = state.coverage ? state.coverage.model : "hata";
  const name = root.querySelector("#scenario-name").value.trim() || `ops page ${new Date().toISOString().slice(0, 16)}`;
  const body = { name, model, criterion: root.querySelector("#scenario-criterion").value };
  const note = root.querySelector("#scenario-note").value.trim();
  if (note) body.note = note;
  const operator = root.querySelector("#scenario-operator").value;
  if (operator !== "any") body.operator = operator;
  const goal = root.querySelector("input[name=goal]:checked").value;
  const value = Number(root.querySelector("#goal-value").value);
  if (goal === "target") body.target_share = Math.min(1, Math.max(0.01, value / 100));
  else body.budget = Math.max(1, Math.round(value));
  const source = root.querySelector("#candidate-source").value;
  if (source === "lattice") {
    body.candidate_source = {
      source: "lattice",
      resolution: Number(root.querySelector("#lattice-res").value),
      limit: Math.min(1500, Math.max(1, Math.round(Number(root.querySelector("#lattice-limit").value) || 200))),
    };
    if (root.querySelector("#lattice-district").checked && state.selected) body.candidate_source.districts = [state.selected];
    return { body, count: body.candidate_source.limit };
  }
  let candidates;
  if (source === "cells") {
    if (!state.cells || !state.cells.features.length) throw new DeskError(t("needCells"));
    candidates = candidatesFrom(state.cells, model);
  } else {
    candidates = await deskCandidates(source, key);
  }
  if (!candidates.length) throw new DeskError(t("noCandidates"), "muted");
  Object.assign(body, { candidates, candidate_origin: source });
  return { body, count: new Set(candidates.map((c) => c.station_id)).size };
}

export class DeskError extends Error {
  constructor(message, kind = "error") { super(message); this.kind = kind; }
}

let deskCandidates = async () => [];
// The desk (planner_desk.js) hands over its uploaded and drawn candidates through this hook.
export function setCandidateSource(fn) { deskCandidates = fn; }
let afterRun = () => {};
export function setAfterRun(fn) { afterRun = fn; }

export async function runScenario(root, state, onPicks) {
  const out = root.querySelector("#scenario-result");
  const key = root.querySelector("#planner-key").value.trim();
  if (!key) { out.innerHTML = `<p class="error">${t("needKey")}</p>`; return; }
  sessionStorage.setItem("zd-planner-key", key);
  let body, count;
  try {
    ({ body, count } = await scenarioBody(root, state, key));
  } catch (err) {
    out.innerHTML = `<p class="${err.kind || "error"}">${err.status || ""} ${escapeHtml(err.message)}</p>`;
    return;
  }
  out.innerHTML = `<p class="muted">${t("running")} (${count} ${t("candidates")})</p>`;
  let created;
  try {
    created = await postJson("/v1/scenarios", body, key);
  } catch (err) {
    out.innerHTML = `<p class="error">${err.status || ""} ${escapeHtml(err.message)}</p>`;
    return;
  }
  const scenario = await waitFor(created.href);
  showScenario(root, state, scenario, onPicks);
  afterRun();
}

export async function waitFor(href) {
  for (;;) {
    const scenario = await getJson(href);
    if (scenario.status === "done" || scenario.status === "failed") return scenario;
    await new Promise((r) => setTimeout(r, 700));
  }
}

// A stored scenario on the page: its picks on the map and its result in the panel.
export function showScenario(root, state, scenario, onPicks) {
  const out = root.querySelector("#scenario-result");
  if (scenario.status === "failed") {
    state.lastScenario = null;
    out.innerHTML = `<p class="error">${t("failed")}: ${escapeHtml(scenario.error)}</p>`;
    return;
  }
  // picks stored before they carried their coordinates take them from the request's candidates
  const sites = new Map(((scenario.request && scenario.request.candidates) || []).map((c) => [c.station_id, c]));
  const picks = scenario.result.picks.map((p, i) => {
    const site = sites.get(p.station_id) || {};
    return { ...p, order: i + 1, lon: p.lng ?? site.lon, lat: p.lat ?? site.lat, district: p.district || DISTRICT_OF.get(p.station_id) || "" };
  });
  state.picks = picks;
  onPicks(picks);
  state.lastScenario = { scenario, picks };
  renderScenario(root, state);
}

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The last result in the current language (again after a language switch): the plain answer
// first, then each pick with where it is, what it costs and what it adds.
export function renderScenario(root, state) {
  if (!state.lastScenario) return;
  if (state.lastScenario.scenario.status !== "done") return;
  const out = root.querySelector("#scenario-result");
  const { scenario, picks } = state.lastScenario;
  const result = scenario.result;
  const shareBefore = result.covered_before / result.population_total;
  let answer = "";
  if (result.target != null && shareBefore >= result.target) answer = fill(t("alreadyMet"), { now: fmtPct(shareBefore, 3), target: fmtPct(result.target, 2) });
  else if (result.target != null && result.target_feasible === false) answer = fill(t("targetUnreachable"), { best: fmtPct(result.best_reachable_share, 3) });
  else if (result.budget != null && picks.length < result.budget) answer = fill(t("fewerSuffice"), { n: picks.length, budget: result.budget });
  const en = currentLang() === "en";
  const after = result.districts_after || {};
  const before = result.districts_before || {};
  const changed = Object.keys(after).filter((d) => Math.abs((after[d] || 0) - (before[d] || 0)) > 1e-9);
  const href = `/v1/scenarios/${scenario.scenario_id}/export`;
  const goalOf = `${t("crit_" + (result.criterion || "outdoor"))} · ${t("desk_op_" + (result.operator || "any"))}`;
  out.innerHTML = `<p class="scenario-title"><b class="user-text">${escapeHtml(scenario.name || scenario.scenario_id)}</b> <span class="muted" data-criterion="${result.criterion}" data-operator="${result.operator}">${goalOf}</span></p>
    ${answer ? `<p class="answer">${answer}</p>` : ""}<p data-scenario="${scenario.scenario_id}">${t("before")} ${fmtPct(result.covered_before / result.population_total, 3)} → ${t("after")} <b>${fmtPct(result.covered_after / result.population_total, 3)}</b></p>
    <h4>${t("picks")}</h4>
    <table class="picks"><thead><tr><th>#</th><th>${t("site")}</th><th>${t("district")}</th><th>${t("lon")}</th><th>${t("lat")}</th><th>${t("cost")}</th><th>${t("gain")}</th><th>${t("shareAfter")}</th></tr></thead>
    <tbody>${picks.map((p) => `<tr data-station-id="${p.station_id}" data-lon="${p.lon}" data-lat="${p.lat}"><td>${p.order}</td><td><span class="mono">${p.station_id}</span>${p.name ? `<br><small class="user-text">${escapeHtml(p.name)}</small>` : ""}</td><td>${en ? districtEn(state, p.district) : p.district}</td><td class="num">${p.lon.toFixed(5)}</td><td class="num">${p.lat.toFixed(5)}</td><td class="num">${p.cost == null ? "–" : p.cost}</td><td class="num">${fmtInt(p.gain)}</td><td class="num">${fmtPct(p.share, 3)}</td></tr>`).join("")}</tbody></table>
    <h4>${t("districtsAfter")}</h4>
    <ul class="district-after">${changed.map((d) => `<li>${en ? districtEn(state, d) : d}: ${fmtPct(before[d], 2)} → <b>${fmtPct(after[d], 2)}</b></li>`).join("")}</ul>
    <p class="exports">${t("desk_export")}: <a download href="${href}?format=csv&amp;bom=true" data-export="csv">${t("desk_csvExcel")}</a> · <a download href="${href}?format=csv" data-export="csv-plain">CSV (UTF-8)</a> · <a download href="${href}?format=geojson" data-export="geojson">GeoJSON</a> · <a download href="${href}?format=pdf&amp;lang=${currentLang()}" data-export="pdf">${t("desk_pdf")}</a></p>`;
}

function districtEn(state, name) {
  return (state.districtNames && state.districtNames.get(name)) || name;
}
