// The operations center's page: boots the map and the panels, then follows the API's event
// stream (coverage and station status changes) without reloading.
import "maplibre-gl/dist/maplibre-gl.css";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import "./ops_wall.css";
import { getJson } from "./api.js";
import { loadUplot } from "./lazy.js";
import { STATUS_NAMES } from "./colours.js";
import { applyStatic, currentLang, fmtInt, fmtPct, fmtTime, t, toggleLang } from "./i18n.js";
import { CRITERIA, criterionOptions, drawChart, importCsv, lockYear, renderChart, renderIndicators, targetForYear } from "./indicators.js";
import { logEvent, renderEvents, renderIngest, renderOutages, renderPark } from "./live.js";
import { CELL_ZOOM, addLayers, alertsGeoJson, boundsOf, createMap, fetchCells, pickMarker, popup } from "./map.js";
import { SitesLayer } from "./sites_layer.js";
import { addPetitionLayer, onPetitionHotspot, renderPetitions } from "./petitions.js";
import { renderScenario, runScenario } from "./scenarios.js";
import { installDesk, renderDesk } from "./planner_desk.js";
import { addDeviceLayer, deviceHtml, loadDevices, rerenderAlerts, startAlerts } from "./alerts.js";
import { DistrictLabels, MAP_CRITERIA, MAP_OPERATORS, applyFill, viewName } from "./district_view.js";
import { districtQuery, layoutLabel, wireOutageList, renderOutageBanner, renderStationKpi, viewBoxQuery } from "./ops_status.js";
import { effectForView, loadOutageEffect, renderOutageKpi } from "./outage_effect.js";
import { loadTimeline, prefetchTimeline, renderTimeline, replaying, wireTimeline } from "./timeline.js";
import { loadIncidents, prefetchIncidents, renderIncidents, wireIncidents } from "./incidents.js";
import { renderDistrictList, wireDistrictList } from "./district_list.js";
import { renderFocus, wireFocus } from "./wall_focus.js";
import { ClusterCounts, chooseSite } from "./site_clusters.js";
import { markHiddenRows, watchCappedLists } from "./wall_more.js";

const PARK_INTERVAL_MS = 30_000;
const INGEST_INTERVAL_MS = 5_000;

const state = {
  coverage: null, // body of GET /v1/coverage
  districts: null, // GeoJSON of the boundaries
  sites: null, // columns of GET /v1/map/sites
  siteIndex: new Map(),
  outages: new Map(),
  cells: null,
  cellQuery: null,
  selected: null,
  picks: [],
  markers: [],
  indicators: null,
  year: 2018, // the 104-107 plan's last target year; the current year (live 4G actual) is in the list too
  criterion: CRITERIA.includes(new URLSearchParams(location.search).get("criterion"))
    ? new URLSearchParams(location.search).get("criterion")
    : "outdoor", // of the 4G indicator (B7-2): the API's default, docs/coverage.md#criteria
  mapCriterion: "outdoor", // of the district fill: outdoor (live, streamed), indoor or capacity
  mapOperator: "any", // of the district fill and header: any, one operator, or every_major
  mapCoverage: null, // body of GET /v1/coverage?criterion=mapCriterion when not outdoor
  outageEffect: null, // body of GET /v1/ops/outages for the map's view
  stream: "connecting",
  firstPaint: null,
  marks: {}, // performance.now() at each boot step (the benchmark prints them)
  errors: [],
};
window.zhongdu = { state };

const $ = (sel) => document.querySelector(sel);

// --- layout and language --------------------------------------------------------------------

function applyLayout(mode) {
  const wall = mode === "wall" || (mode === "auto" && window.innerWidth >= 1800);
  document.body.classList.toggle("wall", wall);
  document.body.classList.toggle("laptop", !wall);
  const button = document.getElementById("layout");
  button.textContent = layoutLabel(wall);
  button.setAttribute("aria-pressed", String(wall));
  button.dataset.layout = wall ? "wall" : "laptop";
  markHiddenRows();
}
const layoutParam = new URLSearchParams(location.search).get("layout") || "auto";
applyLayout(layoutParam);

