"""SenML packs (RFC 8428) from park devices, resolved and checked against the metric tables.

Names (docs/mqtt-contract.md#senml-names): the topic `zhongdu/v1/park/<device_id>/senml`
names the device. The metric is the part of the resolved name `bn + n` after its last `:` or `/`
(catalogue metrics contain neither). What comes before it, if anything, is the name's device part:
- no device part (`temperature`, with or without a `bt`/`bu`-only base): the topic's device;
- a device part must end with the topic's device id as a whole segment: `air-001:`, `air-001/`,
  `urn:dev:zhongdu:air-001:`, `urn:dev:mac:0024befffe804ff1:` (on topic `.../0024befffe804ff1/...`);
  any other device part (`air-002:`, a MAC URN on a topic naming another id) is `device_mismatch`.
A device with a profile (`_profiles`) has its names read by the profile first.
Typical packs, as the simulators and as off-the-shelf libraries write them:

    [{"bn": "urn:dev:zhongdu:air-001:", "bt": 1767225600, "bu": "ug/m3", "n": "pm2_5", "v": 12.5},
     {"n": "pm10", "v": 20.1},
     {"n": "temperature", "u": "Cel", "v": 24.3, "t": -60}]
    [{"n": "temperature", "u": "Cel", "v": 24.3}, {"n": "humidity", "u": "%RH", "v": 61}]

Resolution per RFC 8428 section 4: base fields (`bn`, `bt`, `bu`, `bv`, `bs`, `bver`) apply to
their record and every later one until changed; time = `bt + t`, and a resolved time below 2**28
is relative to the time of receipt (so `t` = 0 or absent means "now"); `v` gets `bv` added, `s`
gets `bs` added; exactly one of `v`, `vs`, `vb`, `vd` per record, or a sum `s` alone (stored as
the value; `vd` is kept as base64url text). Labels ending in `_` must be understood, so unknown
ones reject the pack; other unknown labels are ignored. A record missing its unit takes the
metric's unit; another unit is converted by the units table (`_units`: `K`, `degF` -> `Cel`,
`Pa` -> `hPa`, ...) or rejected (`bad_unit`). One bad record rejects the whole pack (all or nothing).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from zhongdu.ingest._metrics_catalogue import BOOLEAN_METRICS, METRICS, STRING_METRICS, STRING_VALUES
from zhongdu.ingest._profiles import BOOLEAN, DEFAULT_CONFIG, TEXT, IngestConfig, Profile, Spec
from zhongdu.ingest._types import ReadingRow, Reason
from zhongdu.ingest._units import conversion

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


_BASE_LABELS = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})
_OTHER_VALUES = frozenset({"vs", "vb", "vd", "s"})
_VALUE_OR_SUM = frozenset({"v", "vs", "vb", "vd", "s"})
_NO_DEVICES: frozenset[str] = frozenset()
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*={0,2}")
MAX_DATA_VALUE = 8192  # base64url characters of a `vd` value kept in value_text


def resolve_pack(
    pack: Any,
    device_id: str,
    now_s: float,
    max_future_s: float,
    max_age_s: float,
    config: IngestConfig = DEFAULT_CONFIG,
) -> tuple[list[ReadingRow], datetime, set[str], frozenset[str]]:
    """Resolve a decoded pack into reading rows; raise `SenmlReject` on the first problem.

    Returns the rows, the latest resolved time, the set of metric names and the devices other than
    the topic's that a profile assigned records to. The loop is the ingester's hot path (every
    datapoint passes here), hence the look-up tables and caches; a device without a profile takes
    the shortest way.
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
    others: set[str] = set()
    latest_s = -math.inf
    latest = _EPOCH
    short_prefix = device_id + ":"
    long_prefix = URN_PREFIX + short_prefix
    newest_allowed = now_s + max_future_s
    oldest_allowed = now_s - max_age_s
    last_time_s = math.nan
    last_time = _EPOCH
    specs = config.specs
    profile = config.profiles.get(device_id) if config.profiles else None
    for index, record in enumerate(pack):
        if not isinstance(record, dict):
            raise SenmlReject(Reason.BAD_SENML, f"record {index} is not a JSON object")
        keys = record.keys()
        if not keys <= _KNOWN_LABELS:
            for label in keys - _KNOWN_LABELS:
                if not isinstance(label, str):
                    raise SenmlReject(
                        Reason.BAD_SENML, f"record {index}: label {label!r:.20} is not a string"
                    )
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
            if "n" not in record and keys.isdisjoint(_VALUE_OR_SUM):
                continue  # a record of base fields only (RFC 8428 section 5.1.7's first record)

        n = record.get("n", "")
        if type(n) is not str:
            n = _string(n, "n", index)
        unit = record["u"] if "u" in record else base_unit
        row_device = device_id
        # The usual packs, one look-up: no bn (bare names) or a bn naming the topic's device.
        named_here = profile is None and (
            not base_name or base_name == long_prefix or base_name == short_prefix
        )
        spec = specs.get(n) if named_here else None
        if spec is not None:
            metric = n
        else:
            metric, row_device, spec = _resolve(base_name + n, unit, device_id, profile, specs, index)
            if row_device != device_id:
                others.add(row_device)

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
                value = _convert(value, unit, spec_unit, metric, index)
                unit = spec_unit
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
        rows.append((last_time, row_device, metric, value, unit, text))
    if not rows:
        raise SenmlReject(Reason.BAD_SENML, "no record with a value or sum")
    return rows, latest, metrics, frozenset(others) if others else _NO_DEVICES


_UNKNOWN_HINT = "; a device profile or a custom metric can name it (see docs/device-profiles.md)"


