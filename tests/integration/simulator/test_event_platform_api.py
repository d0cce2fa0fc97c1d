"""The typed management API client against the simulated Event Platform, over real TLS, with
PIM tokens obtained by the REST client from the simulated PIM.

Bodies as https://api.akeneo.com/event-platform/getting-started.html (subscriber, https
subscription) and https://api.akeneo.com/event-platform/notification-webhooks.html (contact
with the webhook channel) show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web

from akeneo_connector.event_types import PREFIX
from akeneo_pim.event_platform_api import (
    LIMIT_REACHED,
    NOT_FOUND,
    REJECTED,
    UNAUTHORIZED,
    UNAVAILABLE,
    Contact,
    EventPlatformApi,
    EventPlatformError,
    SubscriptionRequest,
)
from akeneo_pim.rest import AkeneoApiError, AkeneoRestClient, PimCredentials, fetch_pim_token
from akeneo_pim.simulator import EventPlatform, PimSimulator
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.simulator.conftest import (
    NOTIFICATION_SECRET,
    PRIMARY,
    SECONDARY,
    MakePlatform,
)

UPDATED, DELETED = f"{PREFIX}product.updated", f"{PREFIX}product.deleted"
CREDENTIALS = PimCredentials(
    client_id="sim-client", client_secret="sim-secret", username="sim-user",
    password="sim-password",
)  # fmt: skip
SECRETS = (PRIMARY, SECONDARY, NOTIFICATION_SECRET, "sim-secret", "sim-password")
CONTACT = Contact(
    technical_email="ops@example.com",
    notification_channels=("webhook",),
    notification_webhook_url="https://your-app.example.com/akeneo-notifications",
    notification_webhook_secret=NOTIFICATION_SECRET,
)
REQUEST = SubscriptionRequest(
    events=(UPDATED,),
    destination="https://my-destination-url.example.com/event-platform",
    primary_secret=PRIMARY,
    secondary_secret=SECONDARY,
)


def _no_secret(exc: BaseException, *more: str) -> None:
    text = f"{exc} {exc!r} {getattr(exc, 'message', '')}"
    for secret in (*SECRETS, *more):
        assert secret not in text, "a secret reached an exception"


@pytest.fixture
async def rest(pim: PimSimulator, ca: CertificateAuthority) -> AsyncIterator[AkeneoRestClient]:
    async with AkeneoRestClient(
        pim.url, CREDENTIALS, verify=ca.client_context(), allow_private=True
    ) as client:
        yield client


@pytest.fixture
async def platform(make_platform: MakePlatform) -> EventPlatform:
    platform: EventPlatform = await make_platform(max_subscriptions=3)
    return platform


@pytest.fixture
async def api(
    platform: EventPlatform, pim: PimSimulator, rest: AkeneoRestClient, ca: CertificateAuthority
) -> AsyncIterator[EventPlatformApi]:
    async with EventPlatformApi(
        platform.url,
        pim_url=pim.url,
        client_id="sim-client",
        token=rest.access_token,
        renew_token=rest.access_token,
        verify=ca.client_context(),
    ) as client:
        yield client


async def test_subscriber_and_subscription_lifecycle(
    api: EventPlatformApi, platform: EventPlatform, pim: PimSimulator
) -> None:
    subscriber = await api.create_subscriber("example subscriber name", CONTACT)
    assert subscriber.status == "active" and subscriber.subject == pim.url
    assert subscriber.contact.notification_channels == ("webhook",)
    assert subscriber.contact.notification_webhook_url == CONTACT.notification_webhook_url
    assert subscriber.contact.notification_webhook_secret is None  # never returned
    assert platform.subscribers[subscriber.id].notification_webhook_secret == NOTIFICATION_SECRET
    assert [s.id for s in await api.list_subscribers()] == [subscriber.id]
    renamed = await api.update_subscriber(subscriber.id, name="renamed")
    assert renamed.name == "renamed" and renamed.contact.notification_channels == ("webhook",)

    sub = await api.create_subscription(subscriber.id, REQUEST)
    assert (sub.status, sub.subscriber_id, sub.events) == ("active", subscriber.id, (UPDATED,))
    assert sub.destination == REQUEST.destination and sub.secondary_secret_set
    assert platform.subscriptions[sub.id].primary == PRIMARY
    assert await api.get_subscription(subscriber.id, sub.id) == sub
    assert [s.id for s in await api.list_subscriptions(subscriber.id)] == [sub.id]

    rotated = replace(REQUEST, events=(UPDATED, DELETED), primary_secret=SECONDARY,
                      secondary_secret=None, filters='user="system"',
                      send_product_identifier=True)  # fmt: skip
    updated = await api.update_subscription(subscriber.id, sub.id, rotated)
    assert updated.events == (UPDATED, DELETED) and not updated.secondary_secret_set
    assert updated.filters == 'user="system"' and updated.send_product_identifier is True
    assert platform.subscriptions[sub.id].primary == SECONDARY
    assert platform.subscriptions[sub.id].secondary is None

    suspended = await api.suspend_subscription(subscriber.id, sub.id)
    assert suspended.status == "suspended"
    with pytest.raises(EventPlatformError) as twice:
        await api.suspend_subscription(subscriber.id, sub.id)
    assert twice.value.status == 409 and twice.value.reason == REJECTED
    assert (await api.resume_subscription(subscriber.id, sub.id)).status == "active"

    await api.delete_subscription(subscriber.id, sub.id)
    assert platform.subscriptions[sub.id].status == "deleted"
    await api.delete_subscription(subscriber.id, "0190-gone")  # 404: already gone
    await api.delete_subscriber(subscriber.id)
    await api.delete_subscriber(subscriber.id)  # again: no error
    assert platform.subscribers[subscriber.id].status == "deleted"


async def test_a_refused_token_is_renewed_once(
    api: EventPlatformApi, pim: PimSimulator, rest: AkeneoRestClient, ca: CertificateAuthority
) -> None:
    await api.list_subscribers()
    logins, refreshes = rest.stats.logins, rest.stats.refreshes
    pim.expire_tokens()  # the REST client's cached token is refused from now on
    assert await api.list_subscribers() == []
    assert rest.stats.refreshes == refreshes + 1 and rest.stats.logins == logins

    calls: list[str] = []

    async def forged() -> str:
        calls.append("token")
        return "forged-token-value"

    async with EventPlatformApi(
        api.base_url, pim_url=pim.url, client_id="sim-client", token=forged,
        verify=ca.client_context(),
    ) as bad:  # fmt: skip
        with pytest.raises(EventPlatformError) as refused:
            await bad.list_subscribers()
    assert calls == ["token", "token"]  # asked once more after the 401, then gave up
    assert refused.value.reason == UNAUTHORIZED and refused.value.status == 401
    assert not refused.value.retryable
    _no_secret(refused.value, "forged-token-value")


async def test_one_shot_token_with_the_connection_credentials(
    platform: EventPlatform, pim: PimSimulator, ca: CertificateAuthority
) -> None:
    async def token() -> str:
        return await fetch_pim_token(
            pim.url, CREDENTIALS, verify=ca.client_context(), allow_private=True
        )

    async with EventPlatformApi(
        platform.url, pim_url=pim.url, client_id="sim-client", token=token,
        verify=ca.client_context(),
    ) as api:  # fmt: skip
        made = await api.create_subscriber("one shot", Contact("ops@example.com"))
        assert made.contact.notification_channels == ("email",)
    # the address guard holds by default: the simulated PIM listens on loopback
    with pytest.raises(AkeneoApiError) as guarded:
        await fetch_pim_token(pim.url, CREDENTIALS, verify=ca.client_context())
    assert "127.0.0.1" in str(guarded.value)  # refused by the address policy
    assert "sim-secret" not in str(guarded.value) and "sim-password" not in str(guarded.value)


async def test_each_refusal_has_its_reason_and_no_secret(
    api: EventPlatformApi, platform: EventPlatform, pim: PimSimulator, ca: CertificateAuthority,
    rest: AkeneoRestClient,
) -> None:  # fmt: skip
    seen: list[EventPlatformError] = []

    async def refused(call: Awaitable[object]) -> EventPlatformError:
        with pytest.raises(EventPlatformError) as caught:
            await call
        _no_secret(caught.value)
        seen.append(caught.value)
        return caught.value

    subscriber = await api.create_subscriber("s", CONTACT)
    missing = await refused(api.get_subscription(subscriber.id, "0190-none"))
    assert (missing.reason, missing.status) == (NOT_FOUND, 404)
    assert (await refused(api.get_subscriber("0190-none"))).reason == NOT_FOUND

    bad = await refused(api.create_subscription(subscriber.id, replace(REQUEST, events=("x",))))
    assert (bad.reason, bad.status) == (REJECTED, 400) and "Unknown event type" in bad.message
    short = await refused(
        api.create_subscription(subscriber.id, replace(REQUEST, primary_secret="short"))
    )
    assert short.reason == REJECTED and short.status is None  # refused before sending
    webhook_http = replace(CONTACT, notification_webhook_url="http://h.example.com/n")
    assert (await refused(api.create_subscriber("s", webhook_http))).status == 400
    injected = await refused(api.get_subscriber("../../other"))
    assert injected.reason == REJECTED and injected.status is None

    for n in range(3):
        await api.create_subscription(subscriber.id, replace(REQUEST, destination=f"https://h/{n}"))
    full = await refused(api.create_subscription(subscriber.id, REQUEST))
    assert (full.reason, full.status) == (LIMIT_REACHED, 409) and not full.retryable

    # the Event Platform permission unchecked (authentication-and-authorization.html): 403
    [first, *_] = await api.list_subscriptions(subscriber.id)
    await api.delete_subscription(subscriber.id, first.id)
    platform.set_permission("sim-client", False)
    forbidden = await refused(api.create_subscription(subscriber.id, REQUEST))
    assert (forbidden.reason, forbidden.status) == (UNAUTHORIZED, 403)
    [second, *_] = await api.list_subscriptions(subscriber.id)
    assert second.status == "suspended"  # "suspended due to insufficient rights"
    no_resume = await refused(api.resume_subscription(subscriber.id, second.id))
    assert (no_resume.reason, no_resume.status) == (UNAUTHORIZED, 403)
    platform.set_permission("sim-client", True)

    async with EventPlatformApi(
        platform.url, pim_url=pim.url, client_id="another-client", token=rest.access_token,
        verify=ca.client_context(),
    ) as other:  # fmt: skip
        assert (await refused(other.list_subscribers())).reason == UNAUTHORIZED

    async with EventPlatformApi(
        platform.url, pim_url=pim.url, client_id="sim-client", token=rest.access_token,
        verify=ssl.create_default_context(),  # does not trust the test CA
    ) as untrusting:  # fmt: skip
        tls = await refused(untrusting.list_subscribers())
    assert tls.reason == UNAVAILABLE and tls.retryable and tls.status is None
    assert len(seen) == 11


# -- a hostile or broken management API ------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def hostile(server_tls: ssl.SSLContext) -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
        runners.append(runner)
        return f"https://127.0.0.1:{runner.addresses[0][1]}/api/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


async def _static_token() -> str:
    return "static-token-0123456789"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda: web.Response(body=b"x" * (2 * 1024 * 1024), content_type="application/json"),
         REJECTED),
        (lambda: web.Response(text="<html>oops</html>", content_type="text/html"), REJECTED),
        (lambda: web.json_response({"id": "../x", "status": "active"}), REJECTED),
        (lambda: web.json_response([{"id": "a", "status": "exploded"}]), REJECTED),
        (lambda: web.json_response({"unexpected": True}), REJECTED),
        (lambda: web.Response(body=b"[" * 100_000, content_type="application/json"), REJECTED),
        (lambda: web.Response(status=302, headers={"Location": "https://elsewhere/"}), REJECTED),
        (lambda: web.json_response(
            {"errors": [{"message": "secret static-token-0123456789 " + PRIMARY}]}, status=422),
         REJECTED),
        (lambda: web.json_response({"errors": [{"message": "boom"}]}, status=503), UNAVAILABLE),
        (lambda: web.Response(status=429), UNAVAILABLE),
    ],
)  # fmt: skip
async def test_odd_answers_are_errors_never_crashes(
    hostile: Callable[[Handler], Awaitable[str]],
    ca: CertificateAuthority,
    answer: Callable[[], web.StreamResponse],
    reason: str,
) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return answer()

    url = await hostile(handler)
    async with EventPlatformApi(
        url, pim_url="https://pim.example.com", client_id="c", token=_static_token,
        verify=ca.client_context(),
    ) as api:  # fmt: skip
        with pytest.raises(EventPlatformError) as sent:
            await api.create_subscription("sub-1", REQUEST)
        with pytest.raises(EventPlatformError) as listed:
            await api.list_subscribers()  # a secret sent before is blanked here too
        for caught in (sent, listed):
            _no_secret(caught.value, "static-token-0123456789")
            assert caught.value.reason == reason, caught.value


async def test_a_slow_answer_times_out(
    hostile: Callable[[Handler], Awaitable[str]], ca: CertificateAuthority
) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" ")
            await asyncio.sleep(0.1)
        return response

    url = await hostile(drip)
    async with EventPlatformApi(
        url, pim_url="https://pim.example.com", client_id="c", token=_static_token,
        verify=ca.client_context(), timeout=1.0,
    ) as api:  # fmt: skip
        started = asyncio.get_running_loop().time()
        with pytest.raises(EventPlatformError) as caught:
            await api.list_subscribers()
    assert caught.value.reason == UNAVAILABLE and caught.value.retryable
    assert asyncio.get_running_loop().time() - started < 5


async def test_an_endless_answer_is_cut_at_the_bound(
    hostile: Callable[[Handler], Awaitable[str]], ca: CertificateAuthority
) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # chunked: no Content-Length to judge it by
        await response.write(b"[")
        with contextlib.suppress(ConnectionError):
            for _ in range(4096):  # 64 MiB at most
                await response.write(b'"x",' * 4096)
                sent += 16384
        return response

    url = await hostile(endless)
    async with EventPlatformApi(
        url, pim_url="https://pim.example.com", client_id="c", token=_static_token,
        verify=ca.client_context(),
    ) as api:  # fmt: skip
        with pytest.raises(EventPlatformError) as caught:
            await api.list_subscribers()
    assert caught.value.reason == REJECTED and "larger than" in caught.value.message
    assert sent < 32 * 1024 * 1024  # the client hung up soon after the bound
