"""A three-node (or five-node) clustered broker tier: NATS server with JetStream and its MQTT gateway.

Why NATS (docs/cluster.md): Debian ships it (`nats-server` 2.9), its MQTT sessions and QoS 1
messages live in JetStream streams replicated by Raft, so a PUBACK leaves only once a majority of
nodes holds the message, and a device or worker may connect to any node. Each node's config is a
plain file; `write_cluster_config` writes one per node and the URLs the workers and devices use.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zhongdu.errors import ConfigError

CLUSTER_NAME = "zhongdu"
USERS_FILE = "users.conf"


@dataclass(frozen=True)
class ClusterNode:
    name: str
    host: str
    conf_path: Path
    mqtt_port: int
    client_port: int
    route_port: int
    store_dir: Path

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{self.host}:{self.mqtt_port}"


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[ClusterNode, ...]
    ingest_urls: tuple[str, ...] = ()  # one credential per worker, spread over the nodes

    @property
    def mqtt_urls(self) -> list[str]:
        return [node.mqtt_url for node in self.nodes]


def node_conf(
    name: str,
    *,
    bind: str,
    client_port: int,
    route_port: int,
    mqtt_port: int,
    store_dir: Path,
    routes: list[str],
    replicas: int,
    max_connections: int,
) -> str:
    """One node's nats-server configuration text."""
    route_list = ", ".join(f'"nats-route://{r}"' for r in routes)
    return "\n".join(
        [
            f"# Zhongdu clustered broker, node {name} (written by `zhongdu broker config --cluster`;",
            "# see docs/cluster.md). Devices and ingest workers speak MQTT 3.1.1 to any node.",
            f'server_name: "{name}"',
            f'listen: "{bind}:{client_port}"',
            f"max_connections: {max_connections}",
            "# QoS 1 messages and sessions are JetStream streams; a PUBACK leaves once a majority of",
            "# the replicas stored the message (Raft). nats-server 2.9 syncs files every 2 minutes:",
            "# a SIGKILL of any node loses nothing, a power loss of a majority at once may.",
            f'jetstream {{ store_dir: "{store_dir}" }}',
            "# users.conf: one user per device, station and ingest worker (write_cluster_users)",
            f'authorization {{ include "{USERS_FILE}" }}',
            f'cluster {{ name: "{CLUSTER_NAME}", listen: "{bind}:{route_port}", routes: [{route_list}] }}',
            "mqtt {",
            f'  listen: "{bind}:{mqtt_port}"',
            f"  stream_replicas: {replicas}",
            f"  consumer_replicas: {replicas}",
            "  # a worker that does not acknowledge within 30 s gets the message again",
            '  ack_wait: "30s"',
            "  max_ack_pending: 5000",
            "}",
            "",
        ]
    )


def write_cluster_config(
    out: Path,
    *,
    nodes: int = 3,
    mqtt_ports: list[int] | None = None,
    client_ports: list[int] | None = None,
    route_ports: list[int] | None = None,
    bind: str = "127.0.0.1",
    hosts: list[str] | None = None,
    root: Path | None = None,
    max_connections: int = 20_000,
    workers: int = 1,
) -> ClusterConfig:
    """Write `node-<n>.conf` for every node under `out` (ports default to 1883+, 4222+, 6222+).

    `hosts`: each node's address as the others reach it (default: all on `bind`, for one machine).
    """
    if nodes not in (3, 5):
        raise ConfigError(f"--cluster takes 3 or 5 nodes (a majority survives 1 or 2 losses), not {nodes}")
    mqtt_ports = mqtt_ports or [1883 + k for k in range(nodes)]
    client_ports = client_ports or [4222 + k for k in range(nodes)]
    route_ports = route_ports or [6222 + k for k in range(nodes)]
    if not len(mqtt_ports) == len(client_ports) == len(route_ports) == nodes:
        raise ConfigError("one MQTT, client and route port per node")
    if len({*mqtt_ports, *client_ports, *route_ports}) != 3 * nodes:
        raise ConfigError("the cluster's ports must all differ")
    out.mkdir(parents=True, exist_ok=True)
    root = root or out.resolve()
    default = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind  # noqa: S104 (a comparison)
    hosts = hosts or [default] * nodes
    if len(hosts) != nodes:
        raise ConfigError(f"--cluster-hosts names {len(hosts)} hosts for {nodes} nodes")
    written = []
    for k in range(nodes):
        name = f"node-{k + 1}"
        routes = [f"{hosts[j]}:{route_ports[j]}" for j in range(nodes) if j != k]
        conf = out / f"{name}.conf"
        store = root / "data" / name
        conf.write_text(
            node_conf(
                name,
                bind=bind,
                client_port=client_ports[k],
                route_port=route_ports[k],
                mqtt_port=mqtt_ports[k],
                store_dir=store,
                routes=routes,
                replicas=3,
                max_connections=max_connections,
            )
        )
        (out / "data" / name).mkdir(parents=True, exist_ok=True)
        ports = (mqtt_ports[k], client_ports[k], route_ports[k])
        written.append(ClusterNode(name, hosts[k], conf, *ports, store))
    passwords = {f"zhongdu-ingest-{k}": secrets.token_urlsafe(24) for k in range(1, workers + 1)}
    write_cluster_users(
        out, {user: user_entry(user, password, kind="ingest") for user, password in passwords.items()}
    )
    urls = tuple(
        f"mqtt://{user}:{password}@{written[k % nodes].host}:{written[k % nodes].mqtt_port}"
        for k, (user, password) in enumerate(passwords.items())
    )
    return ClusterConfig(tuple(written), urls)


def _bcrypt(password: str) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


def user_entry(username: str, password: str, *, kind: str, entity_id: str | None = None) -> str:
    """One `users` entry: a device or station publishes only under its own subtree and reads
    nothing; a worker reads the tree (and the gateway's own `$MQTT.sub.>` delivery subjects) and
    publishes nothing. Passwords are stored as bcrypt hashes, which nats-server checks."""
    if kind == "ingest":
        permissions = {
            "publish": {"deny": [">"]},
            "subscribe": {"allow": ["zhongdu.v1", "zhongdu.v1.>", "$MQTT.sub.>"]},
        }
    else:
        permissions = {
            "publish": {"allow": [f"zhongdu.v1.{kind}.{entity_id}.>"]},
            "subscribe": {"deny": [">"]},
        }
    return json.dumps({"user": username, "password": _bcrypt(password), "permissions": permissions})


def write_cluster_users(out: Path, entries: Mapping[str, str]) -> Path:
    """Write `users.conf` (0600) from {username: entry}; reload every node afterwards
    (`nats-server --signal reload=<pid>` or SIGHUP) so the change takes effect without a restart."""
    text = "users: [\n" + "\n".join(f"  {entry}" for entry in entries.values()) + "\n]\n"
    path = out / USERS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def read_cluster_users(out: Path) -> dict[str, str]:
    """The entries of `users.conf` by username (to add or remove one and write them back)."""
    entries: dict[str, str] = {}
    for line in (out / USERS_FILE).read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            entries[json.loads(line)["user"]] = line
    return entries
