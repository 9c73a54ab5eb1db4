// Colour scales readable with colour-vision deficiencies: cividis (district shares), viridis
// (cell RSRP) and the Okabe-Ito palette (site status).

// cividis, 7 steps from dark blue to yellow
export const CIVIDIS = ["#00224e", "#233e6c", "#575c6d", "#7c7b78", "#a59c74", "#d3c064", "#fee838"];
// district share class bounds: below 70 %, then the plan's 70/80/90/95 % targets, 99 %, 99.9 %
export const SHARE_STEPS = [0.7, 0.8, 0.9, 0.95, 0.99, 0.999];

// the 4G chart (Okabe-Ito, distinct for the common colour-vision deficiencies): one colour per
// modelled criterion (coverage/_indicator.py SERIES_CRITERIA), the live snapshots yellow, and the
// plan's targets a light dashed line no criterion shares
export const CRITERION_COLOURS = {
  outdoor: "#56b4e9", // sky blue
  indoor: "#009e73", // bluish green
  capacity: "#cc79a7", // reddish purple
  indoor_every_major: "#e69f00", // orange
};
export const LIVE_COLOUR = "#f0e442"; // yellow
export const TARGET_COLOUR = "#f0f0f0"; // near white, dashed

// viridis, 6 steps from dark purple to yellow
export const VIRIDIS = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"];
export const RSRP_STEPS = [-110, -100, -95, -90, -80]; // dBm
// cells nothing covers: Okabe-Ito's reddish purple, far lighter than viridis' dark purple end
export const UNCOVERED = "#cc79a7";

// Okabe-Ito: up blue, degraded orange, down vermillion (the red), silent grey, unknown pale
export const STATUS_NAMES = ["unknown", "up", "degraded", "down", "silent"];
export const STATUS_COLOURS = ["#8a96a3", "#56b4e9", "#e69f00", "#d55e00", "#f0f0f0"];

export function stepExpression(input, colours, steps) {
  const expr = ["step", input, colours[0]];
  steps.forEach((s, i) => expr.push(s, colours[i + 1]));
  return expr;
}

export function shareColour(share) {
  let i = 0;
  while (i < SHARE_STEPS.length && share >= SHARE_STEPS[i]) i += 1;
  return CIVIDIS[i];
}
