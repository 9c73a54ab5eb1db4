"""The park's telemetry as OGC SensorThings API 1.1 (read-only): what Taiwan's Civil IoT and the
tools built for it read.

Mapping (docs/sensorthings.md): a park device is a Thing with one Location (its position); its
kind is the Sensor; a catalogue metric is an ObservedProperty; each (device, metric) that ever
reported is a Datastream (`datastream_latest`, integer ids); each reading is an Observation
(id `"<datastream>-<epoch µs>"`). Things, Locations, Sensors, ObservedProperties and Datastreams
are few (read whole, filtered here); Observations are filtered, ordered and paged in the database.
"The latest observation of every Datastream" (`$expand=Observations($orderby=phenomenonTime
desc;$top=1)`) is answered from `datastream_latest` without touching the readings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from zhongdu.api._sta_query import (
    Call,
    Compare,
    Expand,
    Logical,
    Not,
    OrderKey,
    Path,
    QueryError,
    QueryOptions,
)
from zhongdu.storage import _sta as sql_sta

__all__ = ["ENTITY_SETS", "NotFound", "StaService"]

ENTITY_SETS = ("Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "Observations")
_SINGLE_NAV = {
    "Datastreams": {"Thing": "Things", "Sensor": "Sensors", "ObservedProperty": "ObservedProperties"},
    "Observations": {"Datastream": "Datastreams"},
}
_MULTI_NAV = {
    "Things": {"Datastreams": "Datastreams", "Locations": "Locations"},
    "Locations": {"Things": "Things"},
    "Sensors": {"Datastreams": "Datastreams"},
    "ObservedProperties": {"Datastreams": "Datastreams"},
    "Datastreams": {"Observations": "Observations"},
}
_OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
_SENML_UNITS = "https://www.iana.org/assignments/senml/senml.xhtml#senml-units"


class NotFound(LookupError):
    """No such entity or navigation (answered with 404)."""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _epoch_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_epoch_us(micros: int) -> datetime:
    from datetime import timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


@dataclass
class _Entity:
    """One entity: its set, its id, its own properties, and what its navigation reaches."""

    kind: str
    id: Any
    props: dict[str, Any]
    row: dict[str, Any] = field(default_factory=dict)


class StaService:
    """Answers one request: reads the small entity sets once, then resolves, filters and renders."""

    def __init__(self, conn: Any, base_url: str, metric_info: Callable[[str], tuple[str, str]]) -> None:
        self.conn = conn
        self.base = base_url.rstrip("/")
        self.metric_info = metric_info  # metric -> (unit, description) from the catalogue
        self._things: list[dict[str, Any]] | None = None
        self._streams: list[dict[str, Any]] | None = None

    # --- the small sets --------------------------------------------------------------------

    def _thing_rows(self) -> list[dict[str, Any]]:
        if self._things is None:
            self._things = sql_sta.things(self.conn)
        return self._things

    def _stream_rows(self) -> list[dict[str, Any]]:
        if self._streams is None:
            self._streams = sql_sta.datastreams(self.conn)
        return self._streams

    def _link(self, kind: str, entity_id: Any) -> str:
        key = (
            str(entity_id)
            if isinstance(entity_id, int)
            else "'" + quote(str(entity_id).replace("'", "''")) + "'"
        )
        return f"{self.base}/{kind}({key})"

    def _thing(self, row: dict[str, Any]) -> _Entity:
        properties = {"kind": row["kind"], "auto_registered": row["auto_registered"]}
        properties["registered_at"] = _iso(row["registered_at"])
        properties.update(row.get("metadata") or {})
        props = {
            "name": row["name"] or row["device_id"],
            "description": f"{row['kind']} device in the Shuinan smart park",
            "properties": properties,
        }
        return _Entity("Things", row["device_id"], props, row)

    def _location(self, row: dict[str, Any]) -> _Entity:
        props = {
            "name": f"{row['name'] or row['device_id']} position",
            "description": "where the device stands (WGS 84)",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [round(row["lon"], 6), round(row["lat"], 6)]},
        }
        return _Entity("Locations", row["device_id"], props, row)

    def _sensor(self, kind: str) -> _Entity:
        props = {
            "name": kind,
            "description": f"Zhongdu park device kind {kind!r}",
            "encodingType": "text/plain",
            "metadata": "the device kinds and their metrics: docs/mqtt-contract.md",
        }
        return _Entity("Sensors", kind, props, {"kind": kind})

    def _observed_property(self, metric: str) -> _Entity:
        _unit, description = self.metric_info(metric)
        props = {
            "name": metric,
            "definition": f"{self.base}/ObservedProperties('{metric}')",
            "description": description,
        }
        return _Entity("ObservedProperties", metric, props, {"metric": metric})

    def _datastream(self, row: dict[str, Any]) -> _Entity:
        unit = row["unit"]
        _catalogue_unit, description = self.metric_info(row["metric"])
        numeric = row["last_value_text"] is None
        props = {
            "name": f"{row['device_id']} {row['metric']}",
            "description": description,
            "unitOfMeasurement": {
                "name": unit or "",
                "symbol": unit or "",
                "definition": _SENML_UNITS if unit else "",
            },
            "observationType": _OM + ("OM_Measurement" if numeric else "OM_Observation"),
            "phenomenonTime": f"{_iso(row['first_time'])}/{_iso(row['last_time'])}",
            "resultTime": f"{_iso(row['first_time'])}/{_iso(row['last_time'])}",
            "properties": {"device_id": row["device_id"], "metric": row["metric"]},
        }
        return _Entity("Datastreams", int(row["id"]), props, row)

    def _observation(self, row: dict[str, Any], stream_id: int) -> _Entity:
        result = row["value_text"] if row["value_text"] is not None else row["value"]
        props = {"phenomenonTime": _iso(row["time"]), "resultTime": _iso(row["time"]), "result": result}
        return _Entity("Observations", f"{stream_id}-{_epoch_us(row['time'])}", props, row)

    def entities(self, kind: str) -> list[_Entity]:
        if kind == "Things":
            return [self._thing(r) for r in self._thing_rows()]
        if kind == "Locations":
            return [
                self._location(r) for r in self._thing_rows() if r["lon"] is not None and r["lat"] is not None
            ]
        if kind == "Sensors":
            kinds = {r["kind"] for r in self._stream_rows()} | {r["kind"] for r in self._thing_rows()}
            return [self._sensor(k) for k in sorted(kinds)]
        if kind == "ObservedProperties":
            return [self._observed_property(m) for m in sorted({r["metric"] for r in self._stream_rows()})]
        if kind == "Datastreams":
            return [self._datastream(r) for r in self._stream_rows()]
        raise NotFound(f"no entity set {kind!r}; served: {', '.join(ENTITY_SETS)}")

    # --- navigation --------------------------------------------------------------------------

    def _stream_of(self, entity: _Entity) -> dict[str, Any]:
        device, metric = entity.row["device_id"], entity.row["metric"]
        for row in self._stream_rows():
            if row["device_id"] == device and row["metric"] == metric:
                return row
        raise NotFound("the Datastream of that Observation is gone")

    def get(self, kind: str, key: str) -> _Entity:
        """The entity `kind(key)`; `key` as written in the URL (quotes removed)."""
        if kind == "Observations":
            match = re.fullmatch(r"(\d+)-(\d+)", key)
            stream = self._find_stream(int(match[1])) if match else None
            row = (
                sql_sta.observation(
                    self.conn, stream["device_id"], stream["metric"], _from_epoch_us(int(match[2]))
                )
                if match and stream
                else None
            )
            if row is None or stream is None:
                raise NotFound(f"no Observation {key!r}")
            return self._observation(row, int(stream["id"]))
        if kind == "Datastreams":
            stream = self._find_stream(int(key)) if key.isdigit() else None
            if stream is None:
                raise NotFound(f"no Datastream {key!r}")
            return self._datastream(stream)
        for entity in self.entities(kind):
            if str(entity.id) == key:
                return entity
        raise NotFound(f"no {kind[:-1] if kind != 'ObservedProperties' else 'ObservedProperty'} {key!r}")

    def _find_stream(self, stream_id: int) -> dict[str, Any] | None:
        return next((r for r in self._stream_rows() if int(r["id"]) == stream_id), None)

    def navigate_single(self, entity: _Entity, name: str) -> _Entity:
        target = _SINGLE_NAV.get(entity.kind, {}).get(name)
        if target is None:
            raise NotFound(f"{entity.kind} has no navigation property {name!r}")
        if entity.kind == "Observations":
            return self._datastream(self._stream_of(entity))
        if name == "Thing":
            row = next((r for r in self._thing_rows() if r["device_id"] == entity.row["device_id"]), None)
            if row is None:
                raise NotFound(f"the device {entity.row['device_id']!r} is not registered")
            return self._thing(row)
        if name == "Sensor":
            return self._sensor(entity.row["kind"])
        return self._observed_property(entity.row["metric"])

    def related(self, entity: _Entity, name: str) -> list[_Entity]:
        """A multi-valued navigation's entities (Observations excluded: they are queried)."""
        if entity.kind == "Things" and name == "Datastreams":
            return [self._datastream(r) for r in self._stream_rows() if r["device_id"] == entity.id]
        if entity.kind == "Things" and name == "Locations":
            return [e for e in self.entities("Locations") if e.id == entity.id]
        if entity.kind == "Locations" and name == "Things":
            return [e for e in self.entities("Things") if e.id == entity.id]
        if entity.kind == "Sensors" and name == "Datastreams":
            return [self._datastream(r) for r in self._stream_rows() if r["kind"] == entity.id]
        if entity.kind == "ObservedProperties" and name == "Datastreams":
            return [self._datastream(r) for r in self._stream_rows() if r["metric"] == entity.id]
        raise NotFound(f"{entity.kind} has no navigation property {name!r}")

    # --- filter and order in memory ----------------------------------------------------------

    def _values(self, entity: _Entity, path: Path) -> list[Any]:
        """Every value `path` reaches from `entity` (several through a multi-valued navigation)."""
        head, rest = path.parts[0], Path(path.parts[1:])
        if head in ("@iot.id", "id"):
            values: list[Any] = [entity.id]
        elif head in _SINGLE_NAV.get(entity.kind, {}):
            try:
                values = [self.navigate_single(entity, head)]
            except NotFound:
                return []
        elif head in _MULTI_NAV.get(entity.kind, {}) and head != "Observations":
            values = list(self.related(entity, head))
        elif head in entity.props:
            values = [entity.props[head]]
        else:
            raise QueryError(f"{entity.kind} has no property {head!r}")
        if not rest.parts:
            return [v.id if isinstance(v, _Entity) else v for v in values]
        out: list[Any] = []
        for value in values:
            if isinstance(value, _Entity):
                out.extend(self._values(value, rest))
            elif isinstance(value, dict):
                current: Any = value
                for part in rest.parts:
                    current = current.get(part) if isinstance(current, dict) else None
                out.append(current)
        return out

    def _eval(self, entity: _Entity, node: Any) -> Any:
        if isinstance(node, Logical):
            left = bool(self._eval(entity, node.left))
            return (
                (left and bool(self._eval(entity, node.right)))
                if node.op == "and"
                else (left or bool(self._eval(entity, node.right)))
            )
        if isinstance(node, Not):
            return not self._eval(entity, node.operand)
        if isinstance(node, Compare):
            lefts = self._operand_values(entity, node.left)
            rights = self._operand_values(entity, node.right)
            return any(_compare(node.op, a, b) for a in lefts for b in rights)
        if isinstance(node, Call):
            return _call(node.name, [self._operand_values(entity, a) for a in node.args])
        if isinstance(node, Path):
            return any(self._values(entity, node))
        return node

    def _operand_values(self, entity: _Entity, node: Any) -> list[Any]:
        if isinstance(node, Path):
            return self._values(entity, node)
        if isinstance(node, Call):
            result = _call(node.name, [self._operand_values(entity, a) for a in node.args])
            return result if isinstance(result, list) else [result]
        if isinstance(node, Compare | Logical | Not):
            return [self._eval(entity, node)]
        return [node]

    def select_entities(self, entities: list[_Entity], options: QueryOptions) -> tuple[list[_Entity], int]:
        """Filter, order and page; returns the page and the count before paging."""
        if options.filter is not None:
            entities = [e for e in entities if self._eval(e, options.filter)]
        for key in reversed(options.orderby):  # stable sorts, last key first

            def sort_key(entity: _Entity, path: Path = key.path) -> tuple[int, Any]:
                return _sort_key(self._values(entity, path))

            entities.sort(key=sort_key, reverse=key.descending)
        total = len(entities)
        return entities[options.skip : options.skip + options.top], total

    # --- observations in the database ------------------------------------------------------

    def observations(
        self, streams: list[dict[str, Any]] | None, options: QueryOptions
    ) -> tuple[list[_Entity], int | None, bool]:
        """A page of Observations of `streams` (None: all); (page, count if asked, more follow)."""
        where = None
        if options.filter is not None:
            try:
                where = sql_sta.observation_where(options.filter)
            except sql_sta.UnsupportedFilter as exc:
                raise QueryError(str(exc)) from None
        order = []
        for key in options.orderby or [OrderKey(Path(("phenomenonTime",)), True)]:
            column = sql_sta.OBSERVATION_COLUMNS.get("/".join(key.path.parts))
            if column is None:
                raise QueryError(f"Observations: $orderby takes {', '.join(sql_sta.OBSERVATION_COLUMNS)}")
            order.append((column, key.descending))
        pairs = None if streams is None else [(s["device_id"], s["metric"]) for s in streams]
        rows = sql_sta.observations(
            self.conn, streams=pairs, where=where, order=order, limit=options.top + 1, offset=options.skip
        )
        more = len(rows) > options.top
        ids = {(s["device_id"], s["metric"]): int(s["id"]) for s in self._stream_rows()}
        page = [self._observation(r, ids.get((r["device_id"], r["metric"]), 0)) for r in rows[: options.top]]
        count = sql_sta.count_observations(self.conn, streams=pairs, where=where) if options.count else None
        return page, count, more

    def latest_observation(self, stream: dict[str, Any]) -> list[_Entity]:
        """The newest Observation of a Datastream, from `datastream_latest` (no readings scan)."""
        row = {
            "device_id": stream["device_id"],
            "metric": stream["metric"],
            "time": stream["last_time"],
            "value": stream["last_value"],
            "value_text": stream["last_value_text"],
        }
        return [self._observation(row, int(stream["id"]))]

    # --- rendering -----------------------------------------------------------------------------

    def render(self, entity: _Entity, options: QueryOptions) -> dict[str, Any]:
        link = self._link(entity.kind, entity.id)
        body: dict[str, Any] = {"@iot.id": entity.id, "@iot.selfLink": link, **entity.props}
        for name in list(_SINGLE_NAV.get(entity.kind, {})) + list(_MULTI_NAV.get(entity.kind, {})):
            body[f"{name}@iot.navigationLink"] = f"{link}/{name}"
        if options.select is not None:
            wanted = {"@iot.id" if s == "id" else s for s in options.select}
            body = {
                k: v
                for k, v in body.items()
                if k in wanted or k.removesuffix("@iot.navigationLink") in wanted
            }
        for expand in options.expand:
            body.update(self._expanded(entity, expand, link))
        return body

    def _expanded(self, entity: _Entity, expand: Expand, link: str) -> dict[str, Any]:
        name, inner = expand.name, expand.options
        if name in _SINGLE_NAV.get(entity.kind, {}):
            try:
                return {name: self.render(self.navigate_single(entity, name), inner)}
            except NotFound:
                return {name: None}
        if name not in _MULTI_NAV.get(entity.kind, {}):
            raise QueryError(f"$expand: {entity.kind} has no navigation property {name!r}")
        count: int | None
        if name == "Observations":
            stream = entity.row
            if _is_latest_only(inner):
                page, count, more = self.latest_observation(stream), (1 if inner.count else None), False
            else:
                page, count, more = self.observations([stream], inner)
        else:
            page, total = self.select_entities(self.related(entity, name), inner)
            count, more = (total if inner.count else None), inner.skip + len(page) < total
        out: dict[str, Any] = {name: [self.render(e, inner) for e in page]}
        if count is not None:
            out[f"{name}@iot.count"] = count
        if more:
            query = {"$top": str(inner.top), "$skip": str(inner.skip + inner.top)}
            out[f"{name}@iot.nextLink"] = f"{link}/{name}?{urlencode(query)}"
        return out

    def collection(
        self, page: Iterable[_Entity], options: QueryOptions, *, count: int | None, next_link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if count is not None:
            body["@iot.count"] = count
        body["value"] = [self.render(e, options) for e in page]
        if next_link:
            body["@iot.nextLink"] = next_link
        return body


def _is_latest_only(options: QueryOptions) -> bool:
    """`Observations($orderby=phenomenonTime desc;$top=1)` (the question asked most)."""
    return (
        options.filter is None
        and options.skip == 0
        and options.top_given
        and options.top == 1
        and len(options.orderby) == 1
        and options.orderby[0].path.parts in (("phenomenonTime",), ("resultTime",))
        and options.orderby[0].descending
    )


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(b, datetime) and isinstance(a, str):
        try:
            return datetime.fromisoformat(a.split("/")[-1].replace("Z", "+00:00")), b
        except ValueError:
            return a, b
    if isinstance(a, datetime) and isinstance(b, str):
        b2, a2 = _comparable(b, a)
        return a2, b2
    return a, b


def _compare(op: str, a: Any, b: Any) -> bool:
    a, b = _comparable(a, b)
    if op == "eq":
        return bool(a == b)
    if op == "ne":
        return bool(a != b)
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        return bool(a <= b)
    except TypeError:
        return False


def _call(name: str, args: list[list[Any]]) -> Any:
    first = args[0][0] if args and args[0] else None
    second = args[1][0] if len(args) > 1 and args[1] else None
    if name == "tolower":
        return first.lower() if isinstance(first, str) else first
    if name == "toupper":
        return first.upper() if isinstance(first, str) else first
    if name == "length":
        return len(first) if isinstance(first, str) else None
    if not isinstance(first, str) or not isinstance(second, str):
        return False
    if name == "startswith":
        return first.startswith(second)
    if name == "endswith":
        return first.endswith(second)
    if name == "substringof":  # substringof('PM', name): is the first inside the second
        return first in second
    return second in first  # contains(name, 'PM')


def _sort_key(values: list[Any]) -> tuple[int, Any]:
    value = values[0] if values else None
    if value is None:
        return (1, "")
    if isinstance(value, bool | int | float):
        return (0, (0, float(value), ""))
    return (0, (1, 0.0, str(value)))
