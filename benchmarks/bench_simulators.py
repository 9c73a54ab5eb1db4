"""Simulator publishing rate from one process, against a private tuned Mosquitto.

Runs the fixed-count mode (exactly N telemetry messages, every one acknowledged at QoS 1) with
each engine and connection layout, and prints messages/s and the ratio to the baseline measured
in the same run (paho, one connection per device, MQTT v5). Also times message generation alone.

    .venv/bin/python benchmarks/bench_simulators.py [--count 50000] [--devices 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from zhongdu import services
from zhongdu.simulators import SimulationConfig, generate_messages, run_simulation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    start = datetime.fromtimestamp((time.time() // 3600 - 12) * 3600, UTC)
    base = SimulationConfig(devices=args.devices, stations=False, count=args.count, start=start, seed=7)

    t0 = time.perf_counter()
    n = sum(1 for _ in generate_messages(base))
    gen = n / (time.perf_counter() - t0)
    print(f"generation only: {gen:,.0f} msg/s ({n} SenML packs from {args.devices} devices)")

    cases = [
        ("paho, one connection per device, MQTT 5 (baseline)", {"engine": "paho", "mqtt_version": "5"}),
        ("paho, 4 shared connections, MQTT 5", {"engine": "paho", "connections": 4, "mqtt_version": "5"}),
        (
            "paho, 4 shared connections, MQTT 3.1.1",
            {"engine": "paho", "connections": 4, "mqtt_version": "3.1.1"},
        ),
        ("raw, 4 connections, MQTT 5", {"engine": "raw", "mqtt_version": "5"}),
        ("raw, 4 connections, MQTT 3.1.1", {"engine": "raw", "mqtt_version": "3.1.1"}),
    ]
    baseline: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, options) in enumerate(cases):
            broker = services.start_mosquitto(Path(tmp) / f"broker{i}")
            try:
                config = SimulationConfig(**{**base.__dict__, "url": broker.url, **options})
                stats = run_simulation(config)
            finally:
                broker.stop()
            assert stats.acked == args.count, stats.summary()
            baseline = baseline or stats.rate
            print(
                f"{name:55s} {stats.rate:10,.0f} msg/s  x{stats.rate / baseline:4.1f}  "
                f"({stats.connections} connections, {stats.publish_s:.2f} s)"
            )


if __name__ == "__main__":
    main()