function showTab(name) {
  document.querySelectorAll(".tabs button").forEach((b) => {
    b.classList.toggle("active", b.dataset.tab === name);
    b.setAttribute("aria-selected", String(b.dataset.tab === name));
  });
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === `panel-${name}`));
}

function renderKpis() {
  const c = state.coverage;
  if (!c) return;
  // the header's share is the map's view (criterion and operator), named beside it
  const view = mapCoverage() || c;
  $("#kpi-share").textContent = fmtPct(view.share, 3);
  $("#kpi-share").dataset.share = view.share;
  $("#kpi-view").textContent = viewName(state.mapCriterion, state.mapOperator);
  renderStationKpi(document, state.codes);
  renderOutageKpi(document, state, state.outages.size);
  const effect = effectForView(state);
  renderOutageBanner(document, state, peopleAffected(), effect && state.outages.size ? effect.cells : null);
  $("#kpi-updated").textContent = fmtTime(c.computed_at);
  $("#stream").textContent = t(state.stream === "ok" ? "streamOk" : state.stream === "lost" ? "streamLost" : "connecting");
  $("#stream").className = `stream ${state.stream}`;
}

function yearOptions() {
  const years = [2015, 2016, 2017, 2018, new Date().getFullYear()];
  $("#year").innerHTML = years.map((y) => `<option value="${y}" ${y === state.year ? "selected" : ""}>${y} (${currentLang() === "en" ? "ROC " : "民國 "}${y - 1911})</option>`).join("");
}

function renderAll() {
  applyStatic();
  $("#lang").textContent = t("lang");
  applyLayout(document.body.classList.contains("wall") ? "wall" : "laptop");
  yearOptions();
  criterionOptions(document, state);
  mapCriterionOptions();
  if (!state.cellQuery) $("#map-note").textContent = t("zoomForCells");
  else if (state.cells) cellsNote(state.cellQuery, state.cells);
  renderEvents(document);
  renderScenario(document, state);
  renderDesk(document, state);
  setDistrictShares();
  // popups are written in one language: closed, the selected district's reopened in the new one
  document.querySelectorAll(".maplibregl-popup").forEach((p) => p.remove());
  if (state.selected && map) popup(map, map.getCenter(), districtHtml(state.selected));
  if (state.cells) { const el = document.getElementById("popup-cells"); if (el) el.textContent = fmtInt(state.cells.source_cells); }
  renderIngest(document).catch(report);
  renderKpis();
  renderOutages(document, state);
  renderIndicators(document, state.year, state).catch(report);
  renderChart(document, state).catch(report);
  renderPark(document).catch(report);
  rerenderAlerts(document);
  renderPetitions();
  renderTimeline(document);
  renderIncidents(document);
  renderDistrictList(document, state, mapCoverage());
  renderFocus(document, state.districtNames);
}

function report(err) {
  console.warn(err);
  state.errors.push(String(err && err.message ? err.message : err));
}

// --- map --------------------------------------------------------------------------------------

let map;

// The district fill's criterion and operator: outdoor by any operator is the live snapshot the
// stream pushes; any other view is GET /v1/coverage?criterion=&operator= (computed once per
// snapshot by the API), fetched again whenever the stream announces a new snapshot.
function defaultView() {
  return state.mapCriterion === "outdoor" && state.mapOperator === "any";
}

function mapCoverage() {
  return defaultView() ? state.coverage : state.mapCoverage;
}

// People who lost coverage under the map's criterion: its population covered at the last
// snapshot with no site down, minus now (unknown until such a snapshot was seen).
function updateBaseline() {
  const coverage = mapCoverage();
  const down = [...state.outages.values()].some((o) => o.status === "down");
  if (coverage && !down) state.baseline = { criterion: state.mapCriterion, covered: coverage.population_covered };
}

function peopleAffected() {
  const effect = effectForView(state); // the API's count: every site out back, under the view
  if (effect) return state.outages.size ? effect.people : 0;
  const coverage = mapCoverage();
  const b = state.baseline;
  return coverage && b && b.criterion === state.mapCriterion ? b.covered - coverage.population_covered : null;
}

