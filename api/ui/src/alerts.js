// Alerts on the page: the unacknowledged count in the header, a banner for each new incident
// (prominent on the wall), the list of incidents not yet resolved, and the park's devices on the
// map coloured by state and alert; clicking one shows its latest readings. Everything follows
// GET /v1/alerts/stream, so nothing needs a reload.
import { getJson, postJson } from "./api.js";
import { fmtNum, fmtTime, t } from "./i18n.js";

const EMPTY = { type: "FeatureCollection", features: [] };
const BANNER_MS = 20_000;
// device states on the map (Okabe-Ito): online bluish green, offline grey, alert vermillion,
// acknowledged alert orange
export const DEVICE_COLOURS = { online: "#009e73", offline: "#8a96a3", alert: "#d55e00", acked: "#e69f00" };
const NOTIFY = new Set(["opened", "escalated", "flapping"]);

const alerts = {
  counts: { open: 0, acknowledged: 0 },
  active: new Map(), // incident_id -> incident (open or acknowledged)
  devices: [],
  stream: null,
};
window.zhongdu = window.zhongdu || {};
window.zhongdu.alerts = alerts;

const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function renderCount(root) {
  const el = root.querySelector("#kpi-alerts");
  if (!el) return;
  el.textContent = String(alerts.counts.open);
  el.dataset.open = alerts.counts.open;
  el.parentElement.classList.toggle("hot", alerts.counts.open > 0);
  const acked = root.querySelector("#kpi-alerts-acked");
  if (acked) acked.textContent = alerts.counts.acknowledged ? `+${alerts.counts.acknowledged} ${t("alertAcked")}` : "";
}

function renderList(root) {
  const list = root.querySelector("#alerts-list");
  if (!list) return;
  const rows = [...alerts.active.values()].sort((a, b) => (a.state === b.state ? (a.opened_at < b.opened_at ? 1 : -1) : a.state === "open" ? -1 : 1));
  if (!rows.length) {
    list.innerHTML = `<li class="muted">${t("noAlerts")}</li>`;
    return;
  }
  list.innerHTML = rows.map((i) => `<li class="alert-row sev-${i.severity} st-${i.state}" data-incident-id="${i.incident_id}">
      <span class="sev">${t("sev_" + i.severity)}</span>
      <span class="what">${esc(i.summary)}${i.flapping ? ` <em class="flap">${t("flapping")}</em>` : ""}${i.escalation_level ? ` <em class="esc">↑${i.escalation_level}</em>` : ""}</span>
      <span class="muted">${fmtTime(i.opened_at)}</span>
      <span class="muted">${i.state === "acknowledged" ? `✔ ${esc(i.acked_by)}` : `<button type="button" class="ack" data-ack="${i.incident_id}">${t("ackButton")}</button>`}</span>
    </li>`).join("");
}

// Acknowledging from the page: an operator's key and the person's name, kept for the session.
async function ack(root, id) {
  const key = root.querySelector("#ack-key").value.trim();
  const by = root.querySelector("#ack-by").value.trim();
  const note = root.querySelector("#ack-note");
  if (!key || !by) {
    note.textContent = t("ackNeeds");
    return;
  }
  sessionStorage.setItem("zd-operator-key", key);
  sessionStorage.setItem("zd-operator-name", by);
  try {
    const incident = await postJson(`/v1/alerts/${id}/ack`, { by }, key);
    alerts.active.set(incident.incident_id, incident);
    note.textContent = "";
    renderList(root);
  } catch (err) {
    note.textContent = `${t("ackFailed")}: ${err.message}`;
  }
}

function wireAck(root) {
  const list = root.querySelector("#alerts-list");
  if (!list || list.dataset.wired) return;
  list.dataset.wired = "1";
  root.querySelector("#ack-key").value = sessionStorage.getItem("zd-operator-key") || "";
  root.querySelector("#ack-by").value = sessionStorage.getItem("zd-operator-name") || "";
  list.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-ack]");
    if (button) ack(root, Number(button.dataset.ack));
  });
}

function showBanner(root, event) {
  const banner = root.querySelector("#alert-banner");
  if (!banner) return;
  const i = event.incident;
  banner.hidden = false;
  banner.className = `alert-banner sev-${i.severity}`;
  banner.dataset.incidentId = i.incident_id;
  banner.innerHTML = `<b>${t("ev_" + event.event)}</b> <span>${esc(i.summary)}</span> <span class="muted">${fmtTime(i.opened_at)}</span>`;
  clearTimeout(showBanner.timer);
  showBanner.timer = setTimeout(() => { banner.hidden = true; }, BANNER_MS);
}

// --- park devices on the map ----------------------------------------------------------------------

