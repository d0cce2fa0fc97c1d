"""Self-signed serving certificates are renewed before expiry and roll the receiver pods."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from akeneo_operator.certs import inspect
from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    basic_spec,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-tls"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_CERT_VALIDITY="40s",
            AKENEO_OPERATOR_CERT_RENEW_BEFORE="32s",
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.delete(API, "AkeneoConnection", NS, "acme")

    async def gone() -> bool:
        return await c.get(API, "AkeneoConnection", NS, "acme") is None

    await poll(gone, what="connection finalized", operators=(operator,))
    await c.close()


async def serial(client: KubeClient) -> str | None:
    secret = await client.get("v1", "Secret", NS, "acme-tls")
    if secret is None:
        return None
    return inspect(base64.b64decode(secret["data"]["tls.crt"])).serial


async def test_certificate_is_renewed_before_expiry(operator, client):
    await client.create(connection(NS, "acme", basic_spec("acme")))
    first = await poll(lambda: serial(client), what="first certificate", operators=(operator,))
    secret = await client.get("v1", "Secret", NS, "acme-tls")
    assert secret is not None
    facts = inspect(base64.b64decode(secret["data"]["tls.crt"]))
    assert "acme-receiver.tenant-tls.svc" in facts.dns_names
    assert secret["type"] == "kubernetes.io/tls" and "ca.key" not in secret["data"]

    async def renewed() -> str | None:
        now = await serial(client)
        return now if now and now != first else None

    second = await poll(renewed, timeout=30, what="renewed certificate", operators=(operator,))

    async def rolled() -> bool:
        dep = await client.get("apps/v1", "Deployment", NS, "acme-receiver")
        annotations = (
            (dep or {})
            .get("spec", {})
            .get("template", {})
            .get("metadata", {})
            .get("annotations", {})
        )
        return annotations.get("akeneo.connectors.dev/tls-serial") not in (None, first)

    await poll(rolled, what="receiver pods rolled to the new certificate", operators=(operator,))
    events = await client.list("v1", "Event", NS)
    reasons = {e["reason"] for e in events}
    assert {"CertificateRenewal", "CertificateIssued"} <= reasons
    assert second != first
