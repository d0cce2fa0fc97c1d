"""Notification webhooks: the payload, its signature, and the condition each one sets.

Reference: https://api.akeneo.com/event-platform/notification-webhooks.html
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from akeneo_pim.formats import PayloadError
from akeneo_pim.notifications import (
    MESSAGE_MAX,
    NOTIFICATION_TYPES,
    Notification,
    parse_notification,
    printable,
    subscription_condition,
    type_label,
)
from akeneo_pim.signatures import (
    SignatureError,
    notification_headers,
    verify_notification,
)

# Verbatim, "Notification payload" of the page above.
DOC_SAMPLE = b"""{
  "notification_type": "subscription.suspended.system",
  "timestamp": "2026-04-29T12:34:56Z",
  "subscription_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a6",
  "subscriber_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a5",
  "destination": "https://my-app.example.com/webhook",
  "events": [
    "com.akeneo.pim.v1.product.created",
    "com.akeneo.pim.v1.product.updated"
  ],
  "reason": "Success rate dropped below 90%",
  "subject": "https://example.cloud.akeneo.com/"
}"""
SECRET = "a-shared-secret-of-16-to-256-chars"  # the page's example secret
# computed independently of the project's code:
#   openssl dgst -sha256 -hmac a-shared-secret-of-16-to-256-chars doc_sample.json
#   (the sample above written to doc_sample.json without a trailing newline)
DOC_SAMPLE_SIGNATURE = "206dd5b5818eff4946eaef1cfedb8d79a5f304d3c9ec846f1097f2ac9d6ca2c9"


def sample(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOC_SAMPLE)
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def test_the_documented_sample_parses() -> None:
    notification = parse_notification(DOC_SAMPLE)
    assert notification.notification_type == "subscription.suspended.system"
    assert notification.timestamp == datetime(2026, 4, 29, 12, 34, 56, tzinfo=UTC)
    assert notification.subscription_id == "018e1ec5-29da-78ad-aae6-92065b9ca2a6"
    assert notification.subscriber_id == "018e1ec5-29da-78ad-aae6-92065b9ca2a5"
    assert notification.destination == "https://my-app.example.com/webhook"
    assert notification.events == [
        "com.akeneo.pim.v1.product.created",
        "com.akeneo.pim.v1.product.updated",
    ]
    assert notification.reason == "Success rate dropped below 90%"
    assert notification.subject == "https://example.cloud.akeneo.com/"


def test_reason_and_subject_are_optional_and_extra_fields_kept() -> None:
    """ "`reason` | string (optional) | [...] Present when applicable." """
    body = json.dumps(sample(reason=..., subject=..., added_later={"x": 1})).encode()
    notification = parse_notification(body)
    assert notification.reason is None and notification.subject is None
    assert notification.model_extra == {"added_later": {"x": 1}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "invalid_json"),
        (b"{oops", "invalid_json"),
        (b"[]", "invalid_notification"),
        (b'"subscription.resumed"', "invalid_notification"),
        (json.dumps(sample(notification_type=...)).encode(), "invalid_notification"),
        (json.dumps(sample(timestamp=...)).encode(), "invalid_notification"),
        (json.dumps(sample(timestamp="yesterday")).encode(), "invalid_notification"),
        (json.dumps(sample(subscription_id=...)).encode(), "invalid_notification"),
        (json.dumps(sample(subscription_id="")).encode(), "invalid_notification"),
        (json.dumps(sample(subscription_id="s" * 201)).encode(), "invalid_notification"),
        (json.dumps(sample(subscriber_id=...)).encode(), "invalid_notification"),
        (json.dumps(sample(destination=...)).encode(), "invalid_notification"),
        (json.dumps(sample(events="all")).encode(), "invalid_notification"),
        (json.dumps(sample(notification_type=7)).encode(), "invalid_notification"),
    ],
)
def test_what_is_not_a_notification(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body)
    assert caught.value.reason == reason and caught.value.detail


def test_signature_is_hex_hmac_sha256_of_the_raw_body_with_one_secret() -> None:
    """ "Hex-encoded HMAC-SHA256 of the raw request body, computed with
    `notification_webhook_secret`." — in ``X-AKENEO-SIGNATURE-PRIMARY``."""
    expected = hmac.new(SECRET.encode(), DOC_SAMPLE, hashlib.sha256).hexdigest()
    headers = notification_headers(SECRET, DOC_SAMPLE)
    assert headers["X-AKENEO-SIGNATURE-PRIMARY"] == expected
    assert headers["X-AKENEO-SIGNATURE-ALGORITHM"] == "HmacSHA256"
    assert headers["User-Agent"] == "akeneo/event-platform"
    assert headers["Content-Type"] == "application/json"
    assert "X-AKENEO-SIGNATURE-SECONDARY" not in headers
    verify_notification([SECRET], headers, DOC_SAMPLE)


