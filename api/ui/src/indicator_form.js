// The entry form of one indicator and year: what the plan asks for (a value, its fraction, the B7-1
// milestone checklist, the B6-1 parts, the M1-1 quotas), the evidence and a note, and the history
// of entries with who keyed what and when. Saving corrects the current entry (named by its id, so
// a concurrent correction is refused, not overwritten); the table updates in place.
import { getJson, postJson } from "./api.js";
import { currentLang, fmtPct, t } from "./i18n.js";

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export function structure(item) {
  const d = item.details || {};
  if (d.checklist) return "checklist";
  const parts = d.components || [];
  if (parts.length && parts.every((p) => p.per_year != null)) return "parts";
  if (parts.length) return "quota";
  return item.kind;
}

function keyOf() {
  return sessionStorage.getItem("zd-planner-key") || "";
}

function fields(item) {
  const kind = structure(item);
  const a = item.actual || {};
  const comp = a.components || {};
  const d = item.details || {};
  if (kind === "checklist") {
    const list = (d.checklist || {})[String(item.year)] || [];
    if (!list.length) return `<p class="muted">${t("noChecklist")}</p>`;
    return `<fieldset><legend>${t("milestones")}</legend>${list.map((m) => `<label class="check"><input type="checkbox" name="c:${esc(m.key)}" ${comp[m.key] ? "checked" : ""}> ${esc(m.name_zh)}</label>`).join("")}</fieldset>`;
  }
  if (kind === "parts") {
    return `<fieldset><legend>${t("parts")}</legend>${d.components.map((p) => `<label>${esc(currentLang() === "en" ? p.name_en : p.name_zh)} (${t("perYear")} ${p.per_year})<input type="number" min="0" step="1" name="c:${esc(p.key)}" value="${comp[p.key] ?? ""}" required></label>`).join("")}</fieldset>`;
  }
  if (kind === "quota") {
    return `<fieldset><legend>${t("quotas")}</legend>${d.components.map((p) => `<label>${esc(p.name_zh)}<input type="number" min="0" step="1" name="c:${esc(p.key)}" value="${comp[p.key] ?? ""}" required></label>`).join("")}</fieldset>`;
  }
  if (kind === "ratio") {
    return `<label>${t("numerator")}<input type="number" min="0" step="any" name="numerator" value="${a.numerator ?? ""}"></label>
      <label>${t("denominator")}<input type="number" min="0" step="any" name="denominator" value="${a.denominator ?? ""}"></label>
      <label>${t("orPercent")}<input type="number" min="0" step="any" name="value" value=""></label>`;
  }
  if (kind === "boolean") {
    return `<label>${t("achieved")}<select name="value"><option value="1" ${a.value === 1 ? "selected" : ""}>${t("yes")}</option><option value="0" ${a.value === 0 ? "selected" : ""}>${t("no")}</option></select></label>`;
  }
  return `<label>${t("value")} (${esc(item.unit)})<input type="number" min="0" step="any" name="value" value="${a.value ?? ""}" required></label>`;
}

function bodyOf(item, form) {
  const kind = structure(item);
  const data = new FormData(form);
  const body = { year: item.year };
  const num = (name) => (data.get(name) === "" || data.get(name) == null ? null : Number(data.get(name)));
  if (kind === "checklist") {
    const list = ((item.details || {}).checklist || {})[String(item.year)] || [];
    body.components = Object.fromEntries(list.map((m) => [m.key, data.get(`c:${m.key}`) ? 1 : 0]));
  } else if (kind === "parts" || kind === "quota") {
    body.components = Object.fromEntries(item.details.components.map((p) => [p.key, num(`c:${p.key}`)]));
  } else if (kind === "ratio" && num("value") == null) {
    body.numerator = num("numerator");
    body.denominator = num("denominator");
  } else {
    body.value = num("value");
  }
  const evidence = String(data.get("evidence") || "").trim();
  const note = String(data.get("note") || "").trim();
  if (evidence) body.evidence = evidence;
  if (note) body.note = note;
  if (item.actual && item.actual.entry_id) body.corrects = item.actual.entry_id;
  return body;
}

function shown(item, v) {
  if (v == null) return "–";
  if (item.kind === "boolean") return v >= 1 ? t("yes") : t("no");
  if (item.kind === "ratio") return fmtPct(v, 2);
  return String(v);
}

async function renderHistory(root, item) {
  const box = root.querySelector("#entry-history");
  const history = await getJson(`/v1/indicators/${item.id}/actuals`, { year: item.year });
  box.innerHTML = history.items.length
    ? `<table class="history"><thead><tr><th>#</th><th>${t("actual")}</th><th>${t("enteredBy")}</th><th>${t("enteredAt")}</th><th>${t("evidence")}</th><th>${t("note")}</th></tr></thead><tbody>${history.items
        .map((h) => `<tr data-entry="${h.id}"><td class="mono">${h.id}${h.corrects ? ` ↻${h.corrects}` : ""}</td><td class="num">${shown(item, h.value)}</td><td>${esc(h.recorded_by)}</td><td>${esc(new Date(h.recorded_at).toLocaleString(currentLang() === "en" ? "en-GB" : "zh-TW"))}</td><td>${esc(h.evidence)}</td><td>${esc(h.note)}</td></tr>`)
        .join("")}</tbody></table>`
    : `<p class="muted">${t("noEntries")}</p>`;
}

