from __future__ import annotations

import hashlib
import hmac

import pytest

from akeneo_pim.signatures import (
    EVENT_PLATFORM_PRIMARY_HEADER,
    EVENT_PLATFORM_SECONDARY_HEADER,
    EVENTS_API_SIGNATURE_HEADER,
    EVENTS_API_TIMESTAMP_HEADER,
    SignatureError,
    event_platform_headers,
    events_api_headers,
    sign_event_platform,
    sign_events_api,
    verify_event_platform,
    verify_events_api,
)

BODY = b'{"events":[{"event_id":"1"}]}'
NOW = 1_700_000_000


def test_events_api_signature_is_hex_hmac_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_events_api("s3cret", NOW, BODY) == expected
    assert expected == expected.lower()


def test_event_platform_signature_is_hex_hmac_over_raw_body() -> None:
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert sign_event_platform("s3cret", BODY) == expected


def test_events_api_roundtrip_and_secret_rotation() -> None:
    headers = events_api_headers("new", BODY, timestamp=NOW)
    verify_events_api(["old", "new"], headers, BODY, now=NOW + 10, tolerance=300)


def test_events_api_test_button_empty_body() -> None:
    headers = events_api_headers("s", b"", timestamp=NOW)
    verify_events_api(["s"], headers, b"", now=NOW, tolerance=300)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop(EVENTS_API_SIGNATURE_HEADER), "missing_signature"),
        (lambda h: h.pop(EVENTS_API_TIMESTAMP_HEADER), "missing_timestamp"),
        (lambda h: h.update({EVENTS_API_TIMESTAMP_HEADER: "soon"}), "bad_timestamp"),
        (lambda h: h.update({EVENTS_API_SIGNATURE_HEADER: "0" * 64}), "bad_signature"),
    ],
)
def test_events_api_rejections(mutate, reason) -> None:
    headers = events_api_headers("s", BODY, timestamp=NOW)
    mutate(headers)
    with pytest.raises(SignatureError) as info:
        verify_events_api(["s"], headers, BODY, now=NOW, tolerance=300)
    assert info.value.reason == reason


@pytest.mark.parametrize("skew", [-301, 301])
def test_events_api_timestamp_outside_tolerance_either_way(skew: int) -> None:
    headers = events_api_headers("s", BODY, timestamp=NOW + skew)
    with pytest.raises(SignatureError) as info:
        verify_events_api(["s"], headers, BODY, now=NOW, tolerance=300)
    assert info.value.reason == "timestamp_out_of_tolerance"


def test_events_api_signature_over_other_body_or_wrong_secret() -> None:
    headers = events_api_headers("s", BODY, timestamp=NOW)
    for secrets, body in ((["s"], BODY + b" "), (["other"], BODY), ([], BODY)):
        with pytest.raises(SignatureError):
            verify_events_api(secrets, headers, body, now=NOW, tolerance=300)


def test_error_never_carries_secret_or_signature() -> None:
    headers = events_api_headers("topsecret", BODY, timestamp=NOW)
    with pytest.raises(SignatureError) as info:
        verify_events_api(["wrongsecret"], headers, BODY, now=NOW, tolerance=300)
    text = str(info.value) + repr(info.value)
    assert "secret" not in text.replace("bad_signature", "")
    assert headers[EVENTS_API_SIGNATURE_HEADER] not in text


def test_event_platform_primary_or_secondary_any_secret() -> None:
    headers = event_platform_headers("p", BODY, secondary="q")
    verify_event_platform(["q"], headers, BODY)  # secondary header matches
    verify_event_platform(["x", "p"], headers, BODY)  # primary matches second secret
    only_secondary = {EVENT_PLATFORM_SECONDARY_HEADER: headers[EVENT_PLATFORM_SECONDARY_HEADER]}
    verify_event_platform(["q"], only_secondary, BODY)
    lowercase = {k.lower(): v for k, v in headers.items()}
    verify_event_platform(["p"], lowercase, BODY)


def test_event_platform_rejections() -> None:
    headers = event_platform_headers("p", BODY)
    cases = [
        (["p"], {}, BODY, "missing_signature"),
        (["z"], headers, BODY, "bad_signature"),
        (["p"], headers, BODY + b"x", "bad_signature"),
        (
            ["p"],
            {**headers, "X-AKENEO-SIGNATURE-ALGORITHM": "HmacMD5"},
            BODY,
            "unsupported_algorithm",
        ),
        (["p"], {EVENT_PLATFORM_PRIMARY_HEADER: "nothex"}, BODY, "bad_signature"),
    ]
    for secrets, hdrs, body, reason in cases:
        with pytest.raises(SignatureError) as info:
            verify_event_platform(secrets, hdrs, body)
        assert info.value.reason == reason