def _resolve(
    name: str, unit: Any, device_id: str, profile: Profile | None, specs: Mapping[str, Spec], index: int
) -> tuple[str, str, Spec]:
    """(metric, device, spec) of a resolved name: the device's profile first, then the platform rule."""
    hit = None
    if profile is not None:
        if unit is not None and not isinstance(unit, str):
            raise SenmlReject(Reason.BAD_SENML, f"record {index}: u must be a string")
        hit = profile.resolve(name, unit)
    if hit is not None:
        device, metric = hit
        spec = specs.get(metric)
        if spec is None:  # a custom metric removed after the profile was saved
            raise SenmlReject(Reason.UNKNOWN_METRIC, f"record {index}: unknown metric {metric!r:.60}")
        return metric, device or device_id, spec
    split = _split_name_cached if len(name) <= _CACHED_NAME_LENGTH else _split_name
    metric, reason, detail = split(name, device_id)
    if reason is Reason.BAD_SENML:
        raise SenmlReject(reason, f"record {index}: {detail}")
    if profile is not None:
        metric = profile.aliases.get(metric, metric)
    spec = specs.get(metric)
    if spec is None:
        raise SenmlReject(
            Reason.UNKNOWN_METRIC,
            f"record {index}: unknown metric {metric!r:.60} (name {name!r:.80}){_UNKNOWN_HINT}",
        )
    if reason is not None:
        raise SenmlReject(reason, f"record {index}: {detail}")
    return metric, device_id, spec


def _split_name(name: str, device_id: str) -> tuple[str, Reason | None, str]:
    """(metric part, None, "") when `name` names the topic's device; else a reason and a detail.

    The metric is what follows the last `:` or `/`; a device part before it must end with the
    topic's device id as a whole segment (device ids may themselves contain `:`).
    """
    if not _NAME_RE.fullmatch(name):
        return "", Reason.BAD_SENML, f"invalid SenML name {name!r:.80}"
    cut = max(name.rfind(":"), name.rfind("/"))
    metric = name[cut + 1 :]
    if cut < 0:
        return metric, None, ""
    device_part = name[:cut]
    if device_part == device_id or device_part.endswith((":" + device_id, "/" + device_id)):
        return metric, None, ""
    claimed = device_part[max(device_part.rfind(":"), device_part.rfind("/")) + 1 :]
    return (
        metric,
        Reason.DEVICE_MISMATCH,
        (
            f"name {name!r:.80} carries device id {claimed!r:.64} but the topic names {device_id!r}; "
            f"send bare metric names ({metric!r}) or names ending in '{device_id}:{metric}', "
            "or give the device a profile"
        ),
    )


# A device sends the same few names in every pack, so resolutions are cached; only names up to
# this length, so that a flood of long unique names cannot grow the cache beyond ~2 MB.
_CACHED_NAME_LENGTH = 160
_split_name_cached = lru_cache(maxsize=4096)(_split_name)
# Units are few; the cache is bounded anyway, as they come from the devices.
_conversion_cached = lru_cache(maxsize=256)(conversion)


def _convert(value: float, unit: Any, spec_unit: str | None, metric: str, index: int) -> float:
    """`value` from the record's unit into the metric's, by the units table; `bad_unit` if none."""
    if not isinstance(unit, str):
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: u must be a string")
    factors = _conversion_cached(unit, spec_unit) if spec_unit is not None and len(unit) <= 32 else None
    if factors is None:
        raise SenmlReject(
            Reason.BAD_UNIT,
            f"record {index}: {metric} is in {spec_unit!r}, got {unit!r:.20}"
            " (no conversion in the units table)",
        )
    scale, offset = factors
    return value * scale + offset


def _slow_value(
    record: dict[str, Any],
    index: int,
    metric: str,
    kind: int,
    spec: Spec,
    unit: Any,
    base_value: float,
    base_sum: float,
) -> tuple[float | None, str | None, str | None]:
    """Every case but a plain numeric `v`: booleans, strings, data, sums, and the malformed."""
    present = [label for label in _VALUE_LABELS if label in record]
    if len(present) > 1:
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: several values ({', '.join(present)})")
    _, spec_unit, lo, hi = spec
    if kind:
        wanted = "vb" if kind == BOOLEAN else "vs" if kind == TEXT else "vd"
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
        if wanted == "vd":
            return None, None, _data_value(raw, metric, index)
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
    if not math.isfinite(value):
        raise SenmlReject(Reason.BAD_VALUE, f"record {index}: {metric} value is not finite")
    if unit is None:
        unit = spec_unit
    elif unit != spec_unit:
        value = _convert(value, unit, spec_unit, metric, index)
        unit = spec_unit
    if not lo <= value <= hi:
        raise SenmlReject(
            Reason.OUT_OF_RANGE, f"record {index}: {metric} = {value:g} outside [{lo:g}, {hi:g}] {spec_unit}"
        )
    return value, unit, None


def _data_value(raw: Any, metric: str, index: int) -> str:
    """A `vd` value as base64url text: JSON carries it so (RFC 8428 section 4.3), CBOR as bytes."""
    if isinstance(raw, bytes):
        raw = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    elif not isinstance(raw, str) or not _B64URL_RE.fullmatch(raw):
        raise SenmlReject(Reason.BAD_SENML, f"record {index}: vd must be base64url text")
    if len(raw) > MAX_DATA_VALUE:
        raise SenmlReject(
            Reason.OUT_OF_RANGE, f"record {index}: {metric} data is longer than {MAX_DATA_VALUE} characters"
        )
    return str(raw)


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
