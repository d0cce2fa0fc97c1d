"""Issue 15, row 4: a tenant's ``tls.issuerRef`` and ``receiver.host`` are the platform's call.

On the real API server with the chart's identity: an issuer the platform did not list
(``allowedIssuers``), a host outside ``hostPattern``, and a host another connection (in
another namespace) already uses are refused with a precise ``Ready=False`` reason, and not
one object is written for the refused connection. The older connection keeps a host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.helm import ChartIdentity
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)
from tests.security.kube_support import (
    delete_connections,
    operator_in,
    ready_with,
    written_for,
)

pytestmark = pytest.mark.kube
NS_A, NS_B = "tenant-host-a", "tenant-host-b"
PATTERN = "*.{namespace}.connectors.example.com"


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, crd_installed: list[str]) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    for ns in (NS_A, NS_B):
        await make_namespace(c, ns, [*tenant_secrets(ns, "one"), *tenant_secrets(ns, "two")])
    yield c
    await c.close()


def spec(prefix: str, **receiver: Any) -> dict[str, Any]:
    out = basic_spec(prefix)
    out["receiver"].update(receiver)
    return out


async def test_issuers_and_hosts_outside_the_platform_settings_are_refused(
    client: KubeClient,
    nats: str,
    chart_identity: ChartIdentity,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with operator_in(
        tmp_path_factory,
        chart_identity,
        nats,
        [NS_A],
        AKENEO_OPERATOR_ALLOWED_ISSUERS="ClusterIssuer/platform-acme,Issuer/*",
        AKENEO_OPERATOR_HOST_PATTERN=PATTERN,
    ) as op:
        try:
            internal_ca = basic_spec("one")
            internal_ca["tls"] = {
                "mode": "certManager",
                "issuerRef": {"kind": "ClusterIssuer", "name": "internal-ca"},
            }
            await client.create(connection(NS_A, "one", internal_ca))
            body = await ready_with(client, op, NS_A, "one", "False", "IssuerNotAllowed")
            message = condition(body, "Ready")["message"]
            assert "ClusterIssuer/internal-ca" in message, message

            other_zone = spec("two", host=f"shop.{NS_B}.connectors.example.com")
            await client.create(connection(NS_A, "two", other_zone))
            body = await ready_with(client, op, NS_A, "two", "False", "HostNotAllowed")
            assert PATTERN in condition(body, "Ready")["message"]

            assert await written_for(client, NS_A, "one") == []
            assert await written_for(client, NS_A, "two") == []

            # within the pattern the same connection is built (a spec change lifts the refusal)
            host = f"shop.{NS_A}.connectors.example.com"
            await client.merge_patch(
                API, "AkeneoConnection", NS_A, "two", {"spec": {"receiver": {"host": host}}}
            )
            await ready_with(client, op, NS_A, "two", "True")
            assert "Ingress/two" in await written_for(client, NS_A, "two")
        finally:
            await delete_connections(client, op, NS_A)


async def test_a_host_another_connection_uses_is_refused_and_the_older_keeps_it(
    client: KubeClient,
    nats: str,
    chart_identity: ChartIdentity,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    host = "shop.example.com"
    with operator_in(tmp_path_factory, chart_identity, nats, [NS_A, NS_B]) as op:
        try:
            first = await client.create(connection(NS_A, "one", spec("one", host=host)))
            await ready_with(client, op, NS_A, "one", "True")
            await client.create(connection(NS_B, "one", spec("one", host=host)))
            body = await ready_with(client, op, NS_B, "one", "False", "HostConflict")
            message = condition(body, "Ready")["message"]
            assert host in message and "created earlier" in message, message
            assert NS_A not in message, "another tenant's namespace is not this tenant's business"
            assert f"kept by the older {NS_A}/one" in op.log  # the platform's log says who
            assert await written_for(client, NS_B, "one") == []

            # the winner is untouched: its Ingress is still the one serving the host
            ingress = await client.get("networking.k8s.io/v1", "Ingress", NS_A, "one")
            assert ingress is not None
            assert ingress["spec"]["rules"][0]["host"] == host
            owners = [o["uid"] for o in ingress["metadata"]["ownerReferences"]]
            assert owners == [first["metadata"]["uid"]]
            assert (
                condition(await client.get(API, "AkeneoConnection", NS_A, "one"), "Ready")["status"]
                == "True"
            )

            # the older one goes away: the host is free and the waiting connection gets it
            await client.delete(API, "AkeneoConnection", NS_A, "one")

            async def gone() -> bool:
                return await client.get(API, "AkeneoConnection", NS_A, "one") is None

            await poll(gone, what="first connection finalized", operators=(op,))
            await ready_with(client, op, NS_B, "one", "True", timeout=120)
            assert "Ingress/one" in await written_for(client, NS_B, "one")
        finally:
            for ns in (NS_A, NS_B):
                await delete_connections(client, op, ns)
