"""`zhongdu broker config`: what it writes and what it refuses (no broker needed; the security and
deployment tests start Mosquitto from its output)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from zhongdu.broker import dynsec_bootstrap, write_broker_config
from zhongdu.broker._config import dynsec_password
from zhongdu.errors import ConfigError


def test_password_fields_are_the_plugins_pbkdf2_format() -> None:
    # mosquitto_ctrl's own output for password "adminpw" with this salt (checked on Mosquitto 2.0.11)
    fields = dynsec_password("adminpw", salt=base64.b64decode("7G+uHbmtHrCd6ngq"))
    assert fields["password"].startswith("HnbVW57uuLx99LACkY2dOsVbWdMDgD6q")
    assert fields["iterations"] == 101
    digest = hashlib.pbkdf2_hmac("sha512", b"adminpw", base64.b64decode(fields["salt"]), 101)
    assert base64.b64decode(fields["password"]) == digest


def test_bootstrap_denies_everything_not_granted() -> None:
    config = dynsec_bootstrap("a" * 32, "b" * 32)
    assert not any(
        config["defaultACLAccess"][k] for k in ("publishClientSend", "publishClientReceive", "subscribe")
    )
    admin = next(r for r in config["roles"] if r["rolename"] == "zhongdu-admin")
    assert {a["topic"] for a in admin["acls"]} == {"$CONTROL/dynamic-security/#"}
    ingest = next(r for r in config["roles"] if r["rolename"] == "zhongdu-ingest")
    assert not any(a["acltype"] == "publishClientSend" for a in ingest["acls"])
    assert "a" * 32 not in json.dumps(config) and "b" * 32 not in json.dumps(config)  # hashes only


def test_written_files_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "broker"
    result = write_broker_config(out, port=18830, plugin="/x/mosquitto_dynamic_security.so")
    conf = result.conf_path.read_text()
    for line in ("allow_anonymous false", "persistence true", "set_tcp_nodelay true", "listener 18830 127.0.0.1",
                 f"plugin_opt_config_file {out.resolve() / 'dynamic-security.json'}"):  # fmt: skip
        assert line in conf
    assert "certfile" not in conf
    assert stat.S_IMODE(result.dynsec_path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="--force"):
        write_broker_config(out, plugin="/x.so")  # live credentials are never overwritten silently
    write_broker_config(out, plugin="/x.so", overwrite=True)
    with pytest.raises(ConfigError, match="go together"):
        write_broker_config(tmp_path / "b2", plugin="/x.so", cert=tmp_path / "c.pem")
    with pytest.raises(ConfigError, match="--tls-only"):
        write_broker_config(tmp_path / "b3", plugin="/x.so", plain=False)
    tls = write_broker_config(
        tmp_path / "b4",
        plugin="/x.so",
        cert=tmp_path / "c.pem",
        key=tmp_path / "k.pem",
        plain=False,
        tls_port=18883,
    )
    text = tls.conf_path.read_text()
    assert "listener 18883 127.0.0.1" in text and "listener 1883" not in text
    assert tls.ingest_url.startswith("mqtts://") and tls.tls_url == "mqtts://127.0.0.1:18883"
