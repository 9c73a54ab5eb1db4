// Live panel: outages as they happen (with the coverage change they cause), the park's latest
// readings per kind with trends, and the ingester's health.
import { getJson } from "./api.js";
import { currentLang, fmtNum, fmtPct, fmtTime, t } from "./i18n.js";
import { metricName, unitLabel } from "./metric_names.js";
import { sparkline } from "./sparkline.js";
import { effectForView, siteEffectHtml } from "./outage_effect.js";

// Outage rows, the costliest first under the map's view (people it leaves uncovered, from
// GET /v1/ops/outages), then the newest; each row a button that flies to its site.
export function renderOutages(root, state) {
  const list = root.querySelector("#outages");
  const effect = effectForView(state);
  const people = (id) => {
    const row = effect && effect.outages.find((o) => o.station_id === id);
    return row && row.people != null ? row.people : -1;
  };
  const rows = [...state.outages.values()].sort((a, b) => people(b.id) - people(a.id) || (a.since < b.since ? 1 : -1));
  if (!rows.length) {
    list.innerHTML = `<li class="muted">${t("noOutages")}</li>`;
    return;
  }
  list.dataset.criterion = effect ? effect.criterion : "";
  list.dataset.operator = effect ? effect.operator : "";
  list.innerHTML = rows.map((o) => `<li class="outage" data-station-id="${o.id}" data-status="${o.status}" tabindex="0" role="button" aria-label="${o.id} ${t("st_" + o.status)}">
      <span class="dot s-${o.status}"></span><b class="mono">${o.id}</b>
      <span>${t("st_" + o.status)}</span>
      <span class="muted">${fmtTime(o.since)}</span>
      ${siteEffectHtml(effect, o.id)}
    </li>`).join("");
}

// Events keep how to say them (a function of the current language), so switching language
// rewrites the log too.
const eventLog = [];

export function logEvent(root, text) {
  eventLog.unshift({ at: new Date().toISOString(), say: typeof text === "function" ? text : () => text });
  eventLog.length = Math.min(eventLog.length, 30);
  renderEvents(root);
}

export function renderEvents(root) {
  root.querySelector("#events").innerHTML = eventLog.length
    ? eventLog.map((e) => `<li><span class="muted">${fmtTime(e.at)}</span> ${e.say()}</li>`).join("")
    : `<li class="muted">${t("noEvents")}</li>`;
}

// The ingester's device kinds, named for the operations center, and the metrics each card shows
// first (the first six are shown).
const KIND_NAMES = {
  air: ["空氣品質", "Air quality"], weather: ["氣象", "Weather"], noise: ["噪音", "Noise"],
  meter: ["智慧電錶", "Smart meters"], solar: ["太陽能", "Solar"], ev_charger: ["充電樁", "EV chargers"],
  security: ["園區保安", "Security"],
};
const FIRST = {
  air: ["pm2_5", "pm10", "o3", "co2", "temperature", "humidity"],
  weather: ["temperature", "humidity", "rain_rate", "wind_speed", "irradiance", "pressure"],
  noise: ["noise_laeq", "noise_lmax"],
  meter: ["power_active", "energy", "voltage", "power_factor"],
  solar: ["power", "energy", "irradiance", "module_temperature"],
  ev_charger: ["power", "energy", "plugged"],
  security: ["intrusion_count", "door_open", "camera_online", "battery"],
};

function kindName(kind) {
  const names = KIND_NAMES[kind];
  return names ? names[currentLang() === "en" ? 1 : 0] : kind;
}

function byImportance(kind) {
  const order = FIRST[kind] || [];
  const rank = (m) => (order.indexOf(m) < 0 ? order.length : order.indexOf(m));
  return (a, b) => rank(a.metric) - rank(b.metric) || a.metric.localeCompare(b.metric);
}

export async function renderPark(root) {
  const body = await getJson("/v1/park/trends", { minutes: 60 });
  const el = root.querySelector("#park");
  if (!body.items.length) {
    el.innerHTML = `<p class="muted">${t("noPark")}</p>`;
    return;
  }
  const kinds = new Map();
  body.items.forEach((item) => {
    if (!kinds.has(item.kind)) kinds.set(item.kind, []);
    kinds.get(item.kind).push(item);
  });
  el.innerHTML = "";
  kinds.forEach((items, kind) => {
    const card = document.createElement("div");
    card.className = "park-card";
    card.innerHTML = `<h4>${kindName(kind)} <span class="muted">(${Math.max(...items.map((i) => i.devices))})</span></h4>`;
    items.sort(byImportance(kind)).slice(0, 6).forEach((item) => {
      const row = document.createElement("div");
      row.className = "park-row";
      row.dataset.metric = item.metric;
      row.innerHTML = `<span class="metric" title="${item.metric}">${metricName(item.metric)}</span><b class="num">${fmtNum(item.latest, 2)}</b><span class="unit">${unitLabel(item.unit)}</span>`;
      row.appendChild(sparkline(item.points));
      card.appendChild(row);
    });
    el.appendChild(card);
  });
}

export async function renderIngest(root) {
  const h = await getJson("/v1/ops/ingest");
  const el = root.querySelector("#ingest");
  if (!h.available) {
    el.innerHTML = `<p class="muted">${t("unavailable")}: ${h.detail || ""}</p>`;
    return;
  }
  const rejects = Object.entries(h.rejected || {}).sort((a, b) => b[1] - a[1]);
  el.innerHTML = `<div class="kv">
      <span>${t("msgRate")}</span><b>${h.messages_per_s == null ? "…" : fmtNum(h.messages_per_s, 1)}</b>
      <span>${t("lag")}</span><b>${h.lag_mean_s == null ? "–" : `${fmtNum(h.lag_mean_s, 2)} s`} <small class="muted">p95 ≤ ${h.lag_p95_s == null ? "–" : h.lag_p95_s + " s"}</small></b>
      <span>${t("queue")}</span><b>${fmtNum(h.queue_depth, 0)}</b>
      <span>${t("broker")}</span><b>${h.broker_connected ? "✔" : "✘"}</b>
      <span>${t("rejects")}</span><b>${fmtNum(h.rejected_total, 0)} / ${fmtNum(h.received, 0)}</b>
    </div>
    <ul class="rejects">${rejects.map(([r, n]) => `<li><span class="mono">${r}</span> <b>${fmtNum(n, 0)}</b></li>`).join("")}</ul>`;
}

export { fmtPct };
