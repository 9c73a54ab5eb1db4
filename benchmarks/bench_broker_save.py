"""What saving more often costs Mosquitto: QoS 1 publish rate with saves every 30 s (the old
config, the baseline), every 1 s (the written config) and after every change, in the same run.

Two cases per setting: the ingest session connected and reading (the normal state), and the
session away so the broker queues everything (each save then writes the growing queue).
Example: `.venv/bin/python benchmarks/bench_broker_save.py --seconds 10`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zhongdu.broker import DynsecAdmin
from zhongdu.broker._config import find_dynsec_plugin, mosquitto_conf, write_broker_config
from zhongdu.ingest import build_pack
from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import parse_mqtt_url


def _session(url: str, *, connect_only: bool) -> mqtt.Client:
    host, port, user, password = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe("zhongdu/v1/#", qos=1)[1]
    time.sleep(0.5)
    if connect_only:
        client.disconnect()
        client.loop_stop()
    return client


def _publish_for(port: int, seconds: float) -> int:
    """QoS 1 packs from one device for `seconds`, at most 200 unacknowledged; PUBACKs counted."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="park-bench-1", protocol=mqtt.MQTTv5)
    client.username_pw_set("park-bench-1", "bench-password")
    client.max_inflight_messages_set(200)
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent, i = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sent - acked[0] >= 200:
            time.sleep(0.0005)
            continue
        pack = build_pack("bench-1", {"pm2_5": 12.5, "pm10": 20.0}, time_s=1.7e9 + i / 1000)
        client.publish("zhongdu/v1/park/bench-1/senml", json.dumps(pack).encode(), qos=1)
        sent += 1
        i += 1
    result = acked[0]
    client.disconnect()
    client.loop_stop()
    return result


def run(save_every_s: int | None, away: bool, seconds: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="zhongdu-bench-save-"))
    os.chmod(work, 0o755)
    port = free_port()
    config = write_broker_config(work / "b", port=port)
    config.conf_path.write_text(
        mosquitto_conf(
            root=config.conf_path.parent.resolve(), plugin=find_dynsec_plugin(), port=port,
            bind="127.0.0.1", save_every_s=save_every_s,
        )
    )  # fmt: skip
    proc = subprocess.Popen(["mosquitto", "-c", str(config.conf_path)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        with DynsecAdmin(config.admin_url) as admin:
            admin.put_entity_client("park", "bench-1", "park-bench-1", "bench-password")
        reader = _session(config.ingest_url, connect_only=away)
        acked = _publish_for(port, seconds)
        if not away:
            reader.disconnect()
            reader.loop_stop()
        db = config.conf_path.parent / "data" / "mosquitto.db"
        size = db.stat().st_size if db.exists() else 0
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return {"msg_per_s": acked / seconds, "db_mb": size / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per case")
    args = parser.parse_args()
    modes: list[tuple[str, int | None]] = [("every 30 s", 30), ("every 1 s", 1), ("on every change", None)]
    print(f"one device, QoS 1, at most 200 in flight, {args.seconds:.0f} s per case; load: {os.getloadavg()}")
    for away in (False, True):
        case = "ingest session away (broker queues)" if away else "ingest session reading"
        results = {name: run(every, away, args.seconds) for name, every in modes}
        base = results["every 30 s"]["msg_per_s"]
        cells = "; ".join(
            f"{name} {r['msg_per_s']:,.0f} msg/s (x{r['msg_per_s'] / base:.2f}, file {r['db_mb']:.1f} MB)"
            for name, r in results.items()
        )
        print(f"{case}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
