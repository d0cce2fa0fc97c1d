"""The simulated Event Platform delivers, retries, suspends and notifies as Akeneo documents.

https://api.akeneo.com/event-platform/key-platform-behaviors.html: "Your subscription is
immediately suspended if ... Your HTTPS endpoint responds with a `404 Not Found` HTTP status"
or "`3xx Redirection`"; "If the success rate drops below 90% within the last rolling hour,
your subscription will be suspended"; retries "5 minutes", "10 minutes", "20 minutes after the
previous attempt. ... After three retry attempts, the message is dropped."
https://api.akeneo.com/event-platform/notification-webhooks.html: the notification contract.
Everything runs over real TLS; ``time_scale`` shortens the platform's minutes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from akeneo_connector.event_types import PREFIX, REFERENCE
from akeneo_pim.signatures import sign_event_platform
from akeneo_pim.simulator import EventPlatform, PimSimulator
from akeneo_pim.simulator.platform import Subscription
from tests.integration.simulator.conftest import (
    NOTIFICATION_SECRET,
    PRIMARY,
    SECONDARY,
    Destination,
    MakePlatform,
    Received,
    Serve,
    eventually,
    hmac_openssl,
)

PRODUCT_TYPES = [f"{PREFIX}product.{v}" for v in ("created", "updated", "deleted")]


async def _subscribe(
    platform: EventPlatform,
    pim: PimSimulator,
    destination: Destination,
    notifications: Destination | None = None,
    *,
    events: list[str] | None = None,
    **extra: Any,
) -> Subscription:
    subscriber = platform.add_subscriber(
        client_id="sim-client",
        subject=pim.url,
        notification_url=notifications.url if notifications else None,
        notification_secret=NOTIFICATION_SECRET if notifications else None,
    )
    return platform.add_subscription(
        subscriber,
        url=destination.url,
        primary=PRIMARY,
        secondary=SECONDARY,
        events=events or PRODUCT_TYPES,
        **extra,
    )


def _check_notification(got: Received, kind: str, sub: Subscription, tmp: Path) -> dict[str, Any]:
    """The documented headers, a signature openssl agrees with, and the documented fields."""
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == "akeneo/event-platform"
    assert got.headers["X-AKENEO-SIGNATURE-ALGORITHM"] == "HmacSHA256"
    assert got.headers["X-AKENEO-SIGNATURE-PRIMARY"] == hmac_openssl(
        NOTIFICATION_SECRET, got.raw, tmp
    )
    assert "X-AKENEO-SIGNATURE-SECONDARY" not in got.headers  # one secret only
    body = got.json
    assert body["notification_type"] == kind
    assert body["subscription_id"] == sub.id and body["subscriber_id"] == sub.subscriber_id
    assert body["destination"] == sub.url and body["events"] == sub.events
    assert body["subject"] == sub.subject
    assert body["timestamp"].endswith("Z")
    assert set(body) <= {
        "notification_type", "timestamp", "subscription_id", "subscriber_id", "destination",
        "events", "reason", "subject",
    }  # fmt: skip
    return dict(body)


@pytest.mark.parametrize("status", [404, 301, 307])
async def test_404_or_a_redirect_suspends_at_once_and_notifies(
    status: int, pim: PimSimulator, make_platform: MakePlatform, serve: Serve, tmp_path: Path
) -> None:
    platform = await make_platform()
    answers = iter([status])
    destination = await serve(Destination(answer=lambda _: next(answers, 200)))
    notifications = await serve(Destination(), "/event-platform/notifications")
    sub = await _subscribe(platform, pim, destination, notifications)
    platform.publish(pim.edit_product())
    await platform.drain()
    assert sub.status == "suspended" and sub.stats.failed == 1
    assert len(destination.requests) == 1  # no redirect followed, nothing retried
    [note] = notifications.requests
    body = _check_notification(note, "subscription.suspended.system", sub, tmp_path)
    assert str(status) in body["reason"]
    # while suspended, events are dropped, not kept
    for _ in range(3):
        assert platform.publish(pim.edit_product()) == 0
    await asyncio.sleep(0.2)
    assert len(destination.requests) == 1
    assert sub.stats.dropped == {"suspended": 4}


async def test_one_refused_type_gets_suspended_by_success_rate_the_other_stays_active(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve, tmp_path: Path
) -> None:
    """The negative control of issue 13: a destination answering 400 to one type of several
    falls under 90 % over the (time-scaled) rolling hour; one answering 2xx stays active."""
    platform = await make_platform(time_scale=60)  # the hour is a minute
    categories = f"{PREFIX}category.updated"
    picky = await serve(Destination(answer=lambda r: 400 if r.json["type"] == categories else 200))
    fine = await serve(Destination())
    picky_notes = await serve(Destination(), "/notifications")
    types = [*PRODUCT_TYPES, categories]
    bad = await _subscribe(platform, pim, picky, picky_notes, events=types)
    good = await _subscribe(platform, pim, fine, events=types)
    for n in range(40):  # 1 in 4 is a category edit
        edit = pim.edit_structure_item("categories", "men") if n % 4 == 3 else pim.edit_product()
        platform.publish(edit)
        await asyncio.sleep(0.01)
    await platform.drain()
    assert bad.status == "suspended"
    assert bad.stats.suspensions[0][1:] == ("system", "Success rate dropped below 90%")
    assert 20 <= bad.stats.attempts < 40  # judged from the 20th attempt on, then stopped
    assert bad.stats.dropped["not_retriable"] >= 2 and bad.stats.dropped["suspended"] > 0
    [note] = picky_notes.requests
    assert _check_notification(note, "subscription.suspended.system", bad, tmp_path)["reason"] == (
        "Success rate dropped below 90%"
    )
    assert good.status == "active"
    assert good.stats.delivered == 40 and good.stats.failed == 0
    assert len({e["id"] for e in fine.events()}) == 40


async def test_503_then_200_is_retried_after_five_scaled_minutes(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    platform = await make_platform(time_scale=150)  # 5 minutes: 2 s
    answers = iter([503])
    destination = await serve(Destination(answer=lambda _: next(answers, 200)))
    sub = await _subscribe(platform, pim, destination)
    platform.publish(pim.edit_product())
    await platform.drain()
    first, second = destination.requests
    assert first.raw == second.raw  # the same event, byte for byte
    assert (
        first.headers["X-AKENEO-SIGNATURE-PRIMARY"] == second.headers["X-AKENEO-SIGNATURE-PRIMARY"]
    )
    assert 2.0 <= second.at - first.at < 6.0
    assert sub.stats.retried == 1 and sub.stats.delivered == 1 and sub.stats.failed == 1
    assert sub.status == "active"  # one failure in two attempts: under the minimum sample


async def test_three_retries_failing_drop_the_event(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    platform = await make_platform(time_scale=600)  # 5, 10, 20 minutes: 0.5, 1, 2 s
    destination = await serve(Destination(answer=lambda _: 503))
    sub = await _subscribe(platform, pim, destination)
    platform.publish(pim.edit_product())
    await platform.drain()
    times = [r.at for r in destination.requests]
    assert len(times) == 4  # the attempt and three retries
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, nominal in zip(gaps, (0.5, 1.0, 2.0), strict=True):
        assert nominal <= gap < nominal + 3.0
    assert sub.stats.dropped == {"retries_exhausted": 1}
    assert sub.stats.retried == 3 and sub.stats.failed == 4 and sub.stats.delivered == 0


async def test_timeouts_are_transient_failures(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    # the 5 s deadline, shortened; a retry 0.5 s later is answered in time
    platform = await make_platform(time_scale=600, delivery_timeout=0.3)
    destination = await serve(Destination(delay=1.0))
    sub = await _subscribe(platform, pim, destination)
    platform.publish(pim.edit_product())
    await eventually(lambda: sub.stats.timeouts == 1, what="a timeout")
    destination.delay = 0.0
    await platform.drain()
    assert sub.stats.delivered == 1 and sub.stats.retried == 1


async def test_429_lowers_the_rate_without_counting_as_failure(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    platform = await make_platform(max_rate=50)
    answers = iter([429] * 5)
    destination = await serve(Destination(answer=lambda _: next(answers, 200)))
    sub = await _subscribe(platform, pim, destination)
    for _ in range(5):
        platform.publish(pim.edit_product())
    await platform.drain()
    assert sub.stats.throttled == 5 and sub.stats.failed == 0 and sub.stats.delivered == 5
    # halved five times from 50/s, then +1 per success: the later deliveries were paced
    ok = [r.at for r in destination.requests[5:]]
    assert ok[-1] - ok[0] >= 0.3
    assert sub.status == "active"


async def test_throttled_over_the_hour_counts_as_a_failure(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    platform = await make_platform(time_scale=3600, min_rate=5)  # the hour: 1 s
    destination = await serve(Destination(answer=lambda _: 429))
    sub = await _subscribe(platform, pim, destination)
    platform.publish(pim.edit_product())
    await platform.drain()
    assert sub.stats.dropped == {"throttled_too_long": 1} and sub.stats.failed == 1
    assert sub.stats.throttled >= 3


async def test_user_suspension_and_resume_notify_and_deliveries_continue(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve, tmp_path: Path
) -> None:
    platform = await make_platform()
    destination = await serve(Destination())
    notifications = await serve(Destination(), "/notifications")
    sub = await _subscribe(platform, pim, destination, notifications, send_product_identifier=True)
    platform.publish(pim.edit_product())
    await platform.drain()
    platform.suspend(sub.id)  # as the management API's suspend does
    lost = pim.edit_product()
    assert platform.publish(lost) == 0
    platform.resume(sub.id)
    kept = pim.edit_product()
    platform.publish(kept)
    await platform.drain()
    ids = [e["id"] for e in destination.events()]
    assert lost.event_id not in ids and kept.event_id in ids
    assert destination.events()[-1]["data"]["product"]["identifier"] == kept.resource["identifier"]
    kinds = [n.json["notification_type"] for n in notifications.requests]
    assert kinds == ["subscription.suspended.user", "subscription.resumed"]
    for note, kind in zip(notifications.requests, kinds, strict=True):
        _check_notification(note, kind, sub, tmp_path)
    assert "reason" not in notifications.requests[1].json


async def test_revocation_notifies_and_drops_everything(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve, tmp_path: Path
) -> None:
    platform = await make_platform()
    destination = await serve(Destination())
    notifications = await serve(Destination(), "/notifications")
    sub = await _subscribe(platform, pim, destination, notifications)
    platform.revoke(sub.subscriber_id)
    assert platform.publish(pim.edit_product()) == 0
    await platform.drain()
    assert sub.status == "revoked" and destination.requests == []
    [note] = notifications.requests
    body = _check_notification(note, "subscription.revoked", sub, tmp_path)
    assert "removed from the PIM" in body["reason"]


async def test_notification_retries_5xx_twice_then_gives_up_on_a_4xx(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    """ "retries up to 3 times with delays of 1s and 2s between attempts. 5xx and 429
    responses are retried within that budget; other 4xx responses are not." """
    platform = await make_platform()
    destination = await serve(Destination())
    answers = iter([503, 429, 200, 400])
    notifications = await serve(Destination(answer=lambda _: next(answers)), "/notifications")
    sub = await _subscribe(platform, pim, destination, notifications)
    platform.suspend(sub.id)
    await platform.drain()
    first = sub.stats.notifications[0]
    assert first.attempts == [503, 429, 200] and first.delivered
    times = [r.at for r in notifications.requests]
    assert 1.0 <= times[1] - times[0] < 4.0 and 2.0 <= times[2] - times[1] < 5.0
    platform.resume(sub.id)
    await platform.drain()
    second = sub.stats.notifications[1]
    assert second.attempts == [400] and not second.delivered and second.email_fallback