function setDistrictShares() {
  const coverage = mapCoverage();
  if (!map || !coverage || !map.getSource("districts")) return;
  coverage.districts.forEach((d) => map.setFeatureState({ source: "districts", id: d.district }, { share: d.share }));
  applyFill(map, coverage);
  if (state.labels) state.labels.update(coverage, state.districtNames);
  map.getContainer().dataset.criterion = coverage.criterion || "outdoor";
  map.getContainer().dataset.operator = coverage.operator || "any";
  $("#map-view").textContent = viewName(state.mapCriterion, state.mapOperator);
  renderDistrictList(document, state, coverage);
}

// --- the outages' effect, timeline, incidents ---------------------------------------------------

let effectTimer = null;

// Asked again when outages, the snapshot or the view change (debounced: a burst of changes asks once).
function refreshEffect() {
  clearTimeout(effectTimer);
  effectTimer = setTimeout(() => {
    loadOutageEffect(state).then((body) => { if (body) { renderOutages(document, state); renderKpis(); } }).catch(report);
  }, 150);
}

let historyTimer = null;

function refreshHistory() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => {
    loadTimeline(document).catch(report);
    loadIncidents(document).catch(report);
  }, 500);
}

// The replay's sites down on the map (null: back to live).
function showReplay(incidents) {
  if (incidents == null) { drawAlerts(); return; }
  const features = incidents.map((i) => {
    const k = state.siteIndex.get(i.station_id);
    if (k == null) return null;
    const code = STATUS_NAMES.indexOf(i.status);
    return { type: "Feature", id: k, geometry: { type: "Point", coordinates: [state.sites.lon[k], state.sites.lat[k]] }, properties: { s: code, i: k, id: i.station_id } };
  }).filter(Boolean);
  map.getSource("alerts").setData({ type: "FeatureCollection", features });
}

function mapCriterionOptions() {
  $("#map-criterion").innerHTML = MAP_CRITERIA.map((c) => `<option value="${c}" ${c === state.mapCriterion ? "selected" : ""}>${t("crit_" + c)}</option>`).join("");
  $("#map-operator").innerHTML = MAP_OPERATORS.map((o) => `<option value="${o}" ${o === state.mapOperator ? "selected" : ""}>${t("op_" + o)}</option>`).join("");
  $("#map-criterion").setAttribute("aria-label", t("criterion"));
  $("#map-operator").setAttribute("aria-label", t("operatorLabel"));
  $("#map-view").textContent = viewName(state.mapCriterion, state.mapOperator);
}

let mapTicket = 0;

async function loadMapCriterion() {
  const criterion = state.mapCriterion;
  const operator = state.mapOperator;
  const mine = ++mapTicket;
  if (defaultView()) { state.mapCoverage = null; setDistrictShares(); renderKpis(); refreshEffect(); return; }
  let body;
  try {
    body = await getJson("/v1/coverage", { criterion, operator });
  } catch (err) {
    if (mine === mapTicket) $("#map-view").textContent = `${viewName(criterion, operator)}: ${err.message}`;
    throw err;
  }
  if (mine !== mapTicket) return; // a newer choice or snapshot won
  refreshEffect();
  state.mapCoverage = body;
  setDistrictShares();
  updateBaseline();
  renderKpis();
}

function districtHtml(name) {
  const f = state.districts.features.find((x) => x.properties.district === name);
  const coverage = mapCoverage();
  const live = coverage ? coverage.districts.find((d) => d.district === name) : null;
  const target = targetForYear(state, state.year);
  const en = currentLang() === "en";
  const title = en ? (f ? f.properties.name_en : name) : `${name} <small>${f ? f.properties.name_en : ""}</small>`;
  return `<div class="popup" data-district="${name}"><h3>${title}</h3>
    <dl>
      <dt>${t("population")}</dt><dd>${fmtInt(live ? live.population : f && f.properties.population)}</dd>
      <dt>${t("covered")}</dt><dd>${fmtInt(live && live.covered)}</dd>
      <dt>${t("share")}${en ? ` (${t("crit_" + state.mapCriterion)})` : `（${t("crit_" + state.mapCriterion)}）`}</dt><dd>${fmtPct(live && live.share, 2)}</dd>
      <dt>${t("planTarget")}</dt><dd>${target ? `${fmtPct(target.value, 0)} (${target.year}${en ? "" : " 年"})` : "–"}</dd>
      <dt>${t("cells")}</dt><dd id="popup-cells">…</dd>
    </dl></div>`;
}

