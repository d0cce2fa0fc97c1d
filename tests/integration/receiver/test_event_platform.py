"""The Event Platform's answer contract, on ``/event-platform`` and on ``/events``, over real
TLS against a real nats-server.

Why a signed CloudEvent is never refused for its type or its data: "Your subscription is
immediately suspended if [...] Your HTTPS endpoint responds with a `404 Not Found` HTTP
status. [...] with `3xx Redirection` HTTP statuses" and "If the success rate drops below 90%
within the last rolling hour, your subscription will be suspended. Here are the errors type
that decrease the success rate: `5XX Server Error` [...] `4xx Client Error Response` HTTP
status" (https://api.akeneo.com/event-platform/key-platform-behaviors.html#suspension-policy).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client.parser import text_string_to_metric_families

from akeneo_connector.event_types import HANDLED, IGNORED, HandledType
from akeneo_connector.normalized import Action, ResourceKind, SourceFormat
from akeneo_pim.paths import EVENT_PLATFORM_PATH, EVENTS_API_PATH, NOTIFICATIONS_PATH
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.payloads import legacy_batch
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    Running,
    StartReceiver,
    poll,
)
from tests.unit.pim_formats.cloud_events import (
    APP_DELETED_SAMPLE,
    ATTRIBUTE_OPTION_CREATED_SAMPLE,
    PRODUCT_CREATED_SAMPLE,
    envelope,
    handled_event,
    ignored_event,
)

PRIMARY, SECONDARY = EVENT_PLATFORM_SECRETS
BOTH_URLS = pytest.mark.parametrize("path", [EVENT_PLATFORM_PATH, EVENTS_API_PATH])
FUTURE_TYPE = "com.akeneo.pim.v1.widget.created"
FOREIGN_TYPE = "com.example.order.placed"
IGNORED_ANSWER = {"status": "ok", "accepted": 0, "duplicates": 0, "ignored": 1}


def as_sent(event: dict[str, Any] | list[Any]) -> tuple[bytes, dict[str, str]]:
    """One CloudEvent, structured mode, signed as the Event Platform signs it."""
    body = json.dumps(event).encode()
    return body, event_platform_headers(PRIMARY, body)


async def metric(r: Running, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def ignored_counts(r: Running) -> dict[tuple[str, str], float]:
    samples = await metric(r, "akeneo_receiver_ignored_events_total")
    return {(dict(k)["type"], dict(k)["reason"]): v for k, v in samples.items()}


def delta(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@BOTH_URLS
async def test_every_handled_type_is_stored_before_the_200(
    start_receiver: StartReceiver, path: str
) -> None:
    r = await start_receiver()
    expected: list[tuple[str, str, HandledType, str, str]] = []
    for type_ in sorted(HANDLED):
        event, key = handled_event(type_, f"code-{len(expected)}")
        status, answer = await r.post(*as_sent(event), path=path)
        assert (status, answer) == (
            200,
            {"status": "ok", "accepted": 1, "duplicates": 0, "ignored": 0},
        ), type_
        handled = HANDLED[type_]
        expected.append(
            (r.config.event_subject(handled.kind.value), event["id"], handled, key, type_)
        )
    stored = await r.stored()
    assert len(stored) == len(HANDLED)
    for (subject, msg_id, ev), (want_subject, want_id, handled, key, type_) in zip(
        stored, expected, strict=True
    ):
        assert (subject, msg_id, ev.event_id) == (want_subject, want_id, want_id), type_
        assert (ev.kind, ev.action, ev.key) == (handled.kind, handled.action, key), type_
        assert ev.source is SourceFormat.EVENT_PLATFORM and ev.resource is None


@BOTH_URLS
async def test_akeneo_published_samples_reach_the_stream(
    start_receiver: StartReceiver, path: str
) -> None:
    """Bodies copied from https://api.akeneo.com/event-platform/available-events.html."""
    r = await start_receiver()
    for sample in (PRODUCT_CREATED_SAMPLE, ATTRIBUTE_OPTION_CREATED_SAMPLE):
        status, answer = await r.post(sample, event_platform_headers(PRIMARY, sample), path=path)
        assert (status, answer["accepted"]) == (200, 1)
    status, answer = await r.post(
        APP_DELETED_SAMPLE, event_platform_headers(PRIMARY, APP_DELETED_SAMPLE), path=path
    )
    assert (status, answer) == (200, IGNORED_ANSWER)
    stored = [(ev.kind, ev.action, ev.key) for _, _, ev in await r.stored()]
    assert stored == [
        (ResourceKind.PRODUCT, Action.UPSERT, "6a9f8486-2c36-4680-b87f-6f5f8f01b6cf"),
        (
            ResourceKind.ATTRIBUTE_OPTION,
            Action.UPSERT,
            "an_attribute_code/an_attribute_option_code",
        ),
    ]


