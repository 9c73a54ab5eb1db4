"""SenML JSON (RFC 8428) packs from park devices, resolved and checked against the catalogue.

Names (docs/mqtt-contract.md#senml-names): the topic `zhongdu/v1/park/<device_id>/senml`
names the device. The metric is the part of the resolved name `bn + n` after its last `:` or `/`
(catalogue metrics contain neither). What comes before it, if anything, is the name's device part:
- no device part (`temperature`, with or without a `bt`/`bu`-only base): the topic's device;
- a device part must end with the topic's device id as a whole segment: `air-001:`, `air-001/`,
  `urn:dev:zhongdu:air-001:`, `urn:dev:mac:0024befffe804ff1:` (on topic `.../0024befffe804ff1/...`);
  any other device part (`air-002:`, a MAC URN on a topic naming another id) is `device_mismatch`.
Typical packs, as the simulators and as off-the-shelf libraries write them:

    [{"bn": "urn:dev:zhongdu:air-001:", "bt": 1767225600, "bu": "ug/m3", "n": "pm2_5", "v": 12.5},
     {"n": "pm10", "v": 20.1},
     {"n": "temperature", "u": "Cel", "v": 24.3, "t": -60}]
    [{"n": "temperature", "u": "Cel", "v": 24.3}, {"n": "humidity", "u": "%RH", "v": 61}]

Resolution per RFC 8428 section 4: base fields (`bn`, `bt`, `bu`, `bv`, `bs`, `bver`) apply to
their record and every later one until changed; time = `bt + t`, and a resolved time below 2**28
is relative to the time of receipt (so `t` = 0 or absent means "now"); `v` gets `bv` added, `s`
gets `bs` added; exactly one of `v`, `vs`, `vb`, `vd` per record, or a sum `s` alone (stored as
the value). Labels ending in `_` must be understood, so unknown ones reject the pack; other
unknown labels are ignored. A record missing its unit takes the catalogue's unit; a different
unit is rejected, never converted. One bad record rejects the whole pack (all or nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from zhongdu.ingest._metrics_catalogue import BOOLEAN_METRICS, METRICS, STRING_METRICS, STRING_VALUES
from zhongdu.ingest._types import ReadingRow, Reason

SENML_VERSION = 10
RELATIVE_TIME_LIMIT = 2**28  # RFC 8428 4.5.3: smaller resolved times are relative to now
URN_PREFIX = "urn:dev:zhongdu:"
_KNOWN_LABELS = frozenset(
    {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)
_VALUE_LABELS = ("v", "vs", "vb", "vd")
_NAME_RE = re.compile(r"[A-Za-z0-9][-:./A-Za-z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_STRING_VALUE = 256


class SenmlReject(Exception):
    """Internal: a pack failed a check. Carries the rejection reason and a human detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _number(value: object, label: str, index: int) -> float:
    # bool is an int subclass in Python, but JSON true is not a SenML number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: {label} must be a number, got {value!r:.40}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {label} is not finite")
    return number


def _string(value: object, label: str, index: int) -> str:
    if not isinstance(value, str):
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: {label} must be a string, got {value!r:.40}")
    return value


# metric -> (value kind: 0 number / 1 boolean / 2 string, unit, min, max): one dict look-up per record
_SPECS: dict[str, tuple[int, str | None, float, float]] = {
    name: (
        1 if name in BOOLEAN_METRICS else 2 if name in STRING_METRICS else 0,
        spec.unit,
        spec.min if spec.min is not None else -math.inf,
        spec.max if spec.max is not None else math.inf,
    )
    for name, spec in METRICS.items()
}
_BASE_LABELS = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})


