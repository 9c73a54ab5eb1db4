// The planner's desk around the scenario form: where the candidates come from (a file of public
// buildings and land checked by the API, points drawn on the map, the city-wide lattice), the
// criterion and operator, and the saved scenarios: renamed, deleted, opened, compared side by side.
import * as maplibregl from "maplibre-gl";
import { getJson } from "./api.js";
import { addStrings, currentLang, fmtInt, fmtPct, t } from "./i18n.js";
import { escapeHtml, setAfterRun, setCandidateSource, showScenario } from "./scenarios.js";

// One block of strings for the desk (the `desk_` prefix keeps them apart from the others).
addStrings({
  desk_name: ["情境名稱", "Scenario name"],
  desk_nameHint: ["例如：公有建物 第一輪", "e.g. public buildings, round 1"],
  desk_note: ["備註", "Note"],
  desk_source: ["候選站址來源", "Candidates from"],
  desk_srcCells: ["地圖上顯示的未涵蓋網格", "uncovered cells shown on the map"],
  desk_srcLattice: ["全市網格（伺服器產生）", "city-wide lattice (by the server)"],
  desk_srcUpload: ["上傳檔案（公有建物及土地）", "uploaded file (public buildings and land)"],
  desk_srcDrawn: ["在地圖上點選", "points drawn on the map"],
  desk_latticeRes: ["網格解析度（H3）", "Lattice resolution (H3)"],
  desk_latticeLimit: ["最多候選數", "At most this many candidates"],
  desk_latticeDistrict: ["只限所選行政區", "only the selected district"],
  desk_uploadHint: ["CSV 欄位 id, name, lat, lng（或 lon）, cost, height, kind；或 GeoJSON（點或面）", "CSV columns id, name, lat, lng (or lon), cost, height, kind; or GeoJSON (points or polygons)"],
  desk_uploaded: ["{n} 個站址，來自 {file}", "{n} sites from {file}"],
  desk_badFile: ["檔案未採用（未儲存任何資料）", "The file was not used (nothing stored)"],
  desk_line: ["第 {n} 筆：", "Row {n}: "],
  desk_noFile: ["請先上傳候選站址檔案", "Upload a candidate file first"],
  desk_drawOn: ["點選地圖新增站址（再點一次移除）", "Click the map to add a site (click it again to remove)"],
  desk_drawStart: ["開始點選", "Start drawing"],
  desk_drawStop: ["結束點選", "Stop drawing"],
  desk_drawClear: ["清除", "Clear"],
  desk_drawCount: ["已點選 {n} 個站址", "{n} sites drawn"],
  desk_noDrawn: ["請先在地圖上點選站址", "Draw sites on the map first"],
  desk_op_any: ["任一業者", "any operator"],
  desk_op_CHT: ["中華電信", "Chunghwa Telecom"],
  desk_op_TWM: ["台灣大哥大", "Taiwan Mobile"],
  desk_op_FET: ["遠傳電信", "Far EasTone"],
  desk_op_every_major: ["三大業者皆涵蓋", "every major operator"],
  desk_operator: ["業者", "Operator"],
  desk_export: ["匯出", "Export"],
  desk_csvExcel: ["CSV（Excel）", "CSV (Excel)"],
  desk_pdf: ["PDF（一頁）", "PDF (one page)"],
  desk_saved: ["已儲存的情境", "Saved scenarios"],
  desk_none: ["尚無情境", "No scenarios yet"],
  desk_compare: ["比較所選（2–3 個）", "Compare selected (2–3)"],
  desk_compareHint: ["請勾選 2 至 3 個已完成的情境", "Tick 2 to 3 finished scenarios"],
  desk_clearCompare: ["結束比較", "End comparison"],
  desk_open: ["開啟", "Open"],
  desk_rename: ["更名", "Rename"],
  desk_save: ["儲存", "Save"],
  desk_delete: ["刪除", "Delete"],
  desk_confirmDelete: ["確定刪除？", "Really delete?"],
  desk_status_pending: ["排隊中", "queued"],
  desk_status_running: ["計算中", "running"],
  desk_status_done: ["完成", "done"],
  desk_status_failed: ["失敗", "failed"],
  desk_src_list: ["清單", "list"],
  desk_src_cells: ["地圖網格", "map cells"],
  desk_src_lattice: ["全市網格", "city lattice"],
  desk_src_upload: ["上傳檔案", "uploaded file"],
  desk_src_drawn: ["地圖點選", "drawn"],
  desk_rowSource: ["候選來源", "Candidates"],
  desk_rowCriterion: ["涵蓋準則・業者", "Criterion, operator"],
  desk_rowPicks: ["建議站數", "Sites proposed"],
  desk_rowCost: ["總成本", "Total cost"],
  desk_rowAdded: ["新增涵蓋人口", "People added"],
  desk_rowBefore: ["配置前涵蓋率", "Share before"],
  desk_rowAfter: ["配置後涵蓋率", "Share after"],
  desk_colName: ["名稱", "Name"],
  desk_colStatus: ["狀態", "Status"],
});

