"""The maintenance loop reconciles a connection no handler has reconciled yet.

kopf runs the create handler on a watch event; when its finalizer patch loses a race with
another replica it waits for the next event, which a watch may not deliver (seen with two
replicas starting together). The loop converges such a connection from a fresh read. Driven
here without kopf: the Reconciler on the real API server and real NATS, as the chart's
ServiceAccount, so nothing but the loop can have created the children.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from akeneo_operator.kubeclient import Credentials, KubeClient
from akeneo_operator.meta import FINALIZER, adopt
from akeneo_operator.reconciler import Reconciler
from akeneo_operator.settings import MANAGED_BY, OperatorSettings
from akeneo_operator.streams import NatsLink
from akeneo_testing.ground.helm import ChartIdentity
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-first-loop"


@pytest_asyncio.fixture(scope="module")
async def admin(kube: KubeCluster, crd_installed: list[str]) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.close()


@pytest_asyncio.fixture
async def reconciler(chart_identity: ChartIdentity, nats: str) -> AsyncIterator[Reconciler]:
    settings = OperatorSettings(nats_url=nats, maintenance_interval="2s")
    client = KubeClient(_chart_credentials(chart_identity), MANAGED_BY)
    r = Reconciler(settings, client, NatsLink(settings), adopt=adopt, emit=lambda *_: None)
    yield r
    await r.nats.close()
    await client.close()


def _chart_credentials(identity: ChartIdentity) -> Credentials:
    config: dict[str, Any] = yaml.safe_load(identity.kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    return Credentials(
        server=cluster["server"], token=user["token"], ca_path=cluster["certificate-authority"]
    )


async def test_loop_reconciles_a_connection_kopf_left_waiting(
    admin: KubeClient, reconciler: Reconciler
) -> None:
    body = connection(NS, "acme", basic_spec("acme"))
    body["metadata"]["finalizers"] = [FINALIZER]  # kopf's patch landed, its handler did not run
    await admin.create(body)
    try:
        await reconciler.maintain(NS, "acme")

        assert await admin.get("apps/v1", "Deployment", NS, "acme-worker") is not None
        assert await admin.get("v1", "Service", NS, "acme-receiver") is not None
        live = await admin.get(API, "AkeneoConnection", NS, "acme")
        assert condition(live, "StreamReady").get("status") == "True", live
        assert (live or {}).get("status", {}).get("observedGeneration") == 1

        # from now on the loop does maintenance, not a second first reconcile
        calls = reconciler.client.calls
        await reconciler.maintain(NS, "acme")
        assert reconciler.client.calls - calls <= 2  # status write at most, no child applies
    finally:
        await _remove(admin, "acme")


async def test_loop_leaves_a_connection_without_kopf_finalizer_to_kopf(
    admin: KubeClient, reconciler: Reconciler
) -> None:
    await admin.create(connection(NS, "bare", basic_spec("acme")))
    try:
        await reconciler.maintain(NS, "bare")
        assert await admin.get("apps/v1", "Deployment", NS, "bare-worker") is None
        assert (NS, "bare") not in reconciler.states
    finally:
        await _remove(admin, "bare")


async def _remove(admin: KubeClient, name: str) -> None:
    await admin.merge_patch(API, "AkeneoConnection", NS, name, {"metadata": {"finalizers": None}})
    await admin.delete(API, "AkeneoConnection", NS, name)
