"""The simulated Event Platform's management API over TLS, authenticated by the PIM's tokens.

Paths and bodies from https://api.akeneo.com/event-platform/getting-started.html (``POST
/api/v1/subscribers`` with ``{"name", "contact": {"technical_email"}}``, ``POST
/api/v1/subscribers/{id}/subscriptions`` with ``source``, ``subject``, ``events``, ``type``,
``config.url``, ``config.secret``), concepts.html (statuses, ``send_product_identifier``,
custom headers), notification-webhooks.html (contact fields, the secret "is never returned")
and logs.html (``POST .../subscriptions/{id}/suspend``; secrets shown ``***redacted***``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from akeneo_pim.event_types import PREFIX
from akeneo_pim.simulator import EventPlatform, PimSimulator
from tests.ground.tls import CertificateAuthority
from tests.integration.simulator.conftest import (
    NOTIFICATION_SECRET,
    Destination,
    MakePlatform,
    Serve,
)

UPDATED = f"{PREFIX}product.updated"


async def _token(pim: PimSimulator, ca: CertificateAuthority, client: str = "sim-client",
                 secret: str = "sim-secret") -> str:  # fmt: skip
    async with httpx.AsyncClient(base_url=pim.url, verify=ca.client_context()) as http:
        answer = await http.post(
            "/api/oauth/v1/token",
            json={"grant_type": "password", "username": "sim-user", "password": "sim-password"},
            auth=(client, secret),
        )
        return str(answer.json()["access_token"])


@pytest.fixture
async def api(
    pim: PimSimulator, make_platform: MakePlatform, ca: CertificateAuthority
) -> AsyncIterator[tuple[EventPlatform, httpx.AsyncClient]]:
    platform = await make_platform()
    headers = {
        "X-PIM-URL": pim.url,
        "X-PIM-TOKEN": await _token(pim, ca),
        "X-PIM-CLIENT-ID": "sim-client",
    }
    async with httpx.AsyncClient(
        base_url=platform.url, headers=headers, verify=ca.client_context()
    ) as http:
        yield platform, http


def _subscription(url: str, pim: PimSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "source": "pim",
        "subject": pim.url,
        "events": [UPDATED],
        "type": "https",
        "config": {"url": url, "secret": {"primary": "p-secret", "secondary": "s-secret"}},
        **extra,
    }


async def test_every_call_needs_a_valid_pim_token_of_that_client(
    pim: PimSimulator, make_platform: MakePlatform, ca: CertificateAuthority
) -> None:
    platform = await make_platform()
    token = await _token(pim, ca)
    pim.add_client("other-connection", "other-secret")
    other = await _token(pim, ca, "other-connection", "other-secret")
    good = {"X-PIM-URL": pim.url, "X-PIM-TOKEN": token, "X-PIM-CLIENT-ID": "sim-client"}
    cases = {
        "missing": {k: v for k, v in good.items() if k != "X-PIM-TOKEN"},
        "invalid": {**good, "X-PIM-TOKEN": "forged"},
        "another client's": {**good, "X-PIM-TOKEN": other},
        "another PIM": {**good, "X-PIM-URL": "https://elsewhere.cloud.akeneo.com"},
    }
    async with httpx.AsyncClient(base_url=platform.url, verify=ca.client_context()) as http:
        for name, headers in cases.items():
            answer = await http.get("/subscribers", headers=headers)
            assert answer.status_code == 401, name
            assert set(answer.json()) == {"code", "message"}
            assert token not in answer.text and other not in answer.text
        assert (await http.get("/subscribers", headers=good)).status_code == 200
        pim.expire_tokens()
        assert (await http.get("/subscribers", headers=good)).status_code == 401


async def test_subscriber_crud(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator
) -> None:
    platform, http = api
    created = await http.post(
        "/subscribers",
        json={"name": "example subscriber name",
              "contact": {"technical_email": "subscriber.test.email@example.com"}},
    )  # fmt: skip
    assert created.status_code == 201
    subscriber = created.json()
    assert set(subscriber) == {
        "id",
        "name",
        "subject",
        "status",
        "contact",
        "created_at",
        "updated_at",
    }  # fmt: skip  (getting-started.html's answer, plus the default channel in contact)
    assert subscriber["subject"] == pim.url and subscriber["status"] == "active"
    assert subscriber["contact"]["notification_channels"] == ["email"]
    assert subscriber["created_at"].endswith("Z")
    sid = subscriber["id"]
    patched = await http.patch(
        f"/subscribers/{sid}",
        json={"contact": {"notification_channels": ["webhook"],
                          "notification_webhook_url": "https://hooks.example.com/n",
                          "notification_webhook_secret": NOTIFICATION_SECRET}},
    )  # fmt: skip
    assert patched.status_code == 200
    assert patched.json()["contact"]["notification_channels"] == ["webhook"]
    assert NOTIFICATION_SECRET not in patched.text  # "never returned in API responses"
    assert NOTIFICATION_SECRET not in (await http.get(f"/subscribers/{sid}")).text
    assert platform.subscribers[sid].notification_webhook_secret == NOTIFICATION_SECRET
    listed = (await http.get("/subscribers")).json()
    assert [s["id"] for s in listed] == [sid]
    reset = await http.patch(f"/subscribers/{sid}", json={"contact": {"notification_channels": []}})
    assert reset.json()["contact"]["notification_channels"] == ["email"]  # [] reverts
    assert (await http.delete(f"/subscribers/{sid}")).status_code == 204
    assert (await http.get(f"/subscribers/{sid}")).json()["status"] == "deleted"
    assert (await http.get("/subscribers/nope")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"contact": {"technical_email": "a@example.com"}},  # no name
        {"name": "x", "contact": {"technical_email": "not-an-email"}},
        {"name": "x", "contact": {"technical_email": "a@example.com",
                                  "notification_channels": ["webhook"]}},  # no url, no secret
        {"name": "x", "contact": {"technical_email": "a@example.com",
                                  "notification_channels": ["webhook"],
                                  "notification_webhook_url": "https://h.example.com/n",
                                  "notification_webhook_secret": "too-short"}},
        {"name": "x", "contact": {"technical_email": "a@example.com",
                                  "notification_channels": ["webhook"],
                                  "notification_webhook_url": "http://h.example.com/n",
                                  "notification_webhook_secret": NOTIFICATION_SECRET}},
        {"name": "x", "contact": {"technical_email": "a@example.com",
                                  "notification_channels": ["sms"]}},
    ],
)  # fmt: skip
async def test_bad_subscribers_are_400(
    api: tuple[EventPlatform, httpx.AsyncClient], body: dict[str, Any]
) -> None:
    _, http = api
    answer = await http.post("/subscribers", json=body)
    assert answer.status_code == 400, answer.text
    assert NOTIFICATION_SECRET not in answer.text


async def test_subscription_lifecycle_drives_deliveries(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator, serve: Serve
) -> None:
    platform, http = api
    destination = await serve(Destination())
    notifications = await serve(Destination(), "/notifications")
    subscriber = (
        await http.post(
            "/subscribers",
            json={"name": "ops", "contact": {
                "technical_email": "ops@example.com", "notification_channels": ["webhook"],
                "notification_webhook_url": notifications.url,
                "notification_webhook_secret": NOTIFICATION_SECRET}},
        )
    ).json()  # fmt: skip
    base = f"/subscribers/{subscriber['id']}/subscriptions"
    created = await http.post(
        base, json=_subscription(destination.url, pim, send_product_identifier=True)
    )
    assert created.status_code == 201
    sub = created.json()
    assert sub["status"] == "active" and sub["subscriber_id"] == subscriber["id"]
    assert sub["config"] == {
        "url": destination.url,
        "secret": {"primary": "***redacted***", "secondary": "***redacted***"},
    }
    assert "p-secret" not in created.text and "s-secret" not in created.text
    url = f"{base}/{sub['id']}"
    change = pim.edit_product()
    platform.publish(change)
    await platform.drain()
    [event] = destination.events()
    assert event["subject"] == sub["id"] and event["id"] == change.event_id
    assert event["data"]["product"] == {
        "uuid": change.key, "identifier": change.resource["identifier"],
    }  # fmt: skip

    suspended = await http.post(f"{url}/suspend")
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert (await http.post(f"{url}/suspend")).status_code == 409
    assert platform.publish(pim.edit_product()) == 0
    resumed = await http.post(f"{url}/resume")
    assert resumed.json()["status"] == "active"
    assert platform.publish(pim.edit_product()) == 1  # delivered again
    await platform.drain()
    kinds = [n.json["notification_type"] for n in notifications.requests]
    assert kinds == ["subscription.suspended.user", "subscription.resumed"]

    patched = await http.patch(url, json={"events": [f"{PREFIX}product.deleted"]})
    assert patched.status_code == 200 and patched.json()["events"] == [f"{PREFIX}product.deleted"]
    assert platform.publish(pim.edit_product()) == 0  # no longer subscribed
    assert platform.publish(pim.delete_product()) == 1
    await platform.drain()
    assert [s["id"] for s in (await http.get(base)).json()] == [sub["id"]]
    assert (await http.get(url)).json()["status"] == "active"

    assert (await http.delete(url)).status_code == 204
    assert (await http.get(url)).json()["status"] == "deleted"
    assert (await http.post(f"{url}/resume")).status_code == 409
    assert platform.publish(pim.delete_product()) == 0
    await platform.drain()
    assert len(destination.requests) == 3


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"source": "erp"}, "source"),
        ({"type": "pubsub"}, "type"),
        ({"events": []}, "events"),
        ({"events": ["com.akeneo.pim.v1.product.exploded"]}, "Unknown event type"),
        ({"subject": "https://elsewhere.cloud.akeneo.com"}, "subject"),
        ({"config": {"url": "http://hooks.example.com/ep", "secret": {"primary": "p"}}}, "HTTPS"),
        ({"config": {"url": "https://hooks.example.com/ep", "secret": {}}}, "primary"),
        ({"config": {"url": "https://hooks.example.com/ep", "secret": {"primary": "p"},
                     "headers": {"Authorization": "x"}}}, "reserved"),
        ({"config": {"url": "https://hooks.example.com/ep", "secret": {"primary": "p"},
                     "headers": {f"X-H{i}": "v" for i in range(6)}}}, "at most 5"),
        ({"send_product_identifier": "yes"}, "boolean"),
    ],
)  # fmt: skip
async def test_bad_subscriptions_are_400(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator, change: dict[str, Any],
    why: str,
) -> None:  # fmt: skip
    _, http = api
    subscriber = (
        await http.post("/subscribers", json={"name": "s", "contact": {"technical_email": "a@b.c"}})
    ).json()
    body = {**_subscription("https://hooks.example.com/ep", pim), **change}
    answer = await http.post(f"/subscribers/{subscriber['id']}/subscriptions", json=body)
    assert answer.status_code == 400 and why in answer.json()["message"], answer.text


async def test_subscribers_are_private_to_their_connection_and_bounded(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator, ca: CertificateAuthority
) -> None:
    platform, http = api
    subscriber = (
        await http.post("/subscribers", json={"name": "s", "contact": {"technical_email": "a@b.c"}})
    ).json()
    base = f"/subscribers/{subscriber['id']}/subscriptions"
    for n in range(20):
        made = await http.post(base, json=_subscription(f"https://hooks.example.com/{n}", pim))
        assert made.status_code == 201
    assert (
        await http.post(base, json=_subscription("https://x.example.com/", pim))
    ).status_code == 409
    pim.add_client("erp", "erp-secret")
    other = {
        "X-PIM-URL": pim.url,
        "X-PIM-TOKEN": await _token(pim, ca, "erp", "erp-secret"),
        "X-PIM-CLIENT-ID": "erp",
    }
    assert (await http.get(f"/subscribers/{subscriber['id']}", headers=other)).status_code == 404
    assert (await http.get("/subscribers", headers=other)).json() == []
    too_big = await http.post("/subscribers", content=b"{" + b" " * 70_000 + b"}",
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert too_big.status_code == 413
    platform.revoke(subscriber["id"])
    refused = await http.get("/subscribers")
    assert refused.status_code == 401 and "removed" in refused.json()["message"]
