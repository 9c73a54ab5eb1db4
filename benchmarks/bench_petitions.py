"""Petition hotspots benchmark: Gi* for 1 million cases at H3 resolution 9 (goal < 2 s), against
PySAL's esda on the same data in the same run.

Run: `python benchmarks/bench_petitions.py [--cases 1000000] [--res 9] [--database-url URL]`.

- Cases: resolution-10 cells of the shipped population grid drawn in proportion to residents,
  plus a planted cluster (5,000 cases within ~300 m of City Hall), seeded.
- Zhongdu: the study area (parent cells, population, k-ring weights; built once per process and
  cached, timed cold), then `hotspots()` warm for counts and for EB rates (best of 3).
- Baseline, the analyst's way with PySAL on the same cells: per-case `h3.cell_to_parent` and a
  pandas count, a libpysal `W` from the same neighbours, `esda.G_Local(star=True, transform="B")`
  analytic only (permutations=0) and with 99 permutations; its z-scores must equal ours.
- With `--database-url`: 1 million rows COPYed into a scratch schema, then the API's path
  (binary COPY of the window's cells into NumPy + hotspots) timed end to end; the schema is dropped.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np


def best(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def cases(n: int, seed: int) -> np.ndarray:
    import h3

    from zhongdu.coverage import load_default_grid

    grid = load_default_grid(10)
    rng = np.random.default_rng(seed)
    pop = np.asarray(grid.population, dtype=float)
    cells = grid.cells.astype(np.int64)[rng.choice(len(grid.cells), size=n - 5000, p=pop / pop.sum())]
    centre = h3.latlng_to_cell(24.1375, 120.6846, 10)
    disk = np.array([h3.str_to_int(c) for c in h3.grid_disk(centre, 5)], dtype=np.int64)
    return np.concatenate([cells, rng.choice(disk, size=5000)])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--res", type=int, default=9, choices=(8, 9, 10))
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--no-esda", action="store_true", help="skip the PySAL baseline")
    parser.add_argument("--database-url", help="also time the database read (a scratch schema is made)")
    args = parser.parse_args()

    from zhongdu.petitions._hotspots import default_study_area, hotspots

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    t = time.perf_counter()
    x = cases(args.cases, args.seed)
    print(f"{len(x):,} cases generated in {time.perf_counter() - t:.2f} s", flush=True)
    t = time.perf_counter()
    area = default_study_area(args.res, args.k)
    cold = time.perf_counter() - t
    print(f"study area res {args.res}, k={args.k}: {len(area.cells):,} cells, built in {cold:.2f} s (cached)")
    t_count, res_count = best(lambda: hotspots(area, x, measure="count"))
    t_rate, res_rate = best(lambda: hotspots(area, x, measure="rate"))
    print(f"zhongdu hotspots, counts: {t_count:.3f} s ({int(res_count.hot.sum())} hot cells)")
    print(f"zhongdu hotspots, EB rates: {t_rate:.3f} s ({int(res_rate.hot.sum())} hot cells)")
    print(f"goal < 2 s: {'met' if max(t_count, t_rate) < 2 else 'MISSED'}")

    if not args.no_esda:
        import esda
        import h3
        import libpysal
        import pandas as pd

        t0 = time.perf_counter()
        parents = [h3.cell_to_parent(c, args.res) for c in map(h3.int_to_str, x.tolist())]
        counts = pd.Series(parents).value_counts()
        t_agg = time.perf_counter() - t0
        ids = [h3.int_to_str(int(c)) for c in area.cells]
        y = counts.reindex(ids, fill_value=0).to_numpy(dtype=float)
        t0 = time.perf_counter()
        coo = area.weights.tocoo()
        off = coo.row != coo.col
        neighbours: dict[int, list[int]] = {i: [] for i in range(len(ids))}
        for i, j in zip(coo.row[off].tolist(), coo.col[off].tolist(), strict=True):
            neighbours[i].append(j)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = libpysal.weights.W(neighbours, silence_warnings=True)
        t_w = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_g, g = best(lambda: esda.G_Local(y, w, transform="B", star=True, permutations=0), 1)
            t_g99, _ = best(lambda: esda.G_Local(y, w, transform="B", star=True, permutations=99, seed=1), 1)
        same = np.allclose(g.Zs, res_count.z, rtol=1e-9, atol=1e-9)
        base = t_agg + t_w + t_g
        print(
            f"esda baseline: aggregate {t_agg:.2f} s + weights {t_w:.2f} s + G_Local {t_g:.3f} s = {base:.2f}"
        )
        print(f"esda G_Local with 99 permutations: {t_g99:.2f} s")
        print(f"z-scores equal to esda's: {same}")
        print(
            f"ratio esda / zhongdu (counts, warm): {base / t_count:.0f}x; G_Local alone: {t_g / t_count:.1f}x"
        )

    if args.database_url:
        from psycopg import sql

        from zhongdu import storage
        from zhongdu.petitions._service import Window, run_hotspots
        from zhongdu.storage import _petitions as store

        schema = f"bench_petitions_{uuid.uuid4().hex[:8]}"
        conn = storage.connect(args.database_url, schema=schema)
        try:
            storage.migrate(conn)
            t0 = time.perf_counter()
            rng = np.random.default_rng(args.seed)
            times = np.datetime64("2026-01-01") + rng.integers(0, 300 * 86400, len(x)).astype(
                "timedelta64[s]"
            )
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY petitions (case_id, received_at, category, lon, lat, coarse, h3_10, status, source)"
                    " FROM STDIN"
                ) as copy,
            ):
                for i, (cell, when) in enumerate(zip(x.tolist(), times.astype(str).tolist(), strict=True)):
                    copy.write_row(
                        (f"B{i}", when + "Z", "drain", 120.6, 24.1, False, cell, "received", "bench")
                    )
            conn.commit()
            print(f"database: {len(x):,} rows loaded in {time.perf_counter() - t0:.1f} s")
            window = Window(
                datetime(2025, 12, 1, tzinfo=UTC),
                datetime(2027, 1, 1, tzinfo=UTC),
            )
            t_raw, cells = best(lambda: store.case_cells(conn, start=window.start, end=window.end), 1)
            print(f"database read of every case's cell (binary COPY): {t_raw:.3f} s, {len(cells):,} rows")
            t_read, (parents, n) = best(
                lambda: store.cell_counts(conn, res=args.res, start=window.start, end=window.end)
            )
            print(
                f"count per cell in SQL (GROUP BY): {t_read:.3f} s, {len(parents):,} rows, {n.sum():,} cases"
            )
            t_db, r = best(lambda: run_hotspots(conn, window=window, res=args.res, k=args.k))
            print(f"database read + hotspots (the API's path): {t_db:.3f} s for {r.cases:,} cases")
        finally:
            conn.rollback()
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.commit()
            conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
