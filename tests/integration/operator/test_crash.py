"""An operator SIGKILLed in the middle of its work: the next one converges, nothing is lost.

Killed as soon as its first write for a new connection (the CA Secret) lands, the rest of
that reconcile not done; then again right after a deletion is requested (before or while
the finalizer runs). Standalone replicas, so a killed one leaves no peering record behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats as nats_client
import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError

from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.helm import ChartIdentity
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import (
    ACME_CHILDREN as CHILDREN,
)
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
NS = "tenant-crash"


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    await c.close()


def standalone(workdir: Path, name: str, identity: ChartIdentity, nats: str) -> OperatorProcess:
    return OperatorProcess(
        workdir,
        name,
        identity.kubeconfig,
        nats,
        AKENEO_OPERATOR_STANDALONE="true",
        AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
    )


async def existing(client: KubeClient) -> list[dict[str, Any] | None]:
    return [await client.get(api, kind, NS, name) for api, kind, name in CHILDREN]


async def test_killed_mid_reconcile_and_mid_delete_the_next_operator_converges(
    client: KubeClient, nats: str, chart_identity: ChartIdentity, tmp_path: Path
) -> None:
    first = standalone(tmp_path, "first", chart_identity, nats).start()
    try:
        await client.create(connection(NS, "acme", basic_spec("acme")))

        # the serving certificate's CA is the first thing written: kill right then
        deadline = time.monotonic() + 60
        while await client.get("v1", "Secret", NS, "acme-ca") is None:
            first.assert_alive()
            assert time.monotonic() < deadline, first.log[-3000:]
            await asyncio.sleep(0.005)
        first.process.kill()
        partial = [c for c in await existing(client) if c is not None]
        assert len(partial) < len(CHILDREN), "killed too late to be mid-reconcile"
    finally:
        first.stop()

    second = standalone(tmp_path, "second", chart_identity, nats).start()
    try:

        async def ready() -> dict[str, Any] | None:
            body = await client.get(API, "AkeneoConnection", NS, "acme")
            return body if condition(body, "Ready").get("status") == "True" else None

        body = await poll(ready, timeout=120, what="Ready after the crash", operators=(second,))
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert all(await existing(client))
        uid = body["metadata"]["uid"]
        for child in await existing(client):
            assert child is not None
            assert [o["uid"] for o in child["metadata"]["ownerReferences"]] == [uid]
        await client.delete(API, "AkeneoConnection", NS, "acme")
        second.process.kill()
    finally:
        second.stop()

    third = standalone(tmp_path, "third", chart_identity, nats).start()
    try:

        async def gone() -> bool:
            return await client.get(API, "AkeneoConnection", NS, "acme") is None

        await poll(gone, timeout=90, what="finalized after the crash", operators=(third,))
    finally:
        third.stop()
    names = ConnectionNames(NS, "acme")
    nc = await nats_client.connect(nats)
    try:
        js = nc.jetstream()
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            with pytest.raises(NotFoundError):
                await js.stream_info(stream)
    finally:
        await nc.close()
    for log in (first.log, second.log, third.log):
        assert "Traceback" not in log