// Why a file was refused, in Chinese from the API's codes (in English the API's own reasons,
// which name the value, are shown).
const REFUSED_ZH = {
  columns: "表頭缺少欄位：{field}",
  extra_values: "欄位數多於表頭",
  not_feature: "不是含幾何的 Feature",
  bad_geometry: "幾何無效",
  missing: "缺少{field}",
  not_number: "{field}不是數字",
  bad_id: "編號須為 1–64 個英數字或 . _ : -",
  out_of_area: "座標不在臺中市及鄰近範圍（緯度 23–25.5、經度 119–122.5）",
  out_of_range: "{field}超出範圍",
  bad_name: "名稱過長或含控制字元",
  bad_kind: "類別須為小寫英文字母與 _",
  repeat: "編號重複",
  invalid: "資料無效",
  too_big: "檔案超過 2 MiB 上限",
  too_many: "站址超過 1,500 個上限",
  empty: "檔案沒有站址",
  not_csv: "無法讀取的 CSV",
  not_json: "不是 GeoJSON FeatureCollection",
  encoding: "檔案須為 UTF-8 或 Big5 文字",
};
const FIELD_ZH = { id: "編號", lat: "緯度", lng: "經度", cost: "成本", height: "高度", kind: "類別", name: "名稱" };

function refusedText(code, field, english) {
  if (currentLang() === "en" || !(code in REFUSED_ZH)) return `<span class="user-text">${escapeHtml(english)}</span>`;
  const fieldZh = (field || "").split(", ").map((f) => FIELD_ZH[f] || f).join("、");
  return escapeHtml(fill(REFUSED_ZH[code], { field: fieldZh }));
}

const OPERATORS = ["any", "CHT", "TWM", "FET", "every_major"];
const CRITERIA = ["outdoor", "indoor"]; // capacity is not additive over sites: the placement refuses it
const COMPARE_SHAPES = ["circle", "square", "diamond"]; // with the Okabe-Ito colours of style.css

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, k) => values[k]);
}

