"""Mosquitto's dynamic security plugin driven at run time: JSON commands over `$CONTROL`.

A credential issued, rotated or revoked here takes effect at once, without a broker restart
(a deleted client is disconnected by the broker). One connection per `DynsecAdmin`, as the
broker's admin user; every call sends one batch of commands and waits for its answers.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from zhongdu.errors import ZhongduError
from zhongdu.settings import mqtt_tls_context, parse_mqtt_url

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

# The contract of docs/mqtt-contract.md#topics as broker roles. `{id}` is filled per device or station.
DEVICE_ROLE_PREFIX = "zhongdu-park-"
STATION_ROLE_PREFIX = "zhongdu-bs-"
INGEST_ROLE = "zhongdu-ingest"
TOPIC_ROOT = "zhongdu/v1"


class DynsecError(ZhongduError):
    """The broker refused a dynamic-security command, or could not be reached as its admin."""


def entity_topic(kind: str, entity_id: str) -> str:
    """The one subtree a device (`park`) or station (`bs`) may publish to."""
    return f"{TOPIC_ROOT}/{kind}/{entity_id}/#"


def entity_role(kind: str, entity_id: str) -> tuple[str, list[dict[str, Any]]]:
    """A per-entity role: publish under its own subtree, nothing else (no subscriptions at all)."""
    prefix = DEVICE_ROLE_PREFIX if kind == "park" else STATION_ROLE_PREFIX
    acls = [{"acltype": "publishClientSend", "topic": entity_topic(kind, entity_id), "allow": True}]
    return prefix + entity_id, acls


def ingest_acls() -> list[dict[str, Any]]:
    """Ingest workers read the whole tree (plainly or through a shared group) and publish nothing."""
    topic = f"{TOPIC_ROOT}/#"
    return [
        {"acltype": "subscribePattern", "topic": topic, "allow": True},
        {"acltype": "subscribePattern", "topic": f"$share/+/{topic}", "allow": True},
        {"acltype": "publishClientReceive", "topic": topic, "allow": True},
    ]


class DynsecAdmin:
    """An admin session on the broker's dynamic security plugin (`with DynsecAdmin(url) as admin:`)."""

    def __init__(self, url: str, *, cafile: str | None = None, timeout: float = 10.0) -> None:
        host, port, username, password = parse_mqtt_url(url)
        if not username:
            raise DynsecError("the broker admin URL needs a user: mqtt://admin:password@host:port")
        self.timeout = timeout
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"zhongdu-dynsec-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        tls = mqtt_tls_context(url, cafile)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._lock = threading.Lock()
        self._answer: list[dict[str, Any]] | None = None
        self._answered = threading.Event()
        self._ready = threading.Event()
        self._refused: str | None = None
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._ready.set()
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def __enter__(self) -> DynsecAdmin:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise DynsecError(f"cannot reach the broker at {self._host}:{self._port}: {exc}") from exc
        self._client.loop_start()
        if not self._ready.wait(self.timeout):
            self.close()
            raise DynsecError(self._refused or "the broker did not accept the admin connection in time")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = f"the broker refused the admin connection: {reason}"
            self._ready.set()
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._answer = json.loads(message.payload).get("responses", [])
        self._answered.set()

    def run(self, commands: Sequence[dict[str, Any]], *, ignore: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Send commands as one batch; raise on any error not listed in `ignore` (e.g. 'already exists')."""
        if self._refused:
            raise DynsecError(self._refused)
        with self._lock:
            self._answered.clear()
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": list(commands)}), qos=1)
            info.wait_for_publish(self.timeout)
            if not self._answered.wait(self.timeout):
                raise DynsecError("no answer from the dynamic security plugin (is it loaded?)")
            answers = self._answer or []
        errors = [
            f"{a.get('command')}: {a['error']}"
            for a in answers
            if a.get("error") and not any(text in str(a["error"]) for text in ignore)
        ]
        if errors:
            raise DynsecError("; ".join(errors))
        return answers

    # -- what the registry needs ---------------------------------------------------------------
    def _put_client(
        self, username: str, password: str, rolename: str, acls: list[dict[str, Any]], text: str
    ) -> None:
        """Create the role (if new) and the client, or rotate an existing client's password: sessions
        opened with the old one are disconnected, and only the new one logs in again.

        The client id is bound to the username: a holder of this credential cannot connect under
        another client's id, so it can neither take over nor reset another client's session.
        """
        self.run([{"command": "createRole", "rolename": rolename, "acls": acls}], ignore=("already exists",))
        create = {
            "command": "createClient",
            "username": username,
            "password": password,
            "clientid": username,
            "textname": text,
        }
        answers = self.run([{**create, "roles": [{"rolename": rolename}]}], ignore=("already exists",))
        if answers and answers[0].get("error"):  # it existed: rotate, cut sessions on the old one
            self.run(
                [
                    {"command": "setClientPassword", "username": username, "password": password},
                    # binds credentials issued before client ids were bound, on their next rotation
                    {"command": "setClientId", "username": username, "clientid": username},
                    {"command": "disableClient", "username": username},  # disconnects its sessions
                    {"command": "enableClient", "username": username},
                ]
            )

    def put_entity_client(self, kind: str, entity_id: str, username: str, password: str) -> None:
        """A device's or station's client, confined to its own subtree (issue or rotate)."""
        rolename, acls = entity_role(kind, entity_id)
        self._put_client(username, password, rolename, acls, f"zhongdu {kind} {entity_id}")

    def put_ingest_client(self, username: str, password: str) -> None:
        """One ingest worker's client (its username is its client id): reads the tree, publishes nothing."""
        self._put_client(username, password, INGEST_ROLE, ingest_acls(), "zhongdu ingest workers")

    def delete_client(self, username: str) -> None:
        """Revoke: the client is deleted, and the broker disconnects any session using it."""
        self.run([{"command": "deleteClient", "username": username}], ignore=("not found",))

    def bind_client_ids(self, *, skip: Sequence[str] = ()) -> list[str]:
        """Bind every client but `skip` to the client id equal to its username, passwords unchanged:
        credentials issued before ids were bound could otherwise connect under any client's id.
        Returns the usernames bound."""
        users = [u for u in self.list_clients() if u not in skip]
        if users:
            self.run([{"command": "setClientId", "username": u, "clientid": u} for u in users])
        return users

    def list_clients(self) -> list[str]:
        answers = self.run([{"command": "listClients", "verbose": False, "count": -1, "offset": 0}])
        return [str(c) for c in answers[0].get("data", {}).get("clients", [])]
