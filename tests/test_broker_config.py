"""`zhongdu broker config`: what it writes and what it refuses (no broker needed; the security and
deployment tests start Mosquitto from its output)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A directory the `mosquitto` user can enter (pytest's own is 0700 and root's when run as root)."""
    shared = Path(tempfile.mkdtemp(prefix="zhongdu-conf-"))
    os.chmod(shared, 0o755)
    yield shared
    shutil.rmtree(shared, ignore_errors=True)


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
    with pytest.raises(ConfigError, match=r"c\.pem does not exist"):
        write_broker_config(tmp_path / "b5", plugin="/x.so", cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
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


def test_every_service_credential_is_bound_to_its_own_client_id() -> None:
    config = dynsec_bootstrap("a" * 32, "b" * 32, "c" * 32)
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == {"zhongdu-admin", "zhongdu-ingest-1", "zhongdu-ingest-2"}
    for worker in ("zhongdu-ingest-1", "zhongdu-ingest-2"):
        assert clients[worker]["clientid"] == worker  # a credential cannot take another id
    assert "clientid" not in clients["zhongdu-admin"]  # one session per CLI call; it owns the ACLs


def test_queue_bytes_connections_and_saving_every_second_are_written(tmp_path: Path) -> None:
    result = write_broker_config(
        tmp_path / "b", plugin="/x.so", workers=3, queue_bytes=64 * 2**20, max_connections=500
    )
    lines = result.conf_path.read_text().splitlines()
    assert "max_queued_bytes 67108864" in lines and "max_queued_bytes 0" not in lines
    assert "max_connections 500" in lines and "max_packet_size 131072" in lines
    assert "autosave_interval 1" in lines and "autosave_on_changes true" not in lines
    assert [u.split("://")[1].split(":")[0] for u in result.ingest_urls] == [
        "zhongdu-ingest-1", "zhongdu-ingest-2", "zhongdu-ingest-3",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--queue-bytes"):
        write_broker_config(tmp_path / "c", plugin="/x.so", queue_bytes=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root-started broker drops to the mosquitto user")
def test_files_the_mosquitto_user_cannot_read_are_named_with_the_fix(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    found = write_broker_config(private / "broker", plugin="/x.so").warnings
    assert len(found) == 1 and re.search(r"cannot enter .*private \(fix: chmod o\+x", found[0]), found
    key, cert = tmp_path / "server.key", tmp_path / "server.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    found = write_broker_config(tmp_path / "b", plugin="/x.so", cert=cert, key=key).warnings
    assert len(found) == 1 and re.search(r"cannot read .*server\.key \(fix: chgrp mosquitto", found[0]), found
    done = _zhongdu("broker", "config", "--out", str(tmp_path / "c"), "--plugin", "/x.so",
                    "--cert", str(cert), "--key", str(key), "--env-file", str(tmp_path / "c.env"),
                    "--admin-env-file", str(tmp_path / "a.env"))  # fmt: skip
    assert done.returncode == 0 and "warning: the broker will refuse every client" in done.stderr
    assert "chgrp mosquitto" in done.stderr
    os.chmod(key, 0o640)
    shutil.chown(key, group="mosquitto")
    assert write_broker_config(tmp_path / "b", plugin="/x.so", cert=cert, key=key, overwrite=True).warnings == ()


def _zhongdu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zhongdu.cli", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_writes_secrets_only_to_files_created_0600(tmp_path: Path) -> None:
    env_file, admin_file = tmp_path / "ingest.env", tmp_path / "admin.env"
    env_file.write_text("old\n")
    os.chmod(env_file, 0o644)  # an existing file is narrowed before the secret goes in
    done = _zhongdu(
        "broker", "config", "--out", str(tmp_path / "b"), "--plugin", "/x.so", "--workers", "2",
        "--env-file", str(env_file), "--admin-env-file", str(admin_file),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing secret on the terminal or in a redirect
    for path in (env_file, admin_file, tmp_path / "ingest.env.2"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert env_file.read_text().startswith("ZHONGDU_MQTT_URL=mqtt://zhongdu-ingest-1:")
    assert (tmp_path / "ingest.env.2").read_text().startswith("ZHONGDU_MQTT_URL=mqtt://zhongdu-ingest-2:")
    assert admin_file.read_text().startswith("ZHONGDU_BROKER_ADMIN_URL=mqtt://zhongdu-admin:")


def test_bad_ids_get_one_line_errors() -> None:
    for args in (["devices", "add", "a+b", "--kind", "air"], ["devices", "credential", "issue", "ok-1", "x/#"]):
        done = _zhongdu(*args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "bad id" in lines[0] and "A-Z a-z 0-9 _ . : -" in lines[0], lines
