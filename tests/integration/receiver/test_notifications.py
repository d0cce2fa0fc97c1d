"""``POST /event-platform/notifications``: Akeneo's notification webhooks, verified and stored
on the connection's stream, over real TLS against a real nats-server.

Contract: https://api.akeneo.com/event-platform/notification-webhooks.html — "Reply with a
`2xx` status within **5 seconds** to acknowledge the notification. Any other response is
treated as a delivery failure: the platform retries up to **3 times** [...] `5xx` and `429`
responses are retried within that budget; other `4xx` responses are not."
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from akeneo_pim.notifications import parse_notification, subscription_condition
from akeneo_pim.paths import NOTIFICATIONS_PATH
from akeneo_pim.signatures import event_platform_headers, notification_headers
from akeneo_worker.consumer import consumer_config
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    NOTIFICATION_SECRET,
    Running,
    StartReceiver,
    poll,
)
from tests.unit.pim_formats.test_notifications import DOC_SAMPLE


def notification(**changes: Any) -> bytes:
    doc: dict[str, Any] = json.loads(DOC_SAMPLE)
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


async def post(
    r: Running, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    sent = notification_headers(NOTIFICATION_SECRET, body) if headers is None else headers
    return await r.post(body, sent, path=NOTIFICATIONS_PATH)


async def counted(r: Running) -> dict[str, float]:
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    return {
        s.labels["type"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "akeneo_receiver_notifications_total"
    }


async def test_a_notification_is_stored_raw_once_then_200(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    before = await counted(r)
    # Akeneo's own sample, byte for byte, signed with our notification secret
    for attempt in range(2):  # a retry of the same notification is stored once
        status, answer = await post(r, DOC_SAMPLE)
        assert (status, answer) == (200, {"status": "ok", "accepted": 1, "duplicates": attempt})
    stored = await r.notifications()
    assert stored == [
        (r.config.names.notifications_subject, hashlib.sha256(DOC_SAMPLE).hexdigest(), DOC_SAMPLE)
    ]
    # what the operator reads back
    condition = subscription_condition(parse_notification(stored[0][2]))
    assert condition is not None and condition[:2] == ("False", "SuspendedBySystem")
    after = await counted(r)
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
        "subscription.suspended.system": 1  # the retry is not counted again
    }
    assert await r.stored() == []  # no event


async def test_every_documented_type_and_an_unknown_one_are_stored_and_counted(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver()
    before = await counted(r)
    types = [
        "subscription.suspended.system",
        "subscription.suspended.user",
        "subscription.revoked",
        "subscription.resumed",
        "subscription.renamed",  # not documented (yet): still 200 and stored
    ]
    for type_ in types:
        status, _ = await post(r, notification(notification_type=type_, reason=...))
        assert status == 200, type_
    stored = [json.loads(body)["notification_type"] for _, _, body in await r.notifications()]
    assert stored == types
    after = await counted(r)
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
        "subscription.suspended.system": 1,
        "subscription.suspended.user": 1,
        "subscription.revoked": 1,
        "subscription.resumed": 1,
        "other": 1,
    }


async def test_bad_or_missing_signature_is_401(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    for headers, reason in (
        (notification_headers("someone-elses-secret-0123", DOC_SAMPLE), "bad_signature"),
        (notification_headers(NOTIFICATION_SECRET, DOC_SAMPLE + b"\n"), "bad_signature"),
        # signed with the event secret, not the notification secret
        (event_platform_headers(EVENT_PLATFORM_SECRETS[0], DOC_SAMPLE), "bad_signature"),
        ({"Content-Type": "application/json"}, "missing_signature"),
    ):
        status, answer = await post(r, DOC_SAMPLE, headers)
        assert (status, answer["error"]) == (401, reason)
    assert await r.messages() == []


async def test_no_secret_configured_is_401(start_receiver: StartReceiver) -> None:
    r = await start_receiver(notification_secret_file=None)
    status, answer = await post(r, DOC_SAMPLE)
    assert (status, answer["error"]) == (401, "no_secret_configured")
    assert await r.messages() == []


async def test_the_secret_file_is_reloaded(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    path = r.config.notification_secret_file
    assert path is not None
    rotated = "rotated-notification-secret-1234"
    path.write_text(rotated + "\n")

    async def reloaded() -> bool:
        status, _ = await post(r, DOC_SAMPLE, notification_headers(rotated, DOC_SAMPLE))
        return status == 200

    await poll(reloaded, what="the rotated notification secret in use")
    status, answer = await post(r, DOC_SAMPLE)
    assert (status, answer["error"]) == (401, "bad_signature")


async def test_a_body_that_is_not_a_notification_is_400(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    for body, reason in (
        (b"", "invalid_json"),
        (b"{oops", "invalid_json"),
        (b"[]", "invalid_notification"),
        (notification(notification_type=...), "invalid_notification"),
        (notification(timestamp="not a time"), "invalid_notification"),
        (notification(subscription_id=...), "invalid_notification"),
        (notification(subscriber_id=None), "invalid_notification"),
    ):
        status, answer = await post(r, body)
        assert (status, answer["error"]) == (400, reason), body
    assert await r.messages() == []


async def test_an_oversized_notification_is_413(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    body = notification(reason="x" * 70_000)
    status, answer = await post(r, body)
    assert (status, answer["error"]) == (413, "body_too_large")


async def test_queue_down_is_503(start_receiver: StartReceiver) -> None:
    """A 5xx is retried by the platform (1 s and 2 s later), a 4xx is not."""
    r = await start_receiver(ensure_stream=False, wait_ready=False)
    status, answer = await post(r, DOC_SAMPLE)
    assert (status, answer["error"]) == (503, "no_responders")


async def test_subject_prefix_override_is_honoured(start_receiver: StartReceiver) -> None:
    prefix = f"custom-{time.time_ns()}"
    r = await start_receiver(subject_prefix=prefix, ensure_stream=False, wait_ready=False)
    js = r.nc.jetstream()
    stream = f"CUSTOM_{time.time_ns()}"
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    try:
        # the receiver publishes with Nats-Expected-Stream: its own stream must take it
        status, _ = await post(r, DOC_SAMPLE)
        assert status == 503
        await js.delete_stream(stream)
        await js.add_stream(name=r.stream, subjects=[f"{prefix}.>"])
        status, _ = await post(r, DOC_SAMPLE)
        assert status == 200
        msg = await js.get_last_msg(r.stream, f"{prefix}.notifications")
        assert msg.data == DOC_SAMPLE
    finally:
        for name in (stream, r.stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)


async def test_the_worker_never_sees_a_notification(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    js = r.nc.jetstream()
    config = consumer_config(r.config.names, max_deliver=3, ack_wait=30, max_ack_pending=10)
    await js.add_consumer(r.stream, config)  # the worker's own consumer
    status, _ = await post(r, DOC_SAMPLE)
    assert status == 200
    assert len(await r.notifications()) == 1
    info = await js.consumer_info(r.stream, r.config.names.consumer)
    assert info.num_pending == 0
