"""`zhongdu broker config` (a production Mosquitto configuration) and `zhongdu devices …`
(register devices and stations; issue, rotate and revoke their MQTT credentials).

Imports stay inside the handlers so that `zhongdu --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    broker = subparsers.add_parser("broker", help="the MQTT broker: write a production Mosquitto config")
    broker_sub = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    config = broker_sub.add_parser(
        "config",
        help="write mosquitto.conf + dynamic security JSON (admin and ingest passwords printed once)",
        description=(
            "Write a complete Mosquitto 2.0 configuration for production into DIR: anonymous clients "
            "refused, the dynamic security plugin (credentials and ACLs managed at run time), "
            "persistence, the tuning of docs/security-and-deployment.md#broker-tuning, and a TLS "
            "listener when --cert and --key are given. "
            "Prints ZHONGDU_BROKER_ADMIN_URL and ZHONGDU_MQTT_URL (for ingest workers) once."
        ),
    )
    config.add_argument("--out", type=Path, required=True, help="directory to write into")
    config.add_argument("--port", type=int, default=1883, help="plain MQTT listener port (default 1883)")
    config.add_argument("--bind", default="127.0.0.1", help="listener address (0.0.0.0 in a container)")
    config.add_argument("--host", default=None, help="host name to put in the printed URLs")
    config.add_argument(
        "--root", type=Path, default=None, help="DIR as the broker sees it (e.g. in a container)"
    )
    config.add_argument(
        "--plugin", default=None, help="path of mosquitto_dynamic_security.so (found if unset)"
    )
    config.add_argument("--cert", type=Path, default=None, help="TLS server certificate (PEM)")
    config.add_argument("--key", type=Path, default=None, help="TLS private key (PEM)")
    config.add_argument("--cafile", type=Path, default=None, help="CA bundle for the TLS listener")
    config.add_argument("--tls-port", type=int, default=8883, help="TLS listener port (default 8883)")
    config.add_argument("--tls-only", action="store_true", help="no plain listener (needs --cert/--key)")
    config.add_argument("--force", action="store_true", help="replace an existing dynamic security JSON")
    config.add_argument(
        "--workers", type=int, default=1, help="ingest workers, each with its own credential (default 1)"
    )
    config.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write ZHONGDU_MQTT_URL of worker 1 here (created 0600); workers 2.. get FILE.2, FILE.3, ...",
    )
    config.add_argument(
        "--admin-env-file",
        type=Path,
        default=None,
        help="write ZHONGDU_BROKER_ADMIN_URL here (created 0600); keep it off the API's and workers' hosts",
    )
    config.add_argument(
        "--queue-bytes",
        type=int,
        default=None,
        help="cap on each client's queued bytes (default 536870912, 512 MiB)",
    )
    config.add_argument(
        "--max-connections", type=int, default=None, help="connections per listener (default 20000)"
    )
    config.add_argument(
        "--cluster",
        type=int,
        default=None,
        metavar="N",
        help="instead: N (3 or 5) nats-server configs for the clustered tier (docs/cluster.md); "
        "MQTT on --port, --port+1, ...; client ports 4222+, routes 6222+",
    )
    config.add_argument(
        "--cluster-hosts", default=None, help="with --cluster: the nodes' addresses, comma-separated"
    )
    config.set_defaults(handler=_config)

    worker = broker_sub.add_parser(
        "worker",
        help="issue or rotate an ingest worker's own credential (bound to its client id)",
        description=(
            "Issue (or rotate) the credential of ingest worker N at run time through "
            "ZHONGDU_BROKER_ADMIN_URL: username and client id zhongdu-ingest-N, read-only on zhongdu/v1/#. "
            "Writes ZHONGDU_MQTT_URL into --env-file (created 0600)."
        ),
    )
    worker.add_argument("number", type=int, help="the worker's number (1-999)")
    worker.add_argument("--env-file", type=Path, required=True, help="file to write (created 0600)")
    worker.add_argument("--host", default=None, help="broker host for the URL (default: the admin URL's)")
    worker.set_defaults(handler=_worker)

    bind = broker_sub.add_parser(
        "bind-ids",
        help="bind every existing credential to its own client id (for credentials issued before)",
        description=(
            "Credentials issued before client ids were bound can connect under any client id, and so "
            "end another client's session (the ingest worker's too). This binds every client on the "
            "broker except the admin to the client id equal to its username, passwords unchanged, "
            "through ZHONGDU_BROKER_ADMIN_URL. Devices must then connect with their username as "
            "client id."
        ),
    )
    bind.set_defaults(handler=_bind_ids)

    devices = subparsers.add_parser("devices", help="register devices and stations; their MQTT credentials")
    dev_sub = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    add = dev_sub.add_parser("add", help="register a park device (or a station with --kind station)")
    add.add_argument("id", help="device or station id ([A-Za-z0-9_.:-], up to 64)")
    add.add_argument(
        "--kind", required=True, help="device kind (air, weather, noise, meter, ...) or `station`"
    )
    add.add_argument("--name", default=None)
    add.add_argument("--lon", type=float, default=None)
    add.add_argument("--lat", type=float, default=None)
    add.set_defaults(handler=_add)
    cred = dev_sub.add_parser(
        "credential",
        help="issue, rotate, revoke or list devices' and stations' MQTT credentials",
        description=(
            "MQTT credentials of registered devices and stations. `issue` creates or rotates them (the "
            "old password stops working at once; the new one is printed once), `revoke` removes them "
            "(live sessions are cut), `list` shows who holds one (never the secrets). Changes the "
            "broker at run time through ZHONGDU_BROKER_ADMIN_URL, then the registry (hash only)."
        ),
    )
    cred_sub = cred.add_subparsers(dest="credential_command", metavar="ACTION", required=True)
    for action, help_text in (
        ("issue", "issue or rotate the credentials of IDs; the passwords are printed once"),
        ("revoke", "revoke the credentials of IDs; their live sessions are cut"),
    ):
        act = cred_sub.add_parser(action, help=help_text, description=help_text + ".")
        act.add_argument("ids", nargs="+", metavar="ID")
        act.add_argument(
            "--kind", choices=["park", "bs"], default=None, help="when an id is both a device and a station"
        )
        act.set_defaults(handler=_credential, revoke=action == "revoke")
        if action == "issue":
            act.add_argument(
                "--json", action="store_true", help="print {username: password} (simulate --credentials)"
            )
            act.add_argument(
                "--credentials-file",
                type=Path,
                default=None,
                help="write {username: password} as JSON here (created 0600; for simulate "
                "--credentials) instead of printing the passwords",
            )
        else:
            act.set_defaults(json=False, credentials_file=None)
    lst = cred_sub.add_parser("list", help="list issued credentials (never the secrets)")
    lst.set_defaults(handler=_list)
    from zhongdu.ingest import profiles_cli

    profiles_cli.register(dev_sub)


def _cluster(args: argparse.Namespace) -> int:
    from zhongdu.broker._cluster import write_cluster_config
    from zhongdu.broker._config import write_secret_file

    cluster = write_cluster_config(
        args.out,
        nodes=args.cluster,
        mqtt_ports=[args.port + k for k in range(args.cluster)],
        bind=args.bind,
        hosts=args.cluster_hosts.split(",") if args.cluster_hosts else None,
        root=args.root,
        max_connections=args.max_connections or 20_000,
        workers=args.workers,
    )
    for node in cluster.nodes:
        print(f"wrote {node.conf_path}; start: nats-server -c {node.conf_path}", file=sys.stderr)
    print("devices may use any node (MQTT 3.1.1): " + " ".join(cluster.mqtt_urls), file=sys.stderr)
    if args.env_file:
        for k, url in enumerate(cluster.ingest_urls, start=1):
            path = args.env_file if k == 1 else args.env_file.with_name(f"{args.env_file.name}.{k}")
            write_secret_file(path, f"ZHONGDU_MQTT_URL={url}\n")
            print(f"wrote {path} (0600): ingest worker {k}'s credential", file=sys.stderr)
        return 0
    print("secrets below are shown only once (--env-file writes them to 0600 files):", file=sys.stderr)
    for k, url in enumerate(cluster.ingest_urls, start=1):
        print(f"ZHONGDU_MQTT_URL={url}" if k == 1 else f"# worker {k}: ZHONGDU_MQTT_URL={url}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.cluster is not None:
        return _cluster(args)
    from zhongdu.broker import write_broker_config
    from zhongdu.broker._config import DEFAULT_MAX_CONNECTIONS, DEFAULT_QUEUE_BYTES, write_secret_file

    result = write_broker_config(
        args.out,
        port=args.port,
        bind=args.bind,
        host=args.host,
        root=args.root,
        plugin=args.plugin,
        cert=args.cert,
        key=args.key,
        cafile=args.cafile,
        tls_port=args.tls_port,
        plain=not args.tls_only,
        overwrite=args.force,
        workers=args.workers,
        queue_bytes=args.queue_bytes or DEFAULT_QUEUE_BYTES,
        max_connections=args.max_connections or DEFAULT_MAX_CONNECTIONS,
    )
    print(
        f"wrote {result.conf_path} and {result.dynsec_path}; start: mosquitto -c {result.conf_path}",
        file=sys.stderr,
    )
    if result.tls_url:
        print(f"TLS listener: {result.tls_url}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: the broker will refuse every client until this is fixed: {warning}", file=sys.stderr)
    if args.admin_env_file:
        write_secret_file(args.admin_env_file, f"ZHONGDU_BROKER_ADMIN_URL={result.admin_url}\n")
        print(f"wrote {args.admin_env_file} (0600): the broker admin credential", file=sys.stderr)
    if args.env_file:
        for k, url in enumerate(result.ingest_urls, start=1):
            path = args.env_file if k == 1 else args.env_file.with_name(f"{args.env_file.name}.{k}")
            write_secret_file(path, f"ZHONGDU_MQTT_URL={url}\n")
            print(f"wrote {path} (0600): ingest worker {k}'s credential", file=sys.stderr)
    if args.admin_env_file and args.env_file:
        return 0
    print("secrets below are shown only once (--env-file/--admin-env-file write them to 0600 files):",
          file=sys.stderr)  # fmt: skip
    if not args.admin_env_file:
        print(f"ZHONGDU_BROKER_ADMIN_URL={result.admin_url}")
    if not args.env_file:
        for k, url in enumerate(result.ingest_urls, start=1):
            print(f"ZHONGDU_MQTT_URL={url}" if k == 1 else f"# worker {k}: ZHONGDU_MQTT_URL={url}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import secrets
    from urllib.parse import quote

    from zhongdu.broker import DynsecAdmin
    from zhongdu.broker._config import ingest_username, write_secret_file
    from zhongdu.errors import ConfigError
    from zhongdu.settings import Settings, parse_mqtt_url

    if not 1 <= args.number <= 999:
        raise ConfigError(f"the worker number must be between 1 and 999, got {args.number}")
    settings = Settings()
    if not settings.broker_admin_url:
        raise ConfigError("set ZHONGDU_BROKER_ADMIN_URL (`zhongdu broker config --admin-env-file` writes it)")
    host, port, _, _ = parse_mqtt_url(settings.broker_admin_url)
    scheme = settings.broker_admin_url.split("://", 1)[0]
    username, password = ingest_username(args.number), secrets.token_urlsafe(24)
    cafile = str(settings.mqtt_cafile) if settings.mqtt_cafile else None
    with DynsecAdmin(settings.broker_admin_url, cafile=cafile) as admin:
        admin.put_ingest_client(username, password)
    url = f"{scheme}://{username}:{quote(password, safe='')}@{args.host or host}:{port}"
    write_secret_file(args.env_file, f"ZHONGDU_MQTT_URL={url}\n")
    print(f"wrote {args.env_file} (0600): {username}, client id {username}", file=sys.stderr)
    return 0


def _bind_ids(args: argparse.Namespace) -> int:
    from zhongdu.broker import ADMIN_USER, DynsecAdmin
    from zhongdu.errors import ConfigError
    from zhongdu.settings import Settings, parse_mqtt_url

    settings = Settings()
    if not settings.broker_admin_url:
        raise ConfigError("set ZHONGDU_BROKER_ADMIN_URL (`zhongdu broker config --admin-env-file` writes it)")
    admin_user = parse_mqtt_url(settings.broker_admin_url)[2] or ADMIN_USER
    cafile = str(settings.mqtt_cafile) if settings.mqtt_cafile else None
    with DynsecAdmin(settings.broker_admin_url, cafile=cafile) as admin:
        bound = admin.bind_client_ids(skip=(admin_user,))
    print(f"bound {len(bound)} client(s) to their own client id")
    return 0


def _database() -> tuple[Any, Any]:
    from zhongdu import services, storage
    from zhongdu.settings import Settings

    settings = Settings()
    database = services.ensure_database(settings)
    with storage.connect(database.url) as conn:
        storage.migrate(conn)
    return settings, database


def _add(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.errors import ConfigError
    from zhongdu.ingest import DEVICE_KINDS
    from zhongdu.ingest._parse import ID_RE
    from zhongdu.storage import _credentials as store

    if not ID_RE.fullmatch(args.id):
        raise ConfigError(f"bad id {args.id!r}: use 1 to 64 of A-Z a-z 0-9 _ . : -")
    if args.kind != "station" and args.kind not in DEVICE_KINDS:
        raise ConfigError(f"unknown kind {args.kind!r}; one of {', '.join([*DEVICE_KINDS, 'station'])}")
    _, database = _database()
    try:
        with storage.connect(database.url) as conn:
            if args.kind == "station":
                added = store.add_station(conn, args.id, name=args.name)
            else:
                added = (
                    storage.queries.insert_device(
                        conn,
                        device_id=args.id,
                        kind=args.kind,
                        name=args.name,
                        lon=args.lon,
                        lat=args.lat,
                        metadata={},
                    )
                    is not None
                )
            conn.commit()
    finally:
        database.stop()
    what = "station" if args.kind == "station" else f"{args.kind} device"
    print(f"{'registered' if added else 'already registered:'} {what} {args.id}")
    return 0


def _credential(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.broker import DynsecAdmin, issue, revoke
    from zhongdu.broker._config import write_secret_file
    from zhongdu.errors import ConfigError
    from zhongdu.ingest._parse import ID_RE

    bad = [i for i in args.ids if not ID_RE.fullmatch(i)]
    if bad:
        raise ConfigError(f"bad id {bad[0]!r}: use 1 to 64 of A-Z a-z 0-9 _ . : -")
    settings, database = _database()
    if not settings.broker_admin_url:
        raise ConfigError("set ZHONGDU_BROKER_ADMIN_URL (printed by `zhongdu broker config`)")
    issued: dict[str, str] = {}
    try:
        with (
            storage.connect(database.url) as conn,
            DynsecAdmin(
                settings.broker_admin_url, cafile=str(settings.mqtt_cafile) if settings.mqtt_cafile else None
            ) as admin,
        ):
            for entity_id in args.ids:
                if args.revoke:
                    active = revoke(conn, admin, entity_id, kind=args.kind)
                    state = "revoked" if active else "no active credential (broker client removed)"
                    print(f"{entity_id}: {state}")
                    continue
                cred = issue(conn, admin, entity_id, kind=args.kind)
                issued[cred.username] = cred.password
                if not args.json and not args.credentials_file:
                    verb = "rotated" if cred.rotations else "issued"
                    print(
                        f"{verb} {cred.username} (publishes only zhongdu/v1/{cred.kind}/{entity_id}/#); "
                        f"password, shown only once:",
                        file=sys.stderr,
                    )
                    print(f"{cred.username} {cred.password}")
    finally:
        database.stop()
    if args.credentials_file and issued:
        write_secret_file(args.credentials_file, json.dumps(issued, indent=1) + "\n")
        print(f"wrote {len(issued)} credential(s) to {args.credentials_file} (0600)", file=sys.stderr)
    elif args.json and issued:
        print(json.dumps(issued, indent=1))
    return 0


def _list(args: argparse.Namespace) -> int:
    from zhongdu import storage
    from zhongdu.storage import _credentials as store

    _, database = _database()
    try:
        with storage.connect(database.url) as conn:
            rows = store.list_credentials(conn)
    finally:
        database.stop()
    for row in rows:
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        print(
            f"{row['username']}\t{row['entity_kind']}\t{row['entity_id']}\t{state}\trotations={row['rotations']}"
        )
    return 0
