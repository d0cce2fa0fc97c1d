"""Parsing and building the Event Platform management API's bodies (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
    classify,
    error_message,
    parse_subscriber,
    parse_subscription,
    scrub,
    subscriber_body,
    subscription_body,
)
from tests.samples import sample

# https://api.akeneo.com/event-platform/logs.html#1-action-logs: the response of the
# suspend call in the action log, verbatim (the corpus keeps the whole log)
_ACTION_LOG = sample("event-platform/management/action-log-suspended").json()
LOGS_SUSPENDED = _ACTION_LOG["response"]


def test_the_getting_started_subscriber_answer() -> None:
    answer = sample("event-platform/management/subscriber-created-answer")
    subscriber = parse_subscriber(answer.json())
    assert subscriber.id == "01905a84-a3b7-766e-a49f-5519c35fa7a0"
    assert subscriber.status == "active"
    assert subscriber.subject == "https://your-pim.cloud.akeneo.com"
    assert subscriber.contact == Contact("subscriber.test.email@example.com")
    assert subscriber.created_at == "2024-06-27T16:26:00.503422Z"


def test_the_oas_subscriber_example_camel_case_dates() -> None:
    # content/swagger/aep/public-oas.yml (039db85b), components.schemas.Subscriber.example
    example = {
        "id": "018e1ec5-29da-78ad-aae6-92065b9ca2a5",
        "tenant_id": "srnt-pim-example",
        "client_id": "f66597f5-1d3f-4397-a044-9a728cfd7f9c",
        "subject": "https://example.cloud.akeneo.com/",
        "status": "active",
        "createdAt": "2019-08-24T14:15:22Z",
        "updatedAt": "2019-08-24T14:15:22Z",
        "name": "translation app",
        "contact": {"technical_email": "john.doe@example.com"},
    }
    subscriber = parse_subscriber(example)
    assert subscriber.created_at == "2019-08-24T14:15:22Z" and subscriber.name == "translation app"


def test_the_logs_page_subscription_answer() -> None:
    sub = parse_subscription(LOGS_SUSPENDED)
    assert sub.status == "suspended" and sub.destination == "https://my.webhook.com"
    assert sub.events == ("com.akeneo.pim.v1.product.deleted", "com.akeneo.pim.v1.product.updated")
    assert sub.secondary_secret_set and sub.filters is None
    assert sub.send_product_identifier is None  # absent from that answer


@pytest.mark.parametrize(
    "change",
    [
        {"status": "paused"},
        {"id": "../../admin"},
        {"id": 5},
        {"events": "com.akeneo.pim.v1.product.updated"},
        {"config": []},
        {"send_product_identifier": "yes"},
        {"subscriber_id": None},
        {"filter": ["a"]},
    ],
)
def test_odd_subscriptions_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(EventPlatformError) as caught:
        parse_subscription({**LOGS_SUSPENDED, **change})
    assert caught.value.reason == REJECTED and not caught.value.retryable


def test_the_concepts_https_subscription_body() -> None:
    page = sample("event-platform/management/https-subscription").json()
    request = SubscriptionRequest(
        events=tuple(page["events"]),
        destination=page["config"]["url"],
        primary_secret=page["config"]["secret"]["primary"],
        secondary_secret=page["config"]["secret"]["secondary"],
        send_product_identifier=False,
    )
    assert subscription_body(page["subject"], request) == {**page, "filter": None}
    assert "your_primary_secret" not in repr(request)


def test_secrets_out_of_the_oas_bounds_are_refused_before_sending() -> None:
    # public-oas.yml: secret.primary/secondary minLength 16, maxLength 256
    for bad in ("x" * 15, "x" * 257):
        with pytest.raises(EventPlatformError) as caught:
            subscription_body("https://p", SubscriptionRequest(("e",), "https://d", bad))
        assert caught.value.status is None and bad not in str(caught.value)
    contact = Contact("a@b.c", ("webhook",), "https://h", "short")
    with pytest.raises(EventPlatformError):
        subscriber_body("n", contact)
    assert "short" not in repr(Contact("a@b.c", ("webhook",), "https://h", "short-secret-value"))


def test_a_filter_outside_the_grammar_is_refused_before_sending() -> None:
    request = SubscriptionRequest(("e",), "https://d", "p" * 16, filters="user=system")
    with pytest.raises(EventPlatformError) as caught:
        subscription_body("https://p", request)
    assert caught.value.status is None and "double quotes" in caught.value.message
    good = SubscriptionRequest(("e",), "https://d", "p" * 16, filters='not user="system"')
    assert subscription_body("https://p", good)["filter"] == 'not user="system"'


def test_error_bodies() -> None:
    oas = json.dumps({"errors": [{"message": "Subscription is deleted"}]}).encode()
    assert error_message(409, oas, "application/json") == "Subscription is deleted"
    assert error_message(400, b'{"code": 400, "message": "bad"}', "application/json") == "bad"
    html = error_message(502, b"<html>" + b"x" * 500, "text/html; charset=utf-8")
    assert html == "502 answer (text/html, 506 bytes)"
    assert "\n" not in scrub("a\nb", ()) and len(scrub("y" * 1000, ())) == 200
    leaked = scrub("primary 0123456789abcdefXYZ was too 0123456789abcdef", ["0123456789abcdefXYZ"])
    assert "0123456789abcdef" not in leaked


@pytest.mark.parametrize(
    ("status", "creating", "reason"),
    [
        (401, False, UNAUTHORIZED),
        (403, True, UNAUTHORIZED),
        (404, False, NOT_FOUND),
        (409, True, LIMIT_REACHED),
        (409, False, REJECTED),
        (400, True, REJECTED),
        (422, False, REJECTED),
        (429, False, UNAVAILABLE),
        (500, False, UNAVAILABLE),
        (503, True, UNAVAILABLE),
    ],
)
def test_status_reasons(status: int, creating: bool, reason: str) -> None:
    assert classify(status, creating=creating) == reason


async def test_the_token_never_travels_in_clear() -> None:
    async def token() -> str:
        return "t"

    with pytest.raises(ValueError, match="https"):
        EventPlatformApi("http://event.example.com/api/v1", pim_url="p", client_id="c", token=token)
    async with EventPlatformApi(
        "http://127.0.0.1:1/api/v1", pim_url="p", client_id="c", token=token
    ) as local:  # a loopback simulator without TLS
        assert local.base_url == "http://127.0.0.1:1/api/v1"
