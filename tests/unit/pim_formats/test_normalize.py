from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.formats import PayloadError
from akeneo_pim.normalize import normalize_event_platform, normalize_events_api
from akeneo_testing.payloads import cloud_event, legacy_body, legacy_event

CONN = "tenant-acme/acme"


def test_legacy_product_update_uses_resource_updated_and_uuid() -> None:
    event = legacy_event(
        "tshirt-1",
        event_datetime="2026-11-27T10:00:01+00:00",
        updated="2026-11-27T10:00:05+00:00",
    )
    delivery = normalize_events_api(legacy_body([event]), CONN)
    assert delivery.rejected == []
    [norm] = delivery.events
    assert norm.source is SourceFormat.EVENTS_API
    assert norm.action is Action.UPSERT and norm.kind is ResourceKind.PRODUCT
    assert norm.key == event["data"]["resource"]["uuid"]
    assert norm.version == datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    assert norm.resource is not None and norm.resource["identifier"] == "tshirt-1"
    assert norm.author == "julia" and norm.event_id == event["event_id"]
    assert NormalizedEvent.from_message(norm.to_message()) == norm


def test_php_escaped_json_is_read_verbatim() -> None:
    body = legacy_body([legacy_event("a/b\u00e9")])
    assert b"\\/" in body and b"\\u00e9" in body
    [norm] = normalize_events_api(body, CONN).events
    assert norm.resource is not None and norm.resource["identifier"] == "a/b\u00e9"


def test_legacy_removed_without_uuid_falls_back_to_identifier_and_event_datetime() -> None:
    event = legacy_event("tshirt-9", action="product.removed")
    event["data"]["resource"] = {"identifier": "tshirt-9"}
    [norm] = normalize_events_api(legacy_body([event]), CONN).events
    assert norm.action is Action.DELETE and norm.key == "tshirt-9" and norm.resource is None
    assert norm.version == datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)


def test_legacy_product_model_and_quirks() -> None:
    created = legacy_event("model-1", action="product_model.created")
    removed = legacy_event("model-2", action="product_model.removed")
    old_spelling = legacy_event("tshirt-3")
    old_spelling["event_date"] = old_spelling.pop("event_datetime")
    old_spelling["pim_source"] = "acme.cloud.akeneo.com"
    old_spelling["data"]["resource"]["quantified_associations"] = []
    old_spelling["data"]["resource"].pop("updated")
    delivery = normalize_events_api(legacy_body([created, removed, old_spelling]), CONN)
    assert delivery.rejected == []
    a, b, c = delivery.events
    assert (a.kind, a.key, a.action) == (ResourceKind.PRODUCT_MODEL, "model-1", Action.UPSERT)
    assert (b.kind, b.key, b.action) == (ResourceKind.PRODUCT_MODEL, "model-2", Action.DELETE)
    assert c.version == datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)


def test_empty_body_is_the_test_button() -> None:
    delivery = normalize_events_api(b"", CONN)
    assert delivery.events == [] and delivery.rejected == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"event": []}', "invalid_shape"),
        (b"[1]", "invalid_shape"),
    ],
)
def test_legacy_whole_body_errors(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        normalize_events_api(body, CONN)
    assert info.value.reason == reason


def test_legacy_partial_batch_names_bad_event_ids() -> None:
    good = legacy_event("ok")
    bad_action = legacy_event("x", event_id="bad-1")
    bad_action["action"] = "category.updated"
    no_key = legacy_event("y", event_id="bad-2")
    no_key["data"]["resource"] = {"values": {}}
    no_date = legacy_event("z", event_id="bad-3")
    del no_date["event_datetime"]
    not_an_object: Any = 7
    delivery = normalize_events_api(
        legacy_body([good, bad_action, no_key, no_date, not_an_object]), CONN
    )
    assert [e.event_id for e in delivery.events] == [good["event_id"]]
    assert [(r.index, r.event_id) for r in delivery.rejected] == [
        (1, "bad-1"),
        (2, "bad-2"),
        (3, "bad-3"),
        (4, None),
    ]
    assert all(r.reason for r in delivery.rejected)


@pytest.mark.parametrize(
    ("type_", "kind", "action"),
    [
        ("com.akeneo.pim.v1.product.created", ResourceKind.PRODUCT, Action.UPSERT),
        ("com.akeneo.pim.v1.product.updated", ResourceKind.PRODUCT, Action.UPSERT),
        ("com.akeneo.pim.v1.product.updated.delta", ResourceKind.PRODUCT, Action.UPSERT),
        ("com.akeneo.pim.v1.product.deleted", ResourceKind.PRODUCT, Action.DELETE),
        ("com.akeneo.pim.v1.product-model.updated", ResourceKind.PRODUCT_MODEL, Action.UPSERT),
        ("com.akeneo.pim.v1.product-model.deleted", ResourceKind.PRODUCT_MODEL, Action.DELETE),
    ],
)
def test_cloud_event_types(type_: str, kind: ResourceKind, action: Action) -> None:
    event = cloud_event("k-1", type_=type_)
    [norm] = normalize_event_platform(json.dumps(event).encode(), CONN).events
    assert (norm.kind, norm.action, norm.key) == (kind, action, "k-1")
    assert norm.source is SourceFormat.EVENT_PLATFORM and norm.resource is None
    assert norm.needs_hydration is (action is Action.UPSERT)
    assert norm.version == datetime(2026, 11, 27, 10, 0, 1, 123000, tzinfo=UTC)
    assert norm.author == "julia" and norm.event_id == event["id"]


def test_cloud_events_array_sorts_stored_ignored_and_rejected_members() -> None:
    good = cloud_event("u-1")
    other = cloud_event("a-1", type_="com.akeneo.pim.v1.asset.updated", event_id="ign-1")
    no_ref = cloud_event("u-2", event_id="ign-2")
    del no_ref["data"]["product"]
    not_cloud_event = cloud_event("u-3", event_id="bad-1")
    del not_cloud_event["time"]
    body = json.dumps([good, other, no_ref, not_cloud_event, 7]).encode()
    delivery = normalize_event_platform(body, CONN)
    assert [e.event_id for e in delivery.events] == [good["id"]]
    assert [(i.index, i.event_id, i.reason) for i in delivery.ignored] == [
        (1, "ign-1", "unhandled_type"),
        (2, "ign-2", "missing_id"),
    ]
    assert [(r.index, r.event_id) for r in delivery.rejected] == [(3, "bad-1"), (4, None)]
    assert delivery.rejected[0].reason == "time: Field required"


@pytest.mark.parametrize("body", [b"", b"  ", b"42", b'"x"', b"{oops"])
def test_cloud_whole_body_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        normalize_event_platform(body, CONN)
