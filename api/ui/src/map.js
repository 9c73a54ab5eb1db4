// The map: districts (filled by live share at city zoom), H3 cells of a district or of the view
// (coloured by best RSRP, or covered/not for the disk model), sites by live status, scenario picks.
// The style is local: a plain background, no tiles, glyphs or sprites from anywhere.
import * as maplibregl from "maplibre-gl";
import { loadH3 } from "./lazy.js";
import { getJson } from "./api.js";
import { CIVIDIS, RSRP_STEPS, SHARE_STEPS, STATUS_COLOURS, UNCOVERED, VIRIDIS, stepExpression } from "./colours.js";

export const CELL_ZOOM = 12.5; // below: district fill only; above: the cells of the view
export const CLUSTER_MAX_ZOOM = 10; // sites in trouble cluster up to here; single dots from 11
const EMPTY = { type: "FeatureCollection", features: [] };

const STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": "#0b1220" } }],
};

export function createMap(container, onReady) {
  maplibregl.setWorkerUrl(new URL("maplibre-gl-worker.mjs", import.meta.url).href);
  const map = new maplibregl.Map({
    container,
    style: STYLE,
    bounds: [[120.46, 23.99], [121.45, 24.45]],
    fitBoundsOptions: { padding: 16 },
    attributionControl: false,
    maxZoom: 16,
    minZoom: 8,
    dragRotate: false,
    pitchWithRotate: false,
    fadeDuration: 0,
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.on("load", () => onReady(map));
  return map;
}

// Sources are created with their data (not empty then `setData`), so each is tiled once; the
// sites are a custom WebGL layer (sites_layer.js), never tiled.
export function addLayers(map, districts, sitesLayer) {
  {
    map.addSource("districts", { type: "geojson", data: districts, promoteId: "district" });
    map.addSource("cells", { type: "geojson", data: EMPTY, promoteId: "h3" });
    map.addSource("picks", { type: "geojson", data: EMPTY });
    const share = ["coalesce", ["feature-state", "share"], -1];
    map.addLayer({
      id: "district-fill",
      type: "fill",
      source: "districts",
      paint: {
        "fill-color": ["case", ["<", share, 0], "#1f2a3a", stepExpression(share, CIVIDIS, SHARE_STEPS)],
        "fill-opacity": ["interpolate", ["linear"], ["zoom"], CELL_ZOOM - 1, 0.85, CELL_ZOOM + 0.5, 0.25],
      },
    });
    const rsrp = ["get", "best_rsrp_dbm"];
    map.addLayer({
      id: "cell-fill",
      type: "fill",
      source: "cells",
      paint: {
        "fill-color": [
          "case",
          ["!", ["get", "covered"]], UNCOVERED,
          ["==", rsrp, null], VIRIDIS[4],
          stepExpression(rsrp, VIRIDIS, RSRP_STEPS),
        ],
        "fill-opacity": 0.8,
        "fill-outline-color": "rgba(11,18,32,0.35)",
      },
    });
    map.addLayer({
      id: "district-line",
      type: "line",
      source: "districts",
      paint: { "line-color": "#c9d4e0", "line-width": ["interpolate", ["linear"], ["zoom"], 9, 0.6, 13, 1.6], "line-opacity": 0.8 },
    });
    map.addLayer({
      id: "district-selected",
      type: "line",
      source: "districts",
      filter: ["==", ["get", "district"], ""],
      // white over a dark casing: apart from every fill colour, cividis' yellow included
      paint: { "line-color": "#ffffff", "line-width": 3.5, "line-dasharray": [2, 1] },
    });
    map.addLayer(sitesLayer);
    // clustered at city zoom (a count per cluster, site_clusters.js), single dots from zoom 11
    map.addSource("alerts", {
      type: "geojson",
      data: EMPTY,
      cluster: true,
      clusterMaxZoom: CLUSTER_MAX_ZOOM,
      clusterRadius: 36,
      clusterProperties: { down: ["+", ["case", ["==", ["get", "s"], 3], 1, 0]] },
    });
    const alert = ["get", "s"];
    map.addLayer({
      id: "alert-clusters",
      type: "circle",
      source: "alerts",
      filter: ["has", "point_count"],
      paint: {
        // any site down inside: vermillion with a thick black ring; only degraded/silent: orange
        "circle-color": ["case", [">", ["get", "down"], 0], STATUS_COLOURS[3], STATUS_COLOURS[2]],
        "circle-radius": ["interpolate", ["linear"], ["get", "point_count"], 2, 13, 20, 19, 200, 26],
        "circle-stroke-color": ["case", [">", ["get", "down"], 0], "#000000", "#ffffff"],
        "circle-stroke-width": ["case", [">", ["get", "down"], 0], 3, 1.5],
      },
    });
    map.addLayer({
      id: "alerts",
      type: "circle",
      source: "alerts",
      filter: ["!", ["has", "point_count"]],
      paint: {
        "circle-color": ["match", alert, 2, STATUS_COLOURS[2], 3, STATUS_COLOURS[3], STATUS_COLOURS[4]],
        "circle-opacity": 1,
        // down is larger with a thick black ring, degraded small with a thin white one: told apart
        // by size and ring, not by orange against vermillion alone
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, ["match", alert, 3, 7, 4], 14, ["match", alert, 3, 13, 8]],
        "circle-stroke-color": ["match", alert, 2, "#ffffff", "#000000"],
        "circle-stroke-width": ["match", alert, 3, 3, 1.5],
      },
    });
    map.addLayer({
      id: "picks",
      type: "circle",
      source: "picks",
      paint: {
        "circle-color": "#ffffff",
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 5, 14, 11],
        "circle-stroke-color": "#cc79a7",
        "circle-stroke-width": 3,
      },
    });
  }
}