export function installDesk(root, map, state, onPicks) {
  state.desk = { uploaded: null, uploadError: null, drawn: [], nextDrawn: 1, list: [], compare: null, compareMarkers: [], confirming: null, renaming: null };
  map.addSource("desk-candidates", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: "desk-candidates",
    type: "circle",
    source: "desk-candidates",
    paint: { "circle-color": "#f0e442", "circle-radius": 6, "circle-stroke-color": "#000000", "circle-stroke-width": 1.5 },
  });
  map.on("click", (e) => {
    if (!state.drawMode) return;
    const near = map.queryRenderedFeatures([[e.point.x - 6, e.point.y - 6], [e.point.x + 6, e.point.y + 6]], { layers: ["desk-candidates"] });
    const drawn = state.desk.drawn;
    const hit = near.find((f) => f.properties.drawn);
    if (hit) drawn.splice(drawn.findIndex((d) => d.id === hit.properties.id), 1);
    else drawn.push({ id: `D${state.desk.nextDrawn++}`, lng: +e.lngLat.lng.toFixed(6), lat: +e.lngLat.lat.toFixed(6) });
    showCandidates(map, state);
    renderDrawn(root, state);
  });

  const source = root.querySelector("#candidate-source");
  source.addEventListener("change", () => {
    if (source.value !== "drawn") setDrawMode(root, map, state, false);
    showSource(root);
    showCandidates(map, state);
  });
  root.querySelector("#candidate-file").addEventListener("change", (e) => {
    if (e.target.files[0]) uploadFile(root, map, state, e.target.files[0]).catch(report(root));
  });
  root.querySelector("#draw-toggle").addEventListener("click", () => setDrawMode(root, map, state, !state.drawMode));
  root.querySelector("#draw-clear").addEventListener("click", () => { state.desk.drawn = []; showCandidates(map, state); renderDrawn(root, state); });
  root.querySelector("#scenario-list").addEventListener("click", (e) => listClick(root, map, state, e, onPicks).catch(report(root)));
  root.querySelector("#scenario-list").addEventListener("change", () => renderCompareButton(root));
  root.querySelector("#scenario-compare").addEventListener("click", (e) => {
    if (e.target.closest("#compare-clear")) clearCompare(root, state);
  });

  setCandidateSource((source, key) => candidatesOf(state, source, key));
  setAfterRun(() => loadList(root, state).catch(report(root)));
  renderDesk(root, state);
  loadList(root, state).catch(report(root));
}

function report(root) {
  return (err) => {
    const el = root.querySelector("#desk-status");
    if (el) el.textContent = `${err.status || ""} ${err.message}`;
  };
}

function showSource(root) {
  const value = root.querySelector("#candidate-source").value;
  root.querySelectorAll("[data-source]").forEach((el) => { el.hidden = el.dataset.source !== value; });
}

function setDrawMode(root, map, state, on) {
  state.drawMode = on;
  map.getCanvas().style.cursor = on ? "crosshair" : "";
  renderDrawn(root, state);
}

// Uploaded or drawn sites on the map (yellow, ringed black), for the source chosen.
function showCandidates(map, state) {
  const value = document.querySelector("#candidate-source").value;
  const sites = value === "upload" && state.desk.uploaded ? state.desk.uploaded.sites : value === "drawn" ? state.desk.drawn : [];
  state.desk.shown = sites.length;
  map.getSource("desk-candidates").setData({
    type: "FeatureCollection",
    features: sites.map((s) => ({ type: "Feature", geometry: { type: "Point", coordinates: [s.lng, s.lat] }, properties: { id: s.id, drawn: value === "drawn" } })),
  });
}

function keyOf(root) {
  return root.querySelector("#planner-key").value.trim();
}

async function postFile(text, filename, key) {
  const geo = /\.(geo)?json$/i.test(filename) || text.trimStart().startsWith("{");
  const answer = await fetch("/v1/scenarios/candidates", {
    method: "POST",
    headers: { "Content-Type": geo ? "application/geo+json" : "text/csv; charset=utf-8", Accept: "application/json", "X-API-Key": key },
    body: text,
  });
  const body = await answer.json().catch(() => ({}));
  return { ok: answer.ok, status: answer.status, body };
}

async function uploadFile(root, map, state, file) {
  const key = keyOf(root);
  state.desk.uploaded = null;
  state.desk.uploadError = null;
  if (!key) { state.desk.uploadError = { status: 401, message: t("needKey"), errors: [] }; renderUpload(root, state); return; }
  sessionStorage.setItem("zd-planner-key", key);
  const bytes = await file.arrayBuffer();
  // the API reads UTF-8 or Big5; the bytes go as they are
  const answer = await fetch("/v1/scenarios/candidates", {
    method: "POST",
    headers: { "Content-Type": /\.(geo)?json$/i.test(file.name) ? "application/geo+json" : "text/csv", Accept: "application/json", "X-API-Key": key },
    body: bytes,
  });
  const body = await answer.json().catch(() => ({}));
  if (answer.ok) state.desk.uploaded = { file: file.name, sites: body.sites, candidates: body.candidates };
  else state.desk.uploadError = { status: answer.status, code: body.code, message: body.message || body.detail, errors: Array.isArray(body.detail) ? body.detail : [] };
  renderUpload(root, state);
  showCandidates(map, state);
}

