"""Small validated records (frozen dataclasses) with JSON in and out, without pydantic.

The receiver and the worker keep their state and messages in these: the stream's message
(``NormalizedEvent``), guard and budget entries, reports. pydantic's import alone costs an
idle pod some 7 MB (``bench/footprint.py``), for records this module checks as well: types
from the annotations (``str``, ``int``, ``bool``, ``float``, aware ``datetime``, ``StrEnum``,
``dict``, ``list``, ``tuple[str, ...]``, ``Any``, ``X | None``), lengths and aliases from
``field(metadata=meta(...))``, extra keys ignored or (``FORBID_EXTRA``) refused. The method
names are pydantic's, so callers read the same. Datetimes are written as pydantic writes them
(``2024-01-01T00:00:00.400000Z``; an offset other than UTC kept); JSON input takes ISO 8601
strings (``Z`` or an offset; a naive one is refused) and nothing else.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import datetime
from typing import Any, ClassVar, Self, cast

_MISSING = dataclasses.MISSING


class RecordError(ValueError):
    """A value does not fit its record; the message says where (``field: why``)."""

    def __init__(self, where: str, why: str) -> None:
        # ``where`` may be a key of the input: bounded and on one line (it ends up in logs
        # and dead-letter headers)
        where = "".join(c if c.isprintable() else "?" for c in where[:100])
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


def meta(
    *, alias: str | None = None, min_length: int | None = None, max_length: int | None = None
) -> dict[str, Any]:
    """A field's metadata: ``field(default=..., metadata=meta(max_length=200))``."""
    return {"alias": alias, "min_length": min_length, "max_length": max_length}


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str  # in JSON (the alias, else the name)
    options: tuple[Any, ...]  # the types allowed, ``X | None`` -> ``(X, NoneType)``
    required: bool
    min_length: int | None
    max_length: int | None
    exact: frozenset[type]  # a value of one of these types is taken as it is (fast path)
    parses: bool  # a JSON value may need converting (datetime, tuple, nested record)


class Record:
    """Base of a ``@dataclasses.dataclass(frozen=True)`` record: validated when built."""

    FORBID_EXTRA: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for f in _fields(type(self)):
            given = getattr(self, f.name)
            value = _check(f, given, f.name)
            if value is not given:
                object.__setattr__(self, f.name, value)

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise RecordError(cls.__name__, "expected an object")
        fields = _fields(cls)
        values: dict[str, Any] = {}
        for f in fields:
            if f.key in data:
                values[f.name] = _parse(f, data[f.key])
            elif f.name in data:
                values[f.name] = _parse(f, data[f.name])
            elif f.required:
                raise RecordError(f.key, "Field required")
        if cls.FORBID_EXTRA:
            known = {f.key for f in fields} | {f.name for f in fields}
            if extra := sorted(str(k) for k in data if k not in known):
                raise RecordError(extra[0], "extra field not allowed")
        return cls(**values)

    @classmethod
    def model_validate_json(cls, data: bytes | str) -> Self:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RecordError(cls.__name__, f"invalid JSON ({exc.__class__.__name__})") from None
        return cls.model_validate(doc)

    def model_dump(
        self,
        *,
        mode: str = "python",
        exclude_none: bool = False,
        exclude_defaults: bool = False,
        by_alias: bool = False,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, dc in zip(_fields(type(self)), dataclasses.fields(cast(Any, self)), strict=True):
            value = getattr(self, f.name)
            if exclude_none and value is None:
                continue
            if exclude_defaults and dc.default is not _MISSING and value == dc.default:
                continue
            out[f.key if by_alias else f.name] = _jsonable(value) if mode == "json" else value
        return out

    def model_dump_json(
        self, *, exclude_none: bool = False, exclude_defaults: bool = False, by_alias: bool = False
    ) -> str:
        doc = self.model_dump(
            mode="json",
            exclude_none=exclude_none,
            exclude_defaults=exclude_defaults,
            by_alias=by_alias,
        )
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        """A copy with ``update`` applied, validated like any other."""
        return cast(Self, dataclasses.replace(cast(Any, self), **(update or {})))


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = _read_fields(cls)
    return known


def _read_fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for dc in dataclasses.fields(cls):
        m = dc.metadata
        required = dc.default is _MISSING and dc.default_factory is _MISSING
        options = _options(hints[dc.name])
        exact = frozenset(
            o
            for o in options
            if o in (str, int, bool, float, dict, list)
            or (isinstance(o, type) and issubclass(o, enum.Enum))
        )
        parses = any(
            o in (datetime, tuple) or (isinstance(o, type) and issubclass(o, Record))
            for o in options
        )
        alias = m.get("alias") or dc.name
        lengths = m.get("min_length"), m.get("max_length")
        out.append(_Field(dc.name, alias, options, required, *lengths, exact, parses))
    return tuple(out)


def _parse(f: _Field, value: Any) -> Any:
    """A JSON value into the field's type (a datetime from its text); ``_check`` follows."""
    if value is None or not f.parses:
        return value
    for option in f.options:
        if option is datetime and isinstance(value, str):
            return _datetime(value, f.key)
        if option is tuple and isinstance(value, list):
            return tuple(value)
        if isinstance(option, type) and issubclass(option, Record) and isinstance(value, dict):
            return option.model_validate(value)
    return value


def _datetime(text: str, where: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(where, "invalid datetime") from None


def _options(hint: Any) -> tuple[Any, ...]:
    """``X | None`` -> ``(X, NoneType)``; ``tuple[str, ...]`` -> ``(tuple,)``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(o for h in typing.get_args(hint) for o in _options(h))
    origin = typing.get_origin(hint)
    return (origin if origin is not None else hint,)


def _check(f: _Field, value: Any, where: str) -> Any:
    options = f.options
    if value is None:
        if type(None) in options:
            return None
        raise RecordError(where, "must not be null")
    if type(value) not in f.exact:
        value = _typed(options, value, where)
    if f.min_length is not None or f.max_length is not None:
        size = len(value)
        if f.min_length is not None and size < f.min_length:
            raise RecordError(where, f"at least {f.min_length} long")
        if f.max_length is not None and size > f.max_length:
            raise RecordError(where, f"at most {f.max_length} long")
    return value


def _typed(options: tuple[Any, ...], value: Any, where: str) -> Any:
    for option in options:
        if option is Any:
            return value
        if option is datetime:
            if isinstance(value, datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise RecordError(where, "timezone required")
                return value
            continue
        if isinstance(option, type) and issubclass(option, enum.Enum):
            try:
                return option(value)
            except ValueError:
                continue
        if option is bool:
            if isinstance(value, bool):
                return value
            continue
        if option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            continue
        if option is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            continue
        if option is tuple:
            if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            continue
        if isinstance(option, type) and isinstance(value, option):
            return value
    names = "|".join(getattr(o, "__name__", str(o)) for o in options)
    raise RecordError(where, f"expected {names}, got {type(value).__name__}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        text = value.isoformat()
        if value.utcoffset() is not None and not value.utcoffset():
            text = text.removesuffix("+00:00") + "Z"
        return text
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Record):
        return value.model_dump(mode="json")
    return value


class SecretStr:
    """A secret value whose ``str`` and ``repr`` never show it (as pydantic's ``SecretStr``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