// The sites in trouble (degraded, down, silent) as points for the `alerts` layer.
export function alertsGeoJson(sites, codes) {
  const features = [];
  codes.forEach((code, i) => {
    if (code >= 2) features.push({ type: "Feature", id: i, geometry: { type: "Point", coordinates: [sites.lon[i], sites.lat[i]] }, properties: { s: code, i, id: sites.ids[i] } });
  });
  return { type: "FeatureCollection", features };
}

// Cells come as H3 columns (`format=h3`: ids and 0/1 flags, a fraction of the GeoJSON's bytes,
// served from the live engine's state) and their hexagons are drawn here. `view` is the map's
// criterion and operator, so the cells agree with the district fill. For hata, best RSRP follows
// in a second answer (best servers of the area's cells, kept by the API per snapshot): `detail`
// resolves to the same cells with it, to be drawn over the first.
export async function fetchCells(params, view = {}) {
  const query = { ...params, ...view, format: "h3" };
  const [body, h3] = await Promise.all([getJson("/v1/coverage/cells", query), loadH3()]);
  cellToBoundary = h3.cellToBoundary;
  const cells = cellsGeoJson(body);
  if (body.model === "hata" && body.resolution === body.grid_resolution && body.cells) {
    cells.detail = getJson("/v1/coverage/cells", { ...query, rsrp: "true" }).then(cellsGeoJson);
  }
  return cells;
}

let cellToBoundary = null; // from h3-js, loaded with the first cells (fetchCells)

// The columns of `format=h3` as the GeoJSON the `cells` source draws (same properties as the
// API's GeoJSON answer; the header fields are kept).
export function cellsGeoJson(body) {
  const { h3: ids, covered, population, districts, district, cell_counts: counts, covered_counts: coveredCounts, best_rsrp_dbm: rsrp, ...head } = body;
  const features = ids.map((id, i) => {
    const on = covered.charCodeAt(i) === 49; // "1"
    return {
      type: "Feature",
      geometry: { type: "Polygon", coordinates: [cellToBoundary(id, true)] },
      properties: {
        h3: id,
        district: districts[district[i]],
        population: population[i],
        best_rsrp_dbm: rsrp ? rsrp[i] : null,
        covered: on,
        cells: counts ? counts[i] : 1,
        covered_cells: coveredCounts ? coveredCounts[i] : on ? 1 : 0,
      },
    };
  });
  return { ...head, type: "FeatureCollection", features };
}

export function boundsOf(geometry) {
  let minX = 180, minY = 90, maxX = -180, maxY = -90;
  const walk = (c) => {
    if (typeof c[0] === "number") {
      minX = Math.min(minX, c[0]); maxX = Math.max(maxX, c[0]);
      minY = Math.min(minY, c[1]); maxY = Math.max(maxY, c[1]);
    } else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return [[minX, minY], [maxX, maxY]];
}

export function popup(map, lngLat, html) {
  return new maplibregl.Popup({ closeButton: true, maxWidth: "340px", className: "zd-popup" })
    .setLngLat(lngLat)
    .setHTML(html)
    .addTo(map);
}

export function pickMarker(map, lngLat, order) {
  const el = document.createElement("div");
  el.className = "pick-marker";
  el.textContent = String(order);
  return new maplibregl.Marker({ element: el }).setLngLat(lngLat).addTo(map);
}
