// Petition hotspots (1999 hotline and 陳情 cases): a map layer of the significant Gi* cells, a
// panel with category / period / resolution / measure filters, the hottest cells, monthly trends
// per category and time to close, and new hotspots announced on the event stream. Simulated
// cases are labelled 合成資料 / SYNTHETIC wherever they are shown.
import { getJson } from "./api.js";
import { currentLang, fmtInt } from "./i18n.js";
import { popup } from "./map.js";
import { sparkline } from "./sparkline.js";

const S = {
  tab: ["陳情熱點", "Petitions"],
  title: ["1999 與陳情案件熱點", "1999 hotline and petition hotspots"],
  synthetic: ["合成資料（模擬，非真實案件）", "SYNTHETIC (simulated, not real cases)"],
  category: ["類別", "Category"],
  all: ["全部類別", "All categories"],
  from: ["起（月）", "From (month)"],
  to: ["迄（月）", "To (month)"],
  res: ["H3 解析度", "H3 resolution"],
  measure: ["量測", "Measure"],
  count: ["案件數", "Cases"],
  rate: ["每千人（EB 平滑）", "Per 1,000 residents (EB)"],
  show: ["顯示於地圖", "Show on map"],
  hot: ["熱點", "hot"],
  cold: ["冷點", "cold"],
  cases: ["件", "cases"],
  cell: ["網格", "Cell"],
  ring: ["含鄰近網格", "With neighbours"],
  top: ["最顯著熱點", "Hottest cells"],
  newHot: ["新出現的顯著熱點", "New significant hotspots"],
  none: ["無", "none"],
  trends: ["每月案件趨勢", "Cases per month"],
  close: ["派工與結案時間（小時，中位數 / 90 百分位）", "Hours to work order and to resolution (median / 90th percentile)"],
  dispatch: ["派工", "Work order"],
  resolved: ["結案", "Resolved"],
  open: ["未結", "Open"],
  newEvent: ["新陳情熱點", "New petition hotspot"],
  method: ["方法", "Method"],
};
const CATEGORY_NAMES = {}; // code -> [zh, en], from GET /v1/petitions/categories

function tr(key) { return S[key][currentLang() === "en" ? 1 : 0]; }
function catName(code) {
  const n = CATEGORY_NAMES[code];
  return n ? n[currentLang() === "en" ? 1 : 0] || code : code;
}
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

const pet = {
  map: null,
  hotspots: null, // body of GET /v1/petitions/hotspots
  trends: null, // body of GET /v1/petitions/trends
  fresh: [], // petition_hotspot events received
  ticket: 0,
  loaded: false,
};

// The tab and its panel are added before main.js wires the tabs, so they behave like the others.
function mount() {
  const nav = document.querySelector(".tabs");
  const main = document.querySelector("main");
  if (!nav || !main || document.getElementById("panel-petitions")) return;
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.tab = "petitions";
  button.id = "tab-petitions";
  nav.appendChild(button);
  const panel = document.createElement("section");
  panel.className = "panel";
  panel.id = "panel-petitions";
  panel.innerHTML = `
    <div class="panel-head"><h2 id="pet-title"></h2><span id="pet-synthetic" class="synthetic-badge" hidden></span></div>
    <form id="pet-filters" class="pet-filters">
      <label><span data-pet="category"></span> <select id="pet-category"></select></label>
      <label><span data-pet="from"></span> <input type="month" id="pet-from"></label>
      <label><span data-pet="to"></span> <input type="month" id="pet-to"></label>
      <label><span data-pet="res"></span> <select id="pet-res"><option>8</option><option selected>9</option><option>10</option></select></label>
      <label><span data-pet="measure"></span> <select id="pet-measure"></select></label>
      <label class="check"><input type="checkbox" id="pet-show" checked> <span data-pet="show"></span></label>
    </form>
    <p id="pet-summary" class="muted note"></p>
    <h3 data-pet="newHot"></h3>
    <ul id="pet-new" class="events"></ul>
    <h3 data-pet="top"></h3>
    <div class="table-wrap"><table id="pet-top"><thead></thead><tbody></tbody></table></div>
    <h3 data-pet="trends"></h3>
    <div id="pet-trends" class="pet-trends"></div>
    <h3 data-pet="close"></h3>
    <div class="table-wrap"><table id="pet-close"><thead></thead><tbody></tbody></table></div>
    <p id="pet-method" class="muted note"></p>`;
  main.appendChild(panel);
  ["pet-category", "pet-from", "pet-to", "pet-res", "pet-measure"].forEach((id) =>
    panel.querySelector(`#${id}`).addEventListener("change", () => loadPetitions().catch(console.warn)));
  // no inline handler: the page's CSP refuses it (and says so in the console)
  panel.querySelector("#pet-filters").addEventListener("submit", (e) => e.preventDefault());
  panel.querySelector("#pet-show").addEventListener("change", (e) => {
    if (pet.map && pet.map.getLayer("petition-hot")) {
      const v = e.target.checked ? "visible" : "none";
      ["petition-hot", "petition-hot-line"].forEach((l) => pet.map.setLayoutProperty(l, "visibility", v));
    }
  });
}
mount();

