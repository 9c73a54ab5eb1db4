"""Operations page benchmark: first paint of the city view with the full 2022-11 layout.

    .venv/bin/python benchmarks/bench_dashboard.py [--runs 5] [--layout city|small]
        [--wall] [--previous REF]

1. A database: `--database-url` / ZHONGDU_DATABASE_URL, else a temporary database on the local
   PostgreSQL (127.0.0.1:5432), migrated, dropped at the end.
2. The API (uvicorn, in a thread of this process) with live coverage of Taichung: the shipped
   resolution-10 grid and the generated 2022-11 layout (15,788 sites, 47,364 sectors), hata model.
3. Debian's chromium under Playwright (software WebGL, as in the browser tests) opens `/` in a
   fresh context per run (no cache) at 1440x900. Measured with the page's performance timing:
   - first contentful paint (the browser's paint entry);
   - city view painted: `performance.now()` when the map is first idle with the 29 districts, their
     live shares and all 15,788 sites drawn (the page records it; the goal is < 2 s);
   - baseline in the same run: the time the same browser takes just to fetch and parse the three
     bodies the city view needs (districts, coverage, sites), printed as a ratio.
4. The largest district (`--district`, default 和平區: 75,629 cells at resolution 10) opened as
   the page opens it (`/v1/coverage/cells?district=…&resolution=auto&limit=12000`): the API's
   answer (first, then the same snapshot's cached one) and, in the page, the time from the
   selection to its cells' note (`district_open_ms`).
5. `--wall`: the wall layout at 1920x1080 (`?layout=wall`, every panel); "wall complete" is when
   the outage panel (timeline, district list, incident history) is drawn too.
6. `--previous REF`: the bundle of a git ref (`api/static` at REF) against this one, alternating
   runs (A B A B) in the same browser; both are served by the same small proxy (its own static
   files, the API's routes passed through), so neither has an advantage.
Times are wall clock on a shared 2-core machine: noisy; compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# The browser tests' flags (tests/_ops_fixtures.py): headless, no network side-traffic, WebGL on
# SwiftShader for MapLibre without a GPU. Kept here too: a benchmark does not import the tests.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip


def chromium_path() -> str:
    """Debian's chromium (never a downloaded browser)."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium on this machine: `apt-get install -y chromium`")


FETCH_BODIES = """async () => {
  const t0 = performance.now();
  const bodies = await Promise.all(['/v1/map/districts', '/v1/coverage', '/v1/map/sites']
    .map(u => fetch(u, {cache: 'no-store'}).then(r => r.json())));
  return {ms: performance.now() - t0, sites: bodies[2].count};
}"""


OPEN_DISTRICT = """async (name) => {
  const t0 = performance.now();
  window.zhongdu.selectDistrict(name);
  const note = document.querySelector('#map-note');
  // a page without merged cells never sets data-resolution: give up after 60 s (null)
  while (note.dataset.resolution === undefined && note.dataset.error === undefined) {
    if (performance.now() - t0 > 60000) return null;
    await new Promise(r => setTimeout(r, 10));
  }
  return performance.now() - t0;
}"""


# the wall is complete when the map is painted and the outage panel drawn: the latest of the
# page's own marks (a poll from here would add the busy main thread's delay to it)
WALL_COMPLETE = """() => { const s = window.zhongdu.state;
  const done = s.firstPaint != null && s.marks.timeline != null && s.marks.incidents != null
    && document.querySelector('#district-list tbody tr');
  return done ? Math.max(s.firstPaint, s.marks.timeline, s.marks.incidents) : false; }"""


def _bundle_at(ref: str) -> Path:
    """`api/static` of a git ref, in a temporary folder."""
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    out = Path(tempfile.mkdtemp(prefix="zhongdu-bundle-"))
    names = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", ref, "api/static/"],
                           check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    for name in names:
        blob = subprocess.run(["git", "-C", str(root), "show", f"{ref}:{name}"],
                              check=True, capture_output=True)  # fmt: skip
        (out / Path(name).name).write_bytes(blob.stdout)
    return out


