"""certManager mode against cert-manager's real Certificate CRD (its schema, from its Go
module): the Certificate is built from the spec and accepted by the API server, TLSReady
follows its Ready condition, and switching mode removes it. cert-manager itself is not run:
the test plays its part by setting the Certificate's status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.tls import certificate
from akeneo_testing.ground import crds
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
    tenant_secrets,
)
from tests.unit.operator.builders_support import BASE_SPEC, make_input

pytestmark = pytest.mark.kube
NS = "tenant-cm"
CM = "cert-manager.io/v1"
CRD_NAME = "certificates.cert-manager.io"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_ALLOWED_ISSUERS="ClusterIssuer/le",  # the platform's, listed
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    assert await crds.install(c, crds.CERTIFICATES) == CRD_NAME

    async def served() -> bool:
        try:
            await c.list(CM, "Certificate", "default")
        except ApiError:
            return False
        return True

    await poll(served, what="Certificate kind served")
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.delete(API, "AkeneoConnection", NS, "acme")

    async def finalized() -> bool:
        return await c.get(API, "AkeneoConnection", NS, "acme") is None

    await poll(finalized, what="connection finalized", operators=(operator,))
    await crds.remove(c, CRD_NAME)

    async def crd_gone() -> bool:
        return not await served()

    await poll(crd_gone, what="Certificate CRD removed")
    await c.close()


async def test_the_built_certificate_passes_cert_managers_schema(client):
    spec = {
        **BASE_SPEC,
        "receiver": {"signatureSecret": "acme-events", "host": "acme.hooks.example.com"},
        "tls": {"mode": "certManager", "issuerRef": {"kind": "Issuer", "name": "ca"}},
    }
    built = certificate(make_input(spec))
    built["metadata"] = {**built["metadata"], "namespace": NS, "name": "strict"}
    path = f"/apis/{CM}/namespaces/{NS}/certificates"
    await crds.dry_run_create(client, path, built)  # strict: no field silently dropped
    built["spec"]["privateKey"]["bits"] = 256  # cert-manager calls it size
    with pytest.raises(ApiError):
        await crds.dry_run_create(client, path, built)


async def test_certificate_follows_the_spec_and_its_readiness(operator, client):
    spec = basic_spec("acme")
    spec["receiver"]["host"] = "acme.hooks.example.com"
    spec["tls"] = {"mode": "certManager", "issuerRef": {"kind": "ClusterIssuer", "name": "le"}}
    await client.create(connection(NS, "acme", spec))

    async def certificate() -> dict[str, Any] | None:
        found: dict[str, Any] | None = await client.get(CM, "Certificate", NS, "acme")
        return found

    cert = await poll(certificate, what="Certificate created", operators=(operator,))
    assert cert["spec"]["secretName"] == "acme-tls"
    assert cert["spec"]["dnsNames"][0] == "acme.hooks.example.com"
    assert cert["spec"]["dnsNames"] == ["acme.hooks.example.com"]  # what ACME can issue
    assert cert["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "le",
    }

    async def tls_reason(reason: str) -> bool:
        body = await client.get(API, "AkeneoConnection", NS, "acme")
        return condition(body, "TLSReady").get("reason") == reason

    await poll(lambda: tls_reason("CertificatePending"), what="pending", operators=(operator,))
    ready = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "notAfter": "2030-01-01T00:00:00Z",
    }
    await client.merge_patch(CM, "Certificate", NS, "acme", {"status": ready}, "status")
    await poll(lambda: tls_reason("CertificateIssued"), what="issued", operators=(operator,))

    async def all_ready() -> bool:
        body = await client.get(API, "AkeneoConnection", NS, "acme")
        return condition(body, "Ready").get("status") == "True"

    await poll(all_ready, timeout=90, what="Ready", operators=(operator,))

    await client.merge_patch(
        API,
        "AkeneoConnection",
        NS,
        "acme",
        {"spec": {"tls": {"mode": "selfSigned", "issuerRef": None}}},
    )

    async def certificate_removed() -> bool:
        return await certificate() is None

    await poll(
        certificate_removed, what="Certificate removed on mode switch", operators=(operator,)
    )
    await poll(
        lambda: tls_reason("CertificateValid"), what="self-signed now", operators=(operator,)
    )
