// Sites in trouble at city zoom: MapLibre clusters them (map.js, source `alerts`); the style has
// no glyphs, so each cluster's count is an HTML marker, a button that zooms into it. Where dots
// overlap when zoomed in, a click offers the sites under the pointer instead of guessing one.
import * as maplibregl from "maplibre-gl";
import { STATUS_NAMES } from "./colours.js";
import { addStrings, fmtInt, t } from "./i18n.js";
import { popup } from "./map.js";

addStrings({
  clusterOf: ["群集：異常基地台", "Cluster: sites in trouble"],
  chooseSite: ["此處有多個基地台", "Several sites here"],
});

export class ClusterCounts {
  constructor(map) {
    this.map = map;
    this.markers = new Map();
    map.on("idle", () => this.update());
  }

  update() {
    const map = this.map;
    if (!map.getSource("alerts")) return;
    const seen = new Map();
    map.querySourceFeatures("alerts").forEach((f) => {
      const p = f.properties;
      if (p && p.cluster && !seen.has(p.cluster_id)) seen.set(p.cluster_id, f);
    });
    this.markers.forEach((m, id) => { if (!seen.has(id)) { m.remove(); this.markers.delete(id); } });
    seen.forEach((f, id) => {
      const count = f.properties.point_count;
      const down = f.properties.down || 0;
      let marker = this.markers.get(id);
      if (!marker) {
        const el = document.createElement("button");
        el.type = "button";
        el.className = "cluster-count";
        el.addEventListener("click", (e) => {
          e.stopPropagation();
          map.getSource("alerts").getClusterExpansionZoom(id).then((zoom) => map.easeTo({ center: f.geometry.coordinates, zoom: Math.max(zoom, 11), duration: 0 }));
        });
        marker = new maplibregl.Marker({ element: el }).setLngLat(f.geometry.coordinates).addTo(map);
        this.markers.set(id, marker);
      }
      const el = marker.getElement();
      el.textContent = fmtInt(count);
      el.dataset.count = count;
      el.dataset.down = down;
      el.classList.toggle("has-down", down > 0);
      el.setAttribute("aria-label", `${t("clusterOf")} ${count} (${t("st_down")} ${down})`);
      marker.setLngLat(f.geometry.coordinates);
    });
    map.getContainer().dataset.clusters = [...seen.values()].map((f) => f.properties.point_count).sort((a, b) => b - a).join(",");
  }
}

// A small list of the sites under the pointer (nearest first); picking one opens it.
export function chooseSite(map, lngLat, indices, sites, codes, onPick) {
  const items = indices.map((i) => {
    const status = STATUS_NAMES[codes[i]];
    return `<li><button type="button" data-index="${i}"><span class="dot s-${status}"></span><span class="mono">${sites.ids[i]}</span> ${t("st_" + status)}</button></li>`;
  }).join("");
  const p = popup(map, lngLat, `<div class="popup site-chooser" data-count="${indices.length}"><h3>${t("chooseSite")}</h3><ul>${items}</ul></div>`);
  const el = p.getElement();
  el.querySelectorAll("button[data-index]").forEach((b) => b.addEventListener("click", () => {
    p.remove();
    onPick(Number(b.dataset.index));
  }));
  const first = el.querySelector("button[data-index]");
  if (first) first.focus();
  return p;
}
