"""Wire events of both formats -> ``NormalizedEvent``, event by event.

A delivery yields the events that normalized and the ones that did not (with their id when it
could be read), so the receiver can enqueue the good ones and name the bad ones in its answer.
Event Platform deliveries also yield the CloudEvents acknowledged without being stored: types
the connector does not handle, and handled types whose ``data`` names no resource.
The receiver takes them already as messages (``encode_*``): a legacy body whose events are all
valid goes through ``akeneo_pim.passthrough`` without building the models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from akeneo_connector import event_types
from akeneo_connector.event_types import HandledType, attribute_option_key
from akeneo_connector.normalized import (
    Action,
    EventMessage,
    NormalizedEvent,
    ResourceKind,
    SourceFormat,
)
from akeneo_connector.records import RecordError
from akeneo_pim import passthrough
from akeneo_pim.formats import (
    CloudEvent,
    LegacyEvent,
    ProductModelResource,
    ProductResource,
    ValidLegacyDelivery,
    raw_event_id,
    split_event_platform,
    split_events_api,
)


class EventError(ValueError):
    """One event cannot be normalized; the message is a short human reason (no payload)."""


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    event_id: str | None
    reason: str


@dataclass(frozen=True)
class IgnoredEvent:
    """A CloudEvent acknowledged without being stored (Event Platform only)."""

    index: int
    event_id: str
    type: str
    reason: str  # UNHANDLED_TYPE, MISSING_ID or INVALID_ID


@dataclass
class Delivery:
    events: list[NormalizedEvent] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    ignored: list[IgnoredEvent] = field(default_factory=list)


@dataclass
class EncodedDelivery:
    """A delivery as the receiver publishes it: messages of the valid events, and the others."""

    messages: list[EventMessage] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    ignored: list[IgnoredEvent] = field(default_factory=list)

    @classmethod
    def of(cls, delivery: Delivery) -> EncodedDelivery:
        return cls(
            [e.to_event_message() for e in delivery.events], delivery.rejected, delivery.ignored
        )


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return f"{where}: {first['msg']}"


def normalize_legacy(
    event: LegacyEvent, connection: str, received_at: datetime | None = None
) -> NormalizedEvent:
    resource = event.data.resource
    ref: ProductResource | ProductModelResource
    try:
        if event.is_product_model:
            kind = ResourceKind.PRODUCT_MODEL
            ref = ProductModelResource.model_validate(resource)
        else:
            kind = ResourceKind.PRODUCT
            ref = ProductResource.model_validate(resource)
    except ValidationError as exc:
        raise EventError(f"data.resource.{_validation_reason(exc)}") from None
    key = ref.key
    if key is None:
        want = "code" if event.is_product_model else "uuid or identifier"
        raise EventError(f"data.resource: missing {want}")
    removed = event.action.endswith(".removed")
    return NormalizedEvent.model_validate(  # checked: the values come from the wire
        {
            "connection": connection,
            "source": SourceFormat.EVENTS_API,
            "event_id": event.event_id,
            "action": Action.DELETE if removed else Action.UPSERT,
            "kind": kind,
            "key": key,
            "version": ref.updated or event.event_datetime,
            "author": event.author,
            "resource": None if removed else resource,
            "received_at": received_at,
        }
    )


class Ignored(Exception):
    """A CloudEvent acknowledged and not stored; ``reason`` is a machine word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UNHANDLED_TYPE = "unhandled_type"  # not in event_types.HANDLED: another resource, or a new type
MISSING_ID = "missing_id"  # a handled type whose data does not name the resource
INVALID_ID = "invalid_id"  # ... or names it with something that is not a usable id
ID_MAX = 255  # Akeneo's own bound on product identifiers; codes are shorter
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DELTA = ".updated.delta"
# An update happens before its event is published: an updated_at later than the event's own
# time by more than any clock skew is not trusted (it would outrank every later change).
_SKEW = timedelta(hours=1)


def _id(holder: Any, field: str) -> str:
    """The id ``holder[field]``: a non-empty string, bounded, with no control character."""
    value = holder.get(field) if isinstance(holder, dict) else None
    if value is None or value == "":
        raise Ignored(MISSING_ID)
    if not isinstance(value, str) or len(value) > ID_MAX or _CONTROL.search(value):
        raise Ignored(INVALID_ID)
    return value


def _ref(data: dict[str, Any], handled: HandledType) -> Any:
    ref = data.get(handled.data_key)
    if ref is None and handled.kind is ResourceKind.PRODUCT_MODEL:  # spellings seen in the wild
        ref = data.get("productModel", data.get("product-model"))
    return ref


def cloud_event_key(handled: HandledType, data: Any) -> str:
    """The guard key a handled type's ``data`` names; ``Ignored`` when it names none.

    Products: ``uuid``, else ``identifier`` (``send_product_identifier`` subscriptions add
    it); attribute options: ``<attribute>/<option>``; every other kind: its ``code``.
    """
    if not isinstance(data, dict):
        raise Ignored(MISSING_ID)
    ref = _ref(data, handled)
    if handled.kind is ResourceKind.PRODUCT:
        try:
            return _id(ref, "uuid")
        except Ignored as exc:
            if exc.reason == INVALID_ID:
                raise
            return _id(ref, "identifier")
    if handled.kind is ResourceKind.ATTRIBUTE_OPTION:
        attribute = ref.get("attribute") if isinstance(ref, dict) else None
        return attribute_option_key(_id(attribute, "code"), _id(ref, "code"))
    return _id(ref, handled.id_field)


