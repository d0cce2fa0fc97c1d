"""Akeneo's management and notification samples between the simulated Event Platform and the
real receiver, over real TLS.

The subscriber is created with the verbatim body of
https://api.akeneo.com/event-platform/notification-webhooks.html#configuration (its secret,
``a-shared-secret-of-16-to-256-chars``, is the receiver's notification secret too); the
platform's notification of a suspension has the shape of that page's payload sample and is
stored by the receiver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from akeneo_pim.paths import NOTIFICATIONS_PATH
from akeneo_pim.simulator import EventPlatform, PimSimulator
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.receiver.conftest import StartReceiver, poll
from tests.integration.samples.shapes import differences
from tests.integration.simulator.conftest import MakePlatform, make_platform, pim, server_tls
from tests.samples import sample

__all__ = ["make_platform", "pim", "server_tls"]  # fixtures, shared with the simulator tests

CONFIGURATION = sample("event-platform/management/subscriber-with-notification-webhook")
ANSWER = sample("event-platform/management/subscriber-created-answer")
PAYLOAD = sample("event-platform/notification-suspended-system")
SECRET: str = CONFIGURATION.json()["contact"]["notification_webhook_secret"]


async def _management(
    pim: PimSimulator, platform: EventPlatform, ca: CertificateAuthority
) -> httpx.AsyncClient:
    """A management API client authenticated as the PIM connection (getting-started.html)."""
    async with httpx.AsyncClient(base_url=pim.url, verify=ca.client_context()) as http:
        token = (
            await http.post(
                "/api/oauth/v1/token",
                json={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
                auth=("sim-client", "sim-secret"),
            )
        ).json()["access_token"]
    headers = {"X-PIM-URL": pim.url, "X-PIM-TOKEN": token, "X-PIM-CLIENT-ID": "sim-client"}
    return httpx.AsyncClient(base_url=platform.url, headers=headers, verify=ca.client_context())


async def test_a_suspension_notification_goes_from_the_platform_to_the_receiver(
    pim: PimSimulator,
    make_platform: MakePlatform,
    start_receiver: StartReceiver,
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "eventPlatformNotificationSecret"
    secret_file.write_text(SECRET + "\n")
    r = await start_receiver(notification_secret_file=secret_file)
    platform = await make_platform()
    async with await _management(pim, platform, ca) as api:
        created = await api.post(
            "/subscribers",
            content=CONFIGURATION.body,  # the page's bytes
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 201, created.text
        subscriber: dict[str, Any] = created.json()
        # the getting-started answer's shape; the notification fields the page documents are
        # returned, the secret never is ("It is never returned in API responses")
        assert differences(subscriber, ANSWER.json()) == {
            ".contact.notification_channels: only ours",
            ".contact.notification_webhook_url: only ours",
        }
        assert SECRET not in created.text
        patched = await api.patch(
            f"/subscribers/{subscriber['id']}",
            json={"contact": {"notification_webhook_url": r.url + NOTIFICATIONS_PATH}},
        )
        assert patched.status_code == 200, patched.text
    sub = platform.add_subscription(
        platform.subscribers[subscriber["id"]], url=r.url + "/event-platform", primary="p" * 16
    )
    platform.suspend(sub.id, by="system", reason="Success rate dropped below 90%")

    async def stored() -> bool:
        return bool(await r.notifications())

    await poll(stored, timeout=15, what="the notification stored")
    ((_, _, raw),) = await r.notifications()
    (record,) = platform.stats(sub.id).notifications
    assert record.delivered and record.attempts == [200]  # verified with the page's secret
    assert differences(record.body, PAYLOAD.json()) == set()  # the documented payload's shape
    assert record.body["notification_type"] == PAYLOAD.expect["notification_type"]
    assert record.body["reason"] == PAYLOAD.expect["reason"]
    assert json.loads(raw) == record.body  # stored as sent
