"""API keys: a random secret behind a public id, stored only as an scrypt hash; four ordered roles.

A key looks like `zd_<key_id>_<secret>`: `key_id` (12 hex digits) is public, shown in listings and
logs and used to find the stored hash; the secret (43 URL-safe characters, 256 bits) is shown once
at creation and never stored. Verifying scrypt costs ~50 ms by design, so verified keys are cached
in memory for `CACHE_TTL_S` (keyed by a SHA-256 of the whole key); a revoked key stops working in
this process at once and in other API processes within that time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from zhongdu import storage
from zhongdu.errors import ZhongduError

Role = Literal["viewer", "planner", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "planner", "operator", "admin")
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

KEY_PATTERN = re.compile(r"^zd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
CACHE_TTL_S = 60.0
_CACHE_MAX = 4096


class AuthError(ZhongduError, PermissionError):
    """A presented API key is malformed, unknown or revoked (HTTP 401)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's public id, its human name (recorded as `recorded_by`) and role."""

    key_id: str
    name: str
    role: Role

    def allows(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64), the only form in which a secret is stored."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32, maxmem=64 * 1024 * 1024
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against its stored hash (False for any malformed hash)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def new_key() -> tuple[str, str, str]:
    """(key_id, secret, full key) for a fresh key."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"zd_{key_id}_{secret}"


def create_api_key(conn: psycopg.Connection[Any], *, name: str, role: str) -> tuple[dict[str, Any], str]:
    """Store a new key for `name` with `role`; return its public row and the full key (shown once)."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not name.strip():
        raise ValueError("a key needs a non-empty name (it is recorded as the author of its writes)")
    key_id, secret, key = new_key()
    row = storage.queries.insert_api_key(
        conn, key_id=key_id, key_hash=hash_secret(secret), name=name, role=role
    )
    return row, key


def key_id_of(key: str) -> str | None:
    """The public id of a well-formed key, without verifying it (rate limiting, logs)."""
    match = KEY_PATTERN.match(key)
    return match[1] if match else None


class KeyVerifier:
    """Checks presented keys against the database, with a short in-memory cache of good ones."""

    def __init__(self, bootstrap_admin_key: str | None = None) -> None:
        self._bootstrap = bootstrap_admin_key
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def forget(self, key_id: str) -> None:
        """Drop cached verifications of a key (called on revocation)."""
        with self._lock:
            for fingerprint in [f for f, (p, _) in self._cache.items() if p.key_id == key_id]:
                del self._cache[fingerprint]

    def verify(self, key: str, conn_factory: Any) -> Principal:
        """The principal of `key`, or AuthError saying what is wrong with it.

        `conn_factory` is a context manager factory giving a connection (the pool's `connection`),
        only entered on a cache miss.
        """
        if self._bootstrap and hmac.compare_digest(key.encode(), self._bootstrap.encode()):
            return Principal(key_id="bootstrap", name="bootstrap-admin", role="admin")
        fingerprint = hashlib.sha256(key.encode()).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(fingerprint)
        if hit is not None and hit[1] > now:
            return hit[0]
        match = KEY_PATTERN.match(key)
        if match is None:
            raise AuthError("malformed API key: expected zd_<12 hex digits>_<43 characters>")
        key_id, secret = match[1], match[2]
        with conn_factory() as conn:
            row = storage.queries.get_api_key(conn, key_id)
        if row is None or not verify_secret(secret, str(row["key_hash"])):
            raise AuthError(f"invalid or revoked API key {key_id}")
        principal = Principal(key_id=key_id, name=str(row["name"]), role=row["role"])
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[fingerprint] = (principal, now + CACHE_TTL_S)
        return principal
