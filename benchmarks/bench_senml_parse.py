"""Parse cost per SenML pack: the ingester's `parse_message` against the bare JSON decode.

Prints microseconds per pack (best of `--repeat` runs) for the benchmark's 10-record pack and the
ratios to `orjson.loads` of the same bytes, measured in the same run, so the numbers hold on a
loaded machine. Where this tree has them, also: a device with a profile, unit conversion, and the
same pack as SenML CBOR.

Example: `.venv/bin/python benchmarks/bench_senml_parse.py --packs 20000 --repeat 5`
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from zhongdu.ingest import METRICS, Accepted, build_pack, parse_message
from zhongdu.ingest._bench import BENCH_METRICS

NOW = datetime.now(UTC)
TOPIC = "zhongdu/v1/park/bench-1/senml"


def _mid(metric: str) -> float:
    """A value inside the metric's range, so that every pack is accepted."""
    spec = METRICS[metric]
    assert spec.min is not None and spec.max is not None
    return round((spec.min + min(spec.max, spec.min + 200)) / 2 + 0.25, 2)


def _best(fn: Callable[[], Any], packs: int, repeat: int) -> float:
    """Best wall time per call in µs over `repeat` runs of `packs` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(packs):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / packs * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", type=int, default=20_000, help="packs per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--baseline-senml",
        metavar="PATH",
        help="an earlier ingest/_senml.py (e.g. from `git show REV:ingest/_senml.py`): its resolve_pack "
        "is timed against this tree's, interleaved in this run",
    )
    parser.add_argument(
        "--basic", action="store_true", help="only the plain JSON pack (runs on trees before profiles)"
    )
    args = parser.parse_args()

    values = {m: _mid(m) for m in BENCH_METRICS[:10]}
    pack = build_pack("bench-1", values, time_s=NOW.timestamp() - 1)
    payload = json.dumps(pack).encode()
    for case, check in [("plain", parse_message(TOPIC, payload, received_at=NOW))]:
        assert isinstance(check, Accepted), (case, check)
    cases: dict[str, Callable[[], Any]] = {
        "orjson_loads": lambda: orjson.loads(payload),
        "parse": lambda: parse_message(TOPIC, payload, received_at=NOW),
    }
    if not args.basic:
        cases.update(_extended_cases(pack, payload))
    # round robin, best of `repeat`: a loaded machine slows every case alike
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.repeat):
        for name, fn in cases.items():
            best[name] = min(best[name], _best(fn, args.packs, 1))
    results = {f"{name}_us": value for name, value in best.items()}
    if args.baseline_senml:
        results.update(_against_baseline(args.baseline_senml, pack, args.packs, args.repeat))
    base = results["orjson_loads_us"]
    ratios = {f"{k[:-3]}_vs_orjson": round(v / base, 2) for k, v in results.items() if k != "orjson_loads_us"}
    if "baseline_resolve_us" in results:
        ratios["resolve_vs_baseline"] = round(results["resolve_us"] / results["baseline_resolve_us"], 3)
    if args.json:
        print(json.dumps({**{k: round(v, 2) for k, v in results.items()}, **ratios}))
    else:
        for key, value in results.items():
            print(f"{key:28s} {value:8.2f} µs/pack")
        for key, value in ratios.items():
            print(f"{key:28s} {value:8.2f} x")
    return 0


def _against_baseline(path: str, pack: list[dict[str, Any]], packs: int, repeat: int) -> dict[str, float]:
    """Best µs per pack of the earlier and the current `resolve_pack`, timed in alternation."""
    import importlib.util

    from zhongdu.ingest import _senml

    spec = importlib.util.spec_from_file_location("baseline_senml", path)
    assert spec is not None and spec.loader is not None
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    decoded = orjson.loads(json.dumps(pack))
    now = NOW.timestamp()
    old: Callable[[], Any] = lambda: baseline.resolve_pack(decoded, "bench-1", now, 300.0, 1e9)  # noqa: E731
    new: Callable[[], Any] = lambda: _senml.resolve_pack(decoded, "bench-1", now, 300.0, 1e9)  # noqa: E731
    best_old = best_new = float("inf")
    for _ in range(repeat):
        best_old = min(best_old, _best(old, packs, 1))
        best_new = min(best_new, _best(new, packs, 1))
    return {"baseline_resolve_us": best_old, "resolve_us": best_new}


def _extended_cases(pack: list[dict[str, Any]], payload: bytes) -> dict[str, Callable[[], Any]]:
    """Cases only this tree's parser supports (profiles, conversion, CBOR); empty on older trees."""
    try:
        from zhongdu.ingest import _senml_cbor
        from zhongdu.ingest._profiles import IngestConfig, Profile
    except ImportError:
        return {}
    profile = Profile.from_json(
        {"profile_id": "bench", "devices": ["bench-1"], "prefixes": ["urn:dev:zhongdu:bench-1:"]}
    )
    config = IngestConfig.build(profiles=[profile])
    converted = [dict(r) for r in pack]
    for record in converted:
        if record.get("u") == "Cel":
            record["u"], record["v"] = "K", record["v"] + 273.15
        if record.get("u") == "hPa":
            record["u"], record["v"] = "Pa", record["v"] * 100
    converted_payload = json.dumps(converted).encode()
    cbor_payload = _senml_cbor.dumps(pack)
    return {
        "parse_profile": lambda: parse_message(TOPIC, payload, received_at=NOW, config=config),
        "parse_converted": lambda: parse_message(TOPIC, converted_payload, received_at=NOW),
        "parse_cbor": lambda: parse_message(
            TOPIC, cbor_payload, received_at=NOW, content_type="application/senml+cbor"
        ),
    }


if __name__ == "__main__":
    raise SystemExit(main())
