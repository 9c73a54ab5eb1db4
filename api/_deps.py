"""Dependencies of the routes, as `Annotated` aliases: the app's state, a pooled connection, the caller.

Reads are open (an anonymous caller is a viewer); a presented key must still be valid (401
otherwise). Writes declare `require_role(...)`: 401 without a key, 403 when its role is too low.
Roles are ordered viewer < planner < operator < admin; a higher role may do what a lower one may.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from zhongdu.api._prometheus import ApiMetrics
from zhongdu.api._security import ROLE_RANK, AuthError, KeyVerifier, Principal

if TYPE_CHECKING:
    from zhongdu.api._live import LiveCoverage
    from zhongdu.api._scenario_pool import ScenarioPool
    from zhongdu.settings import Settings


@dataclass
class ApiState:
    """Everything one app instance owns; built in the lifespan, never at import time."""

    settings: Settings
    pool: ConnectionPool[Any]
    read_pool: ConnectionPool[Any]  # the same pool unless ZHONGDU_DATABASE_READ_URL names a replica
    verifier: KeyVerifier
    metrics: ApiMetrics
    live: LiveCoverage | None
    scenario_runner: ScenarioPool
    modelled_series: list[dict[str, Any]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    closing: threading.Event = field(default_factory=threading.Event)  # set at shutdown: streams end


def live_ready(state: ApiState, *, need_sites: bool = False) -> Any:
    """The live coverage once it has a snapshot (and, with `need_sites`, the sites' statuses).

    503 otherwise, saying whether it is off in this process or still computing, so a client retries
    only when retrying can help. Typed `Any`: its optional fields are set by then.
    """
    live = state.live
    if live is None:
        raise HTTPException(503, "live coverage is disabled in this API process")
    if live.snapshot is None or (need_sites and live.site_status is None):
        raise HTTPException(503, live.error or "live coverage is still being computed; retry shortly")
    return live


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.zhongdu
    return state


StateDep = Annotated[ApiState, Depends(get_state)]



_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="an API key `zd_<id>_<secret>` (or use Authorization: Bearer)",
)
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer zd_<id>_<secret>")


async def get_principal(
    state: StateDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal | None:
    """The caller's principal, None for an anonymous caller; 401 for a bad key."""
    key = api_key or (bearer.credentials if bearer is not None else None)
    if not key:
        return None
    try:
        # scrypt takes ~50 ms on a cache miss: keep it off the event loop.
        return await run_in_threadpool(state.verifier.verify, key.strip(), state.pool.connection)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


CurrentRole = Annotated[Principal | None, Depends(get_principal)]


def get_conn(request: Request, state: StateDep, _caller: CurrentRole) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for one request; committed when the route returns without error.

    GET and HEAD requests take it from the read pool (a replica when configured), writes from the
    primary's. It depends on the caller so that key verification (which may borrow a connection)
    finishes before this one is taken: no request ever holds two, so a small pool cannot deadlock.
    """
    pool = state.read_pool if request.method in ("GET", "HEAD") else state.pool
    with pool.connection() as conn:
        yield conn


ConnDep = Annotated[psycopg.Connection[Any], Depends(get_conn)]


def require_role(role: str) -> Callable[..., Any]:
    """A dependency admitting callers whose key has at least `role`."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    async def check(principal: CurrentRole) -> Principal:
        if principal is None:
            raise HTTPException(
                401,
                f"this action needs an API key with role {role} or higher "
                "(X-API-Key or Authorization: Bearer)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.allows(role):
            raise HTTPException(
                403, f"key {principal.key_id} has role {principal.role}; this action needs {role}"
            )
        return principal

    return check


PlannerDep = Annotated[Principal, Depends(require_role("planner"))]
OperatorDep = Annotated[Principal, Depends(require_role("operator"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