// The candidates of the desk's sources, for runScenario: the uploaded file's, or the drawn points
// checked and made sector rows by the same API route as a file.
async function candidatesOf(state, source, key) {
  if (source === "upload") {
    if (!state.desk.uploaded) throw Object.assign(new Error(t("desk_noFile")), { kind: "error" });
    return state.desk.uploaded.candidates;
  }
  if (!state.desk.drawn.length) throw Object.assign(new Error(t("desk_noDrawn")), { kind: "error" });
  const csv = ["id,lat,lng,kind", ...state.desk.drawn.map((d) => `${d.id},${d.lat},${d.lng},public_land`)].join("\n");
  const answer = await postFile(csv, "drawn.csv", key);
  if (!answer.ok) throw Object.assign(new Error(answer.body.message || String(answer.body.detail)), { status: answer.status });
  return answer.body.candidates;
}

// --- rendering (again after a language switch) ------------------------------------------------

export function renderDesk(root, state) {
  if (!state.desk) return;
  const criterion = root.querySelector("#scenario-criterion");
  const chosenCriterion = criterion.value || "outdoor";
  criterion.innerHTML = CRITERIA.map((c) => `<option value="${c}" ${c === chosenCriterion ? "selected" : ""}>${t("crit_" + c)}</option>`).join("");
  criterion.setAttribute("aria-label", t("criterion"));
  const operator = root.querySelector("#scenario-operator");
  const chosenOperator = operator.value || "any";
  operator.innerHTML = OPERATORS.map((o) => `<option value="${o}" ${o === chosenOperator ? "selected" : ""}>${t("desk_op_" + o)}</option>`).join("");
  operator.setAttribute("aria-label", t("desk_operator"));
  root.querySelector("#candidate-source").setAttribute("aria-label", t("desk_source"));
  showSource(root);
  renderUpload(root, state);
  renderDrawn(root, state);
  renderList(root, state);
  renderCompare(root, state);
}

function renderUpload(root, state) {
  const box = root.querySelector("#upload-status");
  const { uploaded, uploadError } = state.desk;
  if (uploaded) {
    box.innerHTML = `<p data-sites="${uploaded.sites.length}">${fill(t("desk_uploaded"), { n: uploaded.sites.length, file: `<span class="user-text">${escapeHtml(uploaded.file)}</span>` })}</p>`;
  } else if (uploadError) {
    box.innerHTML = `<p class="error" data-status="${uploadError.status}">${t("desk_badFile")} (${uploadError.status})</p>
      <ul class="file-errors">${uploadError.errors.map((e) => `<li data-line="${e.line}" data-code="${e.code}">${fill(t("desk_line"), { n: e.line })}${refusedText(e.code, e.field, e.reason)}</li>`).join("")}</ul>
      ${uploadError.errors.length ? "" : `<p>${refusedText(uploadError.code, null, uploadError.message)}</p>`}`;
  } else box.innerHTML = "";
}

function renderDrawn(root, state) {
  const toggle = root.querySelector("#draw-toggle");
  toggle.textContent = t(state.drawMode ? "desk_drawStop" : "desk_drawStart");
  toggle.setAttribute("aria-pressed", String(Boolean(state.drawMode)));
  root.querySelector("#draw-count").textContent = `${fill(t("desk_drawCount"), { n: state.desk.drawn.length })}${state.drawMode ? ` · ${t("desk_drawOn")}` : ""}`;
  root.querySelector("#draw-count").dataset.count = state.desk.drawn.length;
}

async function loadList(root, state) {
  const page = await getJson("/v1/scenarios", { limit: 50 });
  state.desk.list = page.items;
  renderList(root, state);
}

