// The wall's focus: a chosen district, the whole city, or a rotation through the districts with
// outages and the worst ones under the view, one every N seconds (?rotate_s=, default 20),
// pausable. Chosen from the control or the page's address (?focus=rotate or ?focus=西屯區).
import { addStrings, currentLang, t } from "./i18n.js";
import { districtsWithOutages, worstDistricts } from "./district_list.js";

addStrings({
  focus: ["焦點", "Focus"],
  focusCity: ["全市", "Whole city"],
  focusRotate: ["輪播（中斷與最差行政區）", "Rotate (outages, worst districts)"],
  focusPause: ["暫停輪播", "Pause rotation"],
  focusResume: ["繼續輪播", "Resume rotation"],
});

const params = new URLSearchParams(location.search);
const asked = Number(params.get("rotate_s"));
const ROTATE_S = Number.isFinite(asked) && asked >= 3 && asked <= 3600 ? asked : 20;
const WORST = 3;

const wf = { mode: "city", paused: false, timer: null, step: 0, current: null, select: null, city: null };

function cycle() {
  const seen = new Set();
  return [...districtsWithOutages(), ...worstDistricts(WORST)].filter((d) => !seen.has(d) && seen.add(d));
}

function advance() {
  const list = cycle();
  if (!list.length) return;
  wf.current = list[wf.step % list.length];
  wf.step += 1;
  wf.select(wf.current);
  document.body.dataset.focus = wf.current;
}

function schedule() {
  clearInterval(wf.timer);
  wf.timer = null;
  if (wf.mode === "rotate" && !wf.paused) wf.timer = setInterval(advance, ROTATE_S * 1000);
}

export function setFocus(root, mode) {
  wf.mode = mode;
  wf.step = 0;
  wf.paused = false;
  if (mode === "rotate") advance();
  else if (mode === "city") { wf.current = null; wf.city(); delete document.body.dataset.focus; }
  else { wf.current = mode; wf.select(mode); document.body.dataset.focus = mode; }
  schedule();
  renderFocus(root);
}

export function renderFocus(root, names) {
  const select = root.querySelector("#focus-choice");
  const pause = root.querySelector("#focus-pause");
  if (!select) return;
  const districts = wf.districts || [];
  const label = (d) => (currentLang() === "en" && names ? names.get(d) || d : d);
  select.innerHTML = [`<option value="city">${t("focusCity")}</option>`, `<option value="rotate">${t("focusRotate")}</option>`,
    ...districts.map((d) => `<option value="${d}">${label(d)}</option>`)].join("");
  select.value = wf.mode;
  select.setAttribute("aria-label", t("focus"));
  pause.hidden = wf.mode !== "rotate";
  pause.textContent = wf.paused ? t("focusResume") : t("focusPause");
  pause.setAttribute("aria-pressed", String(wf.paused));
  if (names) wf.names = names;
}

export function wireFocus(root, districts, select, city) {
  wf.districts = districts;
  wf.select = select;
  wf.city = city;
  root.querySelector("#focus-choice").addEventListener("change", (e) => setFocus(root, e.target.value));
  root.querySelector("#focus-pause").addEventListener("click", () => {
    wf.paused = !wf.paused;
    schedule();
    renderFocus(root, wf.names);
  });
  window.zhongdu.focus = wf;
  const wanted = params.get("focus");
  if (wanted && (wanted === "rotate" || districts.includes(wanted))) setFocus(root, wanted);
  else renderFocus(root, wf.names);
}

export const ROTATE_SECONDS = ROTATE_S;
