"""Event Platform CloudEvents -> normalized, ignored or rejected, for every type Akeneo sends.

The reference: https://api.akeneo.com/event-platform/available-events.html. The rule behind
"ignored, not rejected": "If the success rate drops below 90% within the last rolling hour,
your subscription will be suspended. [...] `4xx Client Error Response` HTTP status"
(https://api.akeneo.com/event-platform/key-platform-behaviors.html#suspension-policy).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from akeneo_connector.event_types import HANDLED, IGNORED
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.normalize import (
    INVALID_ID,
    MISSING_ID,
    UNHANDLED_TYPE,
    Delivery,
    encode_event_platform,
    normalize_event_platform,
)
from tests.unit.pim_formats.cloud_events import (
    APP_DELETED_SAMPLE,
    ATTRIBUTE_OPTION_CREATED_SAMPLE,
    AUTHOR,
    BECAME_COMPLETE_SAMPLE,
    CATEGORY_DELETED_SAMPLE,
    PRODUCT_CREATED_SAMPLE,
    envelope,
    handled_event,
    ignored_event,
)

CONN = "tenant-acme/acme"
TIME = datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)


def normalize(event: dict[str, Any] | list[Any]) -> Delivery:
    return normalize_event_platform(json.dumps(event).encode(), CONN)


def only_event(event: dict[str, Any]) -> NormalizedEvent:
    delivery = normalize(event)
    assert (delivery.ignored, delivery.rejected) == ([], [])
    [norm] = delivery.events
    return norm


EXPECTED = {
    "com.akeneo.pim.v1.product.created": (ResourceKind.PRODUCT, Action.UPSERT),
    "com.akeneo.pim.v1.product.updated": (ResourceKind.PRODUCT, Action.UPSERT),
    "com.akeneo.pim.v1.product.updated.delta": (ResourceKind.PRODUCT, Action.UPSERT),
    "com.akeneo.pim.v1.product.deleted": (ResourceKind.PRODUCT, Action.DELETE),
    # "generated whenever a product became complete on at least one combination of locale and
    # scope": the product changed, so it is read again (an upsert)
    "com.akeneo.pim.v1.product.became-complete": (ResourceKind.PRODUCT, Action.UPSERT),
    "com.akeneo.pim.v1.product.became-incomplete": (ResourceKind.PRODUCT, Action.UPSERT),
    "com.akeneo.pim.v1.product-model.created": (ResourceKind.PRODUCT_MODEL, Action.UPSERT),
    "com.akeneo.pim.v1.product-model.updated": (ResourceKind.PRODUCT_MODEL, Action.UPSERT),
    "com.akeneo.pim.v1.product-model.updated.delta": (ResourceKind.PRODUCT_MODEL, Action.UPSERT),
    "com.akeneo.pim.v1.product-model.deleted": (ResourceKind.PRODUCT_MODEL, Action.DELETE),
    "com.akeneo.pim.v1.category.created": (ResourceKind.CATEGORY, Action.UPSERT),
    "com.akeneo.pim.v1.category.updated": (ResourceKind.CATEGORY, Action.UPSERT),
    "com.akeneo.pim.v1.category.deleted": (ResourceKind.CATEGORY, Action.DELETE),
    "com.akeneo.pim.v1.family.created": (ResourceKind.FAMILY, Action.UPSERT),
    "com.akeneo.pim.v1.family.updated": (ResourceKind.FAMILY, Action.UPSERT),
    "com.akeneo.pim.v1.family.deleted": (ResourceKind.FAMILY, Action.DELETE),
    "com.akeneo.pim.v1.attribute.created": (ResourceKind.ATTRIBUTE, Action.UPSERT),
    "com.akeneo.pim.v1.attribute.updated": (ResourceKind.ATTRIBUTE, Action.UPSERT),
    "com.akeneo.pim.v1.attribute.deleted": (ResourceKind.ATTRIBUTE, Action.DELETE),
    "com.akeneo.pim.v1.attribute-option.created": (ResourceKind.ATTRIBUTE_OPTION, Action.UPSERT),
    "com.akeneo.pim.v1.attribute-option.updated": (ResourceKind.ATTRIBUTE_OPTION, Action.UPSERT),
    "com.akeneo.pim.v1.attribute-option.deleted": (ResourceKind.ATTRIBUTE_OPTION, Action.DELETE),
}


def test_the_table_above_is_the_catalogue() -> None:
    assert set(EXPECTED) == set(HANDLED)


@pytest.mark.parametrize("type_", sorted(HANDLED))
def test_every_handled_type_is_normalized(type_: str) -> None:
    event, key = handled_event(type_, "code-1", event_id="ev-1")
    norm = only_event(event)
    assert (norm.kind, norm.action) == EXPECTED[type_]
    assert (norm.key, norm.event_id, norm.version) == (key, "ev-1", TIME)
    assert norm.author == AUTHOR["identifier"]
    assert norm.source is SourceFormat.EVENT_PLATFORM and norm.connection == CONN
    assert norm.resource is None  # "data is light": the worker reads the resource
    assert norm.needs_hydration is (norm.action is Action.UPSERT)


@pytest.mark.parametrize(
    ("sample", "kind", "action", "key", "author"),
    [
        (
            PRODUCT_CREATED_SAMPLE,
            ResourceKind.PRODUCT,
            Action.UPSERT,
            "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf",
            "b238e9f7-fcec-45bd-9431-d43cd624b244",
        ),
        # became-complete carries no author in Akeneo's sample
        (
            BECAME_COMPLETE_SAMPLE,
            ResourceKind.PRODUCT,
            Action.UPSERT,
            "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf",
            None,
        ),
        (
            CATEGORY_DELETED_SAMPLE,
            ResourceKind.CATEGORY,
            Action.DELETE,
            "category-1",
            "the-app-client-id",
        ),
        # "data.attribute_option.code | code of an attribute option",
        # "data.attribute_option.attribute.code | code of an attribute"
        (
            ATTRIBUTE_OPTION_CREATED_SAMPLE,
            ResourceKind.ATTRIBUTE_OPTION,
            Action.UPSERT,
            "an_attribute_code/an_attribute_option_code",
            "5_xxxk00ufn688cc0gok0wwwxxxccc0g84cwwgkg4s00ow4oxxx",
        ),
    ],
)
def test_akeneo_published_samples(
    sample: bytes, kind: ResourceKind, action: Action, key: str, author: str | None
) -> None:
    delivery = normalize_event_platform(sample, CONN)
    [norm] = delivery.events
    assert (norm.kind, norm.action, norm.key, norm.author) == (kind, action, key, author)
    assert norm.version == datetime.fromisoformat(json.loads(sample)["time"])


def test_send_product_identifier_payloads() -> None:
    """ "If set to `true`, includes the product identifier in product events when available."
    (https://api.akeneo.com/event-platform/concepts.html, ``send_product_identifier``)."""
    both = envelope(
        "com.akeneo.pim.v1.product.updated",
        {"product": {"uuid": "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf", "identifier": "tshirt-1"}},
    )
    assert only_event(both).key == "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf"  # uuid first
    identifier_only = envelope(
        "com.akeneo.pim.v1.product.deleted", {"product": {"identifier": "tshirt-1"}}
    )
    assert only_event(identifier_only).key == "tshirt-1"
    null_uuid = envelope(
        "com.akeneo.pim.v1.product.deleted", {"product": {"uuid": None, "identifier": "sku"}}
    )
    assert only_event(null_uuid).key == "sku"


# the reference's updated_at of a delta is a PHP DateTime: {"date": ..., "timezone": "UTC"}
@pytest.mark.parametrize(
    ("updated_at", "version"),
    [
        (
            {"date": "2024-10-14 13:01:21.000000", "timezone": "UTC"},
            datetime(2024, 10, 14, 13, 1, 21, tzinfo=UTC),
        ),
        (
            {"date": "2024-10-14 15:01:21.500000", "timezone_type": 3, "timezone": "Europe/Paris"},
            datetime(2024, 10, 14, 13, 1, 21, 500000, tzinfo=UTC),
        ),
        (
            {"date": "2024-10-14 15:01:21", "timezone": "+02:00"},
            datetime(2024, 10, 14, 13, 1, 21, tzinfo=UTC),
        ),
        ("2024-10-14T13:01:21+00:00", datetime(2024, 10, 14, 13, 1, 21, tzinfo=UTC)),
        ("2024-10-14 13:01:21", datetime(2024, 10, 14, 13, 1, 21, tzinfo=UTC)),
        # not parseable: the CloudEvent's time
        ({"date": "2024-10-14 13:01:21", "timezone": "Mars/Olympus"}, TIME),
        ({"date": "2024-10-14 13:01:21", "timezone": "../../etc/passwd"}, TIME),
        ({"date": "yesterday", "timezone": "UTC"}, TIME),
        ({"timezone": "UTC"}, TIME),
        (1728910881, TIME),
        (None, TIME),
        ("x" * 10_000, TIME),
        # from the future: an update precedes its event; trusting it would block later ones
        ("9999-12-31T23:59:59+00:00", TIME),
        ((TIME + timedelta(hours=2)).isoformat(), TIME),
        ((TIME + timedelta(minutes=5)).isoformat(), TIME + timedelta(minutes=5)),  # clock skew
    ],
)
@pytest.mark.parametrize("resource", ["product", "product-model"])
def test_delta_version_is_the_resources_own_updated_at(
    updated_at: Any, version: datetime, resource: str
) -> None:
    event, _ = handled_event(
        f"com.akeneo.pim.v1.{resource}.updated.delta", "k", time=TIME.isoformat()
    )
    ref = next(iter(event["data"].values()))
    ref["updated_at"] = updated_at
    ref["changes"] = {"enabled": {"previous": True, "new": False}}
    assert only_event(event).version == version


def test_updated_at_counts_only_for_delta_events() -> None:
    """Only ``updated.delta`` documents ``updated_at``; a deletion's version stays its time."""
    event, _ = handled_event("com.akeneo.pim.v1.product.deleted", "k")
    event["data"]["product"]["updated_at"] = "2020-01-01T00:00:00+00:00"
    assert only_event(event).version == TIME


@pytest.mark.parametrize("type_", IGNORED)
def test_every_other_type_of_the_reference_is_ignored(type_: str) -> None:
    delivery = normalize(ignored_event(type_, event_id="ev-9"))
    assert delivery.events == [] and delivery.rejected == []
    [item] = delivery.ignored
    assert (item.index, item.event_id, item.type, item.reason) == (0, "ev-9", type_, UNHANDLED_TYPE)


@pytest.mark.parametrize(
    "type_",
    [
        "com.akeneo.pim.v1.widget.created",  # a type Akeneo may add one day
        "com.akeneo.pim.v2.product.updated",
        "com.akeneo.pim.v1.product.updated.something",
        "com.example.object.created",
        "x",
    ],
)
def test_unknown_and_foreign_types_are_ignored(type_: str) -> None:
    event, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    event["type"] = type_
    delivery = normalize(event)
    assert delivery.events == [] and delivery.rejected == []
    assert [i.reason for i in delivery.ignored] == [UNHANDLED_TYPE]


def test_akeneo_app_deleted_sample_is_ignored() -> None:
    delivery = normalize_event_platform(APP_DELETED_SAMPLE, CONN)
    assert [(i.type, i.reason) for i in delivery.ignored] == [
        ("com.akeneo.pim.v1.app.deleted", UNHANDLED_TYPE)
    ]
    assert encode_event_platform(APP_DELETED_SAMPLE, CONN).messages == []


def _without_id(type_: str) -> list[Any]:
    """``data`` variants of a handled type that name no resource."""
    data_key = HANDLED[type_].data_key
    cases: list[Any] = [None, {}, [], "x", {"author": AUTHOR}, {data_key: None}, {data_key: {}}]
    if data_key == "product":
        cases += [{"product": {"uuid": ""}}, {"product": {"identifier": ""}}]
    elif data_key == "attribute_option":
        cases += [
            {data_key: {"code": "red"}},
            {data_key: {"attribute": {"code": "color"}}},
            {data_key: {"code": "red", "attribute": "color"}},
        ]
    else:
        cases += [{data_key: {"code": ""}}, {data_key: {"uuid": "u"}}]
    return cases


@pytest.mark.parametrize("type_", sorted(HANDLED))
def test_handled_type_without_its_id_is_ignored_not_rejected(type_: str) -> None:
    events = [envelope(type_, data) for data in _without_id(type_)]
    if "data" in events[0]:
        del events[0]["data"]  # data is optional in a CloudEvent
    delivery = normalize(events)
    assert delivery.events == [] and delivery.rejected == []
    assert {i.reason for i in delivery.ignored} == {MISSING_ID}
    assert len(delivery.ignored) == len(events)


@pytest.mark.parametrize(
    "ref",
    [
        {"uuid": 42},
        {"uuid": ["a"]},
        {"uuid": "a\nb"},
        {"uuid": "u" * 256},
        {"uuid": 42, "identifier": "sku"},  # a broken uuid is not papered over
    ],
)
def test_unusable_ids_are_ignored(ref: dict[str, Any]) -> None:
    delivery = normalize(envelope("com.akeneo.pim.v1.product.updated", {"product": ref}))
    assert [i.reason for i in delivery.ignored] == [INVALID_ID] and delivery.events == []


def test_longest_akeneo_ids_are_kept() -> None:
    """Product identifiers go up to 255 characters in the PIM."""
    sku = "s" * 255
    event = envelope("com.akeneo.pim.v1.product.updated", {"product": {"identifier": sku}})
    assert only_event(event).key == sku


@pytest.mark.parametrize("field", ["specversion", "id", "type", "source", "time"])
def test_an_envelope_without_a_required_attribute_is_rejected(field: str) -> None:
    event, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1", event_id="ev-1")
    del event[field]
    delivery = normalize(event)
    assert delivery.events == [] and delivery.ignored == []
    [rejected] = delivery.rejected
    assert rejected.reason == f"{field}: Field required"
    assert rejected.event_id == (None if field == "id" else "ev-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "a\nb"),
        ("id", "i" * 201),
        ("id", 12),
        ("type", ""),
        ("type", 3),
        ("source", ""),
        ("time", "not a time"),
        ("specversion", ""),
    ],
)
def test_an_envelope_with_an_unusable_attribute_is_rejected(field: str, value: Any) -> None:
    event, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    event[field] = value
    delivery = normalize(event)
    assert delivery.events == [] and delivery.ignored == [] and len(delivery.rejected) == 1


def test_time_with_an_offset_and_naive_time() -> None:
    event, _ = handled_event(
        "com.akeneo.pim.v1.family.updated", "f", time="2026-11-27T12:00:01+02:00"
    )
    assert only_event(event).version == TIME
    event["time"] = "2026-11-27T10:00:01"
    assert only_event(event).version == TIME
    assert only_event(event).version.utcoffset() == timedelta(0)


def test_encoded_messages_round_trip() -> None:
    events = [handled_event(t, "k-1")[0] for t in sorted(HANDLED)]
    delivery = encode_event_platform(json.dumps(events).encode(), CONN)
    assert len(delivery.messages) == len(HANDLED) and delivery.ignored == []
    for message, event in zip(delivery.messages, events, strict=True):
        norm = NormalizedEvent.from_message(message.data)
        assert message.kind is norm.kind and message.event_id == norm.event_id == event["id"]