function renderList(root, state) {
  const box = root.querySelector("#scenario-list");
  const checked = new Set([...box.querySelectorAll("input[data-compare]:checked")].map((el) => el.dataset.compare));
  const items = state.desk.list;
  if (!items.length) { box.innerHTML = `<p class="muted">${t("desk_none")}</p>`; return; }
  const { confirming, renaming } = state.desk;
  box.innerHTML = `<table class="saved"><thead><tr><th></th><th>${t("desk_colName")}</th><th>${t("desk_rowCriterion")}</th><th>${t("desk_rowSource")}</th><th>${t("desk_rowPicks")}</th><th>${t("desk_rowAfter")}</th><th>${t("desk_colStatus")}</th></tr></thead><tbody>${items.map((s) => {
    const name = renaming === s.scenario_id
      ? `<input class="rename" value="${escapeHtml(s.name || "")}" maxlength="200" aria-label="${t("desk_name")}"> <button type="button" data-act="save">${t("desk_save")}</button>`
      : `<span class="user-text">${escapeHtml(s.name || s.scenario_id)}</span>${s.note ? `<br><small class="user-text">${escapeHtml(s.note)}</small>` : ""}`;
    return `<tr data-id="${s.scenario_id}" data-status="${s.status}">
      <td><input type="checkbox" data-compare="${s.scenario_id}" ${checked.has(s.scenario_id) ? "checked" : ""} ${s.status === "done" ? "" : "disabled"} aria-label="${t("desk_compare")}"></td>
      <td>${name}<div class="actions"><button type="button" data-act="open" ${s.status === "done" || s.status === "failed" ? "" : "disabled"}>${t("desk_open")}</button>
        <button type="button" data-act="rename">${t("desk_rename")}</button>
        <button type="button" data-act="delete" class="${confirming === s.scenario_id ? "danger" : ""}">${t(confirming === s.scenario_id ? "desk_confirmDelete" : "desk_delete")}</button></div></td><td>${t("crit_" + s.criterion)} · ${t("desk_op_" + s.operator)}</td><td>${t("desk_src_" + s.source)}</td>
      <td class="num">${s.picks_count ?? "–"}</td><td class="num">${fmtPct(s.share_after, 3)}</td><td>${t("desk_status_" + s.status)}</td></tr>`;
  }).join("")}</tbody></table>
  <p><button type="button" id="compare-run">${t("desk_compare")}</button> <span class="muted" id="compare-hint">${t("desk_compareHint")}</span></p>`;
  renderCompareButton(root);
}

function renderCompareButton(root) {
  const button = root.querySelector("#compare-run");
  if (!button) return;
  const n = root.querySelectorAll("#scenario-list input[data-compare]:checked").length;
  button.disabled = n < 2 || n > 3;
}

async function send(method, path, key, body) {
  const headers = { Accept: "application/json", "X-API-Key": key };
  if (body) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  if (!answer.ok) {
    const detail = await answer.json().catch(() => ({}));
    throw Object.assign(new Error(detail.message || detail.detail || answer.statusText), { status: answer.status });
  }
  return answer.status === 204 ? null : answer.json();
}

async function listClick(root, map, state, e, onPicks) {
  if (e.target.closest("#compare-run")) { await compare(root, map, state); return; }
  const button = e.target.closest("button[data-act]");
  if (!button) return;
  const id = button.closest("tr").dataset.id;
  const act = button.dataset.act;
  if (act === "open") {
    showScenario(root, state, await getJson(`/v1/scenarios/${id}`), onPicks);
    return;
  }
  const key = keyOf(root);
  if (!key) { report(root)(new Error(t("needKey"))); return; }
  if (act === "rename") { state.desk.renaming = id; renderList(root, state); root.querySelector("#scenario-list input.rename").focus(); return; }
  if (act === "save") {
    const name = root.querySelector("#scenario-list input.rename").value.trim();
    if (name) await send("PATCH", `/v1/scenarios/${id}`, key, { name });
    state.desk.renaming = null;
  } else if (act === "delete") {
    if (state.desk.confirming !== id) { state.desk.confirming = id; renderList(root, state); return; } // a second click deletes
    await send("DELETE", `/v1/scenarios/${id}`, key);
    state.desk.confirming = null;
    if (state.lastScenario && state.lastScenario.scenario.scenario_id === id) { state.lastScenario = null; root.querySelector("#scenario-result").innerHTML = ""; onPicks([]); }
  }
  await loadList(root, state);
}

