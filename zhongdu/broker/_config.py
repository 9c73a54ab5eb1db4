"""A complete production Mosquitto 2.0 configuration: tuned, persistent, no anonymous clients.

`write_broker_config` writes `mosquitto.conf` and the dynamic security plugin's JSON with an admin
client (manages credentials at run time over `$CONTROL`) and one client per ingest worker, each with
a random password returned once. Every non-admin client is bound to one client id, its username, so
a credential cannot be used to take over another client's session. Tuning as
docs/security-and-deployment.md#broker-tuning explains (Nagle off, large in-flight and queue limits,
persistence), since Debian's defaults throttle QoS 1 to ~110 msg/s.
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
INGEST_PREFIX = "zhongdu-ingest-"
INGEST_USER = INGEST_PREFIX + "1"
DYNSEC_FILE = "dynamic-security.json"
PLUGIN_NAME = "mosquitto_dynamic_security.so"
# Where Debian/Ubuntu (multiarch), Alpine (the eclipse-mosquitto image) and source builds put it.
PLUGIN_GLOBS = (f"/usr/lib/*/{PLUGIN_NAME}", f"/usr/lib/{PLUGIN_NAME}", f"/usr/local/lib/{PLUGIN_NAME}")
# 512 MiB per client: about 1.5 M typical packs (~350 B) queued for an ingest worker that is away.
DEFAULT_QUEUE_BYTES = 512 * 1024 * 1024
# Per listener; the broker's open-file limit (LimitNOFILE) must be above it.
DEFAULT_MAX_CONNECTIONS = 20_000
MAX_PACKET_SIZE = 131_072
DEFAULT_SAVE_EVERY_S = 1
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


def ingest_username(index: int) -> str:
    """`zhongdu-ingest-<n>`: a worker's username, and the only client id it may connect with."""
    return f"{INGEST_PREFIX}{index}"


def dynsec_bootstrap(admin_password: str, *ingest_passwords: str) -> dict[str, Any]:
    """Roles, the admin and one client per ingest worker; everything not allowed by a role is denied.

    The admin is not bound to a client id (each `zhongdu devices` call opens its own session); it can
    already rewrite every role, so a binding would not limit it.
    """
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
            *(
                {
                    "username": ingest_username(k),
                    "clientid": ingest_username(k),
                    "textName": f"Zhongdu ingest worker {k} (reads zhongdu/v1/#, publishes nothing)",
                    **dynsec_password(password),
                    "roles": [{"rolename": INGEST_ROLE}],
                }
                for k, password in enumerate(ingest_passwords, start=1)
            ),
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
    ingest_urls: tuple[str, ...]  # one per worker, each with its own credential and client id
    tls_url: str | None
    # what the `mosquitto` user could not read or write, each with its fix (empty: nothing)
    warnings: tuple[str, ...] = ()

    @property
    def ingest_url(self) -> str:
        return self.ingest_urls[0]


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
    queue_bytes: int = DEFAULT_QUEUE_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    save_every_s: int | None = DEFAULT_SAVE_EVERY_S,
) -> str:
    """The configuration text; `root` is the directory as the broker will see it.

    `save_every_s`: seconds between saves of the persistence file; None saves after every change
    (benchmarked against each other in benchmarks/bench_broker_save.py)."""
    lines = [
        "# Zhongdu production broker, written by `zhongdu broker config`.",
        "# See docs/security-and-deployment.md in the Zhongdu repository.",
        "# Credentials and ACLs live in the dynamic security plugin, managed at run time over $CONTROL",
        "# (`zhongdu devices credential issue ID`): no restart to add, rotate or revoke a device.",
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
        "# Each client's queue is capped in bytes too, so one device sending large packets while the",
        "# workers are away cannot grow the broker without bound (what exceeds it is dropped and",
        "# counted in $SYS/broker/publish/messages/dropped; see docs/cluster.md, operations).",
        f"max_queued_bytes {queue_bytes}",
        # The ingester rejects payloads above 64 KiB anyway; 128 KiB leaves room for topic and properties.
        f"max_packet_size {MAX_PACKET_SIZE}",
        "max_keepalive 300",
        "persistence true",
        f"persistence_location {root / 'data'}/",
        *(
            [
                "# Saved after every change: no window, but each save rewrites the whole file (queue",
                "# included): intake fell to 0.06x (benchmarks/bench_broker_save.py).",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
            if save_every_s is None
            else [
                f"# Saved every {save_every_s} s (not 30): a worker's new session and what is queued for it",
                "# are on disk within that time; a SIGKILL loses at most what was acknowledged since",
                "# (docs/faults-and-attacks.md; cost in docs/performance.md).",
                f"autosave_interval {save_every_s}",
            ]
        ),
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
            f"max_connections {max_connections}",
            "",
        ]
    if cert is not None and key is not None and tls_port is not None:
        lines += [
            f"listener {tls_port} {bind}",
            f"max_connections {max_connections}",
            f"certfile {cert}",
            f"keyfile {key}",
            "tls_version tlsv1.2",
        ]
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
    workers: int = 1,
    queue_bytes: int = DEFAULT_QUEUE_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> BrokerConfig:
    """Write `mosquitto.conf`, the plugin's JSON and `data/` under `out`; refuse to replace a live JSON."""
    if (cert is None) != (key is None):
        raise ConfigError("--cert and --key go together")
    if not plain and cert is None:
        raise ConfigError("--tls-only needs --cert and --key")
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be between 1 and 64, got {workers}")
    if queue_bytes < 1024 * 1024:
        raise ConfigError(f"--queue-bytes must be at least 1048576 (1 MiB), got {queue_bytes}")
    if max_connections < 10:
        raise ConfigError(f"--max-connections must be at least 10, got {max_connections}")
    out.mkdir(parents=True, exist_ok=True)
    dynsec_path = out / DYNSEC_FILE
    if dynsec_path.exists() and not overwrite:
        raise ConfigError(f"{dynsec_path} exists (it holds live credentials); pass --force to replace it")
    seen_by_broker = root is None
    root = root or out.resolve()
    admin_password = secrets.token_urlsafe(24)
    ingest_passwords = [secrets.token_urlsafe(24) for _ in range(workers)]
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
        queue_bytes=queue_bytes,
        max_connections=max_connections,
    )
    conf_path = out / "mosquitto.conf"
    conf_path.write_text(conf_text)
    (out / "data").mkdir(exist_ok=True)
    # Written with 0600 before any secret goes in; the plugin rewrites it on every change.
    fd = os.open(dynsec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dynsec_bootstrap(admin_password, *ingest_passwords), fh, indent=1)
    _hand_to_broker_user(out)
    tls_files = [p for p in (cert, key, cafile) if p is not None]
    # with --root the paths are the container's, not checkable here
    warnings = broker_cannot_read(out, tls_files) if seen_by_broker else []
    host = host or ("127.0.0.1" if bind in ("0.0.0.0", "::") else bind)  # noqa: S104 (a comparison)
    url_port = port if plain else tls_port
    scheme = "mqtt" if plain else "mqtts"
    return BrokerConfig(
        conf_path=conf_path,
        dynsec_path=dynsec_path,
        admin_url=f"{scheme}://{ADMIN_USER}:{admin_password}@{host}:{url_port}",
        ingest_urls=tuple(
            f"{scheme}://{ingest_username(k)}:{password}@{host}:{url_port}"
            for k, password in enumerate(ingest_passwords, start=1)
        ),
        tls_url=f"mqtts://{host}:{tls_port}" if cert is not None else None,
        warnings=tuple(warnings),
    )


