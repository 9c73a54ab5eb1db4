// The last hours (GET /v1/ops/timeline): the city share per criterion and the number of sites
// down (uPlot), outages as bars above the lines, and a replay: the slider (or a click on the
// chart) puts the sites that were down at that moment on the map.
import { loadUplot } from "./lazy.js";
import { getJson } from "./api.js";
import { CRITERION_COLOURS, STATUS_COLOURS } from "./colours.js";
import { addStrings, currentLang, fmtInt, fmtPct, t } from "./i18n.js";

addStrings({
  timeline: ["近時趨勢", "The last hours"],
  tlHours: ["小時", "hours"],
  tlSitesDown: ["中斷站數", "sites down"],
  tlView_outdoor_any: ["戶外・任一業者", "outdoor, any operator"],
  tlView_indoor_any: ["室內・任一業者", "indoor, any operator"],
  tlView_indoor_every_major: ["室內・三大業者皆涵蓋", "indoor, every major operator"],
  replay: ["重播", "Replay"],
  replayAt: ["重播時間", "Replay at"],
  replayLive: ["回到即時", "Back to live"],
  replayDown: ["站中斷", "sites down"],
  tlEmpty: ["尚無歷史資料", "No history yet"],
  tlTime: ["時間", "Time"],
});

const COLOURS = {
  outdoor_any: CRITERION_COLOURS.outdoor,
  indoor_any: CRITERION_COLOURS.indoor,
  indoor_every_major: CRITERION_COLOURS.indoor_every_major,
};
const HOURS = Math.min(168, Math.max(1, Number(new URLSearchParams(location.search).get("hours")) || 6));

const tl = { body: null, plot: null, replayAt: null, onReplay: null, ticket: 0 };

const sec = (iso) => Date.parse(iso) / 1000;
const key = (s) => `${s.criterion}_${s.operator}`;

// Aligned columns: every time any series changed, each series holding its last value (a step).
function columns(body) {
  const end = sec(body.to);
  const start = sec(body.from);
  const times = new Set([start, end]);
  body.series.forEach((s) => s.points.forEach((p) => times.add(Math.max(start, sec(p.time)))));
  const xs = [...times].sort((a, b) => a - b);
  const cols = [xs];
  const down = new Array(xs.length).fill(null);
  body.series.forEach((s) => {
    const pts = s.points.map((p) => [Math.max(start, sec(p.time)), p]);
    let j = -1;
    cols.push(xs.map((x, i) => {
      while (j + 1 < pts.length && pts[j + 1][0] <= x) j += 1;
      if (j < 0) return null;
      if (down[i] == null) down[i] = pts[j][1].sites_down;
      return 100 * pts[j][1].share;
    }));
  });
  cols.push(down);
  return cols;
}

// The incidents open at time `at` (seconds): start <= at < end (or ongoing).
export function downAt(body, at) {
  if (!body) return [];
  return body.incidents.filter((i) => sec(i.started_at) <= at && (i.ended_at == null || at < sec(i.ended_at)));
}

function drawBars(u) {
  const body = tl.body;
  if (!body) return;
  const { ctx } = u;
  const top = u.bbox.top;
  const lane = Math.max(3, Math.round(6 * devicePixelRatio));
  const lanes = [];
  ctx.save();
  body.incidents.slice().sort((a, b) => sec(a.started_at) - sec(b.started_at)).forEach((i) => {
    const x0 = u.valToPos(Math.max(sec(i.started_at), u.scales.x.min), "x", true);
    const x1 = u.valToPos(i.ended_at ? sec(i.ended_at) : u.scales.x.max, "x", true);
    let k = lanes.findIndex((end) => end <= x0);
    if (k < 0) { k = lanes.length; lanes.push(0); }
    lanes[k] = x1 + 2;
    ctx.fillStyle = i.status === "down" ? STATUS_COLOURS[3] : STATUS_COLOURS[0];
    ctx.fillRect(x0, top + k * (lane + 2), Math.max(2, x1 - x0), lane);
  });
  if (tl.replayAt != null) {
    const x = u.valToPos(tl.replayAt, "x", true);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
  }
  ctx.restore();
}

function fmtClock(s) {
  return new Date(s * 1000).toLocaleTimeString(currentLang() === "en" ? "en-GB" : "zh-TW", { hour: "2-digit", minute: "2-digit", hour12: false });
}

let uPlot = null; // the chart library, loaded with the first chart

