// The incident history (GET /v1/ops/incidents): each outage of a site with its start, its
// duration (ongoing ones marked) and the most people it left uncovered; rows fly to the site.
import { getJson } from "./api.js";
import { addStrings, currentLang, fmtInt, t } from "./i18n.js";

addStrings({
  incidents: ["事件紀錄（24 小時）", "Incident history (24 h)"],
  noIncidents: ["24 小時內沒有中斷", "No outages in the last 24 h"],
  ongoing: ["進行中", "ongoing"],
  lasted: ["歷時", "lasted"],
  worstPeople: ["最多影響", "at worst"],
  daysShort: ["天", "d"],
});

const inc = { body: null, ticket: 0 };

export function fmtSpan(seconds) {
  const min = Math.max(0, Math.round(seconds / 60));
  const en = currentLang() === "en";
  if (min < 60) return `${min} ${en ? "min" : "分"}`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} ${en ? "h" : "時"} ${min % 60} ${en ? "min" : "分"}`;
  return `${Math.floor(h / 24)} ${t("daysShort")} ${h % 24} ${en ? "h" : "時"}`;
}

function fmtStart(iso) {
  return new Date(iso).toLocaleString(currentLang() === "en" ? "en-GB" : "zh-TW", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
}

function ask() {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  return getJson("/v1/ops/incidents", { since, limit: 200 });
}

// Asked for at boot, beside the map's bodies.
export function prefetchIncidents() {
  inc.prefetch = ask();
  inc.prefetch.catch(() => {}); // a failure is reported by the loadIncidents that awaits it
}

export async function loadIncidents(root) {
  const mine = ++inc.ticket;
  const asked = inc.prefetch || ask();
  inc.prefetch = null;
  const body = await asked;
  if (mine !== inc.ticket) return;
  inc.body = body;
  renderIncidents(root);
}

export function renderIncidents(root) {
  const list = root.querySelector("#incidents");
  const body = inc.body;
  if (!body) return;
  if (!body.items.length) { list.innerHTML = `<li class="muted">${t("noIncidents")}</li>`; return; }
  const now = Date.now();
  list.innerHTML = body.items.map((i) => {
    // an ongoing incident's duration keeps counting between refreshes
    const seconds = i.ongoing ? (now - Date.parse(i.started_at)) / 1000 : i.duration_s;
    return `<li class="incident${i.ongoing ? " ongoing" : ""}" data-station-id="${i.station_id}" data-ongoing="${i.ongoing}" data-duration="${Math.round(seconds)}" tabindex="0" role="button">
      <span class="dot s-${i.status}"></span><b class="mono">${i.station_id}</b>
      <span class="muted">${fmtStart(i.started_at)}</span>
      ${i.ongoing ? `<span class="badge-ongoing">${t("ongoing")} ${fmtSpan(seconds)}</span>` : `<span>${t("lasted")} ${fmtSpan(seconds)}</span>`}
      <span class="effect">${i.people_worst > 0 ? `${t("worstPeople")} <b>${fmtInt(i.people_worst)}</b> ${t("effPeople")}` : ""}</span>
    </li>`;
  }).join("");
}

export function wireIncidents(root, onPick) {
  const list = root.querySelector("#incidents");
  const pick = (e) => {
    const row = e.target.closest("li[data-station-id]");
    if (row) { e.preventDefault(); onPick(row.dataset.stationId); }
  };
  list.addEventListener("click", pick);
  list.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") pick(e); });
}
