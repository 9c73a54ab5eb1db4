// The 15,788 sites as one WebGL draw of points (a MapLibre custom layer): no tiling in the
// workers, so the city view paints as soon as the data arrives, and a status change rewrites
// one byte of a buffer. Positions are kept relative to a centre (float32 stays exact to ~1 mm).
import { MercatorCoordinate } from "maplibre-gl";
import { STATUS_COLOURS } from "./colours.js";

const VERTEX = `#version 300 es
uniform mat4 u_matrix;
uniform float u_size;
in vec2 a_pos;
in float a_status;
out float v_status;
void main() {
  gl_Position = u_matrix * vec4(a_pos, 0.0, 1.0);
  gl_PointSize = u_size * (a_status < 0.5 ? 0.75 : 1.0);
  v_status = a_status;
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
uniform vec3 u_colours[5];
in float v_status;
out vec4 colour;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  float r = length(d);
  if (r > 0.5) discard;
  int s = int(v_status + 0.5);
  float alpha = s == 0 ? 0.6 : 0.95;
  colour = vec4(u_colours[s] * alpha, alpha);
}`;

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255];
}

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

export class SitesLayer {
  constructor(sites, codes) {
    this.id = "sites";
    this.type = "custom";
    this.renderingMode = "2d";
    this.sites = sites;
    this.codes = codes; // Uint8Array shared with the page state
    const centre = MercatorCoordinate.fromLngLat([120.75, 24.2]);
    this.origin = [centre.x, centre.y];
    this.mercator = new Float64Array(2 * sites.count);
    const offsets = new Float32Array(2 * sites.count);
    for (let i = 0; i < sites.count; i += 1) {
      const m = MercatorCoordinate.fromLngLat([sites.lon[i], sites.lat[i]]);
      this.mercator[2 * i] = m.x;
      this.mercator[2 * i + 1] = m.y;
      offsets[2 * i] = m.x - this.origin[0];
      offsets[2 * i + 1] = m.y - this.origin[1];
    }
    this.offsets = offsets;
    this.dirty = true;
  }

  onAdd(map, gl) {
    this.map = map;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    this.program = program;
    this.loc = {
      matrix: gl.getUniformLocation(program, "u_matrix"),
      size: gl.getUniformLocation(program, "u_size"),
      colours: gl.getUniformLocation(program, "u_colours"),
      pos: gl.getAttribLocation(program, "a_pos"),
      status: gl.getAttribLocation(program, "a_status"),
    };
    this.posBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.offsets, gl.STATIC_DRAW);
    this.statusBuffer = gl.createBuffer();
    this.colours = new Float32Array(STATUS_COLOURS.flatMap(hexToRgb));
  }

  setStatus(index, code) {
    this.codes[index] = code;
    this.dirty = true;
    if (this.map) this.map.triggerRepaint();
  }

  // Every site within `radius` pixels of a screen point, nearest first: where dots overlap, the
  // page offers a choice instead of opening whichever happens to be nearest.
  pickAll(point, radius = 8) {
    const map = this.map;
    const b = map.getBounds();
    const found = [];
    for (let i = 0; i < this.sites.count; i += 1) {
      const lon = this.sites.lon[i];
      const lat = this.sites.lat[i];
      if (lon < b.getWest() || lon > b.getEast() || lat < b.getSouth() || lat > b.getNorth()) continue;
      const p = map.project([lon, lat]);
      const d = (p.x - point.x) ** 2 + (p.y - point.y) ** 2;
      if (d <= radius * radius) found.push([d, i]);
    }
    return found.sort((a, b2) => a[0] - b2[0]).map(([, i]) => i);
  }

  // The site nearest to a screen point, within `radius` pixels (clicks), else -1.
  pick(point, radius = 8) {
    const map = this.map;
    const b = map.getBounds();
    let best = -1;
    let bestD = radius * radius;
    for (let i = 0; i < this.sites.count; i += 1) {
      const lon = this.sites.lon[i];
      const lat = this.sites.lat[i];
      if (lon < b.getWest() || lon > b.getEast() || lat < b.getSouth() || lat > b.getNorth()) continue;
      const p = map.project([lon, lat]);
      const d = (p.x - point.x) ** 2 + (p.y - point.y) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  render(gl, args) {
    if (!this.sites.count) return;
    const m = args.defaultProjectionData.mainMatrix;
    // matrix x translate(origin), in float64, then to float32 (relative-to-centre precision)
    const [ox, oy] = this.origin;
    const matrix = new Float32Array(16);
    for (let i = 0; i < 16; i += 1) matrix[i] = m[i];
    for (let r = 0; r < 4; r += 1) matrix[12 + r] = m[r] * ox + m[4 + r] * oy + m[12 + r];
    gl.useProgram(this.program);
    gl.uniformMatrix4fv(this.loc.matrix, false, matrix);
    const zoom = this.map.getZoom();
    gl.uniform1f(this.loc.size, Math.max(2, Math.min(12, 2.4 * 1.35 ** (zoom - 9))) * (window.devicePixelRatio || 1));
    gl.uniform3fv(this.loc.colours, this.colours);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuffer);
    gl.enableVertexAttribArray(this.loc.pos);
    gl.vertexAttribPointer(this.loc.pos, 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.statusBuffer);
    if (this.dirty) {
      gl.bufferData(gl.ARRAY_BUFFER, this.codes, gl.DYNAMIC_DRAW);
      this.dirty = false;
    }
    gl.enableVertexAttribArray(this.loc.status);
    gl.vertexAttribPointer(this.loc.status, 1, gl.UNSIGNED_BYTE, false, 0, 0);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.drawArrays(gl.POINTS, 0, this.sites.count);
  }
}