function monthStart(value) {
  return value ? `${value}-01T00:00:00+08:00` : null;
}
function monthAfter(value) {
  if (!value) return null;
  let [y, m] = value.split("-").map(Number);
  [y, m] = m === 12 ? [y + 1, 1] : [y, m + 1];
  return `${y}-${String(m).padStart(2, "0")}-01T00:00:00+08:00`;
}

export function filters() {
  const $ = (id) => document.getElementById(id);
  return {
    category: $("pet-category").value || null,
    from: monthStart($("pet-from").value),
    to: monthAfter($("pet-to").value),
    res: $("pet-res").value,
    measure: $("pet-measure").value || "count",
  };
}

// Significant cells: hot in reds by z, cold in blues; drawn above the districts, below the sites.
export function addPetitionLayer(map) {
  pet.map = map;
  if (window.zhongdu) window.zhongdu.petitions = pet;
  map.addSource("petition-hotspots", { type: "geojson", data: { type: "FeatureCollection", features: [] }, promoteId: "cell" });
  const before = map.getLayer("district-line") ? "district-line" : undefined;
  map.addLayer({
    id: "petition-hot",
    type: "fill",
    source: "petition-hotspots",
    paint: {
      "fill-color": ["case", [">", ["get", "z"], 0],
        ["interpolate", ["linear"], ["get", "z"], 2, "#fdae61", 5, "#f46d43", 10, "#d73027", 30, "#a50026"],
        "#4575b4"],
      "fill-opacity": 0.75,
      "fill-outline-color": "#fff3",
    },
  }, before);
  map.addLayer({
    id: "petition-hot-line",
    type: "line",
    source: "petition-hotspots",
    filter: ["==", ["get", "fresh"], true],
    paint: { "line-color": "#fee838", "line-width": 2.5 },
  }, before);
  map.on("click", "petition-hot", (e) => {
    const p = e.features[0].properties;
    const html = `<div class="popup" data-cell="${esc(p.cell)}"><h3>${tr(p.verdict === "cold" ? "cold" : "hot")} <span class="mono">${esc(p.cell)}</span></h3>
      <dl><dt>${tr("count")}</dt><dd>${fmtInt(p.count)}</dd><dt>${tr("ring")}</dt><dd>${fmtInt(p.neighbourhood_count)}</dd><dt>${tr("rate")}</dt><dd>${Number(p.rate).toFixed(3)}</dd>
      <dt>Gi* z</dt><dd>${Number(p.z).toFixed(2)}</dd><dt>q (FDR)</dt><dd>${Number(p.q).toExponential(1)}</dd></dl>
      ${pet.hotspots && pet.hotspots.synthetic ? `<p class="synthetic-badge">${tr("synthetic")}</p>` : ""}</div>`;
    popup(map, e.lngLat, html);
  });
  loadPetitions().catch(console.warn);
}

function drawLayer() {
  if (!pet.map || !pet.map.getSource("petition-hotspots") || !pet.hotspots) return;
  const freshCells = new Set(pet.fresh.map((e) => e.cell));
  const features = pet.hotspots.features.map((f) => ({ ...f, properties: { ...f.properties, fresh: freshCells.has(f.properties.cell) } }));
  pet.map.getSource("petition-hotspots").setData({ type: "FeatureCollection", features });
  pet.drawn = features.length;
}