async def test_deliveries_are_signed_cloudevents_of_every_reference_type(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve, tmp_path: Path
) -> None:
    platform = await make_platform()
    destination = await serve(Destination())
    sub = await _subscribe(platform, pim, destination, events=list(REFERENCE),
                           headers={"X-Api-Key": "k-123"})  # fmt: skip
    import random

    from akeneo_pim.simulator.events import reference_event

    rng = random.Random(3)
    for event_type in REFERENCE:
        platform.publish_event(reference_event(event_type, rng))
    await platform.drain()
    assert sub.stats.delivered == len(REFERENCE)
    assert sorted(e["type"] for e in destination.events()) == sorted(REFERENCE)
    for got in destination.requests:
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["X-Api-Key"] == "k-123"
        assert got.headers["X-AKENEO-SIGNATURE-PRIMARY"] == hmac_openssl(PRIMARY, got.raw, tmp_path)
        assert got.headers["X-AKENEO-SIGNATURE-SECONDARY"] == sign_event_platform(
            SECONDARY, got.raw
        )
        event = got.json
        assert event["subject"] == sub.id and event["source"] == "pim"


async def test_events_before_the_activation_delay_are_lost(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    platform = await make_platform(time_scale=120, activation_delay=120.0)  # 1 s
    destination = await serve(Destination())
    sub = await _subscribe(platform, pim, destination)
    started = time.monotonic()
    assert platform.publish(pim.edit_product()) == 0
    await eventually(
        lambda: platform.publish(pim.edit_product()) == 1, timeout=10, what="activation"
    )
    assert time.monotonic() - started >= 1.0
    await platform.drain()
    assert sub.stats.delivered == 1 and sub.stats.dropped["not_yet_active"] >= 1


async def test_a_busy_stream_is_delivered_once_each_without_spurious_timeouts(
    pim: PimSimulator, make_platform: MakePlatform, serve: Serve
) -> None:
    """The simulator must not fail a healthy destination: no timeout of its own making."""
    platform = await make_platform(max_rate=10_000)
    destination = await serve(Destination())
    sub = await _subscribe(platform, pim, destination, events=list(REFERENCE))
    for _ in range(1500):
        platform.publish(pim.catalog.random_change(structure=0.3))
    await platform.drain(timeout=20)
    assert sub.stats.timeouts == sub.stats.errors == sub.stats.failed == 0
    assert sub.stats.delivered == sub.stats.published == len(destination.requests) >= 1500
    assert len({r.json["id"] for r in destination.requests}) == sub.stats.delivered
