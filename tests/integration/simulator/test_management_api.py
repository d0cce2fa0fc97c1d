"""The simulated Event Platform's management API over TLS, authenticated by the PIM's tokens.

Held to the OpenAPI document linked from https://api.akeneo.com/event-platform/api-reference.html
(in akeneo/pim-api-docs, content/swagger/aep/public-oas.yml at commit 039db85b, the "OAS"):
status codes (201 on creation, 200 with the deleted resource on DELETE, 202 on suspend and
resume), the ``HTTPError`` body ``{"errors": [{"message"}]}``, secrets of 16 to 256
characters, ``source`` defaulting to ``pim``, which resources the lists hold. Paths and
bodies from https://api.akeneo.com/event-platform/getting-started.html (``POST
/api/v1/subscribers`` with ``{"name", "contact": {"technical_email"}}``, ``POST
/api/v1/subscribers/{id}/subscriptions`` with ``source``, ``subject``, ``events``, ``type``,
``config.url``, ``config.secret``), concepts.html (statuses, ``send_product_identifier``,
custom headers, ``filter``), available-filters.html (the filter grammar),
notification-webhooks.html (contact fields, the secret "is never returned"),
authentication-and-authorization.html (the permission) and logs.html (``POST
.../subscriptions/{id}/suspend`` and its answer; secrets shown ``***redacted***``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from akeneo_connector.event_types import PREFIX
from akeneo_pim.simulator import EventPlatform, PimSimulator
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.samples.shapes import differences
from tests.integration.simulator.conftest import (
    NOTIFICATION_SECRET,
    Destination,
    MakePlatform,
    Serve,
)
from tests.samples import sample

UPDATED = f"{PREFIX}product.updated"
# the OAS, components.schemas.SubscriptionHTTPSConfiguration.example, verbatim
OAS_PRIMARY, OAS_SECONDARY = "thisisaprimarysecret", "thisisasecondarysecret"
# the OAS, components.schemas.SubscriberPayload.example, verbatim
OAS_SUBSCRIBER = {"name": "translation app", "contact": {"technical_email": "john.doe@example.com"}}
# https://api.akeneo.com/event-platform/logs.html#1-action-logs: the response of the
# suspend call in the action log, verbatim (the corpus keeps the whole log)
_ACTION_LOG = sample("event-platform/management/action-log-suspended").json()
LOGS_SUSPENDED: dict[str, Any] = _ACTION_LOG["response"]


def _message(answer: httpx.Response) -> str:
    """The OAS's HTTPError: ``{"errors": [{"message": ...}]}``, nothing else."""
    body = answer.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, answer.text
    assert set(body["errors"][0]) == {"message"}
    return str(body["errors"][0]["message"])


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
        "config": {"url": url, "secret": {"primary": OAS_PRIMARY, "secondary": OAS_SECONDARY}},
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
            assert _message(answer)
            assert token not in answer.text and other not in answer.text
        assert (await http.get("/subscribers", headers=good)).status_code == 200
        pim.expire_tokens()
        assert (await http.get("/subscribers", headers=good)).status_code == 401


