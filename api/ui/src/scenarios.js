// Scenarios: a planner (with a key) sets a target share or a budget; the candidates are the
// uncovered, most populated cells on the map; the picks are drawn on the map in order.
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
const DISTRICT_OF = new Map(); // candidate id -> district of its cell (the API's candidates carry none)

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

export async function runScenario(root, state, onPicks) {
  const out = root.querySelector("#scenario-result");
  const key = root.querySelector("#planner-key").value.trim();
  if (!key) { out.innerHTML = `<p class="error">${t("needKey")}</p>`; return; }
  sessionStorage.setItem("zd-planner-key", key);
  if (!state.cells || !state.cells.features.length) { out.innerHTML = `<p class="error">${t("needCells")}</p>`; return; }
  const model = state.coverage ? state.coverage.model : "hata";
  const candidates = candidatesFrom(state.cells, model);
  if (!candidates.length) { out.innerHTML = `<p class="muted">${t("noCandidates")}</p>`; return; }
  const goal = root.querySelector("input[name=goal]:checked").value;
  const value = Number(root.querySelector("#goal-value").value);
  const body = { name: `ops page ${new Date().toISOString().slice(0, 16)}`, candidates, model };
  if (goal === "target") body.target_share = Math.min(1, Math.max(0.01, value / 100));
  else body.budget = Math.max(1, Math.round(value));
  out.innerHTML = `<p class="muted">${t("running")} (${candidates.length} ${t("candidates")})</p>`;
  let created;
  try {
    created = await postJson("/v1/scenarios", body, key);
  } catch (err) {
    out.innerHTML = `<p class="error">${err.status || ""} ${err.message}</p>`;
    return;
  }
  let scenario;
  for (;;) {
    scenario = await getJson(created.href);
    if (scenario.status === "done" || scenario.status === "failed") break;
    await new Promise((r) => setTimeout(r, 700));
  }
  if (scenario.status === "failed") {
    out.innerHTML = `<p class="error">${t("failed")}: ${scenario.error}</p>`;
    return;
  }
  const result = scenario.result;
  const byId = new Map(candidates.map((c) => [c.station_id, c]));
  const picks = result.picks.map((p, i) => ({ ...p, order: i + 1, lon: byId.get(p.station_id).lon, lat: byId.get(p.station_id).lat, district: DISTRICT_OF.get(p.station_id) || "" }));
  state.picks = picks;
  onPicks(picks);
  state.lastScenario = { scenario, picks };
  renderScenario(root, state);
}

// The last result in the current language (again after a language switch): the plain answer
// first, then each pick with where it is, what it costs and what it adds.
export function renderScenario(root, state) {
  if (!state.lastScenario) return;
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
  out.innerHTML = `${answer ? `<p class="answer">${answer}</p>` : ""}<p data-scenario="${scenario.scenario_id}">${t("before")} ${fmtPct(result.covered_before / result.population_total, 3)} → ${t("after")} <b>${fmtPct(result.covered_after / result.population_total, 3)}</b></p>
    <h4>${t("picks")}</h4>
    <table class="picks"><thead><tr><th>#</th><th>${t("site")}</th><th>${t("district")}</th><th>${t("lon")}</th><th>${t("lat")}</th><th>${t("cost")}</th><th>${t("gain")}</th><th>${t("shareAfter")}</th></tr></thead>
    <tbody>${picks.map((p) => `<tr data-station-id="${p.station_id}" data-lon="${p.lon}" data-lat="${p.lat}"><td>${p.order}</td><td class="mono">${p.station_id}</td><td>${en ? districtEn(state, p.district) : p.district}</td><td class="num">${p.lon.toFixed(5)}</td><td class="num">${p.lat.toFixed(5)}</td><td class="num">${p.cost == null ? "–" : p.cost}</td><td class="num">${fmtInt(p.gain)}</td><td class="num">${fmtPct(p.share, 3)}</td></tr>`).join("")}</tbody></table>
    <h4>${t("districtsAfter")}</h4>
    <ul class="district-after">${changed.map((d) => `<li>${en ? districtEn(state, d) : d}: ${fmtPct(before[d], 2)} → <b>${fmtPct(after[d], 2)}</b></li>`).join("")}</ul>`;
}

function districtEn(state, name) {
  return (state.districtNames && state.districtNames.get(name)) || name;
}