export async function loadPetitions() {
  const mine = ++pet.ticket;
  if (!Object.keys(CATEGORY_NAMES).length) {
    const cats = await getJson("/v1/petitions/categories");
    cats.items.forEach((c) => { CATEGORY_NAMES[c.code] = [c.name_zh || c.code, c.name_en || c.code]; });
    pet.categories = cats.items;
  }
  const f = filters();
  const [hotspots, trends] = await Promise.all([
    getJson("/v1/petitions/hotspots", { category: f.category, from: f.from, to: f.to, res: f.res, measure: f.measure }),
    getJson("/v1/petitions/trends", { category: f.category, from: f.from, to: f.to }),
  ]);
  if (mine !== pet.ticket) return; // a newer choice won
  pet.hotspots = hotspots;
  pet.trends = trends;
  pet.loaded = true;
  drawLayer();
  renderPetitions();
  document.getElementById("panel-petitions").dataset.loaded = String(pet.ticket);
}

export function renderPetitions() {
  const panel = document.getElementById("panel-petitions");
  if (!panel) return;
  document.getElementById("tab-petitions").textContent = tr("tab");
  panel.querySelector("#pet-title").textContent = tr("title");
  panel.querySelectorAll("[data-pet]").forEach((el) => { el.textContent = tr(el.dataset.pet); });
  const sel = panel.querySelector("#pet-category");
  const chosen = sel.value;
  sel.innerHTML = `<option value="">${tr("all")}</option>` + (pet.categories || [])
    .map((c) => `<option value="${esc(c.code)}" ${c.code === chosen ? "selected" : ""}>${esc(catName(c.code))} (${fmtInt(c.cases)})</option>`).join("");
  const measure = panel.querySelector("#pet-measure");
  const m = measure.value || "count";
  measure.innerHTML = ["count", "rate"].map((x) => `<option value="${x}" ${x === m ? "selected" : ""}>${tr(x)}</option>`).join("");
  const h = pet.hotspots;
  const badge = panel.querySelector("#pet-synthetic");
  const synthetic = Boolean((h && h.synthetic) || (pet.trends && pet.trends.synthetic));
  badge.hidden = !synthetic;
  badge.textContent = tr("synthetic");
  document.body.classList.toggle("petitions-synthetic", synthetic);
  renderNew(panel);
  if (!h) return;
  const day = (iso) => String(iso).slice(0, 10);
  panel.querySelector("#pet-summary").textContent =
    `${fmtInt(h.cases)} ${tr("cases")} · ${day(h.window.from)} – ${day(h.window.to)} · ${h.hot} ${tr("hot")} · ${h.cold} ${tr("cold")} · H3 res ${h.method.resolution}, k=${h.method.neighbourhood.match(/k=(\d+)/)[1]}, FDR ≤ ${h.method.multiple_testing.match(/q <= ([\d.]+)/)[1]}`;
  panel.querySelector("#pet-summary").dataset.hot = h.hot;
  const top = h.features.filter((x) => x.properties.verdict === "hot").slice(0, 10);
  panel.querySelector("#pet-top thead").innerHTML = `<tr><th>${tr("cell")}</th><th class="num">${tr("count")}</th><th class="num">${tr("ring")}</th><th class="num">${tr("rate")}</th><th class="num">z</th><th class="num">q</th></tr>`;
  panel.querySelector("#pet-top tbody").innerHTML = top.map((x) => {
    const p = x.properties;
    return `<tr data-cell="${esc(p.cell)}"><td class="mono"><a href="#" data-fly="${esc(p.cell)}">${esc(p.cell)}</a></td><td class="num">${fmtInt(p.count)}</td><td class="num">${fmtInt(p.neighbourhood_count)}</td><td class="num">${p.rate.toFixed(2)}</td><td class="num">${p.z.toFixed(1)}</td><td class="num">${p.q.toExponential(1)}</td></tr>`;
  }).join("") || `<tr><td colspan="6" class="muted">${tr("none")}</td></tr>`;
  panel.querySelectorAll("[data-fly]").forEach((a) => a.addEventListener("click", (e) => {
    e.preventDefault();
    const feature = h.features.find((x) => x.properties.cell === a.dataset.fly);
    if (feature && pet.map) {
      const ring = feature.geometry.coordinates[0];
      pet.map.flyTo({ center: ring[0], zoom: 12, duration: 0 }); // below the coverage cells' zoom: the hotspots stay readable
    }
  }));
  panel.querySelector("#pet-method").textContent = `${tr("method")}: ${h.method.statistic}; ${h.method.neighbourhood}; ${h.method.values}; ${h.method.multiple_testing}; p: ${h.method.p_values}.`;
  renderTrends(panel);
}

