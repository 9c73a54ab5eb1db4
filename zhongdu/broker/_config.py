"""A complete production Mosquitto 2.0 configuration: tuned, persistent, no anonymous clients.

`write_broker_config` writes `mosquitto.conf` and the dynamic security plugin's JSON with an admin
client (manages credentials at run time over `$CONTROL`) and one ingest client, each with a random
password returned once. Tuning as docs/security-and-deployment.md#broker-tuning explains (Nagle
off, large in-flight and queue limits, persistence), since Debian's defaults throttle QoS 1 to ~110 msg/s.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhongdu.broker._dynsec import INGEST_ROLE, ingest_acls
from zhongdu.errors import ConfigError

ADMIN_USER = "zhongdu-admin"
INGEST_USER = "ingest-workers"
DYNSEC_FILE = "dynamic-security.json"
PLUGIN_NAME = "mosquitto_dynamic_security.so"
# Where Debian/Ubuntu (multiarch), Alpine (the eclipse-mosquitto image) and source builds put it.
PLUGIN_GLOBS = (f"/usr/lib/*/{PLUGIN_NAME}", f"/usr/lib/{PLUGIN_NAME}", f"/usr/local/lib/{PLUGIN_NAME}")
# The plugin's own password format (PBKDF2-SHA512); it hashes passwords set over $CONTROL the same way.
_PBKDF2_ITERATIONS = 101


def find_dynsec_plugin() -> str:
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ConfigError(f"{PLUGIN_NAME} not found (looked in {', '.join(PLUGIN_GLOBS)}); pass --plugin PATH")


def dynsec_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    """The JSON fields the plugin stores for a password (salted PBKDF2-SHA512, base64)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": _PBKDF2_ITERATIONS,
    }


def dynsec_bootstrap(admin_password: str, ingest_password: str) -> dict[str, Any]:
    """Roles and the two service clients; everything not allowed by a role is denied."""
    control = "$CONTROL/dynamic-security/#"
    admin_acls = [
        {"acltype": acltype, "topic": control, "allow": True}
        for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    return {
        "clients": [
            {
                "username": ADMIN_USER,
                "textName": "Zhongdu credential manager (dynamic security only)",
                **dynsec_password(admin_password),
                "roles": [{"rolename": "zhongdu-admin"}],
            },
            {
                "username": INGEST_USER,
                "textName": "Zhongdu ingest workers (read zhongdu/v1/#, publish nothing)",
                **dynsec_password(ingest_password),
                "roles": [{"rolename": INGEST_ROLE}],
            },
        ],
        "roles": [
            {"rolename": "zhongdu-admin", "acls": admin_acls},
            {"rolename": INGEST_ROLE, "acls": ingest_acls()},
        ],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


@dataclass(frozen=True)
class BrokerConfig:
    """What was written, and the two secrets (shown once by the CLI, stored nowhere else)."""

    conf_path: Path
    dynsec_path: Path
    admin_url: str
    ingest_url: str
    tls_url: str | None


def mosquitto_conf(
    *,
    root: Path,
    plugin: str,
    port: int,
    bind: str,
    tls_port: int | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    cafile: Path | None = None,
    plain: bool = True,
) -> str:
    """The configuration text; `root` is the directory as the broker will see it."""
    lines = [
        "# Zhongdu production broker, written by `zhongdu broker config`.",
        "# See docs/security-and-deployment.md in the Zhongdu repository.",
        "# Credentials and ACLs live in the dynamic security plugin, managed at run time over $CONTROL",
        "# (`zhongdu devices credential ID`): no restart to add, rotate or revoke a device.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {root / DYNSEC_FILE}",
        "",
        "# Tuning (docs/security-and-deployment.md#broker-tuning): Nagle off, large in-flight and",
        "# queue limits (Debian's defaults ran QoS 1 at ~110 msg/s and then dropped silently),",
        "# persistent sessions and queued messages.",
        "set_tcp_nodelay true",
        "max_inflight_messages 1000",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "max_packet_size 1048576",
        "max_keepalive 300",
        "persistence true",
        f"persistence_location {root / 'data'}/",
        "autosave_interval 30",
        "persistent_client_expiration 14d",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
    ]
    if plain:
        lines += [
            "# Plain MQTT; keep it on a private network or loopback when TLS is on.",
            f"listener {port} {bind}",
            "",
        ]
    if cert is not None and key is not None and tls_port is not None:
        lines += [f"listener {tls_port} {bind}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
        if cafile is not None:
            lines.append(f"cafile {cafile}")
        lines.append("")
    return "\n".join(lines)


def write_broker_config(
    out: Path,
    *,
    port: int = 1883,
    bind: str = "127.0.0.1",
    host: str | None = None,
    root: Path | None = None,
    plugin: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    cafile: Path | None = None,
    tls_port: int = 8883,
    plain: bool = True,
    overwrite: bool = False,
) -> BrokerConfig:
    """Write `mosquitto.conf`, the plugin's JSON and `data/` under `out`; refuse to replace a live JSON."""
    if (cert is None) != (key is None):
        raise ConfigError("--cert and --key go together")
    if not plain and cert is None:
        raise ConfigError("--tls-only needs --cert and --key")
    out.mkdir(parents=True, exist_ok=True)
    dynsec_path = out / DYNSEC_FILE
    if dynsec_path.exists() and not overwrite:
        raise ConfigError(f"{dynsec_path} exists (it holds live credentials); pass --force to replace it")
    root = root or out.resolve()
    admin_password, ingest_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    conf_text = mosquitto_conf(
        root=root,
        plugin=plugin or find_dynsec_plugin(),
        port=port,
        bind=bind,
        tls_port=tls_port if cert is not None else None,
        cert=cert,
        key=key,
        cafile=cafile,
        plain=plain,
    )
    conf_path = out / "mosquitto.conf"
    conf_path.write_text(conf_text)
    (out / "data").mkdir(exist_ok=True)
    # Written with 0600 before any secret goes in; the plugin rewrites it on every change.
    fd = os.open(dynsec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dynsec_bootstrap(admin_password, ingest_password), fh, indent=1)
    _hand_to_broker_user(out)
    host = host or ("127.0.0.1" if bind in ("0.0.0.0", "::") else bind)  # noqa: S104 (a comparison)
    url_port = port if plain else tls_port
    scheme = "mqtt" if plain else "mqtts"
    return BrokerConfig(
        conf_path=conf_path,
        dynsec_path=dynsec_path,
        admin_url=f"{scheme}://{ADMIN_USER}:{admin_password}@{host}:{url_port}",
        ingest_url=f"{scheme}://{INGEST_USER}:{ingest_password}@{host}:{url_port}",
        tls_url=f"mqtts://{host}:{tls_port}" if cert is not None else None,
    )


def _hand_to_broker_user(out: Path) -> None:
    """Mosquitto started as root drops to the `mosquitto` user: let it write its data and JSON."""
    if os.geteuid() != 0:
        return
    try:
        import pwd

        entry = pwd.getpwnam("mosquitto")
    except (ImportError, KeyError):
        return
    for path in (out, out / "data", out / DYNSEC_FILE):
        os.chown(path, entry.pw_uid, entry.pw_gid)