function cellsNote(query, cells) {
  const merged = cells.resolution < cells.grid_resolution
    ? ` (${t("cellsMerged")} ${cells.resolution}: ${fmtInt(cells.cells)} ${t("hexagons")})` : "";
  const district = query.district && currentLang() === "en" ? state.districtNames.get(query.district) || query.district : query.district;
  $("#map-note").textContent = `${district || ""} ${fmtInt(cells.source_cells)} ${t("cells")} · ${t("coveredCells")} ${fmtInt(cells.covered_cells)}${merged}`;
}

async function loadCells(query) {
  state.cellQuery = query;
  const note = $("#map-note");
  if (!query) {
    state.cells = null;
    map.getSource("cells").setData({ type: "FeatureCollection", features: [] });
    note.textContent = t("zoomForCells");
    return;
  }
  try {
    const cells = await fetchCells(query, { criterion: state.mapCriterion, operator: state.mapOperator });
    if (state.cellQuery !== query) return; // a newer query won
    state.cells = cells;
    map.getSource("cells").setData(cells);
    if (cells.detail) cells.detail.then((d) => { if (state.cells === cells) map.getSource("cells").setData(d); }).catch(report);
    cellsNote(query, cells);
    note.dataset.cells = cells.source_cells;
    note.dataset.covered = cells.covered_cells;
    note.dataset.resolution = cells.resolution;
    delete note.dataset.error;
    const el = document.getElementById("popup-cells");
    if (el) el.textContent = fmtInt(cells.source_cells);
  } catch (err) {
    if (state.cellQuery !== query) return;
    // a failed query is not asked again on the next snapshot: the operator's next move asks anew
    state.cellQuery = null;
    state.cells = null;
    map.getSource("cells").setData({ type: "FeatureCollection", features: [] });
    note.textContent = `${t("cellsFailed")}: ${err.status || ""} ${err.message}`;
    note.dataset.error = err.status || "network";
    const el = document.getElementById("popup-cells");
    if (el) el.textContent = "–";
    if (!err.status) report(err);
  }
}

function viewQuery() {
  if (state.selected) return districtQuery(state.selected);
  if (map.getZoom() < CELL_ZOOM) return null;
  return viewBoxQuery(map.getBounds());
}

function selectDistrict(name, lngLat) {
  state.selected = name;
  renderDistrictList(document, state, mapCoverage());
  map.setFilter("district-selected", ["==", ["get", "district"], name || ""]);
  if (!name) { loadCells(viewQuery()); return; }
  const f = state.districts.features.find((x) => x.properties.district === name);
  if (lngLat) popup(map, lngLat, districtHtml(name));
  if (f) map.fitBounds(boundsOf(f.geometry), { padding: 40, duration: 0, maxZoom: 14 });
  loadCells(districtQuery(name));
}
window.zhongdu.selectDistrict = selectDistrict;

async function siteClick(index, lngLat) {
  const id = state.sites.ids[index];
  const status = STATUS_NAMES[currentStatus(index)];
  let html = `<div class="popup" data-site="${id}"><h3>${t("site")} <span class="mono">${id}</span></h3>
    <dl><dt>${t("status")}</dt><dd><span class="dot s-${status}"></span>${t("st_" + status)}</dd>
    <dt>${t("sectors")}</dt><dd>${state.sites.sectors[index]}</dd></dl>`;
  try {
    const detail = await getJson(`/v1/stations/${encodeURIComponent(id)}`);
    const loads = new Map(detail.latest_load.map((l) => [l.sector_id, l]));
    html += `<table class="sectors"><thead><tr><th>${t("sectors")}</th><th>${t("load")}</th><th>${t("users")}</th></tr></thead><tbody>
      ${detail.sectors.map((s) => { const l = loads.get(s.sector_id); return `<tr><td class="mono">${s.sector_id || "–"}${s.azimuth_deg != null ? ` (${s.azimuth_deg}°)` : ""}</td><td class="num">${l && l.prb_utilisation != null ? fmtPct(l.prb_utilisation, 0) : "–"}</td><td class="num">${l && l.active_users != null ? l.active_users : "–"}</td></tr>`; }).join("")}
    </tbody></table>`;
  } catch (err) {
    if (err.status === 404) html += `<p class="muted">${t("notRegistered")}</p>`;
    else report(err);
  }
  popup(map, lngLat, `${html}</div>`);
}

