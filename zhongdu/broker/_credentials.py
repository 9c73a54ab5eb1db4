"""Device and station credentials: issued, rotated and revoked through the registry and the broker.

The secret is random (256 bits), handed to the caller once, stored in the database only as a
SHA-256 digest, and given to the broker's dynamic security plugin, which keeps its own salted hash
and enforces the per-entity ACL. A slow KDF (scrypt, as for API keys) buys nothing against a
256-bit random secret and cost ~0.1 s per credential: the demo issues hundreds at start. The
broker is changed first, the database row committed after: a failure on the broker leaves the
registry as it was.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from zhongdu.broker._dynsec import DynsecAdmin
from zhongdu.errors import ConfigError
from zhongdu.storage import _credentials as store


def secret_digest(secret: str) -> str:
    """`sha256$<hex>`: what the registry keeps of a credential (never the secret itself)."""
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def username_for(kind: str, entity_id: str) -> str:
    """`park-air-001`, `bs-TC-0001`: the kind first, so a device and a station never share a name."""
    return f"{kind}-{entity_id}"


@dataclass(frozen=True)
class Issued:
    username: str
    password: str
    kind: str
    entity_id: str
    rotations: int


def resolve_kind(conn: psycopg.Connection[Any], entity_id: str, kind: str | None) -> str:
    """`park` or `bs` for a registered id; asks for `--kind` when the id is both."""
    found = store.entity_kinds(conn, entity_id)
    if kind is not None:
        if kind not in found:
            what = "device" if kind == "park" else "station"
            raise ConfigError(f"no {what} {entity_id!r} is registered; `zhongdu devices add` it first")
        return kind
    if not found:
        raise ConfigError(f"{entity_id!r} is neither a registered device nor a station; add it first")
    if len(found) > 1:
        raise ConfigError(f"{entity_id!r} is both a device and a station; pass --kind park or --kind bs")
    return found[0]


def issue(
    conn: psycopg.Connection[Any], admin: DynsecAdmin, entity_id: str, *, kind: str | None = None
) -> Issued:
    """Issue a credential, or rotate an existing one (the old password stops working at once)."""
    kind = resolve_kind(conn, entity_id, kind)
    username = username_for(kind, entity_id)
    password = secrets.token_urlsafe(32)
    with conn.transaction():
        row = store.upsert_credential(
            conn, username=username, kind=kind, entity_id=entity_id, secret_hash=secret_digest(password)
        )
        admin.put_entity_client(kind, entity_id, username, password)
    return Issued(username, password, kind, entity_id, int(row["rotations"]))


def revoke(
    conn: psycopg.Connection[Any], admin: DynsecAdmin, entity_id: str, *, kind: str | None = None
) -> bool:
    """Delete the broker client (live sessions are cut) and mark the row revoked; False if none was active."""
    kind = resolve_kind(conn, entity_id, kind)
    username = username_for(kind, entity_id)
    with conn.transaction():
        active = store.revoke_credential(conn, username)
        admin.delete_client(username)
    return active
