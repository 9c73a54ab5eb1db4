"""A secured Mosquitto started from `zhongdu broker config` output, for the security and fault tests.

The directory is made world-traversable (Mosquitto started as root drops to the `mosquitto` user,
which must reach its data and plugin JSON); everything else about the config is as generated.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from zhongdu.broker import BrokerConfig, write_broker_config
from zhongdu.services import free_port, wait_for_port
from zhongdu.settings import parse_mqtt_url


@dataclass
class SecuredBroker:
    workdir: Path
    config: BrokerConfig
    port: int
    tls_port: int | None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config.conf_path)], stdout=log, stderr=log)
        log.close()
        wait_for_port("127.0.0.1", self.port)
        if self.tls_port:
            wait_for_port("127.0.0.1", self.tls_port)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final save of the persistence file."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")[-3000:]


@contextmanager
def secured_broker(
    *, cert: Path | None = None, key: Path | None = None, **options: Any
) -> Iterator[SecuredBroker]:
    workdir = Path(tempfile.mkdtemp(prefix="zhongdu-broker-"))
    os.chmod(workdir, 0o755)
    port = free_port()
    tls_port = free_port() if cert is not None else None
    config = write_broker_config(
        workdir / "broker", port=port, cert=cert, key=key, tls_port=tls_port or 8883, **options
    )
    broker = SecuredBroker(workdir, config, port, tls_port)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def try_connect(
    url: str, username: str | None = None, password: str | None = None, *, v5: bool = True, **tls: Any
) -> int | str:
    """The CONNACK reason code (0 = accepted) or the connection error's text."""
    host, port, user, pw = parse_mqtt_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        # a secured broker binds a credential to one client id, its username
        client_id=username or user or f"probe-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    if username or user:
        client.username_pw_set(username or user, password if password is not None else pw)
    if tls:
        client.tls_set_context(tls["context"])
    result: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(int(reason.value))
    try:
        client.connect(host, port, keepalive=10)
    except Exception as exc:  # TLS verification failures surface here
        return f"{type(exc).__name__}: {exc}"
    deadline = time.monotonic() + 10
    while not result and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return result[0] if result else "no CONNACK"


def make_ca_and_server_cert(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (openssl); (ca, cert, key).

    `workdir` must be reachable by the `mosquitto` user (see `secured_broker`).
    """
    ca_key, ca = workdir / "ca.key", workdir / "ca.pem"
    key, csr, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.pem"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=zhongdu-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    for path in (ca, cert, key):
        os.chmod(path, 0o644)  # the broker reads them after dropping to the mosquitto user
    return ca, cert, key
