"""SQL behind the SensorThings API: the park's devices and Datastreams (small, read whole) and their
Observations (the readings' history: filtered, ordered and paged in the database).

`$filter` on Observations becomes a WHERE clause composed with `psycopg.sql` from a fixed set of
columns and operators; values travel as literals psycopg quotes, never as formatted text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

Row = dict[str, Any]
Conn = psycopg.Connection[Any]

#: SensorThings property → readings column, for filtering and ordering Observations
OBSERVATION_COLUMNS = {"phenomenonTime": "time", "resultTime": "time", "result": "value"}
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class UnsupportedFilter(ValueError):
    """A `$filter` on Observations that the database query cannot express."""


def things(conn: Conn) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT device_id, kind, name, lon, lat, auto_registered, registered_at, metadata"
            " FROM devices ORDER BY device_id"
        )
        return list(cur.fetchall())


def datastreams(conn: Conn) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT l.id, l.device_id, l.metric, l.unit, l.first_time, l.last_time, l.last_value,"
            " l.last_value_text, COALESCE(d.kind, 'unknown') AS kind"
            " FROM datastream_latest l LEFT JOIN devices d USING (device_id) ORDER BY l.id"
        )
        return list(cur.fetchall())


def _literal_column(column: str, value: Any) -> sql.Composable:
    # a string compared with the result means the text value (SenML vs)
    if column == "value" and isinstance(value, str):
        return sql.Identifier("value_text")
    return sql.Identifier(column)


def observation_where(node: Any) -> sql.Composable:
    """The WHERE condition for a parsed `$filter` (nodes of `zhongdu.api._sta_query`)."""
    kind = type(node).__name__
    if kind == "Logical":
        return sql.SQL("({} {} {})").format(
            observation_where(node.left),
            sql.SQL("AND" if node.op == "and" else "OR"),
            observation_where(node.right),
        )
    if kind == "Not":
        return sql.SQL("(NOT {})").format(observation_where(node.operand))
    if kind == "Compare":
        left, right, op = node.left, node.right, node.op
        if type(left).__name__ != "Path":  # `5 lt result`: turn it round
            left, right = right, left
            op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
        if type(left).__name__ != "Path" or type(right).__name__ in ("Path", "Call", "Compare"):
            raise UnsupportedFilter("Observations: compare one property with a value, e.g. result gt 35")
        name = "/".join(left.parts)
        column = OBSERVATION_COLUMNS.get(name)
        if column is None:
            raise UnsupportedFilter(
                f"Observations: $filter on {name!r} is not served; use {', '.join(OBSERVATION_COLUMNS)}"
            )
        if column == "time" and not isinstance(right, datetime):
            raise UnsupportedFilter(f"{name} takes an ISO time like 2026-12-05T00:00:00Z; got {right!r}")
        if right is None:
            test = sql.SQL("IS NULL" if op == "eq" else "IS NOT NULL")
            return sql.SQL("({} {})").format(_literal_column(column, right), test)
        if op not in _SQL_OPS:
            raise UnsupportedFilter(f"unknown comparison {op!r}")
        return sql.SQL("({} {} {})").format(
            _literal_column(column, right), sql.SQL(_SQL_OPS[op]), sql.Literal(right)
        )
    raise UnsupportedFilter(
        "Observations: $filter takes comparisons of phenomenonTime, resultTime or result joined by and/or/not"
    )


def _where(streams: Sequence[tuple[str, str]] | None, where: sql.Composable | None) -> sql.Composable:
    conditions: list[sql.Composable] = []
    if streams is not None:  # each pair is a primary-key prefix: an index range per Datastream
        pairs = sql.SQL(", ").join(
            sql.SQL("({}, {})").format(sql.Literal(d), sql.Literal(m)) for d, m in streams
        )
        conditions.append(sql.SQL("(device_id, metric) IN ({})").format(pairs))
    if where is not None:
        conditions.append(where)
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)


def observations(
    conn: Conn,
    *,
    streams: Sequence[tuple[str, str]] | None,
    where: sql.Composable | None,
    order: Sequence[tuple[str, bool]],
    limit: int,
    offset: int,
) -> list[Row]:
    """Readings of the given (device, metric) pairs (None: all), as rows with `device_id`, `metric`,
    `time`, `value`, `value_text`. `order` is [(column, descending)]; time breaks ties."""
    if streams is not None and not streams:
        return []
    keys: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("DESC" if d else "ASC")) for c, d in order
    ]
    if not any(c == "time" for c, _ in order):
        keys.append(sql.SQL("time DESC"))
    query = sql.SQL(
        "SELECT device_id, metric, time, value, value_text FROM readings {} ORDER BY {} LIMIT {} OFFSET {}"
    ).format(
        _where(streams, where),
        sql.SQL(", ").join(keys),
        sql.Literal(limit),
        sql.Literal(offset),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        return list(cur.fetchall())


def count_observations(
    conn: Conn, *, streams: Sequence[tuple[str, str]] | None, where: sql.Composable | None
) -> int:
    if streams is not None and not streams:
        return 0
    query = sql.SQL("SELECT count(*) FROM readings {}").format(_where(streams, where))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def observation(conn: Conn, device_id: str, metric: str, time: datetime) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT device_id, metric, time, value, value_text FROM readings"
            " WHERE device_id = %s AND metric = %s AND time = %s",
            (device_id, metric, time),
        )
        return cur.fetchone()
