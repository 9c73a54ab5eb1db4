// What the outages cost under the map's criterion and operator (GET /v1/ops/outages): people and
// cells each site out leaves uncovered, and all of them together. Outdoor by any operator barely
// moves; indoor or every major operator shows the outage that matters.
import { getJson } from "./api.js";
import { addStrings, fmtInt, t } from "./i18n.js";

addStrings({
  effPeople: ["人", "people"],
  effCells: ["網格", "cells"],
  effNotComputed: ["（未計算）", "(not computed)"],
  kpiAffected: ["受影響", "affected"],
  bannerCells: ["網格", "cells"],
});

let ticket = 0;

// Fetch the effect for the view shown; the newest request wins.
export async function loadOutageEffect(state) {
  const criterion = state.mapCriterion;
  const operator = state.mapOperator;
  const mine = ++ticket;
  const body = await getJson("/v1/ops/outages", { criterion, operator });
  if (mine !== ticket) return null;
  state.outageEffect = body;
  return body;
}

// The effect when it is of the view shown and of the sites out now, else null (a newer answer
// is on its way: until it lands the page says nothing rather than a stale count).
export function effectForView(state) {
  const e = state.outageEffect;
  if (!e || e.criterion !== state.mapCriterion || e.operator !== state.mapOperator) return null;
  if (e.outages.length !== state.outages.size || e.outages.some((o) => !state.outages.has(o.station_id))) return null;
  return e;
}

export function fmtPp(pp) {
  if (pp == null) return "";
  return pp > 0 ? `−${pp.toFixed(pp >= 0.01 ? 3 : 4)} pp` : "0 pp";
}

// One row's effect, as the row prints it: people, cells and the share lost.
export function siteEffectHtml(effect, id) {
  if (!effect) return "";
  const row = effect.outages.find((o) => o.station_id === id);
  if (!row) return "";
  if (row.people == null) return `<span class="effect muted">${t("effNotComputed")}</span>`;
  return `<span class="effect" data-people="${Math.round(row.people)}" data-cells="${row.cells}" data-pp="${row.share_pp}">`
    + `<b>${fmtInt(row.people)}</b> ${t("effPeople")} · ${fmtInt(row.cells)} ${t("effCells")} · ${fmtPp(row.share_pp)}</span>`;
}

// The header's outage tile: how many, and the people they leave uncovered under the view.
export function renderOutageKpi(root, state, count) {
  const el = root.querySelector("#kpi-outages");
  if (!el) return;
  const e = effectForView(state);
  const people = e && count ? e.people : null;
  el.innerHTML = `${fmtInt(count)}${people != null ? ` <small class="kpi-affected">${t("kpiAffected")} <em>${fmtInt(people)}</em> ${t("effPeople")}</small>` : ""}`;
  el.dataset.count = count;
  el.dataset.people = people == null ? "" : Math.round(people);
}
