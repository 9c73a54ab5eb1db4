"""What `zhongdu.ingest._paho_speedups` buys: a subscriber draining a queue, with and without it.

A private tuned Mosquitto holds `--messages` QoS 1 SenML packs (MQTT v5) queued for a persistent
session; the subscriber then connects and takes them all (PUBACK per message, as the ingester's
client does). Three clients, alternated over `--rounds` in the same run: paho's own `Client`,
paho's `Client` with the shared-table `Properties`, and `FastClient` (both speed-ups). Prints
messages/s (median) and the ratios against paho's own.

Run: `.venv/bin/python benchmarks/bench_paho_speedups.py --messages 20000 --rounds 3`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zhongdu import services
from zhongdu.ingest import _paho_speedups

VARIANTS = ("paho", "paho + shared Properties", "FastClient")


def _payload(records: int) -> str:
    pack = [{"bn": "urn:dev:zhongdu:air-001:", "bt": 1.7e9, "n": "pm2_5", "u": "ug/m3", "v": 12.5}]
    pack += [{"n": f"m{k}", "v": float(k)} for k in range(records - 1)]
    return json.dumps(pack, separators=(",", ":"))


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    return props


def _client(variant: str, client_id: str) -> mqtt.Client:
    if variant == "paho":
        _paho_speedups.uninstall()
    else:
        assert _paho_speedups.install(), "this paho-mqtt is not the one the speed-ups were tested on"
    cls = _paho_speedups.FastClient if variant == "FastClient" else mqtt.Client
    return cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def _queue(port: int, topic: str, lines: Path) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", "1", "-t", topic, "-l"],
        stdin=lines.open("rb"), check=True, timeout=600,
    )  # fmt: skip


def _drain(variant: str, port: int, messages: int, lines: Path) -> float:
    """Messages per second received from a queue of `messages` (connect to last message)."""
    client_id = f"bench-paho-{uuid.uuid4().hex[:8]}"
    topic = f"bench/{client_id}"
    client = _client(variant, client_id)
    client.connect("127.0.0.1", port, clean_start=False, properties=_session_properties())
    client.subscribe(topic, qos=1)
    client.loop(timeout=1.0)
    client.loop(timeout=1.0)
    client.disconnect()
    _queue(port, topic, lines)

    client = _client(variant, client_id)
    got = 0
    done = threading.Event()

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal got
        got += 1
        if got == messages:
            done.set()

    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", port, clean_start=False, properties=_session_properties())
    client.loop_start()
    if not done.wait(300):
        raise SystemExit(f"{variant}: only {got} of {messages} messages arrived")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return messages / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="queued messages per drain")
    parser.add_argument("--records", type=int, default=10, help="datapoints per SenML pack")
    parser.add_argument("--rounds", type=int, default=3, help="drains per client (median reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if shutil.which("mosquitto_pub") is None:
        raise SystemExit("needs mosquitto_pub (apt-get install mosquitto-clients)")
    work = Path(tempfile.mkdtemp(prefix="bench-paho-"))
    broker = services.start_mosquitto(work / "broker")
    port = int(broker.url.rsplit(":", 1)[1])
    lines = work / "lines.txt"
    lines.write_text((_payload(args.records) + "\n") * args.messages)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for _ in range(args.rounds):
            for variant in VARIANTS:
                rates[variant].append(_drain(variant, port, args.messages, lines))
    finally:
        _paho_speedups.uninstall()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    median = {v: statistics.median(r) for v, r in rates.items()}
    base = median["paho"]
    result = {
        "paho_version": paho.mqtt.__version__,
        "messages": args.messages,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
        "msgs_per_s": {v: round(m) for v, m in median.items()},
        "ratio_vs_paho": {v: round(m / base, 2) for v, m in median.items()},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"paho-mqtt {result['paho_version']}, {args.messages} queued QoS 1 messages, "
        f"median of {args.rounds}, {result['cores']} cores, load {result['load_average']}"
    )
    for variant in VARIANTS:
        print(f"{variant:28}{median[variant]:>10.0f} msg/s{median[variant] / base:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
