"""Legacy deliveries straight to messages, for the common body whose events are all valid.

The full path (``normalize_events_api``) builds pydantic models of every event and of every
resource, then serialises each ``NormalizedEvent`` again: most of a request's CPU, for a
payload the receiver only carries. Here only the envelope fields the normalized event needs
are decoded (msgspec, unknown fields skipped), and each resource's JSON goes into the message
byte for byte, inside the same JSON object ``NormalizedEvent.from_message`` reads.

This path may decline a body (``None``) but must never accept one the full path rejects, nor
produce a different event; on any doubt it declines and the full path decides, with its
precise reasons. ``tests/unit/pim_formats/test_passthrough.py`` checks that against the full
path, including bodies that differ from real ones in one field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from akeneo_connector.normalized import Action, EventMessage, ResourceKind, SourceFormat
from akeneo_pim.formats import MAX_EVENTS_PER_REQUEST, LegacyAction, Timestamp

EVENT_ID_MAX = 200  # as formats.EventId
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# msgspec skips a resource without building it, checking its syntax but not what the full
# path's and the worker's parser (jiter, through pydantic) also limits: nesting depth (200
# levels under the message's own object), integers of more than 4,300 digits, and UTF-8
# (checked for the whole body). A resource under both bounds below cannot exceed them; a
# larger one is parsed by jiter itself. Nothing else is skipped: an envelope field this does
# not know sends the body to the full path (the legacy format is frozen, so that is rare).
_MAX_CHEAP_BYTES = 4300
_MAX_CHEAP_OPENINGS = 190
# the full path's own parsing, called without TypeAdapter's Python wrapper
_TIMESTAMP = TypeAdapter(Timestamp).validator.validate_python
_SOURCE = SourceFormat.EVENTS_API.value
_UPSERT, _DELETE = Action.UPSERT.value, Action.DELETE.value
_PRODUCT_KIND, _PRODUCT_MODEL_KIND = ResourceKind.PRODUCT.value, ResourceKind.PRODUCT_MODEL.value


class _ProductRef(msgspec.Struct):
    """What ``formats.ProductResource`` validates (other fields are skipped)."""

    uuid: str | None = None
    identifier: str | None = None
    updated: str | None = None
    quantified_associations: dict[str, Any] | list[Any] | None = None


class _ProductModelRef(msgspec.Struct):
    """What ``formats.ProductModelResource`` validates."""

    code: str | None = None
    updated: str | None = None


class _Data(msgspec.Struct, forbid_unknown_fields=True):
    resource: msgspec.Raw


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    """``formats.LegacyEvent``; UNSET tells a missing date field from a null one."""

    action: LegacyAction
    event_id: str
    data: _Data
    event_datetime: str | msgspec.UnsetType = msgspec.UNSET
    event_date: str | msgspec.UnsetType = msgspec.UNSET
    author: str | None = None
    author_type: str | None = None
    pim_source: str | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    # more events than allowed: declined, the full path answers ``too_many_events``
    events: Annotated[list[_Event], msgspec.Meta(max_length=MAX_EVENTS_PER_REQUEST)]


class _Message(msgspec.Struct, omit_defaults=True):
    """``NormalizedEvent``'s JSON (``exclude_none``), with the resource as raw JSON."""

    connection: str
    source: str
    event_id: str
    action: str
    kind: str
    key: str
    version: datetime
    author: str | None = None
    resource: msgspec.Raw | None = None
    received_at: datetime | None = None


_BODY = msgspec.json.Decoder(_Body)
_PRODUCT = msgspec.json.Decoder(_ProductRef)
_PRODUCT_MODEL = msgspec.json.Decoder(_ProductModelRef)
_ENCODER = msgspec.json.Encoder()


class _Decline(Exception):
    """This body is for the full path."""


def legacy_messages(
    body: bytes, connection: str, received_at: datetime | None = None
) -> list[EventMessage] | None:
    """The messages of a legacy body whose events are all valid; else ``None``."""
    try:
        if not body.isascii():
            body.decode()  # strict UTF-8, as the full path's parser
        events = _BODY.decode(body).events
        return [_message(event, connection, received_at) for event in events]
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError, _Decline):
        return None  # msgspec raises RecursionError for objects nested past its limit


def _message(event: _Event, connection: str, received_at: datetime | None) -> EventMessage:
    event_id = event.event_id
    if not 0 < len(event_id) <= EVENT_ID_MAX or _CONTROL.search(event_id):
        raise _Decline
    date = event.event_datetime if event.event_datetime is not msgspec.UNSET else event.event_date
    if date is msgspec.UNSET:
        raise _Decline
    event_datetime = _timestamp(date)
    raw = event.data.resource
    key: str | None
    if event.action.startswith("product_model."):
        kind = ResourceKind.PRODUCT_MODEL
        model = _PRODUCT_MODEL.decode(raw)
        key, updated = model.code or None, model.updated
    else:
        kind = ResourceKind.PRODUCT
        product = _PRODUCT.decode(raw)
        key, updated = product.uuid or product.identifier or None, product.updated
    if key is None:
        raise _Decline
    version = event_datetime if updated is None else _timestamp(updated)
    removed = event.action.endswith(".removed")
    if not removed:
        _check_parseable(raw)
    message = _Message(
        connection,
        _SOURCE,
        event_id,
        _DELETE if removed else _UPSERT,
        _PRODUCT_KIND if kind is ResourceKind.PRODUCT else _PRODUCT_MODEL_KIND,
        key,
        version,
        event.author,
        None if removed else raw,
        received_at,
    )
    return EventMessage(kind, event_id, _ENCODER.encode(message))


def _timestamp(value: str) -> datetime:
    try:
        return cast(datetime, _TIMESTAMP(value))
    except ValidationError:
        raise _Decline from None


def _check_parseable(raw: msgspec.Raw) -> None:
    """Decline a resource the worker's parser would refuse (see the bounds above)."""
    data = bytes(raw)
    if len(data) <= _MAX_CHEAP_BYTES and data.count(b"{") + data.count(b"[") <= _MAX_CHEAP_OPENINGS:
        return
    try:
        from_json(data)
    except ValueError:
        raise _Decline from None