// An outage row's site: centred at street zoom, its popup open.
function flyToSite(id) {
  const i = state.siteIndex.get(id);
  if (i == null) return;
  const at = [state.sites.lon[i], state.sites.lat[i]];
  map.jumpTo({ center: at, zoom: Math.max(map.getZoom(), 14) });
  siteClick(i, at);
}
window.zhongdu.flyToSite = flyToSite;

function currentStatus(index) {
  return state.codes[index];
}

function drawAlerts() {
  if (replaying()) return; // the replay's moment stays on the map until "back to live"
  map.getSource("alerts").setData(alertsGeoJson(state.sites, state.codes));
}
window.zhongdu.siteStatus = (id) => {
  const i = state.siteIndex.get(id);
  return i == null ? null : STATUS_NAMES[currentStatus(i)];
};

function showPicks(picks) {
  state.markers.forEach((m) => m.remove());
  state.markers = picks.map((p) => pickMarker(map, [p.lon, p.lat], p.order));
  map.getSource("picks").setData({
    type: "FeatureCollection",
    features: picks.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: [p.lon, p.lat] }, properties: { order: p.order, id: p.station_id } })),
  });
  if (picks.length) {
    const lons = picks.map((p) => p.lon);
    const lats = picks.map((p) => p.lat);
    map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]], { padding: 80, maxZoom: 14, duration: 0 });
  }
}

// --- live updates -----------------------------------------------------------------------------

let cellsTimer = null;

function onCoverage(summary) {
  const previous = state.coverage;
  state.coverage = summary;
  setDistrictShares();
  updateBaseline();
  if (previous && previous.computed_at !== summary.computed_at) {
    const delta = summary.share - previous.share;
    state.outages.forEach((o) => { if (o.delta == null) o.delta = delta; });
    if (Math.abs(delta) > 0) logEvent(document, () => `${t("coverageChange")} ${delta >= 0 ? "+" : ""}${(100 * delta).toFixed(4)} pp → ${fmtPct(summary.share, 3)}`);
    renderOutages(document, state);
    refreshEffect();
    refreshHistory();
    clearTimeout(cellsTimer);
    cellsTimer = setTimeout(() => state.cellQuery && loadCells(state.cellQuery), 300);
    if (!defaultView()) loadMapCriterion().catch(report);
  }
  renderKpis();
}

function onStations(event) {
  if (!state.sites) return;
  event.changes.forEach(({ station_id: id, status, since }) => {
    const i = state.siteIndex.get(id);
    if (i == null) return;
    const code = STATUS_NAMES.indexOf(status);
    state.sitesLayer.setStatus(i, code);
    if (status === "down" || status === "silent") {
      if (!state.outages.has(id) || state.outages.get(id).status !== status) state.outages.set(id, { id, status, since: since || event.at, delta: null });
      if (!event.initial) logEvent(document, () => `<span class="dot s-${status}"></span><b class="mono">${id}</b> ${t("st_" + status)}`);
    } else if (state.outages.has(id)) {
      state.outages.delete(id);
      if (!event.initial) logEvent(document, () => `<span class="dot s-${status}"></span><b class="mono">${id}</b> ${t("st_" + status)}`);
    }
  });
  if (event.changes.length) drawAlerts();
  renderOutages(document, state);
  renderKpis();
  if (event.changes.length) { refreshEffect(); refreshHistory(); renderDistrictList(document, state, mapCoverage()); }
}

function connectStream() {
  const source = new EventSource("/v1/events");
  source.addEventListener("open", () => { state.stream = "ok"; renderKpis(); });
  source.addEventListener("error", () => { state.stream = "lost"; renderKpis(); });
  source.addEventListener("coverage", (e) => onCoverage(JSON.parse(e.data)));
  source.addEventListener("stations", (e) => onStations(JSON.parse(e.data)));
  source.addEventListener("petition_hotspot", (e) => onPetitionHotspot(JSON.parse(e.data), (html) => logEvent(document, html)));
  window.zhongdu.stream = source;
}

