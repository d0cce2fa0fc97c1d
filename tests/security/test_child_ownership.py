"""Issue 15, row 10: a tenant's connection takes over and deletes nothing it does not own.

On the real API server with the chart's identity and objects that exist before the
connection: the namespace's ServiceAccount ``default``, a tenant's own Deployment and HPA.
Children carry our labels and owner reference only (the CR's labels are not copied), the
operator never forces its apply over an object without its owner uid, prunes only what
carries that uid, and says which object clashes (``Ready=False``, ``ChildNameConflict``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

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
    tenant_secrets,
)
from tests.security.kube_support import (
    OPERATOR_MANAGER,
    OUR_LABEL_KEYS,
    delete_connections,
    managers,
    ready_with,
    written_for,
)

pytestmark = pytest.mark.kube
NS = "tenant-own"
CONFLICT = "ChildNameConflict"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
        ),
        namespaces=[NS],
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    secrets = [
        *tenant_secrets(NS, "default"),
        *tenant_secrets(NS, "shop"),
        *tenant_secrets(NS, "labels"),
        *tenant_secrets(NS, "prune"),
    ]
    await make_namespace(c, NS, secrets)
    yield c
    await delete_connections(c, operator, NS)
    await c.close()


def tenant_deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "tenant/app:1"}]},
            },
        },
    }


async def test_a_connection_named_default_does_not_adopt_the_default_service_account(
    operator, client
):
    before = await client.get("v1", "ServiceAccount", NS, "default")
    assert before is not None, "the namespace's default ServiceAccount exists"
    await client.create(connection(NS, "default", basic_spec("default")))
    body = await ready_with(client, operator, NS, "default", "False", CONFLICT)
    message = condition(body, "Ready")["message"]
    assert "ServiceAccount default" in message, message

    after = await client.get("v1", "ServiceAccount", NS, "default")
    assert after is not None
    meta = after["metadata"]
    assert not meta.get("ownerReferences"), meta
    assert not set(meta.get("labels") or {}) & OUR_LABEL_KEYS, meta
    assert OPERATOR_MANAGER not in managers(after)
    assert meta["resourceVersion"] == before["metadata"]["resourceVersion"]
    # nothing of the connection was written before the clash was found
    assert await written_for(client, NS, "default") == []


async def test_a_tenant_deployment_with_a_child_name_is_left_alone_until_it_is_gone(
    operator, client
):
    await client.create(tenant_deployment("shop-worker"))
    await client.create(connection(NS, "shop", basic_spec("shop")))
    body = await ready_with(client, operator, NS, "shop", "False", CONFLICT)
    assert "Deployment shop-worker" in condition(body, "Ready")["message"]

    live = await client.get("apps/v1", "Deployment", NS, "shop-worker")
    assert live is not None
    assert not live["metadata"].get("ownerReferences")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "tenant/app:1"
    assert OPERATOR_MANAGER not in managers(live)

    # once the tenant's object is gone, the connection builds its own (maintenance retries)
    await client.delete("apps/v1", "Deployment", NS, "shop-worker")
    uid = body["metadata"]["uid"]

    async def ours() -> dict[str, Any] | None:
        dep = await client.get("apps/v1", "Deployment", NS, "shop-worker")
        owners = [o["uid"] for o in (dep or {}).get("metadata", {}).get("ownerReferences") or []]
        return dep if owners == [uid] else None

    await poll(ours, timeout=90, what="shop-worker rebuilt by the operator", operators=(operator,))


async def test_children_carry_only_our_labels_not_the_connections(operator, client):
    manifest = connection(NS, "labels", basic_spec("labels"))
    manifest["metadata"]["labels"] = {
        "team": "payments",
        "app.kubernetes.io/part-of": "billing",
        "istio-injection": "enabled",
    }
    created = await client.create(manifest)
    await ready_with(client, operator, NS, "labels", "True")
    children = await written_for(client, NS, "labels")
    assert "Deployment/labels-worker" in children
    for ref in children:
        kind, name = ref.split("/")
        api = {
            "ServiceAccount": "v1",
            "Service": "v1",
            "Secret": "v1",
            "Deployment": "apps/v1",
            "PodDisruptionBudget": "policy/v1",
            "NetworkPolicy": "networking.k8s.io/v1",
            "Ingress": "networking.k8s.io/v1",
            "CronJob": "batch/v1",
            "HorizontalPodAutoscaler": "autoscaling/v2",
        }[kind]
        child = await client.get(api, kind, NS, name)
        assert child is not None
        assert set(child["metadata"]["labels"]) == OUR_LABEL_KEYS, (ref, child["metadata"])
        owners = child["metadata"]["ownerReferences"]
        assert [(o["uid"], o["controller"]) for o in owners] == [(created["metadata"]["uid"], True)]


async def test_prune_deletes_only_what_carries_our_owner_uid(operator, client):
    """The connection has no host and no autoscaling: an Ingress ``prune`` and an HPA
    ``prune-receiver`` of the tenant share the names its optional children would have."""
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "prune-receiver", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
            "minReplicas": 1,
            "maxReplicas": 2,
        },
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "prune", "namespace": NS},
        "spec": {"defaultBackend": {"service": {"name": "other", "port": {"number": 80}}}},
    }
    await client.create(hpa)
    await client.create(ingress)
    await client.create(connection(NS, "prune", basic_spec("prune")))
    await ready_with(client, operator, NS, "prune", "True")
    # several reconciles (spec changes) later, the tenant's objects are still there
    for replicas in (1, 2):
        await client.merge_patch(
            API, "AkeneoConnection", NS, "prune", {"spec": {"worker": {"replicas": replicas}}}
        )

        async def applied(want: int = replicas) -> bool:
            dep = await client.get("apps/v1", "Deployment", NS, "prune-worker")
            return bool(dep and dep["spec"]["replicas"] == want)

        await poll(applied, what=f"worker replicas {replicas}", operators=(operator,))
    assert await client.get("autoscaling/v2", "HorizontalPodAutoscaler", NS, "prune-receiver")
    assert await client.get("networking.k8s.io/v1", "Ingress", NS, "prune")
    assert "Pruned" not in operator.log, operator.log
