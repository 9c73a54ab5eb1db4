"""The deployment in infra/deploy, checked with what runs here: YAML and nginx parsers, schema
checks across the files (every scraped target is a service, every mount holds what the configs
point at), and the broker configuration started for real on a loopback port.

`docker compose config` is not available on this machine (the docker CLI has no compose plugin).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import crossplane
import pytest
import yaml

from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import Settings, parse_mqtt_url

from ._broker_fixtures import make_ca_and_server_cert, try_connect

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "infra" / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _documented_broker_command() -> list[str]:
    """The `zhongdu broker config …` command from the compose file's header comment."""
    raw = [line.lstrip("# ").rstrip() for line in (DEPLOY / "compose.yaml").read_text().splitlines()]
    start = next(i for i, line in enumerate(raw) if line.startswith("zhongdu broker config"))
    words: list[str] = []
    for line in raw[start:]:
        words += shlex.split(line.rstrip("\\"))
        if not line.endswith("\\"):
            break
    return words


def test_anonymous_clients_only_on_loopback_dev_brokers() -> None:
    """The deployment never admits anonymous clients; the local tuned config (demo, tests,
    benchmarks) does, on a loopback listener only."""
    for path in (REPO_ROOT / "infra").rglob("*"):
        if (
            path.is_file()
            and "node_modules" not in path.parts
            and path.suffix in (".conf", ".yaml", ".yml", "")
        ):
            text = path.read_text(errors="replace")
            if re.search(r"^\s*allow_anonymous\s+true", text, re.M):
                assert DEPLOY not in path.parents, path
                listeners = re.findall(r"^\s*listener\s+\d+\s*(\S*)", text, re.M)
                assert listeners and set(listeners) == {"127.0.0.1"}, path


def test_compose_services_fit_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"timescaledb", "mosquitto", "migrate", "api", "nginx", "prometheus"} <= set(services)
    workers = {name: s for name, s in services.items() if name.startswith("ingest-")}
    assert len(workers) >= 2
    # each worker its own credential file, hence its own bound client id and session
    files = [s["env_file"] for s in workers.values()]
    assert files == [["ingest.env"]] + [[f"ingest.env.{k}"] for k in range(2, len(workers) + 1)]
    assert {s["environment"]["ZHONGDU_MQTT_SHARE_GROUP"] for s in workers.values()} == {"ingest"}
    for service in [*workers.values(), services["api"], services["migrate"]]:
        env = service["environment"]
        assert env["ZHONGDU_ENV"] == "production"
        assert "ZHONGDU_BROKER_ADMIN_URL" not in env  # the admin credential stays off these hosts
    assert "ZHONGDU_MQTT_URL" not in services["ingest-1"]["environment"]  # env_file's would lose
    assert "@" not in services["api"]["environment"]["ZHONGDU_MQTT_URL"]  # no credential on the API
    assert "ports" not in services["api"]  # reached only through nginx
    assert services["mosquitto"]["ports"] == ["8883:8883"]  # TLS only from outside
    mounts = dict(v.split(":")[:2][::-1] for v in services["mosquitto"]["volumes"])
    conf = services["mosquitto"]["command"][-1]
    assert conf.startswith("/mosquitto/broker/") and mounts["/mosquitto/broker"] == "./broker"


def test_documented_broker_command_matches_the_mounts(compose: dict[str, Any]) -> None:
    words = _documented_broker_command()
    options = dict(zip(words[3::2], words[4::2], strict=False))
    mounts = [v.split(":")[1] for v in compose["services"]["mosquitto"]["volumes"]]
    assert options["--root"] == "/mosquitto/broker" and options["--bind"] == "0.0.0.0"
    assert options["--host"] == "mosquitto"
    assert options["--plugin"] == "/usr/lib/mosquitto_dynamic_security.so"  # the eclipse-mosquitto image's
    for flag in ("--cert", "--key"):
        assert any(options[flag].startswith(mount + "/") for mount in mounts), flag


