"""`/healthz` (database, broker, live coverage) and Prometheus `/metrics`."""

from __future__ import annotations

import socket
import struct
import time

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response

from zhongdu import storage
from zhongdu.api._deps import StateDep
from zhongdu.api._prometheus import CONTENT_TYPE_LATEST
from zhongdu.api._schemas import HealthOut
from zhongdu.settings import parse_mqtt_url

router = APIRouter(tags=["health"])


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def mqtt_connect_check(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Open an MQTT 3.1.1 session (CONNECT → CONNACK) and close it; any broker speaks 3.1.1.

    The probe sends no credentials: on a secured broker each credential is bound to one client id,
    and a probe logging in as the ingest worker would end that worker's session. A CONNACK refusing
    an anonymous client proves the broker is up just as well.
    """
    host, port, _user, _password = parse_mqtt_url(url)
    payload = _mqtt_string(f"zhongdu-health-{time.monotonic_ns() % 10**9}")
    variable = _mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 10)
    remaining = len(variable) + len(payload)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(bytes([0x10, remaining]) + variable + payload)
            answer = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"
    if len(answer) < 4 or answer[0] != 0x20:
        return False, f"{host}:{port} did not answer CONNACK"
    if answer[3] == 0:
        return True, f"MQTT CONNACK from {host}:{port}"
    if answer[3] in (4, 5):  # bad credentials / not authorised: a secured broker, answering
        return True, f"MQTT CONNACK from {host}:{port} (anonymous probe refused, as it should be)"
    return False, f"{host}:{port} refused the connection (CONNACK code {answer[3]})"


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
    summary="Database, broker and live coverage checks",
)
def healthz(state: StateDep) -> JSONResponse:
    """200 when the database and the broker answer, 503 otherwise (live coverage is reported too)."""
    checks: dict[str, dict[str, object]] = {}
    start = time.perf_counter()
    try:
        with state.pool.connection(timeout=3.0) as conn:
            storage.queries.ping(conn)
        checks["database"] = {
            "ok": True,
            "detail": f"SELECT 1 in {1000 * (time.perf_counter() - start):.1f} ms",
        }
    except Exception as exc:
        checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    url = state.settings.mqtt_url
    if url:
        ok, detail = mqtt_connect_check(url)
        checks["broker"] = {"ok": ok, "detail": detail}
    else:
        checks["broker"] = {"ok": False, "detail": "no broker configured (ZHONGDU_MQTT_URL)"}
    live = state.live
    if live is None:
        checks["coverage"] = {"ok": True, "detail": "live coverage disabled in this process"}
    elif live.snapshot is not None:
        checks["coverage"] = {"ok": True, "detail": f"live snapshot {live.snapshot.computed_at.isoformat()}"}
    else:
        checks["coverage"] = {"ok": False, "detail": live.error or "still computing"}
    healthy = bool(checks["database"]["ok"] and checks["broker"]["ok"])
    body = {"status": "ok" if healthy and checks["coverage"]["ok"] else "degraded", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(state: StateDep) -> Response:
    """Only with ZHONGDU_API_PUBLIC_METRICS: metrics tell an outsider too much about the platform,
    so by default they are served on ZHONGDU_API_METRICS_PORT (`zhongdu api`), not here."""
    if not state.settings.api_public_metrics:
        raise HTTPException(
            404,
            "metrics are served on ZHONGDU_API_METRICS_PORT; "
            "set ZHONGDU_API_PUBLIC_METRICS=true to serve them here",
        )
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
