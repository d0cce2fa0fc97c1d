"""Wire models of Akeneo's two delivery formats, tolerant of the quirks seen in the field.

Legacy Events API: ``{"events": [LegacyEvent, ...]}``. Event Platform: one CloudEvent (structured
mode) or a JSON array of them. A body is first split into raw events (``split_*``), then each
raw event is validated alone, so one bad event does not sink the valid ones of its batch.

Tolerated quirks: ``event_date`` for ``event_datetime``; ``quantified_associations`` as ``[]`` or
``{}``; PHP-escaped JSON (``\\/``, ``\\uXXXX``: plain JSON escapes); ``pim_source`` as a bare host;
naive timestamps (taken as UTC, which is what the SaaS PIM uses).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import from_json

LEGACY_PRODUCT_ACTIONS = ("product.created", "product.updated", "product.removed")
LEGACY_PRODUCT_MODEL_ACTIONS = (
    "product_model.created",
    "product_model.updated",
    "product_model.removed",
)
LegacyAction = Literal[
    "product.created",
    "product.updated",
    "product.removed",
    "product_model.created",
    "product_model.updated",
    "product_model.removed",
]


class PayloadError(ValueError):
    """The body as a whole is unusable; ``reason`` is a machine word, ``detail`` for humans."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _utc_if_naive(value: datetime) -> datetime:
    """Pydantic parses ``2020-10-20 09:13:59`` too; a naive result is taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc_if_naive)]
EventId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]

MAX_EVENTS_PER_REQUEST = 100
"""Events one request may carry. Akeneo sends at most 10 legacy events per request and one
CloudEvent per request (structured mode); the margin tolerates batched senders, the bound
keeps the work (and the answer) of one signed request small: a 1 MiB body holds 350,000
``{}``."""
TOO_MANY_EVENTS = "too_many_events"


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


# --- legacy Events API -------------------------------------------------------------------


class ResourceModel(WireModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProductResource(ResourceModel):
    """A product's REST representation; only the fields the connector reads are looked at."""

    uuid: str | None = None
    identifier: str | None = None
    updated: Timestamp | None = None
    quantified_associations: dict[str, Any] | list[Any] | None = None

    @property
    def key(self) -> str | None:
        return self.uuid or self.identifier or None


class ProductModelResource(ResourceModel):
    code: str | None = None
    updated: Timestamp | None = None

    @property
    def key(self) -> str | None:
        return self.code or None


class LegacyData(WireModel):
    resource: dict[str, Any]


class LegacyEvent(WireModel):
    action: LegacyAction
    event_id: EventId
    event_datetime: Timestamp = Field(validation_alias=AliasChoices("event_datetime", "event_date"))
    author: str | None = None
    author_type: str | None = None
    pim_source: str | None = Field(default=None, description="URL or bare host")
    data: LegacyData

    @property
    def is_product_model(self) -> bool:
        return self.action.startswith("product_model.")


class LegacyDelivery(WireModel):
    events: list[Any]


class ValidLegacyDelivery(WireModel):
    """The common case, validated in one pass (no per-event round trip)."""

    events: Annotated[list[LegacyEvent], Field(max_length=MAX_EVENTS_PER_REQUEST)]


# --- Event Platform (CloudEvents 1.0, structured mode) -------------------------------------


class CloudEvent(WireModel):
    """The CloudEvents envelope: what makes a body a CloudEvent, whatever its type.

    ``data`` is left raw: its shape depends on the type (``akeneo_connector.event_types``), and an
    envelope that parses is answered 2xx even when its type is not handled or its ``data``
    lacks the id (a 4xx would count against the subscription's success rate).
    """

    specversion: Annotated[str, Field(min_length=1, max_length=20)]
    id: EventId
    source: Annotated[str, Field(min_length=1)]
    type: Annotated[str, Field(min_length=1)]
    subject: str | None = None
    time: Timestamp
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None


# --- splitting bodies into raw events ------------------------------------------------------


def _load(body: bytes) -> Any:
    try:
        return from_json(body)  # the Rust parser: about 2x faster than json.loads here
    except ValueError as exc:
        raise PayloadError("invalid_json", str(exc)) from None


def _capped(events: list[Any]) -> list[Any]:
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadError(
            TOO_MANY_EVENTS,
            f"{len(events)} events in one request; at most {MAX_EVENTS_PER_REQUEST} "
            "(Akeneo sends up to 10 legacy events, or one CloudEvent, per request)",
        )
    return events


def split_events_api(body: bytes) -> list[Any]:
    """Raw events of a legacy delivery; the empty body of the Test button gives none."""
    if not body.strip():
        return []
    doc = _load(body)
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        _capped(doc["events"])  # counted before anything walks the events
    try:
        events = LegacyDelivery.model_validate(doc).events
    except ValidationError:
        raise PayloadError("invalid_shape", 'expected {"events": [...]}') from None
    return _capped(events)


def split_event_platform(body: bytes) -> list[Any]:
    """Raw CloudEvents of a delivery: a single object or a JSON array of objects."""
    if not body.strip():
        raise PayloadError("empty_body", "expected a CloudEvent or an array of them")
    doc = _load(body)
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return _capped(doc)
    raise PayloadError("invalid_shape", "expected a CloudEvent or an array of them")


def raw_event_id(raw: Any, field: str) -> str | None:
    """Best-effort id of an event that failed validation, to name it in the answer."""
    if isinstance(raw, dict):
        value = raw.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:200]
    return None
