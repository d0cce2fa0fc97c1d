"""The platform decides whether a tenant's webhook may reach private addresses."""

from __future__ import annotations

import copy

from akeneo_operator.children import build_children
from akeneo_operator.policy import PRIVATE_WEBHOOKS_REFUSED, refusal
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