async def test_subscriber_crud(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator
) -> None:
    platform, http = api
    oas = await http.post("/subscribers", json=OAS_SUBSCRIBER)
    assert oas.status_code == 201 and oas.json()["name"] == "translation app"
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
    assert [s["id"] for s in listed] == [oas.json()["id"], sid]
    reset = await http.patch(f"/subscribers/{sid}", json={"contact": {"notification_channels": []}})
    assert reset.json()["contact"]["notification_channels"] == ["email"]  # [] reverts
    deleted = await http.delete(f"/subscribers/{sid}")
    # the OAS: '200': "Subscriber deleted", schema Subscriber
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert deleted.json()["id"] == sid
    assert (await http.get(f"/subscribers/{sid}")).json()["status"] == "deleted"
    # the OAS: GET /subscribers gets "subscribers that are either active or revoked"
    assert [s["id"] for s in (await http.get("/subscribers")).json()] == [oas.json()["id"]]
    assert (await http.patch(f"/subscribers/{sid}", json={"name": "x"})).status_code == 409
    missing = await http.get("/subscribers/nope")
    assert missing.status_code == 404 and _message(missing) == "Subscriber not found"


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
    assert OAS_PRIMARY not in created.text and OAS_SECONDARY not in created.text
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
    # the OAS: '202': "Returns the suspended subscription."; the answer logs.html shows
    assert suspended.status_code == 202 and suspended.json()["status"] == "suspended"
    assert differences(suspended.json(), LOGS_SUSPENDED) == {
        ".send_product_identifier: only ours"  # concepts.html's field, newer than that page
    }
    again = await http.post(f"{url}/suspend")
    assert again.status_code == 409 and "suspended" in _message(again)
    assert platform.publish(pim.edit_product()) == 0
    resumed = await http.post(f"{url}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] == "active"
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

    deleted = await http.delete(url)
    # the OAS: '200': "Returns the deleted subscription."
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert (await http.get(url)).json()["status"] == "deleted"
    assert (await http.post(f"{url}/resume")).status_code == 409
    # the OAS: the list holds "subscriptions that are either active and suspended"
    assert (await http.get(base)).json() == []
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
        ({"config": {"url": "https://hooks.example.com/ep", "secret": {"primary": OAS_PRIMARY},
                     "headers": {"Authorization": "x"}}}, "reserved"),
        ({"config": {"url": "https://hooks.example.com/ep", "secret": {"primary": OAS_PRIMARY},
                     "headers": {f"X-H{i}": "v" for i in range(6)}}}, "at most 5"),
        ({"send_product_identifier": "yes"}, "boolean"),
        # the OAS: secret.primary and .secondary "minLength: 16", "maxLength: 256"
        ({"config": {"url": "https://hooks.example.com/ep",
                     "secret": {"primary": "x" * 15}}}, "16 to 256"),
        ({"config": {"url": "https://hooks.example.com/ep",
                     "secret": {"primary": "x" * 257}}}, "16 to 256"),
        ({"config": {"url": "https://hooks.example.com/ep",
                     "secret": {"primary": OAS_PRIMARY, "secondary": "short"}}}, "secondary"),
        # available-filters.html, "String Values": `user=system`: ❌
        ({"filter": "user=system"}, "double quotes"),
        ({"filter": 'colour="red"'}, "unknown filter field"),
        ({"filter": " and ".join(['user="a"'] * 12)}, "more than 10 operators"),
        ({"filter": 'user="' + "u" * 500 + '"'}, "filter"),
        # the OAS's SubscriptionPayload example, a pubsub one: nothing here could deliver it
        ({"type": "pubsub", "config": {"project_id": "gcp-prd-project-name",
                                       "topic_id": "demo-integrations-events"}}, "https"),
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
    assert answer.status_code == 400 and why in _message(answer), answer.text
    assert OAS_PRIMARY not in answer.text and "x" * 15 not in answer.text


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
    # the OAS: every request body is "content: application/json"
    as_form = await http.post("/subscribers", data={"name": "s"})
    assert as_form.status_code == 400 and "application/json" in _message(as_form)
    platform.revoke(subscriber["id"])
    refused = await http.get("/subscribers")
    assert refused.status_code == 401 and "removed" in _message(refused)
    assert platform.subscribers[subscriber["id"]].status == "revoked"  # the OAS's enum


async def test_the_documented_bodies_are_accepted(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator
) -> None:
    platform, http = api
    subscriber = (await http.post("/subscribers", json=OAS_SUBSCRIBER)).json()
    base = f"/subscribers/{subscriber['id']}/subscriptions"
    # https://api.akeneo.com/event-platform/getting-started.html, "3. Create a Subscription"
    started = await http.post(base, json={
        "source": "pim",
        "subject": pim.url,
        "events": [
            "com.akeneo.pim.v1.product.updated"
        ],
        "type": "https",
        "config": {
            "url": "https://my-destination-url.com",
            "secret": {
                "primary": "averysecretprimarysecret",
                "secondary": "you can leave empty here, only use to ease your secret rotation use cases"  # noqa: E501
            }
        }
    })  # fmt: skip
    assert started.status_code == 201, started.text
    # the OAS: SubscriptionPayload.source "default: pim"
    body = _subscription("https://hooks.example.com/no-source", pim)
    del body["source"]
    defaulted = await http.post(base, json=body)
    assert defaulted.status_code == 201 and defaulted.json()["source"] == "pim"
    # https://api.akeneo.com/event-platform/concepts.html#subscription-filters and
    # https://api.akeneo.com/event-platform/available-filters.html#filter-examples, verbatim
    for expression in (
        'user="ea0fe94f-417e-4078-a40b-38645ba90ebe"',
        'user="john-uuid" and attribute="price"',
        'attribute="description" or attribute="title"',
        'attribute in ["description", "title"]',
        'not user="system"',
        'not (attribute in ["price", "internal_notes"])',
        '(attribute="name" and locale="fr_FR") and not user="system"',
        'user="system" and (attribute="name" or attribute="description")',
        'user_type="api"',
        'scope="ecommerce"',
        'locale in ["en_US", "fr_FR"]',
    ):
        made = await http.post(
            base, json=_subscription("https://hooks.example.com/f", pim, filter=expression)
        )
        assert made.status_code == 201, (expression, made.text)
        assert made.json()["filter"] == expression
    assert len((await http.get(base)).json()) == 13
    unknown = await http.get("/subscribers/x/nothing-here")
    assert unknown.status_code == 404 and _message(unknown)  # the same error body
    assert len(platform.subscriptions) == 13


async def test_without_the_event_platform_permission(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator, serve: Serve
) -> None:
    """https://api.akeneo.com/event-platform/authentication-and-authorization.html: "the user
    will not be able to subscribe to events" and "the subscription will be automatically
    suspended due to insufficient rights"; the OAS's 403 is "Not allowed"."""
    platform, http = api
    notifications = await serve(Destination(), "/notifications")
    subscriber = (
        await http.post("/subscribers", json={"name": "s", "contact": {
            "technical_email": "a@b.c", "notification_channels": ["webhook"],
            "notification_webhook_url": notifications.url,
            "notification_webhook_secret": NOTIFICATION_SECRET}})
    ).json()  # fmt: skip
    base = f"/subscribers/{subscriber['id']}/subscriptions"
    sub = (await http.post(base, json=_subscription("https://hooks.example.com/a", pim))).json()
    [suspended] = platform.set_permission("sim-client", False)
    assert suspended.id == sub["id"] and suspended.status == "suspended"
    refused = await http.post(base, json=_subscription("https://hooks.example.com/b", pim))
    assert refused.status_code == 403 and "Not allowed" in _message(refused)
    assert (await http.post(f"{base}/{sub['id']}/resume")).status_code == 403
    assert (await http.get(f"{base}/{sub['id']}")).json()["status"] == "suspended"
    platform.set_permission("sim-client", True)
    assert (await http.post(f"{base}/{sub['id']}/resume")).status_code == 202
    await platform.drain()
    kinds = [n.json["notification_type"] for n in notifications.requests]
    assert kinds == ["subscription.suspended.system", "subscription.resumed"]


async def test_filters_are_evaluated_on_each_event(
    api: tuple[EventPlatform, httpx.AsyncClient], pim: PimSimulator, serve: Serve
) -> None:
    """https://api.akeneo.com/event-platform/available-filters.html: "If the event matches your
    filter, it is forwarded to your destination. If not, it is silently skipped." """
    platform, http = api
    destination = await serve(Destination())
    subscriber = (await http.post("/subscribers", json=OAS_SUBSCRIBER)).json()
    base = f"/subscribers/{subscriber['id']}/subscriptions"
    delta = f"{PREFIX}product.updated.delta"
    made = await http.post(base, json={
        **_subscription(destination.url, pim), "events": [UPDATED, delta],
        "filter": '(attribute="name" and locale="en_US") and not user="robot"'})  # fmt: skip
    assert made.status_code == 201, made.text
    by_admin = pim.edit_product(author="admin")  # changes name, en_US
    platform.publish(by_admin)
    platform.publish(pim.edit_product(author="robot"))
    await platform.drain()
    # the plain "updated" event has no changed attribute: skipped; the delta one passes
    assert [(e["type"], e["data"]["author"]["identifier"]) for e in destination.events()] == [
        (delta, "admin")
    ]
    stats = platform.stats(made.json()["id"])
    assert stats.published == 4 and stats.dropped["filtered"] == 3
