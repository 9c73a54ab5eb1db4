// Build the operations page into ../static: the ES module app.js with its CSS, the chunks it loads
// later (the charts, the hexagon geometry, the indicator entry form: not needed for the map's first
// paint), MapLibre's worker, index.html and the licences of every bundled package. Deterministic:
// same lock file, same bytes; chunk names are hashes of their content (`make ui` runs `npm ci`
// then this).
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  legalComments: "none", // collected into LICENSES.txt below
  splitting: true, // dynamic import() becomes a chunk of its own, fetched from /static when used
  outdir: out,
  entryNames: "app",
  chunkNames: "chunk-[hash]",
  metafile: true,
  logLevel: "warning",
  external: ["/static/*"], // the CJK font, served beside the bundle (not inlined: 100 KiB)
});
copyFileSync(join(here, "node_modules", "maplibre-gl", "dist", "maplibre-gl-worker.mjs"), join(out, "maplibre-gl-worker.mjs"));
// the chunks app.js imports statically (modules it shares with the later chunks) are preloaded with
// it: without the hint the browser finds them only after parsing app.js, one round trip later
const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint && o.entryPoint.endsWith("main.js"));
const preloads = entry[1].imports.filter((i) => i.kind === "import-statement" && !i.external)
  .map((i) => `  <link rel="modulepreload" href="/static/${i.path.split("/").pop()}">\n`).join("");
const page = readFileSync(join(here, "index.html"), "utf8");
const script = '  <script type="module" src="/static/app.js"></script>\n';
if (!page.includes(script)) throw new Error("index.html: no app.js script tag to preload beside");
writeFileSync(join(out, "index.html"), page.replace(script, script + preloads));
// the CJK subset (made by subset_font.py, committed) and its licence
copyFileSync(join(here, "fonts", "NotoSansCJKtc-zhongdu.woff2"), join(out, "NotoSansCJKtc-zhongdu.woff2"));
copyFileSync(join(here, "fonts", "OFL.txt"), join(out, "NotoSansCJKtc-zhongdu.OFL.txt"));

// the licence of every npm package whose code is in the bundle (and MapLibre's, for its worker)
const packages = new Set(["maplibre-gl"]);
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
  if (m) packages.add(m[m.length - 1].replace(/^node_modules\//, "").replace(/\/$/, ""));
}
const sections = [];
for (const name of [...packages].sort()) {
  const dir = join(here, "node_modules", name);
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  const text = file ? readFileSync(join(dir, file), "utf8").trim() : `(no licence file; package.json says ${meta.license})`;
  sections.push(`${"=".repeat(78)}\n${name} ${meta.version} (${meta.license})\n${"=".repeat(78)}\n${text}\n`);
}
writeFileSync(join(out, "LICENSES.txt"), `Third-party code bundled in app.js and maplibre-gl-worker.mjs\n\n${sections.join("\n")}`);
const sizes = readdirSync(out).map((f) => `${f} ${(readFileSync(join(out, f)).length / 1024).toFixed(0)} KiB`);
console.log(`built ${out}: ${sizes.join(", ")}; ${packages.size} packages`);
if (!existsSync(join(out, "app.css"))) throw new Error("no app.css: the CSS imports are missing");