// Open the form for the indicator with id `id` in the current table (state.indicators).
export async function openEntryForm(root, state, id, onSaved) {
  const item = state.indicators.items.find((i) => i.id === id);
  const box = root.querySelector("#indicator-entry");
  if (!item) return;
  const en = currentLang() === "en";
  const engine = (item.details || {}).actual_source === "coverage_engine";
  const locked = Boolean(state.indicatorCycle && state.indicatorCycle.lock);
  const amendment = item.amendment
    ? `<p class="note">${t("amended")}: ${esc(item.amendment.reason)} — ${t("countermeasures")}: ${esc(item.amendment.countermeasures)}</p>`
    : "";
  box.dataset.id = id;
  box.hidden = false;
  requestAnimationFrame(() => box.scrollIntoView({ block: "nearest" }));
  box.innerHTML = `<h3>${esc(item.id)} ${esc(en ? item.name_en : item.name_zh)} · ${item.year}</h3>
    <p class="muted note">${esc(en ? item.formula_en : item.formula_zh)}<br>${esc(item.owner_agency_zh || "")} · ${t("freq_" + (item.frequency || "yearly"))}${item.review ? ` · ${t("review_" + item.review.status)}` : ""}</p>
    ${amendment}
    ${engine
      ? `<p class="note">${t("fromEngine")} ${esc(item.actual ? item.actual.computation || "" : "")}</p>`
      : `<form id="entry-form">
      ${fields(item)}
      <label>${t("evidence")}<input name="evidence" maxlength="2000" placeholder="${t("evidenceHint")}" value="${esc(item.actual ? item.actual.evidence : "")}"></label>
      <label>${t("note")}<input name="note" maxlength="2000" value=""></label>
      <label>${t("apiKey")}<input id="entry-key" type="password" autocomplete="off" placeholder="zd_…" value="${esc(keyOf())}"></label>
      <button id="entry-save" type="submit" ${locked ? "disabled" : ""}>${item.actual ? t("saveCorrection") : t("save")}</button>
      <button id="entry-close" type="button">${t("close")}</button>
      <span id="entry-status" class="muted" role="status">${locked ? t("locked") : ""}</span>
    </form>`}
    ${item.details && item.details.baseline ? `<p class="muted note" id="entry-baseline">${t("baseline")} (${item.details.baseline.year - 1911}): ${esc(item.details.baseline.source_zh)}</p>` : ""}
    <div class="review" id="entry-review">${t("reviewStep")}: ${["self_assessed", "reviewed", "returned", "approved"]
      .map((s) => `<button type="button" data-review="${s}" ${locked ? "disabled" : ""}>${t("review_" + s)}</button>`).join(" ")}
      <span id="review-status" class="muted" role="status">${item.review ? `${t("review_" + item.review.status)} · ${esc(item.review.changed_by)}` : ""}</span></div>
    <div id="entry-history"></div>`;
  box.querySelectorAll("#entry-review button").forEach((b) => b.addEventListener("click", async () => {
    const status = box.querySelector("#review-status");
    const key = (box.querySelector("#entry-key") || {}).value || keyOf();
    if (!key) { status.textContent = t("needKey"); return; }
    try {
      await postJson(`/v1/indicators/${item.id}/review`, { year: item.year, status: b.dataset.review }, key);
      await onSaved();
      await openEntryForm(root, state, id, onSaved);
    } catch (err) {
      status.textContent = `${t("failed")}: ${err.message}`;
      status.dataset.error = err.message;
    }
  }));
  const form = box.querySelector("#entry-form");
  if (form) {
    box.querySelector("#entry-close").addEventListener("click", () => { box.hidden = true; box.innerHTML = ""; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = box.querySelector("#entry-status");
      const key = box.querySelector("#entry-key").value.trim();
      if (!key) { status.textContent = t("needKey"); return; }
      sessionStorage.setItem("zd-planner-key", key);
      status.textContent = t("saving");
      try {
        await postJson(`/v1/indicators/${item.id}/actuals`, bodyOf(item, form), key);
        status.textContent = t("saved");
        box.dataset.saved = String(Date.now());
        await onSaved();
        await openEntryForm(root, state, id, onSaved);
        box.querySelector("#entry-status").textContent = t("saved");
      } catch (err) {
        status.textContent = `${t("failed")}: ${err.message}`;
        status.dataset.error = err.message;
      }
    });
  }
  await renderHistory(root, item);
}
