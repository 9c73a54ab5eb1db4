// A small SVG trend line (no library: a few dozen points per metric).
export function sparkline(points, width = 120, height = 28) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("height", height);
  svg.classList.add("spark");
  const ys = points.map((p) => p[1]);
  if (ys.length < 2) return svg;
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const span = hi - lo || 1;
  const coords = ys.map((y, i) => `${((i / (ys.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 2 - ((y - lo) / span) * (height - 4)).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.appendChild(line);
  return svg;
}