def _delta_version(ref: Any) -> datetime | None:
    """``updated_at`` of an ``updated.delta`` event, when it parses: the resource's own version.

    Akeneo's reference shows it as PHP serialises a DateTime,
    ``{"date": "2024-10-14 13:01:21.000000", "timezone": "UTC"}``; an ISO 8601 string is
    taken too. Anything else falls back to the CloudEvent's ``time``.
    """
    value: Any = ref.get("updated_at") if isinstance(ref, dict) else None
    zone: tzinfo | None = UTC  # a bare naive string: UTC, as the SaaS PIM writes its dates
    if isinstance(value, dict):
        value, zone = value.get("date"), _zone(value.get("timezone"))
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if zone is None:
            return None
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def _zone(name: Any) -> tzinfo | None:
    """A PHP DateTime's ``timezone``: ``UTC``, an offset (``+02:00``) or an IANA name."""
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return None
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    if name[0] in "+-":
        try:
            return datetime.fromisoformat(f"2000-01-01T00:00:00{name}").tzinfo
        except ValueError:
            return None
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None


def normalize_cloud_event(
    event: CloudEvent, connection: str, received_at: datetime | None = None
) -> NormalizedEvent:
    """A CloudEvent of a handled type -> ``NormalizedEvent``; ``Ignored`` for any other."""
    handled = event_types.handled(event.type)
    if handled is None:
        raise Ignored(UNHANDLED_TYPE)
    key = cloud_event_key(handled, event.data)
    data: dict[str, Any] = event.data  # a dict: cloud_event_key checked it
    version = event.time
    if event.type.endswith(_DELTA):
        own = _delta_version(_ref(data, handled))
        if own is not None and own <= version + _SKEW:
            version = own
    author = data.get("author")
    identifier = author.get("identifier") if isinstance(author, dict) else None
    return NormalizedEvent.model_validate(  # checked: the values come from the wire
        {
            "connection": connection,
            "source": SourceFormat.EVENT_PLATFORM,
            "event_id": event.id,
            "action": handled.action,
            "kind": handled.kind,
            "key": key,
            "version": version,
            "author": identifier if isinstance(identifier, str) else None,
            "resource": None,  # Event Platform data is light: the worker hydrates
            "received_at": received_at,
        }
    )


def _normalize_all(
    raws: list[Any],
    id_field: str,
    convert: Callable[[Any], NormalizedEvent],
) -> Delivery:
    delivery = Delivery()
    for index, raw in enumerate(raws):
        try:
            delivery.events.append(convert(raw))
        except ValidationError as exc:
            reason = _validation_reason(exc)
            delivery.rejected.append(RejectedEvent(index, raw_event_id(raw, id_field), reason))
        except (EventError, RecordError) as exc:  # RecordError: no NormalizedEvent of it
            delivery.rejected.append(RejectedEvent(index, raw_event_id(raw, id_field), str(exc)))
    return delivery


def normalize_events_api(
    body: bytes, connection: str, received_at: datetime | None = None
) -> Delivery:
    """A legacy body -> normalized and rejected events; ``PayloadError`` if the body is unusable.

    The body is parsed once and its events counted before any of them is validated: a body
    of a million ``{}`` costs one parse, not a million validation errors.
    """
    raws = split_events_api(body)
    try:
        valid = ValidLegacyDelivery.model_validate({"events": raws})
    except ValidationError:
        pass  # some event is off: sort it out event by event below
    else:
        delivery = Delivery()
        for index, event in enumerate(valid.events):
            try:
                delivery.events.append(normalize_legacy(event, connection, received_at))
            except EventError as exc:
                delivery.rejected.append(RejectedEvent(index, event.event_id, str(exc)))
        return delivery
    return _normalize_all(
        raws,
        "event_id",
        lambda raw: normalize_legacy(LegacyEvent.model_validate(raw), connection, received_at),
    )


def normalize_event_platform(
    body: bytes, connection: str, received_at: datetime | None = None
) -> Delivery:
    """An Event Platform body -> normalized, ignored and rejected events.

    ``PayloadError`` if the body is unusable as a whole. A member is rejected only when it is
    not a CloudEvent; a CloudEvent that is not stored is ignored (see ``Ignored``).
    """
    delivery = Delivery()
    for index, raw in enumerate(split_event_platform(body)):
        try:
            event = CloudEvent.model_validate(raw)
        except ValidationError as exc:
            reason = _validation_reason(exc)
            delivery.rejected.append(RejectedEvent(index, raw_event_id(raw, "id"), reason))
            continue
        try:
            delivery.events.append(normalize_cloud_event(event, connection, received_at))
        except Ignored as exc:
            delivery.ignored.append(IgnoredEvent(index, event.id, event.type, exc.reason))
    return delivery


def encode_events_api(
    body: bytes, connection: str, received_at: datetime | None = None
) -> EncodedDelivery:
    """``normalize_events_api`` as messages; ``PayloadError`` if the body is unusable."""
    messages = passthrough.legacy_messages(body, connection, received_at)
    if messages is not None:
        return EncodedDelivery(messages)
    return EncodedDelivery.of(normalize_events_api(body, connection, received_at))


def encode_event_platform(
    body: bytes, connection: str, received_at: datetime | None = None
) -> EncodedDelivery:
    """``normalize_event_platform`` as messages; ``PayloadError`` if the body is unusable."""
    return EncodedDelivery.of(normalize_event_platform(body, connection, received_at))
