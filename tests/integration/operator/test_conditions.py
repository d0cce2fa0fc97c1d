"""Problems the API server cannot see: precise Ready=False reasons, no crash loop, recovery."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from akeneo_operator.certs import issue_ca, issue_serving, utcnow
from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    secret,
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-cond"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_ALLOWED_ISSUERS="ClusterIssuer/letsencrypt",  # the platform's, listed
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):  # removed while the operator runs
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, what="connections finalized", operators=(operator,))
    await c.close()


async def ready_condition(client: KubeClient, name: str, reason: str) -> dict[str, Any] | None:
    body = await client.get(API, "AkeneoConnection", NS, name)
    ready = condition(body, "Ready")
    return body if ready.get("reason") == reason else None


async def reached(
    client: KubeClient, operator: OperatorProcess, name: str, reason: str, timeout: float = 60
) -> dict[str, Any]:
    """The connection's Ready condition, once it has this reason."""
    return await poll(
        lambda: ready_condition(client, name, reason),
        timeout=timeout,
        what=f"{name}: Ready reason {reason}",
        operators=(operator,),
    )


async def env_names(client: KubeClient, deployment: str) -> set[str]:
    dep = await client.get("apps/v1", "Deployment", NS, deployment)
    assert dep is not None
    return {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


async def assert_quiet(client: KubeClient, name: str, operator: OperatorProcess) -> None:
    """No status churn and no retries: the object stays untouched for a few maintenance ticks.

    The writes that finish handling the change (the condition, then kopf's own record of
    what it handled) may land a moment apart: the window starts once one second passed
    without a write, so what is measured is churn, not the tail of the first pass."""
    before = await client.get(API, "AkeneoConnection", NS, name)
    for _ in range(10):
        await asyncio.sleep(1)
        settled = await client.get(API, "AkeneoConnection", NS, name)
        assert before and settled
        if settled["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]:
            break
        before = settled
    await asyncio.sleep(3)
    after = await client.get(API, "AkeneoConnection", NS, name)
    assert before and after
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "failed temporarily" not in operator.log
    assert "Traceback" not in operator.log


async def test_invalid_spec_is_a_precise_condition_without_retries(operator, client):
    spec = basic_spec("acme")
    # CEL cannot compare "d"; both within the platform's ceilings (duplicateWindow <= 24h)
    spec["stream"] = {"maxAge": "0.5d", "duplicateWindow": "13h"}
    await client.create(connection(NS, "bad-window", spec))
    body = await poll(
        lambda: ready_condition(client, "bad-window", "InvalidSpec"),
        what="Ready=False InvalidSpec",
        operators=(operator,),
    )
    ready = condition(body, "Ready")
    assert ready["status"] == "False"
    assert "stream" in ready["message"] and "duplicateWindow" in ready["message"]
    assert await client.get("apps/v1", "Deployment", NS, "bad-window-receiver") is None
    await assert_quiet(client, "bad-window", operator)

    await client.merge_patch(
        API, "AkeneoConnection", NS, "bad-window", {"spec": {"stream": {"maxAge": "1d"}}}
    )
    await poll(
        lambda: ready_condition(client, "bad-window", "AllComponentsReady"),
        timeout=90,
        what="fixed spec becomes Ready",
        operators=(operator,),
    )


async def test_private_webhook_targets_are_refused_by_the_platform(operator, client):
    """A tenant's spec cannot switch off the worker's private-address guard."""
    spec = basic_spec("acme")
    spec["worker"] = {
        "sink": {"webhook": {"url": "http://169.254.169.254/latest", "allowPrivateAddresses": True}}
    }
    await client.create(connection(NS, "inward", spec))
    body = await reached(client, operator, "inward", "PrivateAddressesNotAllowed")
    assert "allowPrivateAddresses" in condition(body, "Ready")["message"]
    assert await client.get("apps/v1", "Deployment", NS, "inward-worker") is None
    await assert_quiet(client, "inward", operator)

    await client.merge_patch(
        API,
        "AkeneoConnection",
        NS,
        "inward",
        {"spec": {"worker": {"sink": {"webhook": {"url": "https://app.example.com/hook",
                                                  "allowPrivateAddresses": False}}}}},
    )  # fmt: skip
    await reached(client, operator, "inward", "AllComponentsReady", timeout=90)
    assert "AKENEO_WEBHOOK_ALLOW_PRIVATE" not in await env_names(client, "inward-worker")


async def test_a_raw_webhook_secret_is_refused_for_standard_signatures(operator, client):
    """The worker would refuse it at start: the connection says so before any pod exists."""
    raw = "raw-merchant-secret-1f3e9a"
    await client.create(secret(NS, "raw-sink", {"signingSecret": raw}))
    spec = basic_spec("acme")
    hook = {"url": "https://app.example.com/hook", "signingSecret": "raw-sink"}
    spec["worker"] = {"sink": {"webhook": hook}}  # signature: standard, the default
    await client.create(connection(NS, "rawhook", spec))
    body = await reached(client, operator, "rawhook", "SecretInvalid")
    message = condition(body, "Ready")["message"]
    assert message.startswith("Secret raw-sink (sink.webhook) key signingSecret line 1 ")
    assert "whsec_" in message and "signature: legacy" in message
    assert raw not in str(body)
    assert await client.get("apps/v1", "Deployment", NS, "rawhook-worker") is None

    # the way out the message names: legacy signatures sign with the raw secret
    legacy = {"spec": {"worker": {"sink": {"webhook": {"signature": "legacy"}}}}}
    await client.merge_patch(API, "AkeneoConnection", NS, "rawhook", legacy)
    await reached(client, operator, "rawhook", "AllComponentsReady", timeout=90)
    assert "AKENEO_WEBHOOK_SIGNING_SECRET_FILE" in await env_names(client, "rawhook-worker")


async def test_missing_secret_then_created(operator, client):
    spec = basic_spec("acme")
    spec["receiver"] = {"signatureSecret": "late-events"}
    await client.create(connection(NS, "late", spec))
    body = await reached(client, operator, "late", "SecretMissing")
    assert "late-events" in condition(body, "Ready")["message"]
    await client.create(secret(NS, "late-events", {"eventPlatformSecrets": "one\ntwo\n"}))
    await reached(client, operator, "late", "AllComponentsReady", timeout=90)
    env = await env_names(client, "late-receiver")
    assert (
        "AKENEO_EVENT_PLATFORM_SECRETS_FILE" in env and "AKENEO_EVENTS_API_SECRET_FILE" not in env
    )


async def test_missing_secret_key(operator, client):
    await client.create(
        secret(NS, "partial-pim", {"clientId": "a", "clientSecret": "b", "username": "c"})
    )
    spec = basic_spec("acme")
    spec["pim"]["credentialsSecret"] = "partial-pim"
    await client.create(connection(NS, "partial", spec))
    body = await poll(
        lambda: ready_condition(client, "partial", "SecretKeyMissing"),
        what="SecretKeyMissing",
        operators=(operator,),
    )
    assert condition(body, "Ready")["message"].endswith("lacks key password")


async def test_cert_manager_absent_is_a_condition(operator, client):
    spec = basic_spec("acme")
    spec["tls"] = {"mode": "certManager", "issuerRef": {"name": "letsencrypt"}}
    await client.create(connection(NS, "cm", spec))
    body = await poll(
        lambda: ready_condition(client, "cm", "CertManagerNotInstalled"),
        what="CertManagerNotInstalled",
        operators=(operator,),
    )
    assert condition(body, "TLSReady")["status"] == "False"
    assert await client.get("apps/v1", "Deployment", NS, "cm-worker") is not None


async def test_user_secret_must_match_and_cover_the_host(operator, client):
    now = utcnow()
    ca = issue_ca("user CA", timedelta(days=30), now)
    good = issue_serving(ca, ["*.hooks.example.com"], timedelta(days=10), now)
    other = issue_serving(ca, ["*.hooks.example.com"], timedelta(days=10), now)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    mismatched: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "user-cert", "namespace": NS},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(good.cert_pem), "tls.key": b64(other.key_pem)},
    }
    await client.create(mismatched)
    spec = basic_spec("acme")
    spec["receiver"]["host"] = "acme.hooks.example.com"
    spec["tls"] = {"mode": "secret", "secretName": "user-cert"}
    await client.create(connection(NS, "usertls", spec))
    await poll(
        lambda: ready_condition(client, "usertls", "KeyMismatch"),
        what="KeyMismatch",
        operators=(operator,),
    )
    mismatched["data"]["tls.key"] = b64(good.key_pem)
    await client.replace({**mismatched, "metadata": {"name": "user-cert", "namespace": NS}})
    body = await poll(
        lambda: ready_condition(client, "usertls", "AllComponentsReady"),
        timeout=90,
        what="valid user cert accepted",
        operators=(operator,),
    )
    assert body["status"]["endpoint"] == "https://acme.hooks.example.com/events"
    ingress = await client.get("networking.k8s.io/v1", "Ingress", NS, "usertls")
    assert ingress is not None
    assert ingress["spec"]["tls"][0]["secretName"] == "user-cert"
    assert "PRIVATE KEY" not in operator.log
