"""`parse_message`: one MQTT message in, rows or a rejection out. Pure, and never raises.

Topics (docs/mqtt-contract.md#topics):
- `zhongdu/v1/park/{device_id}/senml`     SenML JSON pack (see `_senml`), or SenML CBOR when the
                                          MQTT 5 content type is `application/senml+cbor`
- `zhongdu/v1/park/{device_id}/senml-cbor` SenML CBOR pack whatever the content type (MQTT 3.1.1)
- `zhongdu/v1/bs/{station_id}/telemetry`  base-station JSON object (see `_bs`)
- `zhongdu/v1/{park|bs}/{id}/status`      `online` / `offline` (retained, the client's will);
                                          an empty payload (a cleared retained message) is ignored
Ids match `[A-Za-z0-9_.:-]{1,64}` like the registry tables. The registry check (unknown devices)
needs the database, so it happens in the writer, not here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from zhongdu.ingest import _senml_cbor
from zhongdu.ingest._bs import resolve_telemetry
from zhongdu.ingest._profiles import DEFAULT_CONFIG, IngestConfig
from zhongdu.ingest._senml import SenmlReject, resolve_pack
from zhongdu.ingest._types import Accepted, EntityKind, Reason, Rejected, StatusUpdate

log = logging.getLogger(__name__)

TOPIC_ROOT = "zhongdu/v1/"
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LEAVES: dict[str, frozenset[str]] = {
    "park": frozenset({"senml", _senml_cbor.TOPIC_LEAF, "status"}),
    "bs": frozenset({"telemetry", "status"}),
}
_CONNECTION = frozenset({"online", "offline"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Validation limits; `from_settings` takes them from `ZHONGDU_INGEST_*`."""

    max_payload_bytes: int = 65_536
    max_future_s: float = 300.0
    max_age_s: float = 400 * 86_400.0  # the raw-telemetry retention
    max_stored_payload: int = 8_192  # rejected payloads are kept up to this many bytes

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            max_payload_bytes=int(settings.ingest_max_payload_bytes),
            max_future_s=float(settings.ingest_max_future_s),
        )


DEFAULT_LIMITS = Limits()


def _loads(payload: bytes) -> Any:
    """Strict RFC 8259 JSON from UTF-8 bytes; anything else raises a ValueError (bad_json).

    orjson refuses what the standard does (NaN/Infinity, invalid UTF-8 and lone surrogates,
    trailing data, nesting deeper than 1,024; integers beyond 64 bits become floats) and parses
    the benchmark packs in a third of the time `json` takes.
    """
    return orjson.loads(payload)


def split_topic(topic: str) -> tuple[EntityKind, str, str] | None:
    """(kind, id, leaf) for a valid topic, else None.

    >>> split_topic("zhongdu/v1/park/air-001/senml")
    ('park', 'air-001', 'senml')
    >>> split_topic("zhongdu/v1/bs/TC-0001/telemetry/extra") is None
    True
    """
    if not topic.startswith(TOPIC_ROOT):
        return None
    parts = topic[len(TOPIC_ROOT) :].split("/")
    if len(parts) != 3:
        return None
    kind, entity_id, leaf = parts
    leaves = _LEAVES.get(kind)
    if leaves is None or leaf not in leaves or not ID_RE.fullmatch(entity_id):
        return None
    return kind, entity_id, leaf  # type: ignore[return-value]


def parse_message(
    topic: str,
    payload: bytes,
    *,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
    content_type: str | None = None,
    config: IngestConfig = DEFAULT_CONFIG,
) -> Accepted | Rejected:
    """Validate one message. Any bytes on any topic give an `Accepted` or a `Rejected`.

    `content_type` is the MQTT 5 property; `config` holds custom metrics and device profiles.
    """
    try:
        return _parse(topic, payload, received_at, limits, content_type, config)
    except Exception as exc:  # a bug must not lose the message: keep it as a rejection
        log.exception("parser failed on a message on %r", topic)
        return _rejected(
            topic, payload, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", received_at, limits
        )