function draw(root) {
  const el = root.querySelector("#timeline-chart");
  const body = tl.body;
  if (tl.plot) { tl.plot.destroy(); tl.plot = null; }
  el.innerHTML = "";
  if (!body || !body.series.length) {
    el.innerHTML = `<p class="muted">${t("tlEmpty")}</p>`;
    el.dataset.series = "";
    el.dataset.incidents = body ? body.incidents.length : 0;
    return;
  }
  if (!uPlot) { loadUplot().then((u) => { uPlot = u; draw(root); }); return; } // its chunk, once
  const data = columns(body);
  const width = Math.max(280, el.clientWidth || 480);
  const height = document.body.classList.contains("wall") ? 140 : 180;
  const series = [{ label: t("tlTime"), value: (u, v) => (v == null ? "–" : fmtClock(v)) }];
  body.series.forEach((s) => series.push({
    label: t("tlView_" + key(s)), stroke: COLOURS[key(s)] || "#cccccc", width: 2, scale: "%",
    paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: (u, v) => (v == null ? "–" : `${v.toFixed(3)}%`),
  }));
  series.push({ label: t("tlSitesDown"), stroke: STATUS_COLOURS[3], width: 2, dash: [5, 3], scale: "n",
    paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: (u, v) => (v == null ? "–" : fmtInt(v)) });
  tl.plot = new uPlot({
    width, height,
    padding: [30, 8, 0, 0], // room for the outage bars
    series,
    scales: { x: { time: true }, n: { range: (u, lo, hi) => [0, Math.max(2, hi + 1)] } },
    axes: [
      { stroke: "#c9d4e0", grid: { stroke: "#ffffff14" }, values: (u, vals) => vals.map(fmtClock) },
      { scale: "%", stroke: "#c9d4e0", grid: { stroke: "#ffffff14" }, values: (u, vals) => vals.map((v) => `${v.toFixed(1)}%`), size: 64 },
      { scale: "n", side: 1, stroke: STATUS_COLOURS[3], grid: { show: false }, values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")) },
    ],
    hooks: { draw: [drawBars] },
    legend: { live: false },
  }, data, el);
  tl.plot.over.addEventListener("click", (e) => {
    const r = tl.plot.over.getBoundingClientRect();
    setReplay(root, tl.plot.posToVal(e.clientX - r.left, "x"));
  });
  el.dataset.series = body.series.map(key).join(",");
  el.dataset.incidents = body.incidents.length;
  // a screen reader gets the chart's latest values in words
  const latest = body.series.map((s) => {
    const p = s.points[s.points.length - 1];
    return p ? `${t("tlView_" + key(s))} ${fmtPct(p.share, 3)}` : null;
  }).filter(Boolean);
  const down = data[data.length - 1].filter((v) => v != null).pop();
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", `${t("timeline")}: ${latest.join(", ")}; ${t("tlSitesDown")} ${fmtInt(down ?? 0)}`);
}

// Asked for at boot, beside the map's bodies (small, and the wall shows it at once).
export function prefetchTimeline() {
  tl.prefetch = getJson("/v1/ops/timeline", { hours: HOURS });
  tl.prefetch.catch(() => {}); // a failure is reported by the loadTimeline that awaits it
}

export async function loadTimeline(root) {
  const mine = ++tl.ticket;
  const asked = tl.prefetch || getJson("/v1/ops/timeline", { hours: HOURS });
  tl.prefetch = null;
  const [body, lib] = await Promise.all([asked, loadUplot()]); // drawn when it resolves, not later
  uPlot = lib;
  if (mine !== tl.ticket) return;
  tl.body = body;
  const slider = root.querySelector("#replay");
  slider.min = Math.floor(sec(body.from));
  slider.max = Math.ceil(sec(body.to));
  if (tl.replayAt == null) slider.value = slider.max;
  draw(root);
}

export function renderTimeline(root) {
  root.querySelector("#timeline-hours").textContent = `${HOURS} ${t("tlHours")}`;
  draw(root);
  renderReplay(root);
}

function renderReplay(root) {
  const note = root.querySelector("#replay-note");
  const live = root.querySelector("#replay-live");
  if (tl.replayAt == null) {
    note.textContent = "";
    live.hidden = true;
    document.body.classList.remove("replaying");
    delete note.dataset.at;
    return;
  }
  const down = downAt(tl.body, tl.replayAt);
  const shares = tl.body ? tl.body.series.map((s) => {
    const p = s.points.filter((q) => sec(q.time) <= tl.replayAt).pop();
    return p ? `${t("tlView_" + key(s))} ${fmtPct(p.share, 3)}` : null;
  }).filter(Boolean) : [];
  note.textContent = `${t("replay")} ${fmtClock(tl.replayAt)} · ${fmtInt(down.length)} ${t("replayDown")}${shares.length ? ` · ${shares.join(" · ")}` : ""}`;
  note.dataset.at = tl.replayAt;
  note.dataset.down = down.map((i) => i.station_id).join(",");
  live.hidden = false;
  document.body.classList.add("replaying");
}

// Replay at `at` (seconds), or back to live with null; the page redraws the map through onReplay.
export function setReplay(root, at) {
  const slider = root.querySelector("#replay");
  if (at != null && tl.body && at >= Number(slider.max)) at = null; // the slider's end is now
  tl.replayAt = at;
  if (at != null) slider.value = at; else slider.value = slider.max;
  renderReplay(root);
  if (tl.plot) tl.plot.redraw(false);
  if (tl.onReplay) tl.onReplay(at == null ? null : downAt(tl.body, at));
}

export function wireTimeline(root, onReplay) {
  tl.onReplay = onReplay;
  root.querySelector("#replay").addEventListener("input", (e) => setReplay(root, Number(e.target.value)));
  root.querySelector("#replay-live").addEventListener("click", () => setReplay(root, null));
  window.zhongdu.timeline = tl;
}

export function replaying() {
  return tl.replayAt != null;
}
