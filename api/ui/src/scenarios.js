// Scenarios: a planner (with a key) sets a target share or a budget; the candidates are the
// uncovered, most populated cells on the map; the picks are drawn on the map in order.
import { getJson, postJson } from "./api.js";
import { currentLang, fmtInt, fmtPct, t } from "./i18n.js";

const MAX_CANDIDATES = 150;

export function candidatesFrom(cells, model) {
  const open = cells.features.filter((f) => !f.properties.covered && f.properties.population > 0);
  open.sort((a, b) => b.properties.population - a.properties.population);
  return open.slice(0, MAX_CANDIDATES).map((f, i) => {
    const ring = f.geometry.coordinates[0];
    const n = ring.length - 1;
    const lon = ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n;
    const lat = ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n;
    const c = { station_id: `cand-${String(i + 1).padStart(3, "0")}`, lon: +lon.toFixed(6), lat: +lat.toFixed(6), kind: "public_building", cost: 1 };
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
  const picks = result.picks.map((p, i) => ({ ...p, order: i + 1, lon: byId.get(p.station_id).lon, lat: byId.get(p.station_id).lat }));
  state.picks = picks;
  onPicks(picks);
  const en = currentLang() === "en";
  const after = result.districts_after || {};
  const before = result.districts_before || {};
  const changed = Object.keys(after).filter((d) => Math.abs((after[d] || 0) - (before[d] || 0)) > 1e-9);
  out.innerHTML = `<p data-scenario="${scenario.scenario_id}">${t("before")} ${fmtPct(result.covered_before / result.population_total, 3)} → ${t("after")} <b>${fmtPct(result.covered_after / result.population_total, 3)}</b></p>
    <h4>${t("picks")}</h4>
    <table class="picks"><thead><tr><th>#</th><th>${t("site")}</th><th>${t("gain")}</th><th>${t("shareAfter")}</th></tr></thead>
    <tbody>${picks.map((p) => `<tr data-station-id="${p.station_id}"><td>${p.order}</td><td class="mono">${p.station_id}</td><td class="num">${fmtInt(p.gain)}</td><td class="num">${fmtPct(p.share, 3)}</td></tr>`).join("")}</tbody></table>
    <h4>${t("districtsAfter")}</h4>
    <ul class="district-after">${changed.map((d) => `<li>${d}${en ? "" : ""}: ${fmtPct(before[d], 2)} → <b>${fmtPct(after[d], 2)}</b></li>`).join("")}</ul>`;
}