@BOTH_URLS
async def test_types_not_handled_are_acknowledged_counted_and_never_stored(
    start_receiver: StartReceiver, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = await start_receiver()
    caplog.set_level(logging.INFO, logger="akeneo_receiver")
    before = await ignored_counts(r)
    for type_ in (*IGNORED, FUTURE_TYPE, FOREIGN_TYPE, FUTURE_TYPE):
        status, answer = await r.post(*as_sent(ignored_event(type_)), path=path)
        assert (status, answer) == (200, IGNORED_ANSWER), type_
    assert await r.messages() == []
    # Akeneo's own types keep their name; anything else is "other" (bounded label values)
    want = {(t, "unhandled_type"): 1.0 for t in IGNORED}
    want["other", "unhandled_type"] = 3.0
    assert delta(before, await ignored_counts(r)) == want
    logged = [
        str(getattr(rec, "type", ""))
        for rec in caplog.records
        if rec.getMessage().startswith("CloudEvent acknowledged and ignored")
    ]
    assert sorted(logged) == sorted([*IGNORED, FUTURE_TYPE, FOREIGN_TYPE])  # once per type


@BOTH_URLS
async def test_handled_type_without_its_id_is_acknowledged_not_stored(
    start_receiver: StartReceiver, path: str
) -> None:
    r = await start_receiver()
    before = await ignored_counts(r)
    cases = [
        envelope("com.akeneo.pim.v1.product.updated", {"author": {"identifier": "julia"}}),
        envelope("com.akeneo.pim.v1.product-model.deleted", {"product_model": {}}),
        envelope("com.akeneo.pim.v1.attribute-option.created", {"attribute_option": {"code": "x"}}),
        envelope("com.akeneo.pim.v1.family.updated", None),
        envelope("com.akeneo.pim.v1.category.created", {"category": {"code": 12}}),
    ]
    for event in cases:
        status, answer = await r.post(*as_sent(event), path=path)
        assert (status, answer) == (200, IGNORED_ANSWER), event["type"]
    assert await r.messages() == []
    assert delta(before, await ignored_counts(r)) == {
        ("com.akeneo.pim.v1.product.updated", "missing_id"): 1,
        ("com.akeneo.pim.v1.product-model.deleted", "missing_id"): 1,
        ("com.akeneo.pim.v1.attribute-option.created", "missing_id"): 1,
        ("com.akeneo.pim.v1.family.updated", "missing_id"): 1,
        ("com.akeneo.pim.v1.category.created", "invalid_id"): 1,
    }


@BOTH_URLS
async def test_a_body_that_is_not_a_cloud_event_is_400(
    start_receiver: StartReceiver, path: str
) -> None:
    r = await start_receiver()
    event, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    for body, reason in (
        (b"", "empty_body"),
        (b"{not json", "invalid_json"),
        (b"12", "invalid_shape"),
        (b'"com.akeneo.pim.v1.product.updated"', "invalid_shape"),
        (json.dumps({k: v for k, v in event.items() if k != "time"}).encode(), "invalid_events"),
        (json.dumps({k: v for k, v in event.items() if k != "specversion"}).encode(), None),
        (json.dumps({k: v for k, v in event.items() if k != "id"}).encode(), None),
        (json.dumps({k: v for k, v in event.items() if k != "type"}).encode(), None),
        (json.dumps({k: v for k, v in event.items() if k != "source"}).encode(), None),
        (json.dumps({**event, "time": "soon"}).encode(), None),
        (json.dumps([1, 2]).encode(), None),
    ):
        status, answer = await r.post(body, event_platform_headers(PRIMARY, body), path=path)
        assert status == 400, body
        assert answer["error"] == (reason or "invalid_events"), body
    assert await r.messages() == []


@BOTH_URLS
async def test_bad_signature_is_401(start_receiver: StartReceiver, path: str) -> None:
    r = await start_receiver()
    event, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    body = json.dumps(event).encode()
    for headers, reason in (
        (event_platform_headers("not-our-secret", body), "bad_signature"),
        (event_platform_headers(PRIMARY, body + b" "), "bad_signature"),
        ({"Content-Type": "application/cloudevents+json"}, "missing_signature"),
    ):
        status, answer = await r.post(body, headers, path=path)
        assert (status, answer["error"]) == (401, reason)
    # rotation: the secondary header signed with our second secret is enough
    status, _ = await r.post(body, event_platform_headers("retired", body, SECONDARY), path=path)
    assert status == 200
    assert len(await r.stored()) == 1


async def test_legacy_delivery_on_the_event_platform_url_is_told_where_to_go(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver()
    body = legacy_batch(2)
    for payload in (body, b""):  # a batch, and the connection page's Test button
        status, answer = await r.post(
            payload, events_api_headers(EVENTS_API_SECRET, payload), path=EVENT_PLATFORM_PATH
        )
        assert (status, answer["error"]) == (401, "use_events_url")
        assert "/events" in answer["detail"]
    assert await r.messages() == []
    # the same deliveries on /events, unchanged
    status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
    assert (status, answer) == (200, {"status": "ok", "accepted": 2, "duplicates": 0})
    status, answer = await r.post(b"", events_api_headers(EVENTS_API_SECRET, b""))
    assert (status, answer) == (200, {"status": "ok", "accepted": 0, "duplicates": 0})
    assert [ev.source for _, _, ev in await r.stored()] == [SourceFormat.EVENTS_API] * 2


async def test_no_404_and_no_redirect_on_the_three_paths(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    sent = 0
    for path in (EVENTS_API_PATH, EVENT_PLATFORM_PATH, NOTIFICATIONS_PATH):
        for variant in (path, path + "/", path + "?x=1", path + "/?x=1"):
            event, _ = handled_event("com.akeneo.pim.v1.product.updated", f"u-{sent}")
            body, headers = as_sent(event)
            async with r.http.post(
                r.url + variant, data=body, headers=headers, allow_redirects=False
            ) as resp:
                assert resp.status not in (404, *range(300, 400)), variant
                # a CloudEvent is no notification: refused with a 4xx, never a 404
                want = 401 if path == NOTIFICATIONS_PATH else 200
                assert resp.status == want, variant
                sent += want == 200
            for method in ("GET", "PUT", "OPTIONS"):
                async with r.http.request(method, r.url + variant, allow_redirects=False) as resp:
                    assert resp.status == 405, (method, variant)
            # A destination URL checked for reachability with HEAD answers 200. (A preview of
            # Akeneo's usage requirements said: "the URL must be valid and return an HTTP 200
            # status code after an HTTP HEAD request".)
            async with r.http.head(r.url + variant, allow_redirects=False) as resp:
                assert resp.status == 200, variant
    legacy = legacy_batch(1)
    status, _ = await r.post(legacy, events_api_headers(EVENTS_API_SECRET, legacy), "/events/")
    assert status == 200
    assert len(await r.stored()) == sent + 1 == 9


async def test_batched_mode_array_is_tolerated(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    stored, _ = handled_event("com.akeneo.pim.v1.family.updated", "shirts")
    events = [stored, ignored_event(FUTURE_TYPE), ignored_event("com.akeneo.pim.v1.asset.created")]
    status, answer = await r.post(*as_sent(events), path=EVENT_PLATFORM_PATH)
    assert (status, answer) == (200, {"status": "ok", "accepted": 1, "duplicates": 0, "ignored": 2})
    assert [ev.key for _, _, ev in await r.stored()] == ["shirts"]


async def test_duplicate_cloud_event_is_200_and_stored_once(start_receiver: StartReceiver) -> None:
    """ "Expect duplicates" (https://api.akeneo.com/event-platform/key-platform-behaviors.html)."""
    r = await start_receiver()
    event, _ = handled_event("com.akeneo.pim.v1.attribute.updated", "color")
    for path, dup in ((EVENT_PLATFORM_PATH, 0), (EVENT_PLATFORM_PATH, 1), (EVENTS_API_PATH, 1)):
        status, answer = await r.post(*as_sent(event), path=path)
        assert (status, answer["accepted"], answer["duplicates"]) == (200, 1, dup)
    assert len(await r.stored()) == 1


@BOTH_URLS
async def test_queue_down_is_503_for_what_must_be_stored_only(
    own_nats: NatsServer, start_receiver: StartReceiver, path: str
) -> None:
    r = await start_receiver(nats_url=own_nats.url)
    own_nats.kill()
    handled, _ = handled_event("com.akeneo.pim.v1.product.updated", "u-1")
    for _ in range(2):
        status, answer = await r.post(*as_sent(handled), path=path)
        assert status == 503, answer
        assert answer["error"] in ("jetstream_unavailable", "ack_timeout", "no_responders")
    # nothing to store, nothing to wait for: the subscription's success rate is kept
    status, answer = await r.post(*as_sent(ignored_event(FUTURE_TYPE)), path=path)
    assert (status, answer) == (200, IGNORED_ANSWER)
    own_nats.start()

    async def stored_again() -> bool:
        status, _ = await r.post(*as_sent(handled), path=path)
        return status == 200

    await poll(stored_again, timeout=20, what="200 once nats-server is back")


@BOTH_URLS
async def test_missing_stream_is_503(start_receiver: StartReceiver, path: str) -> None:
    r = await start_receiver(ensure_stream=False, wait_ready=False)
    handled, _ = handled_event("com.akeneo.pim.v1.category.deleted", "men")
    status, answer = await r.post(*as_sent(handled), path=path)
    assert (status, answer["error"]) == (503, "no_responders")


@BOTH_URLS
async def test_over_pending_limit_is_429_for_what_must_be_stored_only(
    start_receiver: StartReceiver, path: str
) -> None:
    r = await start_receiver(max_pending=2)
    await r.nc.jetstream().add_consumer(
        r.stream,
        ConsumerConfig(
            durable_name=r.config.names.consumer,
            filter_subject=f"{r.config.prefix}.events.>",
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    codes: list[int] = []

    async def throttled() -> bool:
        event, _ = handled_event("com.akeneo.pim.v1.product.updated", f"u-{len(codes)}")
        status, _ = await r.post(*as_sent(event), path=path)
        codes.append(status)
        return status == 429

    await poll(throttled, what="429 once the worker consumer is behind")
    assert set(codes) == {200, 429} and len(await r.stored()) == codes.count(200)
    status, answer = await r.post(*as_sent(ignored_event(FUTURE_TYPE)), path=path)
    assert (status, answer) == (200, IGNORED_ANSWER)