// --- boot ---------------------------------------------------------------------------------------

function initSites(sites) {
  state.sites = sites;
  sites.ids.forEach((id, i) => state.siteIndex.set(id, i));
  sites.status.forEach((code, i) => {
    const name = STATUS_NAMES[code];
    // the API's since (when the status began) survives a reload; the snapshot's time is a fallback
    const began = sites.since && sites.since[i] != null ? new Date(1000 * sites.since[i]).toISOString() : sites.computed_at;
    if (name === "down" || name === "silent") state.outages.set(sites.ids[i], { id: sites.ids[i], status: name, since: began, delta: null });
  });
  state.codes = Uint8Array.from(sites.status);
}

async function boot() {
  applyStatic();
  renderEvents(document);
  watchCappedLists();
  $("#lang").textContent = t("lang");
  $("#lang").addEventListener("click", () => { toggleLang(); renderAll(); });
  $("#layout").addEventListener("click", () => applyLayout(document.body.classList.contains("wall") ? "laptop" : "wall"));
  document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  showTab("indicators");
  yearOptions();
  $("#year").addEventListener("change", (e) => { state.year = Number(e.target.value); renderIndicators(document, state.year, state).catch(report); });
  criterionOptions(document, state);
  mapCriterionOptions();
  // the cells follow the map's criterion and operator
  const cellsToo = () => state.cellQuery && loadCells(state.cellQuery);
  $("#map-criterion").addEventListener("change", (e) => { state.mapCriterion = e.target.value; loadMapCriterion().catch(report); cellsToo(); });
  $("#map-operator").addEventListener("change", (e) => { state.mapOperator = e.target.value; loadMapCriterion().catch(report); cellsToo(); });
  $("#criterion").addEventListener("change", (e) => {
    state.criterion = e.target.value;
    criterionOptions(document, state);
    renderIndicators(document, state.year, state).catch(report);
    drawChart(document, state);
  });
  $("#planner-key").value = sessionStorage.getItem("zd-planner-key") || "";
  $("#lock-year").addEventListener("click", () => lockYear(document, state).catch(report));
  $("#import-csv").addEventListener("change", (e) => { if (e.target.files[0]) importCsv(document, state, e.target.files[0]).catch(report); });
  $("#run").addEventListener("click", () => runScenario(document, state, showPicks).catch(report));
  $("#scenario-form").addEventListener("submit", (e) => e.preventDefault()); // no inline handler: the CSP refuses it

  const districtsP = getJson("/v1/map/districts");
  const coverageP = getJson("/v1/coverage");
  const sitesP = getJson("/v1/map/sites");
  prefetchTimeline();
  prefetchIncidents();
  // the wall draws its timeline right after the map: its chart's chunk comes beside the map's bodies
  if (document.body.classList.contains("wall")) loadUplot().catch(report);
  const mapP = new Promise((resolve) => { map = createMap("map", resolve); });
  window.zhongdu.mapPromise = mapP;
  await mapP;
  state.marks.mapLoaded = performance.now();
  window.zhongdu.map = map;
  try { state.districts = await districtsP; } catch (err) { report(err); state.districts = { type: "FeatureCollection", features: [] }; }
  state.marks.districts = performance.now();
  try { state.coverage = await coverageP; } catch (err) { report(err); }
  let sites = { count: 0, ids: [], lon: [], lat: [], sectors: [], status: [] };
  try { sites = await sitesP; } catch (err) { report(err); }
  initSites(sites);
  state.sitesLayer = new SitesLayer(sites, state.codes);
  addLayers(map, state.districts, state.sitesLayer);
  addDeviceLayer(map);
  addPetitionLayer(map);
  installDesk(document, map, state, showPicks);
  state.districtNames = new Map(state.districts.features.map((f) => [f.properties.district, f.properties.name_en]));
  // the labels after the first full paint: 29 DOM markers moved on every frame would delay it
  map.once("idle", () => {
    state.labels = new DistrictLabels(map, state.districts);
    state.labels.update(mapCoverage(), state.districtNames);
  });
  drawAlerts();
  setDistrictShares();
  updateBaseline();
  state.marks.sitesSet = performance.now();
  map.once("idle", () => {
    state.firstPaint = performance.now();
    document.body.dataset.ready = "1";
  });
  renderKpis();
  renderOutages(document, state);
  connectStream();
  loadDevices(map).catch(report);
  startAlerts(document, map, (html) => logEvent(document, html)).catch(report);

  map.on("click", (e) => {
    if (state.drawMode) return; // the planner's desk takes the clicks while drawing candidates
    const device = map.queryRenderedFeatures(e.point, { layers: ["park-devices"] })[0];
    if (device) {
      const at = device.geometry.coordinates;
      deviceHtml(device.properties.id).then((html) => popup(map, at, html)).catch(report);
      return;
    }
    if (map.getZoom() >= 11) {
      // every site under the pointer (a box around it): one opens, several are offered in a list
      const box = [[e.point.x - 8, e.point.y - 8], [e.point.x + 8, e.point.y + 8]];
      const under = new Set(map.queryRenderedFeatures(box, { layers: ["alerts"] }).map((f) => f.properties.i));
      state.sitesLayer.pickAll(e.point, 8).forEach((i) => under.add(i));
      const indices = [...under].filter((i) => i >= 0);
      const open = (i) => siteClick(i, [state.sites.lon[i], state.sites.lat[i]]);
      if (indices.length === 1) { open(indices[0]); return; }
      if (indices.length > 1) { chooseSite(map, e.lngLat, indices, state.sites, state.codes, open); return; }
    }
    if (map.getLayer("petition-hot") && map.queryRenderedFeatures(e.point, { layers: ["petition-hot"] }).length) return; // its own popup
    const district = map.queryRenderedFeatures(e.point, { layers: ["district-fill"] })[0];
    if (district) selectDistrict(district.properties.district, e.lngLat);
  });
  map.on("mouseenter", "district-fill", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "district-fill", () => { map.getCanvas().style.cursor = ""; });
  map.on("moveend", () => { if (!state.selected) loadCells(viewQuery()); });
  $("#clear-selection").addEventListener("click", () => selectDistrict(null));
  wireOutageList(document, (id) => flyToSite(id));
  wireIncidents(document, (id) => flyToSite(id));
  wireTimeline(document, showReplay);
  wireDistrictList(document, state, (name) => selectDistrict(name), () => renderDistrictList(document, state, mapCoverage()));
  state.clusters = new ClusterCounts(map);
  const cityView = () => { selectDistrict(null); map.fitBounds([[120.46, 23.99], [121.45, 24.45]], { padding: 16, duration: 0 }); };
  wireFocus(document, state.districts.features.map((f) => f.properties.district), (name) => selectDistrict(name), cityView);
  renderFocus(document, state.districtNames);
  refreshEffect();
  $("#map-note").textContent = t("zoomForCells");

  // the panels after the map's first full paint: the city view comes first on a busy machine
  const panels = () => {
    // the outage panel first (its data was asked for at boot): the wall's reason to exist
    renderTimeline(document);
    loadTimeline(document).then(() => { state.marks.timeline = performance.now(); }).catch(report);
    renderIndicators(document, state.year, state).catch(report);
    renderChart(document, state).catch(report);
    renderPark(document).catch(report);
    renderIngest(document).catch(report);
  };
  // the incident list is plain DOM: drawn as soon as it arrives, before the map's first idle
  loadIncidents(document).then(() => { state.marks.incidents = performance.now(); }).catch(report);
  if (state.firstPaint) panels();
  else map.once("idle", panels);
  setInterval(() => renderPark(document).catch(report), PARK_INTERVAL_MS);
  setInterval(() => renderIngest(document).catch(report), INGEST_INTERVAL_MS);
  setInterval(() => loadDevices(map).catch(report), PARK_INTERVAL_MS);
  setInterval(renderKpis, 30_000); // the outage banner's durations keep counting between events
  setInterval(refreshHistory, 60_000); // the timeline's window moves on, ongoing durations grow
}

boot().catch(report);