def test_the_documented_broker_config_starts_and_serves() -> None:
    """The same command with this machine's paths and a loopback port: Mosquitto serves it."""
    work = Path(tempfile.mkdtemp(prefix="zhongdu-deploy-"))
    os.chmod(work, 0o755)
    ca, cert, key = make_ca_and_server_cert(work)
    port, tls_port = free_port(), free_port()
    local = {"--out": str(work / "broker"), "--root": str(work / "broker"), "--bind": "127.0.0.1",
             "--host": "127.0.0.1", "--plugin": "", "--cert": str(cert), "--key": str(key),
             "--env-file": str(work / "ingest.env"), "--admin-env-file": str(work / "broker-admin.env")}  # fmt: skip
    words = _documented_broker_command()[3:]
    args = [
        w
        for flag, value in zip(words[::2], words[1::2], strict=True)
        for w in (flag, local.get(flag, value))
        if w
    ]
    args = [
        a
        for i, a in enumerate(args)
        if not (a == "--plugin" and (i + 1 == len(args) or args[i + 1].startswith("--")))
    ]
    done = subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", "broker", "config", *args, "--port", str(port), "--tls-port", str(tls_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # secrets go to the 0600 files only
    assert (work / "ingest.env.3").stat().st_mode & 0o777 == 0o600
    urls = dict(
        line.split("=", 1)
        for name in ("ingest.env", "broker-admin.env")
        for line in (work / name).read_text().splitlines()
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(work / "broker" / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port)
        wait_for_port("127.0.0.1", tls_port)
        assert try_connect(f"mqtt://127.0.0.1:{port}") == 135  # anonymous refused
        assert try_connect(urls["ZHONGDU_MQTT_URL"]) == 0  # the ingest credential it printed
        _, _, user, password = parse_mqtt_url(urls["ZHONGDU_BROKER_ADMIN_URL"])
        tls = ssl.create_default_context(cafile=str(ca))
        assert try_connect(f"mqtts://127.0.0.1:{tls_port}", user, password, context=tls) == 0
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def test_prometheus_scrapes_every_worker_and_the_api(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    services = compose["services"]
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for target in targets:
        host, port = target.split(":")
        command = services[host]["command"]
        if "--metrics-port" in command:
            assert command[command.index("--metrics-port") + 1] == port, target
        else:  # the API: its own metrics port, not the public one
            env = services[host]["environment"]
            assert str(env["ZHONGDU_API_METRICS_PORT"]) == port != command[command.index("--port") + 1]
            assert env["ZHONGDU_API_METRICS_HOST"] == "0.0.0.0"
    workers = {name for name in services if name.startswith("ingest-")}
    assert workers | {"api"} == {t.split(":")[0] for t in targets}


def test_nginx_config_parses_and_proxies_to_the_api(compose: dict[str, Any]) -> None:
    parsed = crossplane.parse(str(DEPLOY / "nginx.conf"), check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    directives: dict[str, list[list[str]]] = {}

    def walk(block: list[dict[str, Any]]) -> None:
        for d in block:
            directives.setdefault(d["directive"], []).append(d["args"])
            walk(d.get("block", []))

    walk(parsed["config"][0]["parsed"])
    assert ["api:8000"] in directives["server"]
    assert ["http://zhongdu_api"] in directives["proxy_pass"]
    size = directives["client_max_body_size"][0][0]
    assert int(size.rstrip("m")) * 1024 * 1024 == Settings().api_max_body_bytes  # the same limit at the edge
    assert ["=", "/metrics"] in directives["location"]


def test_emqx_acl_states_the_same_contract() -> None:
    from zhongdu.broker._dynsec import entity_topic, ingest_acls

    acl = (DEPLOY / "emqx" / "acl.conf").read_text()
    rules = [line for line in acl.splitlines() if line.startswith("{")]
    assert all(rule.endswith(".") for rule in rules) and rules[-1] == "{deny, all}."
    assert entity_topic("park", "${client_attrs.entity}") in acl
    assert entity_topic("bs", "${client_attrs.entity}") in acl
    for rule in ingest_acls():
        if rule["acltype"] == "subscribePattern":
            assert rule["topic"] in acl
