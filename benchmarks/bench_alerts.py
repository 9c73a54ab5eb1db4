"""Alert evaluation: its cost per reading and per message, and the ingest capacity with and without
the evaluator running beside the ingester, measured in the same run.

Part 1 (cost): a fresh database holds `--messages` SenML packs' worth of readings (`--records`
datapoints each, from `--devices` air devices) inserted in one COPY; the evaluator, with the
shipped defaults plus one rule per benchmark metric (so every reading meets at least one rule),
catches up in passes of up to 200,000 readings. Cost = evaluator wall time / readings (and x
records per message). The baseline in the same run is the bare read of the same rows (the query
the evaluator issues), so the ratio shows what the state machine adds to reading.

Part 2 (capacity): a private tuned Mosquitto, a fresh database and one ingest worker, as
`zhongdu ingest bench`'s capacity phase: `--rate` msg/s offered (more than it takes) for
`--seconds`, three times: without alerting, with the evaluator polling every second in this same
process (the worst case: it shares the ingester's interpreter), and without again (the drift of a
busy machine shows between the two baselines). Ratio = with / mean(without).

Example: .venv/bin/python benchmarks/bench_alerts.py --messages 20000 --rate 12000 --seconds 6
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from zhongdu import services, storage
from zhongdu.alerts._evaluator import CURSOR, Evaluator, EvaluatorMetrics
from zhongdu.alerts._rules import Rule, save_rule
from zhongdu.ingest._bench import BENCH_METRICS, _Collector, _drop_database, _fresh_database, _ingester_phase
from zhongdu.ingest._prometheus import IngestMetrics
from zhongdu.ingest._worker import Ingester
from zhongdu.settings import Settings

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _bench_rules(db: str, records: int) -> int:
    """One never-firing rule per benchmark metric (every reading is evaluated), plus the defaults."""
    with storage.connect(db) as conn:
        for metric in BENCH_METRICS[:records]:
            save_rule(conn, Rule(f"bench-{metric.replace('_', '-')}", metric, "above", metric=metric,
                                 threshold=1e9, clear_threshold=1e8, for_s=60))  # fmt: skip
        conn.commit()
        row = conn.execute("SELECT count(*) FROM alert_rules WHERE enabled AND metric IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def cost(server: str, messages: int, records: int, devices: int, per_pass: int) -> dict[str, Any]:
    db = _fresh_database(server)
    try:
        rules = _bench_rules(db, records)
        t0 = time.time() - 1  # the evaluator's cursor starts just before the data
        with storage.connect(db) as conn:
            with conn.cursor().copy("COPY devices (device_id, kind) FROM STDIN") as copy:
                for d in range(devices):
                    copy.write_row((f"air-{d:04d}", "air"))
            conn.execute(
                "INSERT INTO alert_cursors (name, position) VALUES (%s, to_timestamp(%s))", (CURSOR, t0)
            )
            conn.commit()
        readings = messages * records
        evaluator = Evaluator(
            Settings(database_url=db, alerts_overlap_s=0.0),
            metrics=EvaluatorMetrics(CollectorRegistry()),
            batch_limit=per_pass,
        )
        # as in service: each pass finds about one pass's worth of new readings (inserted untimed)
        eval_s = eval_cpu = read_s = 0.0
        evaluated = passes = 0
        per_message = max(1, per_pass // records)
        with storage.connect(db) as conn:
            for first in range(0, messages, per_message):
                buffer = io.StringIO()
                for m in range(first, min(messages, first + per_message)):
                    when = datetime.fromtimestamp(t0 + 1 + m * 0.001, UTC).isoformat()
                    device = f"air-{m % devices:04d}"
                    for k, metric in enumerate(BENCH_METRICS[:records]):
                        buffer.write(f"{when}\t{device}\t{metric}\t{(m * 7 + k) % 97}\n")
                with conn.cursor().copy("COPY readings (time, device_id, metric, value) FROM STDIN") as copy:
                    copy.write(buffer.getvalue())
                conn.commit()
                # baseline: the evaluator's own read of the new rows, without evaluating them
                started = time.perf_counter()
                rows = conn.execute(
                    """SELECT device_id, metric, extract(epoch FROM time)::float8, value FROM readings
                       WHERE time > to_timestamp(%s) AND metric = ANY(%s) ORDER BY time LIMIT %s""",
                    (t0 + 1 + first * 0.001 - 1e-4, list(BENCH_METRICS[:records]), per_pass),
                ).fetchall()
                conn.commit()
                read_s += time.perf_counter() - started
                started, cpu = time.perf_counter(), time.process_time()
                result = evaluator.run_once(now=t0 + 2 + (first + per_message) * 0.001)
                eval_s += time.perf_counter() - started
                eval_cpu += time.process_time() - cpu
                assert result.readings == len(rows), (result.readings, len(rows))
                evaluated += result.readings
                passes += 1
        evaluator.close()
        return {
            "messages": messages, "records_per_message": records, "readings": readings, "devices": devices,
            "readings_per_pass": per_pass,
            "rules_on_readings": rules, "passes": passes, "evaluated": evaluated,
            "evaluator_s": round(eval_s, 3), "evaluator_cpu_s": round(eval_cpu, 3),
            "us_per_reading": round(eval_s / readings * 1e6, 2),
            "us_per_message": round(eval_s / messages * 1e6, 1),
            "readings_per_s": round(readings / eval_s),
            "baseline_read_s": round(read_s, 3),
            "ratio_vs_read": round(eval_s / read_s, 2) if read_s else None,
        }  # fmt: skip
    finally:
        _drop_database(server, db)


def capacity(server: str, rate: float, seconds: float, records: int, publishers: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="zhongdu-bench-alerts-"))
    broker = services.start_mosquitto(workdir / "mosquitto")
    db = _fresh_database(server)
    results: dict[str, Any] = {"offered_msgs_per_s": rate, "seconds": seconds, "records": records}
    try:
        _bench_rules(db, records)
        group = f"benchal{uuid.uuid4().hex[:6]}"
        settings = Settings(database_url=db, mqtt_url=broker.url, auto_register=True, mqtt_share_group=group,
                            alerts_poll_interval_s=1.0)  # fmt: skip
        collector = _Collector()
        ingester = Ingester(settings, client_id=f"bench-alerts-{group}", mqtt5=True, migrate=False,
                            metrics=IngestMetrics(CollectorRegistry()), on_commit=collector)  # fmt: skip
        ingester.start()
        assert ingester.wait_connected(), "the ingester did not connect"
        time.sleep(0.5)
        for key, alerting in (("without_1", False), ("with", True), ("without_2", False)):
            stop = threading.Event()
            registry = CollectorRegistry()
            metrics = EvaluatorMetrics(registry)
            evaluator = Evaluator(settings, metrics=metrics)
            thread = threading.Thread(target=evaluator.run, args=(stop,), daemon=True) if alerting else None
            if thread is not None:
                thread.start()
            phase = _ingester_phase(ingester, collector, broker.url, db, rate=rate, seconds=seconds,
                                    records=records, devices=publishers, prefix=key, extra=None)  # fmt: skip
            if thread is not None:
                time.sleep(2.5)  # let it finish the last rows committed
                stop.set()
                thread.join(30)
                evaluated = registry.get_sample_value("zhongdu_alerts_readings_evaluated_total") or 0
                reread = registry.get_sample_value("zhongdu_alerts_readings_reread_total") or 0
                phase["evaluated_readings"] = int(evaluated - reread)
                phase["reread_readings"] = int(reread)
                lag = registry.get_sample_value("zhongdu_alerts_cursor_lag_seconds") or 0.0
                phase["evaluator_lag_s_at_end"] = round(lag, 2)
            evaluator.close()
            keep = [
                "msgs_per_s",
                "datapoints_per_s",
                "latency_p50_s",
                "latency_p99_s",
                "lost",
                "load_average",
            ]
            if alerting:
                keep += ["evaluated_readings", "reread_readings", "evaluator_lag_s_at_end"]
            results[key] = {k: phase[k] for k in keep}
            print(f"  {key}: {json.dumps(results[key])}", flush=True)
        ingester.stop()
    finally:
        broker.stop()
        _drop_database(server, db)
        shutil.rmtree(workdir, ignore_errors=True)
    base = (results["without_1"]["msgs_per_s"] + results["without_2"]["msgs_per_s"]) / 2
    results["ratio_with_vs_without"] = round(results["with"]["msgs_per_s"] / base, 3) if base else None
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("ZHONGDU_BENCH_DATABASE_URL", DEFAULT_SERVER)
    )
    parser.add_argument("--messages", type=int, default=20_000, help="packs for the cost part")
    parser.add_argument("--records", type=int, default=10, help="datapoints per pack")
    parser.add_argument("--devices", type=int, default=500, help="devices for the cost part")
    parser.add_argument(
        "--per-pass",
        type=int,
        default=10_000,
        help="readings per evaluator pass (one second's at 1,000 msg/s)",
    )
    parser.add_argument("--rate", type=float, default=12_000.0, help="msg/s offered in the capacity part")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each capacity phase")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--skip-capacity", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    print(f"cost: {args.messages} messages x {args.records} readings, {args.devices} devices ...", flush=True)
    out: dict[str, Any] = {
        "cost": cost(args.database_url, args.messages, args.records, args.devices, args.per_pass)
    }
    print(f"  {json.dumps(out['cost'])}", flush=True)
    if not args.skip_capacity:
        offered = f"{args.rate:.0f} msg/s offered for {args.seconds:.0f} s"
        print(f"capacity: {offered}, without / with / without alerting ...", flush=True)
        out["capacity"] = capacity(args.database_url, args.rate, args.seconds, args.records, args.publishers)
        print(f"  ratio with/without alerting: {out['capacity']['ratio_with_vs_without']}", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