def resolve_pack(
    pack: Any,
    device_id: str,
    now_s: float,
    max_future_s: float,
    max_age_s: float,
) -> tuple[list[ReadingRow], datetime, set[str]]:
    """Resolve a decoded pack into reading rows; raise `SenmlReject` on the first problem.

    Returns the rows, the latest resolved time and the set of metric names. The loop is the
    ingester's hot path (every datapoint passes here), hence the look-up tables and caches.
    """
    if not isinstance(pack, list):
        raise SenmlReject(Reason.BAD_SENML, f"a SenML pack is a JSON array, got {type(pack).__name__}")
    if not pack:
        raise SenmlReject(Reason.BAD_SENML, "empty SenML pack")
    base_name = ""
    base_time = 0.0
    base_unit: str | None = None
    base_value = 0.0
    base_sum = 0.0
    version: int | None = None
    rows: list[ReadingRow] = []
    metrics: set[str] = set()
    latest_s = -math.inf
    latest = _EPOCH
    short_prefix = device_id + ":"
    long_prefix = URN_PREFIX + short_prefix
    newest_allowed = now_s + max_future_s
    oldest_allowed = now_s - max_age_s
    last_time_s = math.nan
    last_time = _EPOCH
    specs = _SPECS
    for index, record in enumerate(pack):
        if not isinstance(record, dict):
            raise SenmlReject(Reason.BAD_SENML, f"record {index} is not a JSON object")
        keys = record.keys()
        if not keys <= _KNOWN_LABELS:
            for label in keys - _KNOWN_LABELS:
                if label.endswith("_"):
                    raise SenmlReject(
                        Reason.BAD_SENML, f"record {index}: must-understand label {label!r:.40}"
                    )
        if not keys.isdisjoint(_BASE_LABELS):
            if "bver" in record:
                bver = record["bver"]
                if isinstance(bver, bool) or not isinstance(bver, int) or bver < 1:
                    raise SenmlReject(Reason.BAD_SENML, f"record {index}: bver must be a positive integer")
                if bver > SENML_VERSION:
                    raise SenmlReject(
                        Reason.BAD_SENML, f"record {index}: SenML version {bver} is not supported"
                    )
                if version is not None and bver != version:
                    raise SenmlReject(Reason.BAD_SENML, f"record {index}: bver changes within the pack")
                version = bver
            if "bn" in record:
                base_name = _string(record["bn"], "bn", index)
            if "bt" in record:
                base_time = _number(record["bt"], "bt", index)
            if "bu" in record:
                base_unit = _string(record["bu"], "bu", index)
            if "bv" in record:
                base_value = _number(record["bv"], "bv", index)
            if "bs" in record:
                base_sum = _number(record["bs"], "bs", index)

        n = record.get("n", "")
        if type(n) is not str:
            n = _string(n, "n", index)
        # The usual packs, one look-up: no bn (bare names) or a bn naming the topic's device.
        named_here = not base_name or base_name == long_prefix or base_name == short_prefix
        spec = specs.get(n) if named_here else None
        if spec is not None:
            metric = n
        else:
            name = base_name + n
            resolve = _resolve_name_cached if len(name) <= _CACHED_NAME_LENGTH else _resolve_name
            metric, reason, detail = resolve(name, device_id)
            if reason is not None:
                raise SenmlReject(reason, f"record {index}: {detail}")
            spec = specs[metric]

        if "t" in record:
            t = record["t"]
            time_s = base_time + (t if type(t) is float or type(t) is int else _number(t, "t", index))
        else:
            time_s = base_time
        if time_s < RELATIVE_TIME_LIMIT:
            time_s += now_s
        if time_s > newest_allowed:
            if not math.isfinite(time_s):
                raise SenmlReject(Reason.BAD_VALUE, f"record {index}: time is not finite")
            raise SenmlReject(
                Reason.FUTURE_TIMESTAMP, f"record {index}: time is {time_s - now_s:.0f} s in the future"
            )
        if not time_s >= oldest_allowed:
            raise SenmlReject(
                Reason.STALE_TIMESTAMP, f"record {index}: time is {now_s - time_s:.0f} s in the past"
            )

        kind, spec_unit, lo, hi = spec
        unit = record["u"] if "u" in record else base_unit
        text: str | None = None
        value: float | None
        if kind == 0 and "v" in record and keys.isdisjoint(_OTHER_VALUES):
            raw = record["v"]
            if type(raw) is not float:
                raw = _number(raw, "v", index)
            value = base_value + raw if base_value else raw
            if unit is None:
                unit = spec_unit
            elif unit != spec_unit:
                if not isinstance(unit, str):
                    raise SenmlReject(Reason.BAD_SENML, f"record {index}: u must be a string")
                raise SenmlReject(
                    Reason.BAD_UNIT, f"record {index}: {metric} is in {spec_unit!r}, got {unit!r:.20}"
                )
            if not lo <= value <= hi:
                if not math.isfinite(value):
                    raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {metric} value is not finite")
                raise SenmlReject(
                    Reason.OUT_OF_RANGE,
                    f"record {index}: {metric} = {value:g} outside [{lo:g}, {hi:g}] {spec_unit}",
                )
        else:
            value, unit, text = _slow_value(record, index, metric, kind, spec, unit, base_value, base_sum)

        if time_s != last_time_s:
            last_time_s = time_s
            last_time = _EPOCH + timedelta(seconds=time_s)
        if time_s > latest_s:
            latest_s = time_s
            latest = last_time
        metrics.add(metric)
        rows.append((last_time, device_id, metric, value, unit, text))
    return rows, latest, metrics


_OTHER_VALUES = frozenset({"vs", "vb", "vd", "s"})


