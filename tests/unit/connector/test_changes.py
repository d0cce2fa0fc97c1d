"""Changes, digests and the webhook body."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from akeneo_connector.changes import Change, resource_digest, resource_updated
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_worker.sinks.webhook import encode_changes, is_retryable_status, sign


def test_digest_ignores_key_order_but_not_content() -> None:
    assert resource_digest({"a": 1, "b": [1, 2]}) == resource_digest({"b": [1, 2], "a": 1})
    assert resource_digest({"a": 1}) != resource_digest({"a": 2})
    assert resource_digest(None) is None


def test_resource_updated_needs_an_offset() -> None:
    assert resource_updated({"updated": "2026-01-02T03:04:05+00:00"}) == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert resource_updated({"updated": "2026-01-02T03:04:05"}) is None
    assert resource_updated({"updated": "yesterday"}) is None
    assert resource_updated({}) is None


def test_a_removal_carries_no_resource() -> None:
    event = NormalizedEvent(
        connection="ns/c",
        source=SourceFormat.EVENTS_API,
        event_id="e1",
        action=Action.DELETE,
        kind=ResourceKind.PRODUCT_MODEL,
        key="model-1",
        version=datetime(2026, 1, 1, tzinfo=UTC),
        resource={"code": "model-1"},
    )
    change = Change.from_event(event)
    assert change.operation == "delete" and change.resource is None and change.deleted


def test_webhook_body_and_signature() -> None:
    change = Change(
        connection="ns/c",
        kind="product",
        key="k",
        operation="upsert",
        version=datetime(2026, 1, 1, tzinfo=UTC),
        event_id="e1",
        resource={"uuid": "k"},
    )
    body = encode_changes([change])
    assert json.loads(body) == {
        "changes": [
            {
                "connection": "ns/c",
                "kind": "product",
                "key": "k",
                "operation": "upsert",
                "version": "2026-01-01T00:00:00+00:00",
                "event_id": "e1",
                "change_id": change.change_id,
                "resource": {"uuid": "k"},
            }
        ]
    }
    # Same scheme as Akeneo's Events API: hex HMAC-SHA256 over "<timestamp>." + body.
    assert sign("secret", 1700000000, b"{}") == (
        "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
    )


def test_change_id_is_what_the_change_sets_not_the_event() -> None:
    base = Change(
        connection="ns/c", kind="product", key="k", operation="upsert",
        version=datetime(2026, 1, 1, tzinfo=UTC), event_id="e1", resource={"a": 1, "b": 2},
    )  # fmt: skip
    same = replace(base, event_id="e2", resource={"b": 2, "a": 1})  # a duplicate event
    assert same.change_id == base.change_id and len(base.change_id) == 32
    assert replace(base, resource={"a": 2}).change_id != base.change_id  # a tie
    assert replace(base, version=datetime(2026, 1, 2, tzinfo=UTC)).change_id != base.change_id
    assert replace(base, operation="delete", resource=None).change_id != base.change_id
    assert replace(base, key="k2").change_id != base.change_id


def test_which_statuses_are_retried() -> None:
    assert [
        s for s in (400, 401, 404, 408, 409, 422, 429, 500, 502, 503) if is_retryable_status(s)
    ] == [
        408,
        429,
        500,
        502,
        503,
    ]
