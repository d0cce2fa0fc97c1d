"""spec.worker.autoscaling on the real API server with KEDA's real ScaledObject CRD (from its
Go module): without KEDA, Ready says why no autoscaler exists; once KEDA's CRD is served the
operator writes a ScaledObject the API server accepts, leaves the worker's replicas to it,
and removes it when autoscaling is turned off. KEDA itself is not run: the test plays its
part by scaling the Deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from akeneo_connector.names import ConnectionNames
from akeneo_operator.children import worker_scaled_object
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.settings import MANAGED_BY
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
NS = "tenant-keda"
KEDA = "keda.sh/v1alpha1"
CRD_NAME = "scaledobjects.keda.sh"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_KEDA_NATS_MONITORING="nats-mon.nats:8222",
        ),
    )


async def scaled_objects_served(c: KubeClient) -> bool:
    try:
        await c.list(KEDA, "ScaledObject", "default")
    except ApiError:
        return False
    return True


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await crds.remove(c, CRD_NAME)  # KEDA starts absent
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.delete(API, "AkeneoConnection", NS, "acme")

    async def finalized() -> bool:
        return await c.get(API, "AkeneoConnection", NS, "acme") is None

    await poll(finalized, what="connection finalized", operators=(operator,))
    await crds.remove(c, CRD_NAME)

    async def crd_gone() -> bool:
        return not await scaled_objects_served(c)

    await poll(crd_gone, what="ScaledObject CRD removed")
    await c.close()


def strict_sample() -> dict[str, Any]:
    spec = {**BASE_SPEC, "worker": {"autoscaling": {"minReplicas": 0, "maxReplicas": 9}}}
    built = worker_scaled_object(make_input(spec, nats_account="ADEMOACCOUNT"))
    assert built is not None
    built["metadata"] = {**built["metadata"], "namespace": NS, "name": "strict"}
    return built


def _owns_replicas(deployment: dict[str, Any]) -> bool:
    """Whether the operator's field manager owns the Deployment's spec.replicas."""
    for entry in deployment["metadata"].get("managedFields") or []:
        if entry.get("manager") == MANAGED_BY and entry.get("operation") == "Apply":
            return "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
    return False


async def test_scaled_object_follows_the_spec_and_keda_being_installed(operator, client):
    spec = basic_spec("acme")
    spec["worker"] = {
        "replicas": 2,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 50},
    }
    await client.create(connection(NS, "acme", spec))

    async def status_reason(kind: str, reason: str) -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, "acme")
        return body if condition(body, kind).get("reason") == reason else None

    body = await poll(
        lambda: status_reason("Ready", "KedaNotInstalled"),
        what="Ready=False KedaNotInstalled",
        operators=(operator,),
    )
    assert condition(body, "Ready")["status"] == "False"
    assert "WorkerAutoscalerReady" in condition(body, "Ready")["message"]
    assert condition(body, "WorkerAutoscalerReady")["status"] == "False"
    worker = await client.get("apps/v1", "Deployment", NS, "acme-worker")
    assert worker is not None and not _owns_replicas(worker)

    assert await crds.install(client, crds.SCALED_OBJECTS) == CRD_NAME
    await poll(lambda: scaled_objects_served(client), what="ScaledObject kind served")

    async def scaled() -> dict[str, Any] | None:
        found: dict[str, Any] | None = await client.get(KEDA, "ScaledObject", NS, "acme-worker")
        return found

    # what the builder writes passes KEDA's schema strictly (no field silently dropped)
    path = f"/apis/{KEDA}/namespaces/{NS}/scaledobjects"
    await crds.dry_run_create(client, path, strict_sample())
    wrong = strict_sample()
    wrong["spec"]["maxReplicas"] = 4  # KEDA calls it maxReplicaCount
    with pytest.raises(ApiError):
        await crds.dry_run_create(client, path, wrong)

    so = await poll(scaled, what="ScaledObject created once KEDA is there", operators=(operator,))
    assert so["spec"]["scaleTargetRef"]["name"] == "acme-worker"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 4)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"] == {
        "natsServerMonitoringEndpoint": "nats-mon.nats:8222",
        "account": "$G",
        "stream": ConnectionNames(NS, "acme").stream,
        "consumer": "worker",
        "lagThreshold": "50",
    }
    assert so["metadata"]["ownerReferences"][0]["kind"] == "AkeneoConnection"
    await poll(
        lambda: status_reason("WorkerAutoscalerReady", "ScaledObjectApplied"),
        what="autoscaler ready",
        operators=(operator,),
    )
    await poll(
        lambda: status_reason("Ready", "AllComponentsReady"),
        timeout=90,
        what="Ready",
        operators=(operator,),
    )

    # KEDA's HPA scales the worker; a spec change must not take the replicas back
    await client.merge_patch("apps/v1", "Deployment", NS, "acme-worker", {"spec": {"replicas": 3}})
    await client.merge_patch(
        API,
        "AkeneoConnection",
        NS,
        "acme",
        {"spec": {"worker": {"autoscaling": {"lagPerReplica": 80}}}},
    )

    async def threshold(value: str) -> dict[str, Any] | None:
        found = await scaled()
        ok = found and found["spec"]["triggers"][0]["metadata"]["lagThreshold"] == value
        return found if ok else None

    await poll(lambda: threshold("80"), what="ScaledObject updated", operators=(operator,))
    worker = await client.get("apps/v1", "Deployment", NS, "acme-worker")
    assert worker is not None and worker["spec"]["replicas"] == 3

    await client.merge_patch(
        API, "AkeneoConnection", NS, "acme", {"spec": {"worker": {"autoscaling": None}}}
    )

    async def pruned() -> bool:
        return await scaled() is None

    await poll(pruned, what="ScaledObject pruned", operators=(operator,))

    async def back_to_spec() -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, "acme")
        live = await client.get("apps/v1", "Deployment", NS, "acme-worker")
        done = (
            live is not None
            and live["spec"]["replicas"] == 2
            and not condition(body, "WorkerAutoscalerReady")
        )
        return body if done else None

    await poll(back_to_spec, what="replicas from the spec again", operators=(operator,))