function deviceState(device) {
  const mine = [...alerts.active.values()].filter((i) => i.source === device.device_id);
  if (mine.some((i) => i.state === "open")) return "alert";
  if (mine.length) return "acked";
  return device.connection === "offline" || device.status === "offline" ? "offline" : "online";
}

function devicesGeoJson() {
  return {
    type: "FeatureCollection",
    features: alerts.devices.filter((d) => d.lon != null && d.lat != null).map((d) => ({
      type: "Feature",
      geometry: { type: "Point", coordinates: [d.lon, d.lat] },
      properties: { id: d.device_id, kind: d.kind, state: deviceState(d) },
    })),
  };
}

function drawDevices(map) {
  const source = map && map.getSource("park-devices");
  if (source) source.setData(devicesGeoJson());
}

export function addDeviceLayer(map) {
  map.addSource("park-devices", { type: "geojson", data: EMPTY });
  const colour = ["match", ["get", "state"], "alert", DEVICE_COLOURS.alert, "acked", DEVICE_COLOURS.acked, "offline", DEVICE_COLOURS.offline, DEVICE_COLOURS.online];
  map.addLayer({
    id: "park-devices",
    type: "circle",
    source: "park-devices",
    paint: {
      "circle-color": colour,
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, ["match", ["get", "state"], "alert", 5, 2.5], 15, ["match", ["get", "state"], "alert", 11, 7]],
      "circle-stroke-color": ["match", ["get", "state"], "alert", "#ffffff", "#0b1220"],
      "circle-stroke-width": ["match", ["get", "state"], "alert", 2, 1],
    },
  });
}

export async function loadDevices(map) {
  const body = await getJson("/v1/devices", { limit: 1000 });
  alerts.devices = body.items;
  drawDevices(map);
}

export async function deviceHtml(id) {
  const d = await getJson(`/v1/devices/${encodeURIComponent(id)}`);
  const mine = [...alerts.active.values()].filter((i) => i.source === id);
  const rows = d.latest.map((r) => `<tr><td class="mono">${esc(r.metric)}</td><td class="num">${r.value != null ? fmtNum(r.value, 2) : esc(r.value_text)}</td><td class="muted">${esc(r.unit || "")}</td><td class="muted">${fmtTime(r.time)}</td></tr>`).join("");
  return `<div class="popup" data-device="${esc(id)}"><h3>${esc(d.name || id)} <small class="mono">${esc(id)}</small></h3>
    <dl><dt>${t("kind")}</dt><dd>${esc(d.kind)}</dd><dt>${t("status")}</dt><dd>${esc(d.connection || d.status || "–")}</dd></dl>
    ${mine.map((i) => `<p class="alert-row sev-${i.severity}">${esc(i.summary)} · ${i.state === "open" ? t("alertUnacked") : `✔ ${esc(i.acked_by)}`}</p>`).join("")}
    <table class="readings"><thead><tr><th>${t("metric")}</th><th class="num">${t("latest")}</th><th></th><th>${t("at")}</th></tr></thead><tbody>${rows || `<tr><td colspan="4" class="muted">${t("noReadings")}</td></tr>`}</tbody></table></div>`;
}

// --- stream ---------------------------------------------------------------------------------------

function onAlert(root, map, event, log) {
  const i = event.incident;
  if (i.state === "resolved") alerts.active.delete(i.incident_id);
  else alerts.active.set(i.incident_id, i);
  if (NOTIFY.has(event.event)) showBanner(root, event);
  const banner = root.querySelector("#alert-banner");
  if (banner && !NOTIFY.has(event.event) && banner.dataset.incidentId === String(i.incident_id)) banner.hidden = true; // handled
  if (log) log(`<span class="sev-tag sev-${i.severity}">${t("ev_" + event.event)}</span> ${esc(i.summary)}${event.event === "acknowledged" ? ` (${esc(event.actor)})` : ""}`);
  renderList(root);
  drawDevices(map);
}

export async function startAlerts(root, map, log) {
  // handlers attached here, never inline: the page's CSP refuses inline script
  root.querySelector(".ack-form")?.addEventListener("submit", (event) => event.preventDefault());
  wireAck(root);
  const body = await getJson("/v1/alerts", { limit: 500 });
  body.items.filter((i) => i.state !== "resolved").forEach((i) => alerts.active.set(i.incident_id, i));
  alerts.counts = body.counts;
  renderCount(root);
  renderList(root);
  drawDevices(map);
  const source = new EventSource("/v1/alerts/stream");
  source.addEventListener("counts", (e) => { alerts.counts = JSON.parse(e.data); renderCount(root); });
  source.addEventListener("alert", (e) => onAlert(root, map, JSON.parse(e.data), log));
  alerts.stream = source;
}

export function rerenderAlerts(root) {
  renderCount(root);
  renderList(root);
}