def test_signature_pinned_to_openssl() -> None:
    assert notification_headers(SECRET, DOC_SAMPLE)["X-AKENEO-SIGNATURE-PRIMARY"] == (
        DOC_SAMPLE_SIGNATURE
    )


@pytest.mark.parametrize(
    ("secrets", "headers", "reason"),
    [
        ([SECRET], {}, "missing_signature"),
        ([SECRET], {"X-AKENEO-SIGNATURE-PRIMARY": ""}, "missing_signature"),
        # notifications carry one signature: a secondary alone is no signature
        (
            [SECRET],
            {
                "X-AKENEO-SIGNATURE-SECONDARY": notification_headers(SECRET, DOC_SAMPLE)[
                    "X-AKENEO-SIGNATURE-PRIMARY"
                ]
            },
            "missing_signature",
        ),
        ([], notification_headers(SECRET, DOC_SAMPLE), "no_secret_configured"),
        (["another-secret-0123456789"], notification_headers(SECRET, DOC_SAMPLE), "bad_signature"),
        ([SECRET], notification_headers(SECRET, DOC_SAMPLE + b" "), "bad_signature"),
        (
            [SECRET],
            {**notification_headers(SECRET, DOC_SAMPLE), "X-AKENEO-SIGNATURE-ALGORITHM": "md5"},
            "unsupported_algorithm",
        ),
    ],
)
def test_bad_signatures(secrets: list[str], headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_notification(secrets, headers, DOC_SAMPLE)
    assert caught.value.reason == reason
    assert SECRET not in str(caught.value)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in notification_headers(SECRET, DOC_SAMPLE).items()}
    verify_notification([SECRET], headers, DOC_SAMPLE)


@pytest.mark.parametrize(
    ("notification_type", "status", "reason", "verb"),
    [
        ("subscription.resumed", "True", "Resumed", "resumed"),
        ("subscription.suspended.system", "False", "SuspendedBySystem", "suspended"),
        ("subscription.suspended.user", "False", "SuspendedByUser", "suspended"),
        ("subscription.revoked", "False", "Revoked", "revoked"),
    ],
)
def test_each_documented_type_sets_the_condition(
    notification_type: str, status: str, reason: str, verb: str
) -> None:
    notification = parse_notification(
        json.dumps(sample(notification_type=notification_type)).encode()
    )
    condition = subscription_condition(notification)
    assert condition is not None
    assert condition[:2] == (status, reason)
    message = condition[2]
    assert "018e1ec5-29da-78ad-aae6-92065b9ca2a6" in message and verb in message
    assert message.endswith("Success rate dropped below 90%")


def test_documented_types_are_the_four_of_the_page() -> None:
    assert set(NOTIFICATION_TYPES) == {
        "subscription.suspended.system",
        "subscription.suspended.user",
        "subscription.revoked",
        "subscription.resumed",
    }


def test_an_unknown_type_sets_nothing_and_counts_as_other() -> None:
    notification = parse_notification(
        json.dumps(sample(notification_type="subscription.paused")).encode()
    )
    assert subscription_condition(notification) is None
    assert type_label("subscription.paused") == "other"
    assert type_label("subscription.revoked") == "subscription.revoked"


def test_without_a_reason_the_message_still_says_what_happened() -> None:
    notification = parse_notification(json.dumps(sample(reason=...)).encode())
    condition = subscription_condition(notification)
    assert condition is not None
    assert condition[2] == (
        "Event Platform subscription 018e1ec5-29da-78ad-aae6-92065b9ca2a6 "
        "suspended by the Event Platform"
    )


def test_the_reason_text_from_outside_is_bounded_and_printable() -> None:
    hostile = "line one\r\n\x1b[31mred\x1b[0m\u202egnirts\u0000 tab\there " + "x" * 10_000
    notification = Notification.model_validate(sample(reason=hostile))
    condition = subscription_condition(notification)
    assert condition is not None
    message = condition[2]
    assert len(message) <= MESSAGE_MAX
    assert all(c.isprintable() for c in message)
    assert "line one [31mred [0m gnirts tab here xxx" in message


def test_printable() -> None:
    assert printable("a\n\n\tb  c") == "a b c"
    assert printable("é ü 日本") == "é ü 日本"
    assert printable("abcdef", limit=4) == "abc…"
    assert len(printable("y" * 600)) == MESSAGE_MAX
