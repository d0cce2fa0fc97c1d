"""The webhook sink's signing secrets: what a ``signingSecret`` key may hold, per scheme.

One secret per line (blank lines and surrounding whitespace ignored), so a merchant rotates
without a window of failed verifications: the new secret is added, both sign, the old one is
removed once the merchant switched.

- ``standard`` (Standard Webhooks): every line is a ``whsec_`` secret, base64 of 24 to 64
  random bytes; the decoded bytes are the HMAC key, and every secret signs. A raw secret is
  refused rather than used some other way: the verification libraries base64-decode whatever
  string they are given (dropping the characters that are not base64), so a raw secret would
  sign with a key the merchant's library never derives, and every POST would fail to verify
  for a reason nobody could see.
- ``legacy`` (``X-Connector-*`` headers): the first line, as text, is the key, as it always
  was; the scheme has room for one signature only, so further lines are not used.

Errors name the line, never its content: they end up in pod logs and status conditions.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from enum import StrEnum

WHSEC_PREFIX = "whsec_"
KEY_BYTES = (24, 64)  # "Random. Between 24 bytes (192 bits) and 64 bytes (512 bits)"
MAX_SECRETS = 8  # rotation needs two; the bound keeps a hostile Secret from costing CPU per POST


class WebhookSignature(StrEnum):
    """How the webhook sink signs its POSTs (see the README's webhook contract)."""

    STANDARD = "standard"  # Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
    LEGACY = "legacy"  # X-Connector-Timestamp, X-Connector-Signature (hex HMAC)


class SigningSecretError(ValueError):
    """A signing secret the chosen scheme cannot use; the message never holds the secret."""


def secret_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def signing_keys(text: str, scheme: WebhookSignature) -> tuple[bytes, ...]:
    """The HMAC keys of a ``signingSecret`` value, in order (the first is the primary)."""
    lines = secret_lines(text)
    if not lines:
        raise SigningSecretError("holds no secret")
    if len(lines) > MAX_SECRETS:
        raise SigningSecretError(f"holds {len(lines)} secrets; at most {MAX_SECRETS}")
    if scheme is WebhookSignature.LEGACY:
        return (lines[0].encode(),)
    return tuple(_whsec_key(line, number) for number, line in enumerate(lines, start=1))


def _whsec_key(line: str, number: int) -> bytes:
    if not line.startswith(WHSEC_PREFIX):
        raise SigningSecretError(
            f"line {number} is not a whsec_ secret: standard signatures need "
            f"whsec_<base64 of {KEY_BYTES[0]} to {KEY_BYTES[1]} random bytes> "
            "(set signature: legacy to keep signing with a raw secret)"
        )
    encoded = line[len(WHSEC_PREFIX) :]
    try:  # padding is optional, as the verification libraries accept it
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SigningSecretError(f"line {number}: what follows whsec_ is not base64") from None
    if not KEY_BYTES[0] <= len(key) <= KEY_BYTES[1]:
        raise SigningSecretError(
            f"line {number}: the key is {len(key)} bytes; Standard Webhooks wants "
            f"{KEY_BYTES[0]} to {KEY_BYTES[1]}"
        )
    return key


def generate() -> str:
    """A new ``whsec_`` secret (32 random bytes), e.g. for ``kubectl create secret``."""
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
