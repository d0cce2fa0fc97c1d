"""The one internal event type, published by receiver and reconcile job, consumed by the worker.

Both Akeneo delivery formats and the reconcile job's synthetic events are mapped onto this,
so the worker's ordering guard serves all paths alike. It travels through JetStream as the
JSON of this model (``to_message`` / ``from_message``); the JetStream message id is
``event_id``, so a re-delivered event inside the duplicate window is stored once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from msgspec import Meta

from akeneo_connector.records import AwareDatetime, Record


class SourceFormat(StrEnum):
    EVENTS_API = "events_api"  # legacy {"events": [...]} deliveries
    EVENT_PLATFORM = "event_platform"  # CloudEvents
    RECONCILE = "reconcile"  # synthetic events from the REST reconciliation


class ResourceKind(StrEnum):
    PRODUCT = "product"
    PRODUCT_MODEL = "product_model"
    # The catalog structure: announced by the Event Platform (not by the legacy Events API),
    # read by code from the REST API, and re-read by the reconcile job.
    CATEGORY = "category"
    FAMILY = "family"
    ATTRIBUTE = "attribute"
    ATTRIBUTE_OPTION = "attribute_option"  # key "<attribute code>/<option code>"


class Action(StrEnum):
    UPSERT = "upsert"  # created / updated
    DELETE = "delete"  # removed / deleted


class NormalizedEvent(
    Record, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Omitted defaults: the fields that are None are left out of the message."""

    connection: str  # namespace/name of the AkeneoConnection
    source: SourceFormat
    event_id: Annotated[str, Meta(min_length=1, max_length=200)]
    action: Action
    kind: ResourceKind
    # guard key: product uuid (else identifier); code of the other kinds
    key: Annotated[str, Meta(min_length=1)]
    # data.resource.updated when present, else event_datetime / CloudEvents time (aware)
    version: AwareDatetime
    author: str | None = None
    resource: dict[str, Any] | None = None  # full REST representation; None: to hydrate
    received_at: AwareDatetime | None = None

    @property
    def needs_hydration(self) -> bool:
        return self.action is Action.UPSERT and self.resource is None

    def to_message(self) -> bytes:
        return self.to_bytes()

    def to_event_message(self) -> EventMessage:
        return EventMessage(self.kind, self.event_id, self.to_message())

    @classmethod
    def from_message(cls, data: bytes) -> NormalizedEvent:
        return cls.model_validate_json(data)


class EventMessage(NamedTuple):  # a tuple: built ten times a request, cheaper than a dataclass
    """An event as published: the kind its subject names, its ``Nats-Msg-Id``, its JSON.

    ``data`` is what ``NormalizedEvent.from_message`` reads, whether it came from
    ``to_message`` or was put together without the model (``akeneo_pim.passthrough``).
    """

    kind: ResourceKind
    event_id: str
    data: bytes


def utc_version(value: datetime) -> str:
    """Canonical, sortable text of a version (UTC, microseconds) for guard storage."""
    from datetime import UTC

    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