def _resolve_name(name: str, device_id: str) -> tuple[str, Reason | None, str]:
    """(metric, None, "") when `name` is a metric of the topic's device, else ("", reason, detail).

    The metric is what follows the last `:` or `/`; a device part before it must end with the
    topic's device id as a whole segment (device ids may themselves contain `:`).
    """
    if not _NAME_RE.fullmatch(name):
        return "", Reason.BAD_SENML, f"invalid SenML name {name!r:.80}"
    cut = max(name.rfind(":"), name.rfind("/"))
    metric = name[cut + 1 :]
    if metric not in _SPECS:
        return "", Reason.UNKNOWN_METRIC, f"unknown metric {metric!r:.60} (name {name!r:.80})"
    if cut < 0:
        return metric, None, ""
    device_part = name[:cut]
    if device_part == device_id or device_part.endswith((":" + device_id, "/" + device_id)):
        return metric, None, ""
    claimed = device_part[max(device_part.rfind(":"), device_part.rfind("/")) + 1 :]
    return "", Reason.DEVICE_MISMATCH, (
        f"name {name!r:.80} carries device id {claimed!r:.64} but the topic names {device_id!r}; "
        f"send bare metric names ({metric!r}) or names ending in '{device_id}:{metric}'"
    )


# A device sends the same few names in every pack, so resolutions are cached; only names up to
# this length, so that a flood of long unique names cannot grow the cache beyond ~2 MB.
_CACHED_NAME_LENGTH = 160
_resolve_name_cached = lru_cache(maxsize=4096)(_resolve_name)


def _slow_value(
    record: dict[str, Any],
    index: int,
    metric: str,
    kind: int,
    spec: tuple[int, str | None, float, float],
    unit: Any,
    base_value: float,
    base_sum: float,
) -> tuple[float | None, str | None, str | None]:
    """Every case but a plain numeric `v`: booleans, strings, sums, and the malformed."""
    present = [label for label in _VALUE_LABELS if label in record]
    if len(present) > 1:
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: several values ({', '.join(present)})")
    _, spec_unit, lo, hi = spec
    if kind:
        wanted = "vb" if kind == 1 else "vs"
        if present != [wanted]:
            raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {metric} needs a {wanted} value")
        if unit is not None and unit != "":
            detail = f"record {index}: {metric} takes no unit, got {unit!r:.20}"
            raise SenmlReject(Reason.BAD_UNIT, detail)
        raw = record[wanted]
        if wanted == "vb":
            if not isinstance(raw, bool):
                raise SenmlReject(Reason.BAD_SENML, f"record {index}: vb must be true or false")
            return (1.0 if raw else 0.0), None, None
        if not isinstance(raw, str):
            raise SenmlReject(Reason.BAD_SENML, f"record {index}: vs must be a string")
        allowed = STRING_VALUES.get(metric)
        if len(raw) > MAX_STRING_VALUE or (allowed is not None and raw not in allowed):
            raise SenmlReject(
                Reason.OUT_OF_RANGE, f"record {index}: {metric} value {raw!r:.40} is not allowed"
            )
        return None, None, raw
    if present == ["v"]:
        value = base_value + _number(record["v"], "v", index)
    elif not present and "s" in record:
        value = base_sum + _number(record["s"], "s", index)
    elif not present:
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: no value and no sum")
    else:
        raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {metric} needs a numeric v value")
    if unit is None:
        unit = spec_unit
    elif unit != spec_unit:
        if not isinstance(unit, str):
            raise SenmlReject(Reason.BAD_SENML, f"record {index}: u must be a string")
        raise SenmlReject(Reason.BAD_UNIT, f"record {index}: {metric} is in {spec_unit!r}, got {unit!r:.20}")
    if not math.isfinite(value):
        raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {metric} value is not finite")
    if not lo <= value <= hi:
        raise SenmlReject(
            Reason.OUT_OF_RANGE, f"record {index}: {metric} = {value:g} outside [{lo:g}, {hi:g}] {spec_unit}"
        )
    return value, unit, None


def build_pack(
    device_id: str,
    values: Mapping[str, float | bool | str],
    *,
    time_s: float,
    urn: bool = True,
) -> list[dict[str, Any]]:
    """A SenML pack for `values` measured at `time_s` (epoch seconds), in the ingester's convention.

    Units come from the catalogue; the first record carries `bn` and `bt`. For simulators, tests and
    the benchmark (serialise with `json.dumps`).

    >>> build_pack("air-001", {"pm2_5": 12.5}, time_s=1767225600.0)
    [{'bn': 'urn:dev:zhongdu:air-001:', 'bt': 1767225600.0, 'n': 'pm2_5', 'u': 'ug/m3', 'v': 12.5}]
    """
    pack: list[dict[str, Any]] = []
    for metric, value in values.items():
        record: dict[str, Any] = {}
        if not pack:
            record["bn"] = (URN_PREFIX if urn else "") + device_id + ":"
            record["bt"] = time_s
        record["n"] = metric
        if metric in BOOLEAN_METRICS:
            record["vb"] = bool(value)
        elif metric in STRING_METRICS:
            record["vs"] = str(value)
        else:
            record["u"] = METRICS[metric].unit
            record["v"] = value
        pack.append(record)
    return pack
