"""Wire events of both formats -> ``NormalizedEvent``, event by event.

A delivery yields the events that normalized and the ones that did not (with their id when it
could be read), so the receiver can enqueue the good ones and name the bad ones in its answer.
The receiver takes them already as messages (``encode_*``): a legacy body whose events are all
valid goes through ``akeneo_pim.passthrough`` without building the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

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
from akeneo_pim.normalized import (
    Action,
    EventMessage,
    NormalizedEvent,
    ResourceKind,
    SourceFormat,
)


class EventError(ValueError):
    """One event cannot be normalized; the message is a short human reason (no payload)."""


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    event_id: str | None
    reason: str


@dataclass
class Delivery:
    events: list[NormalizedEvent] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)


@dataclass
class EncodedDelivery:
    """A delivery as the receiver publishes it: messages of the valid events, and the others."""

    messages: list[EventMessage] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)

    @classmethod
    def of(cls, delivery: Delivery) -> EncodedDelivery:
        return cls([e.to_event_message() for e in delivery.events], delivery.rejected)


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
    return NormalizedEvent(
        connection=connection,
        source=SourceFormat.EVENTS_API,
        event_id=event.event_id,
        action=Action.DELETE if removed else Action.UPSERT,
        kind=kind,
        key=key,
        version=ref.updated or event.event_datetime,
        author=event.author,
        resource=None if removed else resource,
        received_at=received_at,
    )


def normalize_cloud_event(
    event: CloudEvent, connection: str, received_at: datetime | None = None
) -> NormalizedEvent:
    try:
        resource, verb = event.resource_and_verb()
    except ValueError as exc:
        raise EventError(str(exc)) from None
    ref = event.data.product if resource == "product" else event.data.product_model
    key = ref.key if ref is not None else None
    if key is None:
        want = "product.uuid" if resource == "product" else "product_model.code"
        raise EventError(f"data: missing {want}")
    return NormalizedEvent(
        connection=connection,
        source=SourceFormat.EVENT_PLATFORM,
        event_id=event.id,
        action=Action.DELETE if verb == "deleted" else Action.UPSERT,
        kind=ResourceKind(resource),
        key=key,
        version=event.time,
        author=event.data.author.identifier if event.data.author else None,
        resource=None,  # Event Platform data is light: the worker hydrates
        received_at=received_at,
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
        except EventError as exc:
            delivery.rejected.append(RejectedEvent(index, raw_event_id(raw, id_field), str(exc)))
    return delivery


def normalize_events_api(
    body: bytes, connection: str, received_at: datetime | None = None
) -> Delivery:
    """A legacy body -> normalized and rejected events; ``PayloadError`` if the body is unusable."""
    if body.strip():
        try:
            valid = ValidLegacyDelivery.model_validate_json(body)
        except ValidationError:
            pass  # some event (or the body) is off: sort it out event by event below
        else:
            delivery = Delivery()
            for index, event in enumerate(valid.events):
                try:
                    delivery.events.append(normalize_legacy(event, connection, received_at))
                except EventError as exc:
                    delivery.rejected.append(RejectedEvent(index, event.event_id, str(exc)))
            return delivery
    return _normalize_all(
        split_events_api(body),
        "event_id",
        lambda raw: normalize_legacy(LegacyEvent.model_validate(raw), connection, received_at),
    )


def normalize_event_platform(
    body: bytes, connection: str, received_at: datetime | None = None
) -> Delivery:
    """An Event Platform body -> normalized and rejected events; ``PayloadError`` if unusable."""
    return _normalize_all(
        split_event_platform(body),
        "id",
        lambda raw: normalize_cloud_event(CloudEvent.model_validate(raw), connection, received_at),
    )


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
