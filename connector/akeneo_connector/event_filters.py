"""Event Platform subscription filters: the grammar Akeneo documents, checked before use.

https://api.akeneo.com/event-platform/available-filters.html: fields ``user``, ``user_type``,
``attribute``, ``scope``, ``channel``, ``locale``; ``field="value"`` ("All values must be
wrapped in double quotes") or ``field in ["a", "b"]``; operators ``and``, ``or``, ``not``,
``in``; parentheses group. "Maximum length 500 characters", "Maximum operators 10"; "Complex
filters may be rejected if they: Have deeply nested conditions" (the page gives no depth: at
most ``MAX_DEPTH`` here). A filter this module refuses is one the simulated platform answers
400 and the operator refuses before calling the real one; ``matches`` is how the simulated
platform evaluates one on each event.

Kept in the shared kernel: the CRD's spec models validate ``spec.eventPlatform.filters``
with it, and the Event Platform client and the simulator apply it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

FIELDS: Final = frozenset({"user", "user_type", "attribute", "scope", "channel", "locale"})
MAX_LENGTH: Final = 500
MAX_OPERATORS: Final = 10
MAX_DEPTH: Final = 5
MAX_LIST: Final = 100

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_]+)|(?P<op>[=(),\[\]]))')


class FilterError(ValueError):
    """Why a filter is refused (quotes at most 40 characters of it)."""


@dataclass(frozen=True)
class Match:
    field: str
    values: tuple[str, ...]  # one for ``=``, the list for ``in``


@dataclass(frozen=True)
class Not:
    inner: Expr


@dataclass(frozen=True)
class Bool:
    op: str  # and | or
    left: Expr
    right: Expr


Expr = Match | Not | Bool


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise FilterError(f"unexpected character at position {pos + 1}")
        kind = found.lastgroup or ""
        out.append((kind, found.group(kind)))
        pos = found.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0
        self.operators = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            shown = "the end" if token is None else repr(token[1][:40])
            wanted = value or {"word": "a field", "string": "a quoted value"}.get(kind, kind)
            raise FilterError(f"expected {wanted}, found {shown}")
        self.at += 1
        return token[1]

    def operator(self) -> None:
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise FilterError(f"more than {MAX_OPERATORS} operators")

    def expr(self, depth: int) -> Expr:
        left = self.conjunction(depth)
        while self.peek() == ("word", "or"):
            self.take("word", "or")
            self.operator()
            left = Bool("or", left, self.conjunction(depth))
        return left

    def conjunction(self, depth: int) -> Expr:
        left = self.unary(depth)
        while self.peek() == ("word", "and"):
            self.take("word", "and")
            self.operator()
            left = Bool("and", left, self.unary(depth))
        return left

    def unary(self, depth: int) -> Expr:
        if self.peek() == ("word", "not"):
            self.take("word", "not")
            self.operator()
            return Not(self.unary(depth))
        if self.peek() == ("op", "("):
            if depth >= MAX_DEPTH:
                raise FilterError(f"conditions nested deeper than {MAX_DEPTH}")
            self.take("op", "(")
            inner = self.expr(depth + 1)
            self.take("op", ")")
            return inner
        field = self.take("word")
        if field not in FIELDS:
            raise FilterError(f"unknown filter field {field[:40]!r}")
        if self.peek() == ("word", "in"):
            self.take("word", "in")
            self.operator()
            self.take("op", "[")
            values = [_string(self.take("string"))]
            while self.peek() == ("op", ","):
                self.take("op", ",")
                values.append(_string(self.take("string")))
                if len(values) > MAX_LIST:
                    raise FilterError(f"a list of more than {MAX_LIST} values")
            self.take("op", "]")
            return Match(field, tuple(values))
        self.take("op", "=")
        following = self.peek()
        if following is not None and following[0] == "word":
            raise FilterError("values must be wrapped in double quotes")
        return Match(field, (_string(self.take("string")),))


def _string(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_filter(text: str) -> Expr:
    """The filter's expression tree; ``FilterError`` says why it is refused."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("a filter is a non-empty string")
    if len(text) > MAX_LENGTH:
        raise FilterError(f"a filter is at most {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    tree = parser.expr(0)
    rest = parser.peek()
    if rest is not None:
        raise FilterError(f"unexpected {rest[1][:40]!r}")
    return tree


def _changed_values(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(attribute, change)`` of a delta event's ``changes.values`` (other events: none)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key in ("product", "product_model"):
        resource = data.get(key)
        changes = resource.get("changes") if isinstance(resource, dict) else None
        values = changes.get("values") if isinstance(changes, dict) else None
        if isinstance(values, dict):
            for attribute, entries in values.items():
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict):
                        out.append((str(attribute), entry))
    return out


def matches(tree: Expr, data: dict[str, Any]) -> bool:
    """Whether an event with this CloudEvent ``data`` passes the filter (available-filters.html):
    ``user``/``user_type`` match ``data.author``; ``attribute`` a changed attribute of a delta
    event; ``scope``/``channel``/``locale`` the scope or locale of a changed value, which "also
    matches when the modified attribute(s) are non-scopable" (non-localizable). A field the event
    lacks matches nothing ("the filter may silently skip the event")."""
    if isinstance(tree, Bool):
        if tree.op == "and":
            return matches(tree.left, data) and matches(tree.right, data)
        return matches(tree.left, data) or matches(tree.right, data)
    if isinstance(tree, Not):
        return not matches(tree.inner, data)
    author = data.get("author")
    author = author if isinstance(author, dict) else {}
    if tree.field == "user":
        return author.get("identifier") in tree.values
    if tree.field == "user_type":
        return author.get("type") in tree.values
    changed = _changed_values(data)
    if tree.field == "attribute":
        return any(attribute in tree.values for attribute, _ in changed)
    key = "scope" if tree.field in ("scope", "channel") else "locale"
    return any(entry.get(key) is None or entry.get(key) in tree.values for _, entry in changed)
