// The 29 districts as a sortable table under the map's view: name, share, people not covered,
// sites down (out: down or silent). A row (click, Enter or Space) selects its district.
import { addStrings, currentLang, fmtInt, fmtPct, t } from "./i18n.js";

addStrings({
  districtList: ["行政區一覽", "Districts"],
  dlName: ["行政區", "District"],
  dlShare: ["涵蓋率", "Share"],
  dlUncovered: ["未涵蓋人口", "Not covered"],
  dlDown: ["中斷站", "Down"],
  dlSortBy: ["排序：", "Sort by "],
});

const COLUMNS = ["name", "share", "uncovered", "down"];
const dl = { sort: "share", dir: 1, rows: [], siteDistrict: new Map() };

function inRing(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// The district a point lies in (outer rings minus holes), else null.
export function districtOf(districts, lon, lat) {
  for (const f of districts.features) {
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    for (const p of polys) {
      if (inRing(p[0], lon, lat) && !p.slice(1).some((hole) => inRing(hole, lon, lat))) return f.properties.district;
    }
  }
  return null;
}

// Sites out per district (only the sites out are located: a handful, not 15,788).
export function downByDistrict(state) {
  const counts = new Map();
  if (!state.districts) return counts;
  state.outages.forEach((o) => {
    if (!dl.siteDistrict.has(o.id)) {
      const i = state.siteIndex.get(o.id);
      dl.siteDistrict.set(o.id, i == null ? null : districtOf(state.districts, state.sites.lon[i], state.sites.lat[i]));
    }
    const d = dl.siteDistrict.get(o.id);
    if (d) counts.set(d, (counts.get(d) || 0) + 1);
  });
  return counts;
}

function sortRows(rows) {
  const k = dl.sort;
  const cmp = k === "name" ? (a, b) => a.label.localeCompare(b.label, currentLang() === "en" ? "en" : "zh-Hant") : (a, b) => a[k] - b[k];
  return rows.sort((a, b) => dl.dir * cmp(a, b) || a.district.localeCompare(b.district));
}

export function renderDistrictList(root, state, coverage) {
  const table = root.querySelector("#district-list");
  if (!table || !coverage) return;
  const down = downByDistrict(state);
  const en = currentLang() === "en";
  dl.rows = sortRows(coverage.districts.map((d) => ({
    district: d.district,
    label: en ? (state.districtNames && state.districtNames.get(d.district)) || d.district : d.district,
    share: d.share,
    uncovered: Math.max(0, d.population - d.covered),
    down: down.get(d.district) || 0,
  })));
  const head = COLUMNS.map((c) => {
    const sorted = dl.sort === c ? (dl.dir > 0 ? "ascending" : "descending") : "none";
    const arrow = dl.sort === c ? (dl.dir > 0 ? " ▲" : " ▼") : "";
    const label = t("dl" + c[0].toUpperCase() + c.slice(1));
    return `<th aria-sort="${sorted}" class="${c === "name" ? "" : "num"}"><button type="button" data-sort="${c}" aria-label="${t("dlSortBy")}${label}">${label}${arrow}</button></th>`;
  }).join("");
  table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${dl.rows.map((r) => `<tr data-district="${r.district}" tabindex="0" class="${r.district === state.selected ? "selected" : ""}${r.down ? " has-down" : ""}" aria-selected="${r.district === state.selected}">
      <td>${r.label}</td><td class="num" data-share="${r.share}">${fmtPct(r.share, 2)}</td><td class="num" data-uncovered="${Math.round(r.uncovered)}">${fmtInt(r.uncovered)}</td><td class="num" data-down="${r.down}">${r.down ? `<span class="dot s-down"></span>${fmtInt(r.down)}` : "0"}</td></tr>`).join("")}</tbody>`;
  table.dataset.sort = dl.sort;
  table.dataset.dir = dl.dir;
}

export function wireDistrictList(root, state, onSelect, rerender) {
  const table = root.querySelector("#district-list");
  table.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-sort]");
    if (button) {
      const c = button.dataset.sort;
      // the first click sorts the way that puts what matters on top: lowest share, most uncovered, most down
      if (dl.sort === c) dl.dir = -dl.dir; else { dl.sort = c; dl.dir = c === "name" || c === "share" ? 1 : -1; }
      rerender();
      const again = table.querySelector(`button[data-sort="${c}"]`);
      if (again) again.focus();
      return;
    }
    const row = e.target.closest("tr[data-district]");
    if (row) onSelect(row.dataset.district);
  });
  table.addEventListener("keydown", (e) => {
    const row = e.target.closest("tr[data-district]");
    if (row && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); onSelect(row.dataset.district); }
  });
  window.zhongdu.districtList = dl;
}

// The worst districts under the view (lowest share first), for the wall's rotating focus.
export function worstDistricts(n) {
  return [...dl.rows].sort((a, b) => a.share - b.share).slice(0, n).map((r) => r.district);
}

export function districtsWithOutages() {
  return dl.rows.filter((r) => r.down > 0).sort((a, b) => b.down - a.down).map((r) => r.district);
}
