"""OData query options of OGC SensorThings API 1.1 (§9.3): `$filter`, `$orderby`, `$select`,
`$expand` (nested), `$top`, `$skip`, `$count`, parsed into plain data a route can execute.

A hand-written recursive-descent parser, because the grammar is small and no maintained Python
library parses SensorThings' OData dialect (unquoted ISO times, `substringof`, paths through
navigation properties such as `Thing/name`). Every syntax error names the option, the position
and what was expected: a client sees a 400 it can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Call",
    "Compare",
    "Expand",
    "Logical",
    "Not",
    "OrderKey",
    "Path",
    "QueryError",
    "QueryOptions",
    "parse_options",
]

MAX_TOP = 10_000
DEFAULT_TOP = 100


class QueryError(ValueError):
    """A query option the service cannot understand (answered with 400)."""


@dataclass(frozen=True)
class Path:
    """A property path such as `name`, `properties/kind` or `Thing/name`."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class Compare:
    op: str  # eq ne gt ge lt le
    left: Any
    right: Any


@dataclass(frozen=True)
class Logical:
    op: str  # and / or
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class Call:
    name: str  # startswith endswith substringof contains tolower toupper length
    args: tuple[Any, ...]


@dataclass(frozen=True)
class OrderKey:
    path: Path
    descending: bool


@dataclass
class QueryOptions:
    filter: Any = None
    orderby: list[OrderKey] = field(default_factory=list)
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    top: int = DEFAULT_TOP
    top_given: bool = False
    skip: int = 0
    count: bool = False


@dataclass
class Expand:
    """`$expand=Datastreams($filter=…;$top=1)`; `Datastreams/Observations` nests a second one."""

    name: str
    options: QueryOptions


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>'(?:[^']|'')*')
    | (?P<name>@iot\.id|[A-Za-z_][A-Za-z0-9_]*(?:/(?:@iot\.id|[A-Za-z_][A-Za-z0-9_]*))*)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {
    "startswith": 2,
    "endswith": 2,
    "substringof": 2,
    "contains": 2,
    "tolower": 1,
    "toupper": 1,
    "length": 1,
}


class _Parser:
    def __init__(self, text: str, option: str) -> None:
        self.text = text
        self.option = option
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise self.error(f"unexpected character {text[pos : pos + 1]!r}", pos)
            kind = match.lastgroup
            assert kind is not None
            raw = match.group(kind)
            self.tokens.append((kind, self._value(kind, raw), match.start(kind)))
            pos = match.end()
        self.i = 0

    @staticmethod
    def _value(kind: str, raw: str) -> Any:
        if kind == "time":
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if kind == "number":
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        if kind == "string":
            return raw[1:-1].replace("''", "'")
        return raw

    def error(self, message: str, pos: int | None = None) -> QueryError:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return QueryError(f"{self.option}: {message} at position {pos} of {self.text!r}")

    def peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, Any, int]:
        token = self.peek()
        if token is None:
            raise self.error("unexpected end")
        self.i += 1
        return token

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token[0] != "punct" or token[1] != char:
            raise self.error(f"expected {char!r}", token[2])

    def at_word(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] == "name" and token[1] in words:
            return str(token[1])
        return None

    def parse(self) -> Any:
        node = self.expression()
        if self.peek() is not None:
            raise self.error("expected the end or 'and'/'or'")
        return node

    def expression(self) -> Any:
        node = self.conjunction()
        while self.at_word("or"):
            self.take()
            node = Logical("or", node, self.conjunction())
        return node

    def conjunction(self) -> Any:
        node = self.negation()
        while self.at_word("and"):
            self.take()
            node = Logical("and", node, self.negation())
        return node

    def negation(self) -> Any:
        if self.at_word("not"):
            self.take()
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.operand()
        op = self.at_word(*_COMPARE)
        if op is None:
            return left
        self.take()
        return Compare(op, left, self.operand())

    def operand(self) -> Any:
        kind, value, pos = self.take()
        if kind == "punct" and value == "(":
            node = self.expression()
            self.expect_punct(")")
            return node
        if kind in ("time", "number", "string"):
            return value
        if kind == "name":
            if value in ("true", "false"):
                return value == "true"
            if value == "null":
                return None
            following = self.peek()
            if value in _FUNCTIONS and following is not None and following[1] == "(":
                self.take()
                args = [self.expression()]
                while (token := self.peek()) is not None and token[1] == ",":
                    self.take()
                    args.append(self.expression())
                self.expect_punct(")")
                if len(args) != _FUNCTIONS[value]:
                    raise self.error(f"{value}() takes {_FUNCTIONS[value]} argument(s)", pos)
                return Call(value, tuple(args))
            return Path(tuple(value.split("/")))
        raise self.error(f"unexpected {value!r}", pos)