def _rejected(
    topic: str, payload: bytes, reason: Reason, detail: str, received_at: datetime, limits: Limits
) -> Rejected:
    data = bytes(payload)
    return Rejected(
        topic=topic,
        payload=data[: limits.max_stored_payload],
        payload_size=len(data),
        reason=reason,
        detail=detail[:500],
        received_at=received_at,
    )


def _parse(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    content_type: str | None,
    config: IngestConfig,
) -> Accepted | Rejected:
    parts = split_topic(topic)
    if parts is None:
        return _rejected(
            topic, payload, Reason.BAD_TOPIC,
            "expected zhongdu/v1/park/<id>/senml, zhongdu/v1/park/<id>/senml-cbor,"
            " zhongdu/v1/bs/<id>/telemetry or zhongdu/v1/<park|bs>/<id>/status",
            received_at, limits,
        )  # fmt: skip
    kind, entity_id, leaf = parts
    if len(payload) > limits.max_payload_bytes:
        return _rejected(
            topic, payload, Reason.PAYLOAD_TOO_LARGE,
            f"{len(payload)} bytes; the limit is {limits.max_payload_bytes}", received_at, limits,
        )  # fmt: skip
    if leaf == "status":
        return _parse_status(topic, payload, kind, entity_id, received_at, limits)
    cbor = leaf == _senml_cbor.TOPIC_LEAF or (content_type is not None and _senml_cbor.is_cbor(content_type))
    try:
        decoded = _senml_cbor.loads(payload) if cbor else _loads(payload)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        if cbor:
            return _rejected(topic, payload, Reason.BAD_CBOR, str(exc)[:200], received_at, limits)
        return _rejected(topic, payload, Reason.BAD_JSON, _json_detail(exc, payload), received_at, limits)
    now_s = received_at.timestamp()
    try:
        if cbor and kind != "park":
            raise SenmlReject(Reason.BAD_CBOR, "SenML CBOR is taken on park senml topics only")
        if kind == "park":
            rows, data_time, metrics, others = resolve_pack(
                decoded, entity_id, now_s, limits.max_future_s, limits.max_age_s, config
            )
            return Accepted(
                topic=topic,
                kind="park",
                entity_id=entity_id,
                received_at=received_at,
                readings=tuple(rows),
                status=StatusUpdate("park", entity_id, "online", None, "telemetry", data_time),
                data_time=data_time,
                metrics=frozenset(metrics),
                other_devices=others,
            )
        telemetry, status, _ = resolve_telemetry(
            decoded, entity_id, now_s, limits.max_future_s, limits.max_age_s
        )
        when = telemetry[0][0]
        return Accepted(
            topic=topic,
            kind="bs",
            entity_id=entity_id,
            received_at=received_at,
            telemetry=tuple(telemetry),
            status=StatusUpdate("bs", entity_id, status, None, "telemetry", when),
            data_time=when,
        )
    except SenmlReject as exc:
        return _rejected(topic, payload, exc.reason, exc.detail, received_at, limits)


def _json_detail(exc: ValueError, payload: bytes) -> str:
    detail = str(exc)[:200]
    if payload[:1] and 0x80 <= payload[0] <= 0x9F:  # a CBOR array's first byte is never JSON
        detail += (
            "; this looks like SenML CBOR: publish it with MQTT 5 content type "
            f"{_senml_cbor.CONTENT_TYPE} or on topic zhongdu/v1/park/<id>/{_senml_cbor.TOPIC_LEAF}"
        )
    return detail


def _parse_status(
    topic: str, payload: bytes, kind: EntityKind, entity_id: str, received_at: datetime, limits: Limits
) -> Accepted | Rejected:
    try:
        text = bytes(payload).decode("utf-8").strip()
    except UnicodeDecodeError:
        text = None
    if text == "":  # a cleared retained message: nothing to record
        return Accepted(topic=topic, kind=kind, entity_id=entity_id, received_at=received_at)
    if text not in _CONNECTION:
        return _rejected(
            topic, payload, Reason.BAD_STATUS, "status payload must be online or offline", received_at, limits
        )
    assert text is not None
    return Accepted(
        topic=topic,
        kind=kind,
        entity_id=entity_id,
        received_at=received_at,
        status=StatusUpdate(kind, entity_id, text, text, "status", received_at),
    )
