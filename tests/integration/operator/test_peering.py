"""Two operator replicas: only the one with the higher peering priority acts; when it stops,
the other takes over; an operator restarted after changes made while it was down converges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.helm import ChartIdentity
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    admin_client,
    basic_spec,
    condition,
    connection,
    make_namespace,
    poll,
    tenant_secrets,
)

pytestmark = pytest.mark.kube
NS = "tenant-peers"


def replica(
    workdir: Path, name: str, identity: ChartIdentity, nats: str, priority: int
) -> OperatorProcess:
    return OperatorProcess(
        workdir,
        name,
        identity.kubeconfig,
        nats,
        AKENEO_PEERING_NAME=identity.peering_name,
        AKENEO_OPERATOR_PRIORITY=str(priority),
        AKENEO_LOG_LEVEL="debug",  # kopf's pause/resume and watch-stream lines, for diagnosis
    )


def wrote_children(op: OperatorProcess) -> list[str]:
    """The replica's own writes of this namespace's children (its Created/Patched/Pruned lines).

    kopf itself may still add its finalizer from an event queued just before the pause; that is
    not acting on the connection, so only the operator's writes count.
    """
    verbs = ('"message": "Created ', '"message": "Patched ', '"message": "Pruned ')
    return [line for line in op.log.splitlines() if NS in line and line.startswith(verbs)]


def story(op: OperatorProcess) -> str:
    """The lines of a replica's debug log that tell who paused, watched and handled what."""
    keys = ("Paus", "Resum", "watch-stream", "acme", "Handler", "rror", "Peer")
    lines = [line for line in op.log.splitlines() if any(k in line for k in keys)]
    return f"--- {op.process.name}:\n" + "\n".join(lines[-80:])


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.close()


async def worker_replicas(client: KubeClient) -> int | None:
    dep = await client.get("apps/v1", "Deployment", NS, "acme-worker")
    return None if dep is None else int(dep["spec"]["replicas"])


async def test_one_replica_acts_and_the_other_takes_over(
    client, nats, chart_identity, tmp_path: Path
):
    low = replica(tmp_path, "low", chart_identity, nats, 10).start()
    high = replica(tmp_path, "high", chart_identity, nats, 20).start()
    try:

        async def both_peers() -> bool:
            path = f"/apis/kopf.dev/v1/clusterkopfpeerings/{chart_identity.peering_name}"
            peering = await client.request("GET", path)
            priorities = {p.get("priority") for p in (peering.get("status") or {}).values()}
            return {10, 20} <= priorities and "Resuming operations" in high.log

        await poll(both_peers, what="both replicas registered as peers", operators=(low, high))
        await client.create(connection(NS, "acme", basic_spec("acme")))

        async def ready() -> bool:
            body = await client.get(API, "AkeneoConnection", NS, "acme")
            return condition(body, "Ready").get("status") == "True"

        try:
            await poll(ready, timeout=90, what="Ready", operators=(low, high))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{story(low)}\n{story(high)}") from None
        assert "Created Deployment/tenant-peers acme-worker" in high.log
        assert not wrote_children(low), wrote_children(low)

        high.stop()
        await client.merge_patch(
            API, "AkeneoConnection", NS, "acme", {"spec": {"worker": {"replicas": 3}}}
        )
        await poll(
            lambda: _equals(worker_replicas(client), 3),
            timeout=90,
            what="low replica took over",
            operators=(low,),
        )
        assert "Patched Deployment/tenant-peers acme-worker" in low.log
    finally:
        high.stop()
        low.stop()


async def test_restart_converges_on_changes_made_while_down(
    client, nats, chart_identity, tmp_path: Path
):
    await client.merge_patch(
        API, "AkeneoConnection", NS, "acme", {"spec": {"worker": {"replicas": 2}}}
    )
    await client.delete("v1", "Service", NS, "acme-receiver")
    op = replica(tmp_path, "restarted", chart_identity, nats, 5).start()
    try:
        await poll(
            lambda: _equals(worker_replicas(client), 2),
            timeout=90,
            what="spec applied",
            operators=(op,),
        )

        async def service_back() -> bool:
            return await client.get("v1", "Service", NS, "acme-receiver") is not None

        await poll(service_back, what="Service recreated", operators=(op,))
        await client.delete(API, "AkeneoConnection", NS, "acme")

        async def gone() -> bool:
            return await client.get(API, "AkeneoConnection", NS, "acme") is None

        await poll(gone, what="finalized", operators=(op,))
    finally:
        op.stop()


async def _equals(value: object, expected: int) -> bool:
    return bool(await value == expected)  # type: ignore[misc]
