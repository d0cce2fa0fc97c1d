"""Validated records (``msgspec.Struct``) with pydantic's method names, without pydantic.

The receiver and the worker keep their state and messages in these: the stream's message
(``NormalizedEvent``), guard and budget entries, reports. pydantic's import alone costs an
idle pod some 7 MB (``bench/footprint.py``); msgspec checks the same rules (types, aware
datetimes, enums, lengths, renamed keys, unknown keys refused where a record says so) at a
fraction of it. A record is checked where it is read (``model_validate*``) and copied
(``model_copy``); built in code, it is trusted as typed. Datetimes are written as pydantic
wrote them (``2024-01-01T00:00:00.400000Z``; an offset other than UTC kept), so entries of
either era read in both.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

import msgspec

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
"""A datetime that must carry its offset (``Z`` or ``+hh:mm`` in JSON)."""

_INPUT_VALUE = re.compile(r"(?<=Invalid enum value) .*?(?= - at `|$)")


class RecordError(msgspec.ValidationError):
    """A value does not fit its record: msgspec's message (rule and path), made fit for logs
    and dead-letter headers: on one line, bounded, without the offending value."""


def _error(exc: msgspec.DecodeError) -> RecordError:
    text = _INPUT_VALUE.sub("", str(exc))
    text = "".join(c if c.isprintable() else "?" for c in text)  # a key of the input
    return RecordError(text if len(text) <= 150 else text[:147] + "...")


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of a record; ``forbid_unknown_fields``/``omit_defaults`` per subclass."""

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise _error(exc) from None

    @classmethod
    def model_validate_json(cls, data: bytes | str) -> Self:
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:  # not JSON, or not this record
            raise _error(exc) from None

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        if mode == "json":
            return msgspec.to_builtins(self)  # type: ignore[no-any-return]
        return msgspec.structs.asdict(self)

    def model_copy(self, *, update: dict[str, Any]) -> Self:
        """A copy with ``update`` applied, checked like a record read."""
        changed = msgspec.structs.replace(self, **update)
        return type(self).model_validate(msgspec.to_builtins(changed))

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)


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