def _broker_account() -> tuple[int, int, set[int]] | None:
    """(uid, gid, groups) of the `mosquitto` user a root-started broker drops to; None if it does not
    drop (started by an ordinary user, who then needs nothing more than what it has)."""
    if os.geteuid() != 0:
        return None
    try:
        import grp
        import pwd

        entry = pwd.getpwnam("mosquitto")
    except (ImportError, KeyError):
        return None
    groups = {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem} | {entry.pw_gid}
    return entry.pw_uid, entry.pw_gid, groups


def _allowed(path: Path, uid: int, groups: set[int], bit: int) -> bool:
    """Whether the mode bits grant `bit` (4 read, 2 write, 1 search) to that user."""
    st = path.stat()
    shift = 6 if st.st_uid == uid else 3 if st.st_gid in groups else 0
    return (st.st_mode >> shift) & bit == bit


def broker_cannot_read(out: Path, tls_files: list[Path]) -> list[str]:
    """What a root-started broker (running as `mosquitto`) could not read or write, with the fix: a
    key or directory it cannot read makes the plugin fail to load, and then the broker refuses every
    client without saying why. A TLS file that does not exist at all is an error."""
    missing = [f"{p} does not exist" for p in tls_files if not p.exists()]
    if missing:
        raise ConfigError("the broker could not start with this config: " + "; ".join(missing))
    account = _broker_account()
    if account is None:
        return []
    uid, _gid, groups = account
    problems: list[str] = []
    for target, need_write in [(out.resolve(), True), *((p.resolve(), False) for p in tls_files)]:
        for parent in reversed(target.parents):
            if not _allowed(parent, uid, groups, 1):
                problems.append(
                    f"the mosquitto user cannot enter {parent} (fix: chmod o+x {parent}, "
                    "or write the config elsewhere)"
                )
                break
        else:
            if target.is_dir():
                if not _allowed(target, uid, groups, 1 | (2 if need_write else 0)):
                    problems.append(
                        f"the mosquitto user cannot write {target} (fix: chown mosquitto {target})"
                    )
            elif not _allowed(target, uid, groups, 4):
                problems.append(
                    f"the mosquitto user cannot read {target} "
                    f"(fix: chgrp mosquitto {target} && chmod g+r {target})"
                )
    return list(dict.fromkeys(problems))


def write_secret_file(path: Path, text: str) -> None:
    """A file only its owner can read, created so (never briefly world-readable, never by a shell
    redirect); an existing file is narrowed to 0600 before it is rewritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


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
