"""Signing and verification of both Akeneo delivery schemes.

Legacy Events API: lowercase hex HMAC-SHA256 over ``f"{timestamp}." + raw_body`` in
``X-Akeneo-Request-Signature`` with the unix timestamp in ``X-Akeneo-Request-Timestamp``.
Event Platform: lowercase hex HMAC-SHA256 over the raw body in the primary or secondary
header. Several secrets may be configured at once (rotation); any one matching is enough.
Event Platform notification webhooks: the same, with the subscriber's one notification secret
in the primary header only
(https://api.akeneo.com/event-platform/notification-webhooks.html#signature-verification).

Always verify over the raw bytes, compare in constant time, and never put a secret or a
signature into an exception message (they end up in logs).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping, Sequence

EVENTS_API_SIGNATURE_HEADER = "X-Akeneo-Request-Signature"
EVENTS_API_TIMESTAMP_HEADER = "X-Akeneo-Request-Timestamp"
EVENT_PLATFORM_PRIMARY_HEADER = "X-AKENEO-SIGNATURE-PRIMARY"
EVENT_PLATFORM_SECONDARY_HEADER = "X-AKENEO-SIGNATURE-SECONDARY"
EVENT_PLATFORM_ALGORITHM_HEADER = "X-AKENEO-SIGNATURE-ALGORITHM"
EVENT_PLATFORM_ALGORITHM = "HmacSHA256"


class SignatureError(Exception):
    """A request failed verification; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.digest(secret.encode(), message, "sha256").hex()  # one-shot: no HMAC object


def sign_events_api(secret: str, timestamp: int, body: bytes) -> str:
    return _hmac_hex(secret, f"{timestamp}.".encode() + body)


def sign_event_platform(secret: str, body: bytes) -> str:
    return _hmac_hex(secret, body)


def events_api_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        EVENTS_API_SIGNATURE_HEADER: sign_events_api(secret, ts, body),
        EVENTS_API_TIMESTAMP_HEADER: str(ts),
        "Content-Type": "application/json",
    }


def event_platform_headers(
    primary: str, body: bytes, secondary: str | None = None
) -> dict[str, str]:
    headers = {
        EVENT_PLATFORM_PRIMARY_HEADER: sign_event_platform(primary, body),
        EVENT_PLATFORM_ALGORITHM_HEADER: EVENT_PLATFORM_ALGORITHM,
        "Content-Type": "application/cloudevents+json",
    }
    if secondary is not None:
        headers[EVENT_PLATFORM_SECONDARY_HEADER] = sign_event_platform(secondary, body)
    return headers


def notification_headers(secret: str, body: bytes) -> dict[str, str]:
    """The headers the Event Platform sends with a notification webhook."""
    return {
        EVENT_PLATFORM_PRIMARY_HEADER: sign_event_platform(secret, body),
        EVENT_PLATFORM_ALGORITHM_HEADER: EVENT_PLATFORM_ALGORITHM,
        "Content-Type": "application/json",
        "User-Agent": "akeneo/event-platform",
    }


def _get(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that also works on plain dicts."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def _matches_any(candidates: Sequence[str], expected: Sequence[str]) -> bool:
    """Constant-time per comparison; every pair is compared (no early exit on a match)."""
    found = False
    for candidate in candidates:
        # header values may hold undecodable bytes (surrogate escapes): never raise on them
        raw = candidate.strip().lower().encode(errors="replace")
        for value in expected:
            found |= hmac.compare_digest(raw, value.encode())
    return found


def verify_events_api(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float,
) -> None:
    """Raise ``SignatureError`` unless the legacy signature is valid and recent (either way)."""
    signature = _get(headers, EVENTS_API_SIGNATURE_HEADER)
    if not signature:
        raise SignatureError("missing_signature")
    raw_ts = _get(headers, EVENTS_API_TIMESTAMP_HEADER)
    if not raw_ts:
        raise SignatureError("missing_timestamp")
    try:
        timestamp = int(raw_ts.strip())
    except ValueError:
        raise SignatureError("bad_timestamp") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp_out_of_tolerance")
    if not secrets:
        raise SignatureError("no_secret_configured")
    expected = [sign_events_api(s, timestamp, body) for s in secrets]
    if not _matches_any([signature], expected):
        raise SignatureError("bad_signature")


def verify_event_platform(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``SignatureError`` unless the primary or secondary header matches any secret."""
    _verify_hmac(
        secrets, headers, body, (EVENT_PLATFORM_PRIMARY_HEADER, EVENT_PLATFORM_SECONDARY_HEADER)
    )


def verify_notification(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``SignatureError`` unless the primary header matches the notification secret.

    Notifications carry one signature (no rotation on Akeneo's side); more than one secret
    configured here only lets the connector's own side roll its secret over without a gap.
    """
    _verify_hmac(secrets, headers, body, (EVENT_PLATFORM_PRIMARY_HEADER,))


def _verify_hmac(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, names: Sequence[str]
) -> None:
    candidates = [value for name in names if (value := _get(headers, name))]
    if not candidates:
        raise SignatureError("missing_signature")
    algorithm = _get(headers, EVENT_PLATFORM_ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() != EVENT_PLATFORM_ALGORITHM.lower():
        raise SignatureError("unsupported_algorithm")
    if not secrets:
        raise SignatureError("no_secret_configured")
    expected = [sign_event_platform(s, body) for s in secrets]
    if not _matches_any(candidates, expected):
        raise SignatureError("bad_signature")