function renderNew(panel) {
  const list = panel.querySelector("#pet-new");
  list.innerHTML = pet.fresh.length
    ? pet.fresh.slice(0, 10).map((e) => `<li data-cell="${esc(e.cell)}"><span class="dot s-down"></span><b class="mono">${esc(e.cell)}</b> ${e.category ? esc(catName(e.category)) : ""} · ${fmtInt(e.neighbourhood_count)} ${tr("cases")} (${tr("ring")}, res ${e.res}) · z ${Number(e.z).toFixed(1)}${e.synthetic ? ` <span class="synthetic-badge">${tr("synthetic")}</span>` : ""}</li>`).join("")
    : `<li class="muted">${tr("none")}</li>`;
}

function renderTrends(panel) {
  const tr_ = pet.trends;
  const el = panel.querySelector("#pet-trends");
  el.innerHTML = "";
  if (!tr_) return;
  tr_.series.forEach((s) => {
    const row = document.createElement("div");
    row.className = "pet-trend";
    row.dataset.category = s.category;
    const total = s.points.reduce((a, p) => a + p.received, 0);
    const peak = s.points.reduce((a, p) => (p.received > a.received ? p : a), s.points[0]);
    row.innerHTML = `<span>${esc(catName(s.category))}</span><span class="num">${fmtInt(total)}</span><span class="muted">↑ ${peak ? peak.month : ""}</span>`;
    row.appendChild(sparkline(s.points.map((p, i) => [i, p.received]), 160, 26));
    el.appendChild(row);
  });
  if (tr_.months.length) {
    const span = document.createElement("p");
    span.className = "muted note";
    span.textContent = `${tr_.months[0]} – ${tr_.months[tr_.months.length - 1]} (${tr_.timezone})` +
      (tr_.breakpoints.length ? ` · ${tr_.breakpoints.map((b) => `${b.month}: ${b.note}`).join("; ")}` : "");
    el.appendChild(span);
  }
  const fmtH = (x) => (x == null ? "–" : Number(x).toFixed(1));
  panel.querySelector("#pet-close thead").innerHTML = `<tr><th>${tr("category")}</th><th class="num">${tr("dispatch")}</th><th class="num">${tr("resolved")}</th><th class="num">${tr("open")}</th></tr>`;
  panel.querySelector("#pet-close tbody").innerHTML = tr_.time_to_close.map((c) =>
    `<tr data-category="${esc(c.category)}"><td>${esc(catName(c.category))}</td><td class="num">${fmtH(c.dispatch_median_h)}</td><td class="num">${fmtH(c.close_median_h)} / ${fmtH(c.close_p90_h)}</td><td class="num">${fmtInt(c.open)}</td></tr>`).join("");
}

// An event from the stream: listed first, outlined on the map, and the layer reloaded so the
// new cell is drawn even when the current filter had not shown it yet.
export function onPetitionHotspot(event, logEvent) {
  pet.fresh.unshift(event);
  if (pet.fresh.length > 50) pet.fresh.pop();
  if (logEvent) logEvent(`<span class="dot s-down"></span>${tr("newEvent")} <b class="mono">${esc(event.cell)}</b> z ${Number(event.z).toFixed(1)}${event.synthetic ? ` <span class="synthetic-badge">${tr("synthetic")}</span>` : ""}`);
  const panel = document.getElementById("panel-petitions");
  if (panel) renderNew(panel);
  loadPetitions().catch(console.warn);
}