// --- side by side -------------------------------------------------------------------------------

const COMPARE_OFFSET_PX = 22; // a pin's width: co-located picks touch but do not cover each other

async function compare(root, map, state) {
  const ids = [...root.querySelectorAll("#scenario-list input[data-compare]:checked")].map((el) => el.dataset.compare);
  if (ids.length < 2 || ids.length > 3) return;
  const body = await getJson("/v1/scenarios/compare", { ids: ids.join(",") });
  clearCompare(root, state);
  state.desk.compare = body.items;
  // scenarios that picked the same site: their pins side by side (offset in pixels), not stacked
  const at = (p) => `${p.lng.toFixed(6)},${p.lat.toFixed(6)}`;
  const sharing = new Map();
  body.items.forEach((s, k) => s.picks.forEach((p) => {
    const list = sharing.get(at(p)) || [];
    if (!list.includes(k)) list.push(k);
    sharing.set(at(p), list);
  }));
  state.desk.compareMarkers = body.items.flatMap((s, k) => s.picks.map((p, i) => {
    const el = document.createElement("div");
    el.className = "compare-pin"; // the shape is inside: MapLibre positions the pin by its transform
    el.dataset.scenario = s.scenario_id;
    const same = sharing.get(at(p));
    const dx = COMPARE_OFFSET_PX * (same.indexOf(k) - (same.length - 1) / 2);
    el.dataset.offset = String(dx);
    el.innerHTML = `<span class="compare-marker compare-${k} shape-${COMPARE_SHAPES[k]}"><span>${i + 1}</span></span>`;
    return new maplibregl.Marker({ element: el, offset: [dx, 0] }).setLngLat([p.lng, p.lat]).addTo(map);
  }));
  const all = body.items.flatMap((s) => s.picks);
  if (all.length) {
    const lngs = all.map((p) => p.lng), lats = all.map((p) => p.lat);
    map.fitBounds([[Math.min(...lngs), Math.min(...lats)], [Math.max(...lngs), Math.max(...lats)]], { padding: 80, maxZoom: 14, duration: 0 });
  }
  renderCompare(root, state);
}

function clearCompare(root, state) {
  state.desk.compareMarkers.forEach((m) => m.remove());
  state.desk.compareMarkers = [];
  state.desk.compare = null;
  renderCompare(root, state);
}

function renderCompare(root, state) {
  const box = root.querySelector("#scenario-compare");
  const items = state.desk.compare;
  if (!items) { box.innerHTML = ""; return; }
  const rows = [
    ["desk_rowCriterion", (s) => `${t("crit_" + s.criterion)} · ${t("desk_op_" + s.operator)}`],
    ["desk_rowSource", (s) => t("desk_src_" + s.source)],
    ["desk_rowPicks", (s) => fmtInt(s.picks_count)],
    ["desk_rowCost", (s) => fmtInt(s.total_cost)],
    ["desk_rowAdded", (s) => fmtInt(s.people_added)],
    ["desk_rowBefore", (s) => fmtPct(s.share_before, 3)],
    ["desk_rowAfter", (s) => fmtPct(s.share_after, 3)],
  ];
  box.innerHTML = `<table class="compare" data-lang="${currentLang()}"><thead><tr><th></th>${items.map((s, k) => `<th data-scenario="${s.scenario_id}"><span class="swatch compare-${k} shape-${COMPARE_SHAPES[k]}"></span> <span class="user-text">${escapeHtml(s.name || s.scenario_id)}</span></th>`).join("")}</tr></thead>
    <tbody>${rows.map(([key, cell]) => `<tr data-row="${key}"><th>${t(key)}</th>${items.map((s) => `<td class="num">${cell(s)}</td>`).join("")}</tr>`).join("")}</tbody></table>
    <button type="button" id="compare-clear">${t("desk_clearCompare")}</button>`;
}

