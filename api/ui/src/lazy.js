// Libraries the map's first paint does not need, loaded as their own chunks when first used: the
// charts (uPlot) after the map is usable, the hexagon geometry (h3-js, 200 KiB) when cells are
// first asked for. Each is fetched once; every caller shares the same promise.
let uplot = null;
let h3 = null;

export function loadUplot() {
  if (!uplot) uplot = import("uplot").then((m) => m.default);
  return uplot;
}

export function loadH3() {
  if (!h3) h3 = import("h3-js");
  return h3;
}
