// The header's station counts, the outage banner and the district cells' query: what the map
// shows and what the header says come from the same per-site status codes, so they cannot disagree.
import { STATUS_NAMES } from "./colours.js";
import { addStrings, fmtInt, t } from "./i18n.js";

addStrings({
  stations: ["基地台", "Stations"],
  kpiServing: ["服務中", "serving"],
  kpiDown: ["中斷", "down"],
  kpiNoReport: ["未回報", "not reporting"],
  layoutIs: ["版面：", "Layout: "],
  cellsFailed: ["網格載入失敗", "Cells could not be loaded"],
  cellsMerged: ["合併為解析度", "merged to resolution"],
  hexagons: ["六角格", "hexagons"],
  bannerOutages: ["基地台中斷", "sites out"],
  bannerLongest: ["最久", "longest"],
  bannerPeople: ["受影響人口", "people affected"],
  minutesShort: ["分", "min"],
  hoursShort: ["時", "h"],
});

// Largest answer the page asks for: above it the API merges cells into coarser ones (resolution
// auto), so every district opens whole, and a wall's view of the city never gets a 422. A slow
// wall PC can ask for fewer with ?cell_limit= (1-20000).
const asked = Number(new URLSearchParams(location.search).get("cell_limit"));
const LIMIT = Number.isInteger(asked) && asked >= 1 && asked <= 20000 ? asked : 12000;
export const DISTRICT_CELL_LIMIT = LIMIT;
export const VIEW_CELL_LIMIT = Math.min(LIMIT, 6000);

export function districtQuery(name) {
  return { district: name, limit: DISTRICT_CELL_LIMIT, resolution: "auto" };
}

export function viewBoxQuery(bounds) {
  const bbox = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()].map((x) => x.toFixed(5)).join(",");
  return { bbox, limit: VIEW_CELL_LIMIT, resolution: "auto" };
}

// Per status name, how many sites carry it; `serving` is what reports serving (up, degraded),
// `noReport` what never reported or fell silent: the grey and white dots on the map.
export function stationCounts(codes) {
  const n = new Array(STATUS_NAMES.length).fill(0);
  for (let i = 0; i < codes.length; i += 1) n[codes[i]] += 1;
  const by = Object.fromEntries(STATUS_NAMES.map((name, i) => [name, n[i]]));
  return { ...by, total: codes.length, serving: by.up + by.degraded, noReport: by.unknown + by.silent };
}

export function renderStationKpi(root, codes) {
  const el = root.querySelector("#kpi-serving");
  if (!el || !codes) return;
  const c = stationCounts(codes);
  el.innerHTML = `<span class="kpi-part" data-kind="serving"><i class="dot s-up"></i>${t("kpiServing")} <em>${fmtInt(c.serving)}</em></span>`
    + `<span class="kpi-part" data-kind="down"><i class="dot s-down"></i>${t("kpiDown")} <em>${fmtInt(c.down)}</em></span>`
    + `<span class="kpi-part" data-kind="noreport"><i class="dot s-unknown"></i>${t("kpiNoReport")} <em>${fmtInt(c.noReport)}</em></span>`;
  Object.assign(el.dataset, { serving: c.serving, down: c.down, noreport: c.noReport, total: c.total });
  el.title = `${fmtInt(c.total)} ${t("stations")}`;
}

function fmtDuration(ms) {
  const min = Math.max(0, Math.round(ms / 60000));
  if (min < 60) return `${min} ${t("minutesShort")}`;
  return `${Math.floor(min / 60)} ${t("hoursShort")} ${min % 60} ${t("minutesShort")}`;
}

// The banner over the map while any site is down: how many, for how long, how many people lost
// coverage under the criterion the map shows (its population covered before the first outage
// minus now); hidden when nothing is down.
export function renderOutageBanner(root, state, peopleAffected, cellsAffected = null) {
  const el = root.querySelector("#outage-banner");
  if (!el) return;
  const down = [...state.outages.values()].filter((o) => o.status === "down");
  el.hidden = down.length === 0;
  el.dataset.count = down.length;
  if (!down.length) { el.textContent = ""; return; }
  const oldest = Math.min(...down.map((o) => Date.parse(o.since)).filter(Number.isFinite));
  const people = peopleAffected == null ? "–" : fmtInt(Math.max(0, peopleAffected));
  el.dataset.people = peopleAffected == null ? "" : Math.round(Math.max(0, peopleAffected));
  el.dataset.cells = cellsAffected == null ? "" : cellsAffected;
  const cells = cellsAffected == null ? "" : ` · ${t("bannerCells")} <b>${fmtInt(cellsAffected)}</b>`;
  el.innerHTML = `<b>${fmtInt(down.length)}</b> ${t("bannerOutages")} · ${t("bannerLongest")} <b>${Number.isFinite(oldest) ? fmtDuration(Date.now() - oldest) : "–"}</b> · ${t("bannerPeople")} <b>${people}</b>${cells}`;
}

export function layoutLabel(wall) {
  return `${t("layoutIs")}${t(wall ? "wall" : "laptop")}`;
}

// Outage rows fly to their site on click, Enter or Space (the rows are focusable buttons).
export function wireOutageList(root, onPick) {
  const list = root.querySelector("#outages");
  const pick = (e) => {
    const row = e.target.closest("li[data-station-id]");
    if (row) { e.preventDefault(); onPick(row.dataset.stationId); }
  };
  list.addEventListener("click", pick);
  list.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") pick(e); });
}
