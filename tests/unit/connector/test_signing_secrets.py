"""What a webhook ``signingSecret`` may hold, per signature scheme.

Standard Webhooks, https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md:
symmetric signing secrets are "Random. Between 24 bytes (192 bits) and 64 bytes (512 bits)",
serialized "base64 encoded, prefixed with `whsec_`".
"""

from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook

from akeneo_connector.signing_secrets import (
    MAX_SECRETS,
    SigningSecretError,
    generate,
    signing_keys,
)
from akeneo_connector.spec import WebhookSignature

STANDARD, LEGACY = WebhookSignature.STANDARD, WebhookSignature.LEGACY


def whsec(raw: bytes, *, padded: bool = True) -> str:
    encoded = base64.b64encode(raw).decode()
    return "whsec_" + (encoded if padded else encoded.rstrip("="))


def test_the_key_is_what_the_standard_library_derives_from_the_secret() -> None:
    for size in (24, 32, 50, 64):
        secret = whsec(bytes(range(size)), padded=size % 3 == 0)
        (key,) = signing_keys(secret, STANDARD)
        assert key == bytes(range(size))
        # the library signs with the same key: the merchant's verification matches ours
        assert Webhook(secret)._whsecret == key


def test_one_secret_per_line_all_kept_in_order() -> None:
    first, second = generate(), generate()
    text = f"\n  {first}  \r\n\n{second}\n"
    assert signing_keys(text, STANDARD) == (
        base64.b64decode(first[6:]),
        base64.b64decode(second[6:]),
    )
    assert signing_keys(text, LEGACY) == (first.encode(),)  # one signature only


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "holds no secret"),
        ("  \n\n", "holds no secret"),
        ("merchant-raw-secret", "line 1 is not a whsec_ secret"),
        (f"{whsec(bytes(32))}\nraw", "line 2 is not a whsec_ secret"),
        ("whsec_" + "*" * 40, "line 1: what follows whsec_ is not base64"),
        (whsec(bytes(23)), "line 1: the key is 23 bytes; Standard Webhooks wants 24 to 64"),
        (whsec(bytes(65)), "line 1: the key is 65 bytes"),
        ("\n".join([whsec(bytes(32))] * (MAX_SECRETS + 1)), f"at most {MAX_SECRETS}"),
    ],
)
def test_what_standard_refuses_is_named_without_the_value(text: str, error: str) -> None:
    with pytest.raises(SigningSecretError) as err:
        signing_keys(text, STANDARD)
    assert error in str(err.value)
    assert "merchant-raw-secret" not in str(err.value)


def test_legacy_takes_any_text_as_it_always_did() -> None:
    assert signing_keys("merchant-raw-secret\n", LEGACY) == (b"merchant-raw-secret",)
    with pytest.raises(SigningSecretError, match="holds no secret"):
        signing_keys("\n", LEGACY)