def parse_filter(text: str) -> Any:
    """The `$filter` expression as a tree of Compare / Logical / Not / Call / Path / literals."""
    return _Parser(text, "$filter").parse()


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"unbalanced ')' in {text!r}")
        elif not quoted and depth == 0 and char == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise QueryError(f"unbalanced parentheses or quotes in {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_orderby(text: str) -> list[OrderKey]:
    keys = []
    for item in _split_top_level(text, ","):
        words = item.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError(f"$orderby: expected 'property [asc|desc]', got {item!r}")
        keys.append(
            OrderKey(Path(tuple(words[0].split("/"))), len(words) == 2 and words[1].lower() == "desc")
        )
    return keys


def _parse_int(option: str, text: str, *, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{option} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise QueryError(f"{option} must be between {low} and {high}, got {value}")
    return value


def _parse_expand(text: str) -> list[Expand]:
    expands = []
    for item in _split_top_level(text, ","):
        match = re.fullmatch(r"([A-Za-z]+(?:/[A-Za-z]+)*)\s*(?:\((.*)\))?", item, re.DOTALL)
        if match is None:
            raise QueryError(f"$expand: expected 'Name' or 'Name($option=…;…)', got {item!r}")
        names = match[1].split("/")
        inner = parse_options(dict(_inner_options(match[2] or "")))
        # `A/B(opts)` expands A with B(opts) inside it
        expand = Expand(names[-1], inner)
        for name in reversed(names[:-1]):
            expand = Expand(name, QueryOptions(expand=[expand]))
        expands.append(expand)
    return expands


def _inner_options(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in _split_top_level(text, ";"):
        name, eq, value = part.partition("=")
        if not eq or not name.strip().startswith("$"):
            raise QueryError(f"$expand: expected '$option=value' inside parentheses, got {part!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


KNOWN_OPTIONS = {"$filter", "$orderby", "$select", "$expand", "$top", "$skip", "$count", "$resultFormat"}


def parse_options(params: dict[str, str]) -> QueryOptions:
    """Query options from the request's `$…` parameters (or one `$expand` item's parentheses)."""
    unknown = sorted(k for k in params if k.startswith("$") and k not in KNOWN_OPTIONS)
    if unknown:
        raise QueryError(f"unknown query option {unknown[0]}; known: {', '.join(sorted(KNOWN_OPTIONS))}")
    if params.get("$resultFormat", "") not in ("", "default"):
        raise QueryError("$resultFormat: only the default format is served")
    options = QueryOptions()
    if (text := params.get("$filter")) is not None:
        options.filter = parse_filter(text)
    if (text := params.get("$orderby")) is not None:
        options.orderby = _parse_orderby(text)
    if (text := params.get("$select")) is not None:
        options.select = [s.strip() for s in text.split(",") if s.strip()]
        if not options.select:
            raise QueryError("$select: name at least one property")
    if (text := params.get("$expand")) is not None:
        options.expand = _parse_expand(text)
    if (text := params.get("$top")) is not None:
        options.top = _parse_int("$top", text, low=0, high=MAX_TOP)
        options.top_given = True
    if (text := params.get("$skip")) is not None:
        options.skip = _parse_int("$skip", text, low=0, high=10**9)
    if (text := params.get("$count")) is not None:
        if text not in ("true", "false"):
            raise QueryError(f"$count must be true or false, got {text!r}")
        options.count = text == "true"
    return options
