"""Secret references the API server cannot check: precise reasons, names only."""

from __future__ import annotations

import base64
import copy
from typing import Any

from akeneo_connector.signing_secrets import generate
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.secretcheck import check, check_content, needs
from tests.unit.operator.builders_support import BASE_SPEC


def spec_with(**overrides: Any) -> AkeneoConnectionSpec:
    raw = copy.deepcopy(BASE_SPEC)
    raw.update(overrides)
    return AkeneoConnectionSpec.model_validate(raw)


def test_needs_follow_the_spec():
    got = {(n.secret, n.keys, n.any_of) for n in needs(spec_with(), None, "nats.creds")}
    assert got == {
        ("acme-events", ("eventsApiSecret", "eventPlatformSecrets"), True),
        ("acme-pim-api", ("clientId", "clientSecret", "username", "password"), False),
    }
    s = spec_with(
        worker={"sink": {"postgres": {"dsnSecret": "db"}}},
        tls={"mode": "secret", "secretName": "crt"},
    )
    secrets = {n.secret for n in needs(s, "nats", "password")}
    assert secrets == {"acme-events", "acme-pim-api", "db", "crt", "nats"}


def test_check_reasons():
    signature, pim = needs(spec_with(), None, "nats.creds")
    gone = check(signature, None)
    assert gone is not None and gone.reason == "SecretMissing"
    assert check(signature, {"eventPlatformSecrets"}) is None
    missing = check(signature, {"other"})
    assert missing is not None
    assert missing.reason == "SecretKeyMissing"
    assert "eventsApiSecret or eventPlatformSecrets" in missing.message
    partial = check(pim, {"clientId", "clientSecret", "username"})
    assert partial is not None
    assert partial.reason == "SecretKeyMissing" and partial.message.endswith("lacks key password")


def _data(text: str) -> dict[str, str]:
    return {"signingSecret": base64.b64encode(text.encode()).decode()}


def test_a_signing_secret_the_worker_would_refuse_blocks_with_a_reason_and_no_value():
    hook = {"url": "https://app.example.com/hook", "signingSecret": "acme-sink"}
    standard = needs(spec_with(worker={"sink": {"webhook": hook}}), None, "nats.creds")[-1]
    assert standard.secret == "acme-sink"
    assert check_content(standard, _data(generate() + "\n" + generate() + "\n")) is None
    raw = check_content(standard, _data("merchant-raw-secret"))
    assert raw is not None and raw.reason == "SecretInvalid"
    assert raw.message.startswith("Secret acme-sink (sink.webhook) key signingSecret line 1 ")
    assert "signature: legacy" in raw.message and "merchant-raw-secret" not in raw.message
    empty = check_content(standard, _data("\n\n"))
    assert empty is not None and empty.message.endswith("key signingSecret holds no secret")
    legacy_hook = {**hook, "signature": "legacy"}
    legacy = needs(spec_with(worker={"sink": {"webhook": legacy_hook}}), None, "nats.creds")[-1]
    assert check_content(legacy, _data("merchant-raw-secret")) is None
