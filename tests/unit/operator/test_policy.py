"""The platform decides whether a tenant's PIM, webhook or database may be on private
addresses (the clients check resolved addresses: ``tests/security``)."""

from __future__ import annotations

import copy

import pytest

from akeneo_operator.children import build_children
from akeneo_operator.policy import DSN_REFUSED, PRIVATE_WEBHOOKS_REFUSED, dsn_refusal, refusal
from tests.unit.operator.builders_support import (
    BASE_SPEC,
    by_kind_name,
    env_of,
    make_input,
    pod_spec,
)


def _private_webhook_input(**settings: object):
    spec = copy.deepcopy(BASE_SPEC)
    spec["worker"] = {
        "sink": {"webhook": {"url": "http://10.0.0.7/hook", "allowPrivateAddresses": True}}
    }
    return make_input(spec, **settings)


def _worker_env(inp) -> dict[str, str]:
    dep = by_kind_name(build_children(inp))[("Deployment", "acme-worker")]
    return env_of(pod_spec(dep)["containers"][0])


def test_a_tenant_cannot_open_private_addresses_by_default():
    inp = _private_webhook_input()
    cond = refusal(inp.spec, inp.settings)
    assert cond is not None and cond.status == "False"
    assert cond.reason == PRIVATE_WEBHOOKS_REFUSED
    assert "spec.worker.sink.webhook.allowPrivateAddresses" in cond.message
    # even if a pod were built from it, the worker keeps its address guard
    assert "AKENEO_WEBHOOK_ALLOW_PRIVATE" not in _worker_env(inp)


def test_the_platform_can_allow_private_webhooks():
    inp = _private_webhook_input(allow_private_webhooks=True)
    assert refusal(inp.spec, inp.settings) is None
    assert _worker_env(inp)["AKENEO_WEBHOOK_ALLOW_PRIVATE"] == "true"


def test_ordinary_specs_are_not_refused():
    inp = make_input()
    assert refusal(inp.spec, inp.settings) is None


def _with(**parts: object):
    spec = copy.deepcopy(BASE_SPEC)
    for key, value in parts.items():
        spec[key] = value
    return spec


def _env(inp, name: str) -> dict[str, str]:
    children = by_kind_name(build_children(inp))
    kind = "Deployment" if name.endswith("-worker") else "CronJob"
    manifest = children[(kind, name)]
    if kind == "CronJob":
        return env_of(manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    return env_of(pod_spec(manifest)["containers"][0])


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest", "https://127.0.0.1:8443", "https://localhost",
     "https://[::ffff:10.0.0.1]", "https://[fec0::1]/", "https://[2002:7f00:1::1]"],
)  # fmt: skip
def test_a_pim_url_on_a_private_literal_is_refused(url: str) -> None:
    inp = make_input(_with(pim={**BASE_SPEC["pim"], "url": url}))
    cond = refusal(inp.spec, inp.settings)
    assert cond is not None and cond.reason == PRIVATE_WEBHOOKS_REFUSED
    assert "spec.pim.url" in cond.message and "allowPrivatePim" in cond.message


def test_a_private_pim_needs_the_spec_and_the_platform() -> None:
    pim = {**BASE_SPEC["pim"], "url": "http://10.0.0.7:8080", "allowPrivateAddresses": True}
    asked = make_input(_with(pim=pim))
    cond = refusal(asked.spec, asked.settings)
    assert cond is not None and "spec.pim.allowPrivateAddresses" in cond.message
    allowed = make_input(_with(pim=pim), allow_private_pim=True)
    assert refusal(allowed.spec, allowed.settings) is None
    assert _env(allowed, "acme-worker")["AKENEO_PIM_ALLOW_PRIVATE"] == "true"
    assert _env(allowed, "acme-reconcile")["AKENEO_PIM_ALLOW_PRIVATE"] == "true"
    assert "AKENEO_PIM_ALLOW_PRIVATE" not in _env(make_input(), "acme-worker")


def test_a_private_database_needs_the_spec_and_the_platform() -> None:
    sink = {"postgres": {"dsnSecret": "db", "allowPrivateAddresses": True}}
    asked = make_input(_with(worker={"sink": sink}))
    cond = refusal(asked.spec, asked.settings)
    assert cond is not None and "spec.worker.sink.postgres" in cond.message
    allowed = make_input(_with(worker={"sink": sink}), allow_private_postgres=True)
    assert refusal(allowed.spec, allowed.settings) is None
    assert _env(allowed, "acme-worker")["AKENEO_POSTGRES_ALLOW_PRIVATE"] == "true"


def test_a_webhook_on_a_private_literal_is_refused_without_asking() -> None:
    inp = make_input(_with(worker={"sink": {"webhook": {"url": "http://[::1]:9/hook"}}}))
    cond = refusal(inp.spec, inp.settings)
    assert cond is not None and "spec.worker.sink.webhook.url" in cond.message


@pytest.mark.parametrize(
    ("dsn", "reason", "said"),
    [
        ("host=/var/run/postgresql", DSN_REFUSED, "Unix sockets"),
        ("postgresql://u:pw@db.example.com/x?sslkey=/k", DSN_REFUSED, "parameter sslkey"),
        ("host=10.0.0.5 password=pw", PRIVATE_WEBHOOKS_REFUSED, "host refused"),
        ("host='unterminated password=pw", DSN_REFUSED, "not a valid"),
    ],
)
def test_dsn_refusals_never_repeat_the_dsn(dsn: str, reason: str, said: str) -> None:
    cond = dsn_refusal(dsn, "db", allow_private=False)
    assert cond is not None and cond.reason == reason and said in cond.message
    assert "pw" not in cond.message.replace("pw-", "") and "/k" not in cond.message
    assert dsn_refusal("postgresql://u:pw@db.example.com/x", "db", allow_private=False) is None
    assert dsn_refusal("host=10.0.0.5", "db", allow_private=True) is None


def test_a_quota_above_the_platform_ceiling_is_refused_with_the_field_named():
    from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT, StreamQuotas

    spec = copy.deepcopy(BASE_SPEC)
    spec["stream"] = {"maxBytes": 300 * 1024 * 1024}
    inp = make_input(
        spec,
        stream_quotas=StreamQuotas.model_validate(
            {"default": {"maxBytes": 2**27}, "max": {"maxBytes": 2**28}}
        ),
    )
    cond = refusal(inp.spec, inp.settings)
    assert cond is not None and cond.reason == QUOTA_EXCEEDS_PLATFORM_LIMIT
    assert cond.message.startswith(f"spec.stream.maxBytes {300 * 1024 * 1024} exceeds")
    lowered = copy.deepcopy(BASE_SPEC)
    lowered["stream"] = {"maxBytes": 2**27}
    assert refusal(make_input(lowered).spec, inp.settings) is None
