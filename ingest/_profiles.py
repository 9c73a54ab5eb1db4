"""Device profiles and custom metrics: what a device's SenML names mean, without firmware changes.

A profile (like a FIWARE IoT Agent provisioning or a ThingsBoard device profile) applies to listed
devices and/or to every device of listed kinds (a device's own profile wins over its kind's). It
maps resolved SenML names (`bn + n`) to catalogue or custom metrics, tried in this order:

1. `names`: exact resolved names, optionally only with one unit (RFC 8428 section 5.1.3 names
   several quantities of one device by the device URN alone, told apart by their units), and
   optionally for another device than the topic's (a gateway or controller naming its devices);
2. `prefixes`: a device prefix (`urn:dev:ow:10e2073a01080063:`, or `kpn001` for a library that
   glues base name and name without a separator) is cut off and the rest is the metric, through
   `aliases`; a prefix may name the device its records belong to;
3. otherwise the platform's own rule (see `_senml`), the metric part going through `aliases`.

Custom metrics extend the catalogue at run time: `number` (with unit and range), `boolean`,
`text` and `data` (SenML `vd`, stored as base64url text). The ingester reloads both tables while
it runs (`IngestConfig`, swapped whole, so a parse never sees half a change).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from zhongdu.errors import ZhongduError
from zhongdu.ingest._metrics_catalogue import BOOLEAN_METRICS, METRICS, STRING_METRICS, STRING_VALUES
from zhongdu.ingest._units import UNITS

ValueKind = Literal["number", "boolean", "text", "data"]
#: value kind codes of a `Spec` (the parser's hot loop compares small ints)
NUMBER, BOOLEAN, TEXT, DATA = 0, 1, 2, 3
_KIND_CODES: dict[str, int] = {"number": NUMBER, "boolean": BOOLEAN, "text": TEXT, "data": DATA}
#: (value kind, unit, min, max): one dict look-up per record
Spec = tuple[int, str | None, float, float]

METRIC_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
PROFILE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # as the topics and the registry
_SENML_NAME_RE = re.compile(r"[A-Za-z0-9][-:./A-Za-z0-9_]*")
MAX_RULES = 1000


class ProfileError(ZhongduError, ValueError):
    """A profile or custom metric definition that cannot be used (the message says why)."""


@dataclass(frozen=True)
class CustomMetric:
    """A metric added at run time. `unit`, `min` and `max` only for numbers."""

    metric: str
    value_type: ValueKind
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not METRIC_NAME_RE.fullmatch(self.metric):
            raise ProfileError(
                f"metric name {self.metric!r:.70} must match {METRIC_NAME_RE.pattern} (no ':' or '/')"
            )
        if self.metric in METRICS:
            raise ProfileError(f"{self.metric!r} is a catalogue metric")
        if self.value_type not in _KIND_CODES:
            raise ProfileError(f"value type must be one of {', '.join(_KIND_CODES)}, got {self.value_type!r}")
        if self.value_type == "number":
            if not self.unit:
                raise ProfileError(f"numeric metric {self.metric!r} needs a SenML unit")
            for bound in (self.min, self.max):
                if bound is not None and not math.isfinite(bound):
                    raise ProfileError("min and max must be finite numbers")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ProfileError(f"min {self.min} is above max {self.max}")
        elif self.unit or self.min is not None or self.max is not None:
            raise ProfileError(f"{self.value_type} metric {self.metric!r} takes no unit, min or max")

    @property
    def spec(self) -> Spec:
        return (
            _KIND_CODES[self.value_type],
            self.unit,
            -math.inf if self.min is None else float(self.min),
            math.inf if self.max is None else float(self.max),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value_type": self.value_type,
            "unit": self.unit,
            "min": self.min,
            "max": self.max,
            "description": self.description,
        }


@dataclass(frozen=True)
class NameRule:
    name: str
    metric: str
    unit: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class PrefixRule:
    prefix: str
    device: str | None = None


@dataclass(frozen=True)
class Profile:
    """One profile: which devices it applies to and how it reads their names."""

    profile_id: str
    description: str = ""
    devices: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    names: tuple[NameRule, ...] = ()
    prefixes: tuple[PrefixRule, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    _exact: dict[tuple[str, str | None], NameRule] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._exact.update({(r.name, r.unit): r for r in self.names})
        # longest prefix first: `urn:dev:ow:1:` before `urn:dev:ow:`
        object.__setattr__(self, "prefixes", tuple(sorted(self.prefixes, key=lambda p: -len(p.prefix))))

    def resolve(self, name: str, unit: str | None) -> tuple[str | None, str] | None:
        """(device or None for the topic's, metric) by this profile's rules, or None (platform rule)."""
        rule = self._exact.get((name, unit)) or self._exact.get((name, None))
        if rule is not None:
            return rule.device, rule.metric
        for prefix in self.prefixes:
            if name.startswith(prefix.prefix) and len(name) > len(prefix.prefix):
                rest = name[len(prefix.prefix) :]
                return prefix.device, self.aliases.get(rest, rest)
        return None

    def metrics(self) -> set[str]:
        """Every metric the profile names explicitly (checked against the catalogue on save)."""
        return {r.metric for r in self.names} | set(self.aliases.values())

    def as_json(self) -> dict[str, Any]:
        """The stored form (what `from_json` reads)."""
        return {
            "profile_id": self.profile_id,
            "description": self.description,
            "devices": list(self.devices),
            "kinds": list(self.kinds),
            "names": [
                {
                    k: v
                    for k, v in (
                        ("name", r.name),
                        ("unit", r.unit),
                        ("metric", r.metric),
                        ("device", r.device),
                    )
                    if v is not None
                }
                for r in self.names
            ],
            "prefixes": [
                {"prefix": p.prefix, **({"device": p.device} if p.device else {})} for p in self.prefixes
            ],
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_json(cls, data: Any, known_metrics: Iterable[str] | None = None) -> Profile:
        """Validate a profile document (from the CLI, the API or the database); `ProfileError` if bad.

        With `known_metrics`, every metric the profile maps to must be one of them.
        """
        if not isinstance(data, dict):
            raise ProfileError("a profile is a JSON object")
        unknown = set(data) - {
            "profile_id",
            "description",
            "devices",
            "kinds",
            "names",
            "prefixes",
            "aliases",
        }
        if unknown:
            raise ProfileError(f"unknown profile fields: {', '.join(sorted(unknown))}")
        profile_id = data.get("profile_id")
        if not isinstance(profile_id, str) or not PROFILE_ID_RE.fullmatch(profile_id):
            raise ProfileError(f"profile_id must match {PROFILE_ID_RE.pattern}")
        devices = _strings(data.get("devices", []), "devices", DEVICE_ID_RE)
        kinds = _strings(data.get("kinds", []), "kinds", METRIC_NAME_RE)
        names = []
        for index, rule in enumerate(_list(data.get("names", []), "names")):
            if not isinstance(rule, dict) or not set(rule) <= {"name", "unit", "metric", "device"}:
                raise ProfileError(f"names[{index}] is an object with name, metric and optional unit, device")
            names.append(
                NameRule(
                    name=_senml_name(rule.get("name"), f"names[{index}].name"),
                    metric=_metric(rule.get("metric"), f"names[{index}].metric"),
                    unit=_optional_str(rule.get("unit"), f"names[{index}].unit"),
                    device=_device(rule.get("device"), f"names[{index}].device"),
                )
            )
        prefixes = []
        for index, rule in enumerate(_list(data.get("prefixes", []), "prefixes")):
            if isinstance(rule, str):
                rule = {"prefix": rule}
            if not isinstance(rule, dict) or not set(rule) <= {"prefix", "device"}:
                raise ProfileError(f"prefixes[{index}] is a string or an object with prefix and device")
            prefixes.append(
                PrefixRule(
                    _senml_name(rule.get("prefix"), f"prefixes[{index}].prefix"),
                    _device(rule.get("device"), f"prefixes[{index}].device"),
                )
            )
        raw_aliases = data.get("aliases", {})
        if not isinstance(raw_aliases, dict):
            raise ProfileError("aliases is an object: SenML name part -> metric")
        aliases = {
            _senml_name(k, "alias name"): _metric(v, f"aliases[{k!r}]") for k, v in raw_aliases.items()
        }
        if len(names) + len(prefixes) + len(aliases) > MAX_RULES:
            raise ProfileError(f"a profile holds at most {MAX_RULES} rules")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ProfileError("description must be a string")
        profile = cls(
            profile_id=profile_id,
            description=description,
            devices=devices,
            kinds=kinds,
            names=tuple(names),
            prefixes=tuple(prefixes),
            aliases=MappingProxyType(aliases),
        )
        if known_metrics is not None:
            missing = profile.metrics() - set(known_metrics)
            if missing:
                raise ProfileError(
                    f"unknown metrics {', '.join(sorted(missing))}: add them as custom metrics first"
                )
        return profile


def _list(value: Any, label: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProfileError(f"{label} must be a list")
    return value


def _strings(value: Any, label: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    items = _list(value, label)
    for item in items:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise ProfileError(f"{label}: {item!r:.70} must match {pattern.pattern}")
    return tuple(items)


def _optional_str(value: Any, label: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ProfileError(f"{label} must be a string")
    return value


def _senml_name(value: Any, label: str) -> str:
    if not isinstance(value, str) or not _SENML_NAME_RE.fullmatch(value):
        raise ProfileError(f"{label} must be a SenML name (RFC 8428 section 4.5.1), got {value!r:.70}")
    return value


def _metric(value: Any, label: str) -> str:
    if not isinstance(value, str) or not METRIC_NAME_RE.fullmatch(value):
        raise ProfileError(f"{label} must be a metric name, got {value!r:.70}")
    return value


def _device(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not DEVICE_ID_RE.fullmatch(value):
        raise ProfileError(f"{label} must be a device id matching {DEVICE_ID_RE.pattern}")
    return value


def catalogue_specs() -> dict[str, Spec]:
    """The built-in catalogue as parser specs."""
    return {
        name: (
            BOOLEAN if name in BOOLEAN_METRICS else TEXT if name in STRING_METRICS else NUMBER,
            spec.unit,
            spec.min if spec.min is not None else -math.inf,
            spec.max if spec.max is not None else math.inf,
        )
        for name, spec in METRICS.items()
    }


@dataclass(frozen=True)
class IngestConfig:
    """Everything the parser reads besides the message: metric specs and the devices' profiles."""

    specs: Mapping[str, Spec]
    string_values: Mapping[str, frozenset[str]]
    profiles: Mapping[str, Profile]  # by device id
    version: tuple[int, int] = (0, 0)
    custom_metrics: tuple[CustomMetric, ...] = ()
    all_profiles: tuple[Profile, ...] = ()

    @classmethod
    def build(
        cls,
        custom_metrics: Iterable[CustomMetric] = (),
        profiles: Iterable[Profile] = (),
        device_kinds: Mapping[str, str] | None = None,
        version: tuple[int, int] = (0, 0),
    ) -> IngestConfig:
        """Merge the catalogue with custom metrics; index profiles by device (own before kind)."""
        specs = catalogue_specs()
        custom = tuple(custom_metrics)
        for metric in custom:
            specs[metric.metric] = metric.spec
        all_profiles = tuple(profiles)
        by_kind: dict[str, Profile] = {}
        for profile in all_profiles:
            for kind in profile.kinds:
                by_kind.setdefault(kind, profile)
        by_device: dict[str, Profile] = {}
        for device, kind in (device_kinds or {}).items():
            if kind in by_kind:
                by_device[device] = by_kind[kind]
        for profile in all_profiles:
            for device in profile.devices:
                by_device[device] = profile
        # plain dicts, never changed after this: the parser looks them up for every record, and a
        # dict look-up is faster than one through a MappingProxyType
        return cls(
            specs=specs,
            string_values=STRING_VALUES,
            profiles=by_device,
            version=version,
            custom_metrics=custom,
            all_profiles=all_profiles,
        )

    def known_units(self) -> set[str]:
        return set(UNITS) | {s[1] for s in self.specs.values() if s[1]}


DEFAULT_CONFIG = IngestConfig.build()


def load_config(conn: Any, version: tuple[int, int] | None = None) -> IngestConfig:
    """Build the config from the database (`zhongdu.storage.profiles`); skip unusable rows, loudly.

    A row is unusable only when edited by hand past the validation of the CLI and the API; the
    other profiles and metrics still apply.
    """
    import logging

    from zhongdu import storage

    log = logging.getLogger(__name__)
    if version is None:
        version = storage.profiles.config_version(conn)
    metrics: list[CustomMetric] = []
    for row in storage.profiles.custom_metrics(conn):
        try:
            metrics.append(CustomMetric(**row))
        except (ProfileError, TypeError) as exc:
            log.error("custom metric %r skipped: %s", row.get("metric"), exc)
    known = set(METRICS) | {m.metric for m in metrics}
    loaded: list[Profile] = []
    for document in storage.profiles.profiles(conn):
        document.pop("updated_at", None)
        try:
            loaded.append(Profile.from_json(document, known))
        except ProfileError as exc:
            log.error("device profile %r skipped: %s", document.get("profile_id"), exc)
    kinds = storage.profiles.device_kinds(conn, {k for p in loaded for k in p.kinds})
    return IngestConfig.build(metrics, loaded, kinds, version)
