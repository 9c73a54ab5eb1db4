"""API keys (admin): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from zhongdu import storage
from zhongdu.api._deps import AdminDep, ConnDep, StateDep
from zhongdu.api._schemas import ErrorOut, KeyCreatedOut, KeyIn, KeyListOut
from zhongdu.api._security import create_api_key

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


@router.post("", response_model=KeyCreatedOut, status_code=201, summary="Create an API key (admin)")
def create_key(conn: ConnDep, _admin: AdminDep, body: KeyIn) -> dict[str, Any]:
    """The whole key is in this answer only; the server keeps just its scrypt hash."""
    row, key = create_api_key(conn, name=body.name, role=body.role)
    conn.commit()  # before the answer: the caller may use the key at once (the pool commits later)
    return {**row, "key": key}


@router.get("", response_model=KeyListOut, summary="List API keys (admin)")
def list_keys(conn: ConnDep, _admin: AdminDep) -> dict[str, Any]:
    return {"items": storage.queries.list_api_keys(conn)}


@router.delete(
    "/{key_id}",
    status_code=204,
    responses={404: {"model": ErrorOut, "description": "no such active key"}},
    summary="Revoke an API key (admin)",
)
def revoke_key(
    state: StateDep, conn: ConnDep, _admin: AdminDep, key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
) -> Response:
    if not storage.queries.revoke_api_key(conn, key_id):
        raise HTTPException(404, f"no active key {key_id}")
    # committed before the cache forgets it: a request in between would otherwise find the row still
    # active and cache the revoked key again
    conn.commit()
    state.verifier.forget(key_id)
    return Response(status_code=204)
