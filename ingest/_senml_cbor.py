"""SenML CBOR (RFC 8428 section 6): the same packs as JSON, with integer labels and byte strings.

Decoded with cbor2 into the JSON form (labels by name, `vd` as bytes, decimal fractions as
floats), then resolved by the very same code as JSON. Malformed CBOR, trailing bytes after the
pack and indefinite nesting beyond the decoder's limits are `bad_cbor`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import cbor2

CONTENT_TYPE = "application/senml+cbor"
#: the topic leaf for clients without MQTT 5 content types (`+` may not appear in a topic name)
TOPIC_LEAF = "senml-cbor"
#: RFC 8428 table 4: CBOR labels
LABELS: dict[int, str] = {
    -1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs",
    0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd", 9: "l",
}  # fmt: skip
CODES: dict[str, int] = {label: code for code, label in LABELS.items()}


def is_cbor(content_type: str | None) -> bool:
    """True for `application/senml+cbor` (parameters and letter case ignored)."""
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def loads(payload: bytes) -> Any:
    """One CBOR data item with its labels translated; ValueError (with a reason) if malformed."""
    stream = io.BytesIO(payload)
    try:
        decoded = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"malformed CBOR: {exc}"[:200]) from exc
    extra = len(payload) - stream.tell()
    if extra:
        raise ValueError(f"{extra} bytes of trailing data after the CBOR data item")
    if not isinstance(decoded, list):
        return decoded  # the resolver says what a pack must be
    return [_record(r) if isinstance(r, dict) else r for r in decoded]


def _record(record: dict[Any, Any]) -> dict[Any, Any]:
    return {
        LABELS.get(k, k) if type(k) is int else k: float(v) if isinstance(v, Decimal) else v
        for k, v in record.items()
    }


def dumps(pack: Iterable[dict[str, Any]]) -> bytes:
    """A JSON-form pack as SenML CBOR (integer labels, `vd` as bytes): for devices' tests and tools."""
    return cbor2.dumps([{CODES.get(k, k): _cbor_value(k, v) for k, v in r.items()} for r in pack])


def _cbor_value(label: str, value: Any) -> Any:
    if label == "vd" and isinstance(value, str):
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return value
