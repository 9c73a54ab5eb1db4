// What the district fill shows: a criterion and an operator chosen by the operator, a colour scale
// fitted to the spread of the shares shown (a fixed 70-99.9 % ramp paints every district the same
// when all sit above 99 %), and each district's share written on it at city zoom where it fits.
import * as maplibregl from "maplibre-gl";
import { CIVIDIS, stepExpression } from "./colours.js";
import { addStrings, currentLang, t } from "./i18n.js";

addStrings({
  mapShows: ["地圖顯示", "Map shows"],
  operatorLabel: ["業者", "Operator"],
  op_any: ["任一業者", "any operator"],
  op_CHT: ["中華電信", "Chunghwa Telecom"],
  op_TWM: ["台灣大哥大", "Taiwan Mobile"],
  op_FET: ["遠傳電信", "Far EasTone"],
  op_every_major: ["三大業者皆涵蓋", "every major operator"],
});

export const MAP_CRITERIA = ["outdoor", "indoor", "capacity"];
export const MAP_OPERATORS = ["any", "CHT", "TWM", "FET", "every_major"];
const LABEL_ZOOM = 11; // above: the cells tell the story, the numbers would cover them

export function viewName(criterion, operator) {
  const sep = currentLang() === "en" ? ", " : "・";
  return `${t("crit_" + criterion)}${sep}${t("op_" + operator)}`;
}

// Six class bounds spread evenly over [min, max] of the shares shown (rounded to what the
// legend prints), so the lowest and highest districts always differ in colour.
export function fittedSteps(shares) {
  const values = shares.filter(Number.isFinite);
  if (!values.length) return [0.7, 0.8, 0.9, 0.95, 0.99, 0.999];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-4) { lo = Math.max(0, lo - 5e-5); hi = Math.min(1, hi + 5e-5); }
  const k = CIVIDIS.length;
  return Array.from({ length: k - 1 }, (_, i) => lo + ((i + 1) * (hi - lo)) / k);
}

function digitsFor(steps) {
  const gap = steps.length > 1 ? steps[1] - steps[0] : 0.1;
  return gap >= 0.01 ? 0 : gap >= 0.001 ? 1 : gap >= 0.0001 ? 2 : 3;
}

export function applyFill(map, coverage, root = document) {
  const shares = coverage.districts.map((d) => d.share);
  const steps = fittedSteps(shares);
  const share = ["coalesce", ["feature-state", "share"], -1];
  map.setPaintProperty("district-fill", "fill-color", ["case", ["<", share, 0], "#1f2a3a", stepExpression(share, CIVIDIS, steps)]);
  const digits = digitsFor(steps);
  const ticks = root.querySelector("#share-ticks");
  if (ticks) {
    ticks.innerHTML = steps.map((s) => `<span>${(100 * s).toFixed(digits)}</span>`).join("") + "<span>%</span>";
    ticks.dataset.steps = steps.map((s) => s.toFixed(6)).join(",");
  }
  return steps;
}

// One HTML marker per district with its share (the style has no glyphs: nothing is fetched).
// In the dense centre the labels would sit on each other at city zoom, so they are placed like a
// symbol layer's collision: worst share first (then the most people), and a label that would
// overlap one already placed is hidden; the district list carries every figure.
export class DistrictLabels {
  constructor(map, districts) {
    this.map = map;
    this.markers = new Map();
    this.rank = new Map(); // district -> [share, -population]: lower places first
    districts.features.forEach((f) => {
      const el = document.createElement("div");
      el.className = "district-label";
      el.dataset.district = f.properties.district;
      const at = labelPoint(f.geometry);
      this.markers.set(f.properties.district, new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
    });
    map.on("zoom", () => this.visibility());
    map.on("moveend", () => this.collide());
    map.on("resize", () => this.collide());
    this.visibility();
  }

  visibility() {
    const hidden = this.map.getZoom() >= LABEL_ZOOM;
    this.markers.forEach((m) => { m.getElement().hidden = hidden; });
  }

  update(coverage, names) {
    if (!coverage) return;
    const digits = Math.max(1, digitsFor(fittedSteps(coverage.districts.map((d) => d.share))));
    coverage.districts.forEach((d) => {
      const m = this.markers.get(d.district);
      if (!m) return;
      const el = m.getElement();
      const name = currentLang() === "en" ? names.get(d.district) || d.district : d.district;
      el.innerHTML = `<span>${name}</span><b>${(100 * d.share).toFixed(digits)}%</b>`;
      el.dataset.share = d.share;
      this.rank.set(d.district, [d.share, -d.population]);
    });
    this.collide();
  }

  // Greedy placement in priority order on the screen boxes (2 px apart); one pass per move, not per frame.
  collide() {
    if (this.map.getZoom() >= LABEL_ZOOM) return;
    const order = [...this.markers.keys()].filter((d) => this.rank.has(d)).sort((a, b) => {
      const [sa, pa] = this.rank.get(a);
      const [sb, pb] = this.rank.get(b);
      return sa - sb || pa - pb || a.localeCompare(b);
    });
    // every size read first, then every class written: one layout, not one per label
    const boxes = order.map((d) => {
      const m = this.markers.get(d);
      const el = m.getElement();
      const p = this.map.project(m.getLngLat());
      const w = el.offsetWidth / 2 + 1, h = el.offsetHeight / 2 + 1;
      return { el, box: [p.x - w, p.y - h, p.x + w, p.y + h] };
    });
    const placed = [];
    const hits = boxes.map(({ box }) => {
      const hit = placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3]);
      if (!hit) placed.push(box);
      return hit;
    });
    this.markers.forEach((m, d) => { if (!this.rank.has(d)) m.getElement().classList.add("collided"); });
    boxes.forEach(({ el }, i) => el.classList.toggle("collided", hits[i]));
  }
}

// The area centroid of the largest outer ring: inside for the city's compact districts.
function labelPoint(geometry) {
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  let best = polys[0][0];
  let bestArea = -1;
  polys.forEach((p) => {
    const ring = p[0];
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
    if (Math.abs(a) > bestArea) { bestArea = Math.abs(a); best = ring; }
  });
  let cx = 0, cy = 0, area = 0;
  for (let i = 0, j = best.length - 1; i < best.length; j = i++) {
    const f = best[j][0] * best[i][1] - best[i][0] * best[j][1];
    cx += (best[j][0] + best[i][0]) * f; cy += (best[j][1] + best[i][1]) * f; area += f;
  }
  if (Math.abs(area) < 1e-12) return best[0];
  return [cx / (3 * area), cy / (3 * area)];
}
