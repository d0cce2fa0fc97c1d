"""Secret references the API server cannot check: precise reasons, names only."""

from __future__ import annotations

import copy
from typing import Any

from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.secretcheck import check, needs
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