def _bundle_server(static_dir: Path, api_url: str) -> tuple[Any, str]:
    """A page served from `static_dir`, every other path passed through to the API (streamed, so
    the event stream works)."""
    import threading

    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import FileResponse, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    # no kept-alive connections: uvicorn closes idle ones, and a reused closed one fails a request
    client = httpx.AsyncClient(
        base_url=api_url, timeout=None, limits=httpx.Limits(max_keepalive_connections=0)
    )
    passed = ("accept", "accept-encoding", "if-none-match")
    kept = ("content-type", "content-encoding", "etag", "cache-control")

    async def index(request: Request) -> FileResponse:
        return FileResponse(static_dir / "index.html")

    async def proxy(request: Request) -> StreamingResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() in passed}
        upstream = client.build_request(request.method, request.url.path, params=request.query_params,
                                        headers=headers)  # fmt: skip
        answer = await client.send(upstream, stream=True)
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 headers={k: v for k, v in answer.headers.items() if k.lower() in kept},
                                 background=BackgroundTask(answer.aclose))  # fmt: skip

    app = Starlette(routes=[Route("/", index), Mount("/static", StaticFiles(directory=static_dir)),
                            Route("/{path:path}", proxy, methods=["GET", "HEAD"])])  # fmt: skip
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database(url: str | None) -> tuple[str, Any]:
    from zhongdu import storage

    if url:
        return url, None
    import psycopg
    from psycopg import sql

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"zhongdu_bench_ui_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = f"postgresql://postgres@127.0.0.1:5432/{name}"
    with storage.connect(db) as conn:
        storage.migrate(conn)

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    return db, drop


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="page loads (each in a fresh browser context)")
    parser.add_argument("--layout", choices=["city", "small"], default="city")
    parser.add_argument("--database-url", default=os.environ.get("ZHONGDU_DATABASE_URL"))
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--district", default="和平區", help="the district opened in step 4 ('': skip it)")
    parser.add_argument("--wall", action="store_true", help="the wall layout at 1920x1080 (every panel)")
    parser.add_argument("--previous", metavar="REF", help="also load the bundle of this git ref (A/B)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from zhongdu.api import start_api
    from zhongdu.settings import Settings

    db, drop = _database(args.database_url)
    layout = None
    if args.layout == "small":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_api import _small_layout

        layout = _small_layout
    settings = Settings(database_url=db, coverage_model="hata" if args.layout == "city" else "disk",
                        admin_api_key="bench-dashboard-admin-key-0123456789")
    t = time.perf_counter()
    print(f"starting the API with the {args.layout} layout …", file=sys.stderr)
    api = start_api(settings, port=_free_port(), layout=layout)
    results: dict[str, Any] = {"layout": args.layout}
    try:
        import httpx

        with httpx.Client(base_url=api.url, timeout=30) as http:
            while http.get("/v1/coverage").status_code != 200:
                time.sleep(0.2)
            sites = http.get("/v1/map/sites", headers={"Accept-Encoding": "gzip"})
            results["sites"] = sites.json()["count"]
            results["sites_body_gzip_bytes"] = int(sites.headers["content-length"])
            results["sites_body_bytes"] = len(sites.content)
            districts = http.get("/v1/map/districts", headers={"Accept-Encoding": "gzip"})
            results["districts_body_gzip_bytes"] = int(districts.headers["content-length"])
            if args.district:
                params = {"district": args.district, "resolution": "auto", "limit": 12000}
                for name in ("district_cells_first_ms", "district_cells_cached_ms"):
                    t0 = time.perf_counter()
                    cells = http.get("/v1/coverage/cells", params=params, headers={"Accept-Encoding": "gzip"})
                    results[name] = 1000 * (time.perf_counter() - t0)
                    assert cells.status_code == 200, cells.text
                body = cells.json()
                results["district_cells"] = {k: body[k] for k in ("source_cells", "cells", "resolution")}
                results["district_cells_gzip_bytes"] = int(cells.headers["content-length"])
                print(f"{args.district}: {body['source_cells']} cells as {body['cells']} at resolution "
                      f"{body['resolution']}, first {results['district_cells_first_ms']:.0f} ms, cached "
                      f"{results['district_cells_cached_ms']:.0f} ms", file=sys.stderr)
        results["api_ready_s"] = time.perf_counter() - t
        print(f"API ready in {results['api_ready_s']:.1f} s; {results['sites']} sites", file=sys.stderr)
        paints, fcps, fetches, opens, completes = [], [], [], [], []
        previous: dict[str, list[float]] = {"paint": [], "fcp": []}
        servers = []
        targets = [("this", api.url)]
        if args.previous:
            for name, folder in (("this", Path(__file__).resolve().parents[1] / "api" / "static"),
                                 ("previous", _bundle_at(args.previous))):  # fmt: skip
                server, url = _bundle_server(folder, api.url)
                servers.append(server)
                targets = [t for t in targets if t[0] != name] + [(name, url)]
        size = {"width": 1920, "height": 1080} if args.wall else {"width": 1440, "height": 900}
        query = "?layout=wall" if args.wall else ""
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            # A B A B: with --previous the two bundles alternate, so load drifts hit both alike
            loads = [(run, which, base) for run in range(args.runs) for which, base in targets]
            for run, which, base in loads:
                context = browser.new_context(viewport=size, bypass_csp=True)
                page = context.new_page()
                page.goto(base + "/" + query)
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=120_000)
                paint = page.evaluate("window.zhongdu.state.firstPaint")
                # the previous bundle may lack the outage panel: its figure is the painted map
                complete = args.wall and which == "this"
                done = paint
                if complete:
                    done = page.wait_for_function(WALL_COMPLETE, timeout=60_000).json_value()
                fcp = page.evaluate(
                    "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
                )
                if which == "previous":
                    previous["paint"].append(paint)
                    previous["fcp"].append(fcp)
                    marks = page.evaluate("window.zhongdu.state.marks")
                    print(f"run {run + 1}, previous bundle: city view painted {paint:.0f} ms,"
                          f" FCP {fcp:.0f} ms; steps " + ", ".join(f"{k} {v:.0f}" for k, v in marks.items()),
                          file=sys.stderr)  # fmt: skip
                    context.close()
                    continue
                completes.append(done)
                drawn = page.evaluate(
                    "new Set(window.zhongdu.map.queryRenderedFeatures({layers: ['district-fill']})"
                    ".map(f => f.properties.district)).size"
                )
                marks = page.evaluate("window.zhongdu.state.marks")
                opens.append(page.evaluate(OPEN_DISTRICT, args.district) if args.district else None)
                fetched = page.evaluate(FETCH_BODIES)
                assert drawn == 29, drawn
                assert fetched["sites"] == results["sites"]
                paints.append(paint)
                fcps.append(fcp)
                fetches.append(fetched["ms"])
                print(f"run {run + 1}: city view painted {paint:.0f} ms, wall complete {done:.0f} ms,"
                      f" FCP {fcp:.0f} ms, fetch+parse of the bodies {fetched['ms']:.0f} ms; steps "
                      + ", ".join(f"{k} {v:.0f}" for k, v in marks.items()), file=sys.stderr)
                context.close()
            browser.close()
    finally:
        for server in servers:
            server.should_exit = True
        api.stop()
        if drop is not None:
            drop()
    results.update(
        runs=args.runs,
        first_paint_ms={"median": statistics.median(paints), "min": min(paints), "max": max(paints),
                        "first_run": paints[0]},
        fcp_ms_median=statistics.median(fcps),
        baseline_fetch_ms_median=statistics.median(fetches),
        paint_over_fetch=statistics.median(paints) / statistics.median(fetches),
        goal_ms=2000,
        district_open_ms_median=statistics.median(o for o in opens if o is not None) if any(opens) else None,
        wall=args.wall,
        wall_complete_ms_median=statistics.median(completes),
    )
    if args.previous:
        results["previous"] = {
            "ref": args.previous,
            "first_paint_ms_median": statistics.median(previous["paint"]),
            "fcp_ms_median": statistics.median(previous["fcp"]),
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        fp = results["first_paint_ms"]
        kib = {k: results[k] / 1024 for k in ("sites_body_bytes", "sites_body_gzip_bytes",
                                               "districts_body_gzip_bytes")}
        print(f"layout {args.layout}: {results['sites']} sites (sites body {kib['sites_body_bytes']:.0f} KiB,"
              f" gzip {kib['sites_body_gzip_bytes']:.0f} KiB; districts gzip"
              f" {kib['districts_body_gzip_bytes']:.0f} KiB)")
        print(f"city view painted: median {fp['median']:.0f} ms (min {fp['min']:.0f}, max {fp['max']:.0f}, "
              f"first run {fp['first_run']:.0f}) over {args.runs} runs; goal < 2000 ms "
              f"{'MET' if fp['median'] < 2000 else 'NOT MET'}")
        print(f"first contentful paint: median {results['fcp_ms_median']:.0f} ms")
        if args.wall:
            print(f"wall complete (map painted; timeline, district list and incidents drawn): median"
                  f" {results['wall_complete_ms_median']:.0f} ms")
        if args.previous:
            prev = results["previous"]
            print(f"previous bundle ({args.previous}), same run, alternating: city view painted median"
                  f" {prev['first_paint_ms_median']:.0f} ms, FCP {prev['fcp_ms_median']:.0f} ms -> this /"
                  f" previous = {results['first_paint_ms']['median'] / prev['first_paint_ms_median']:.2f}x")
        print(f"baseline, fetch+parse of the three bodies alone: median"
              f" {results['baseline_fetch_ms_median']:.0f} ms"
              f" -> city view / baseline = {results['paint_over_fetch']:.2f}x")
        opened = results["district_open_ms_median"]
        if args.district:
            print(f"{args.district} opened in the page (selection to its cells' note): median"
                  f" {'never' if opened is None else f'{opened:.0f} ms'}; the API's answer alone"
                  f" {results['district_cells_cached_ms']:.0f} ms (same snapshot, cached),"
                  f" {results['district_cells_first_ms']:.0f} ms (first)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
