"""An AkeneoConnection's whole life on the real control plane with the chart's RBAC: create,
Ready from kwok's pod readiness, spec changes, repairs, stream drift, deletion."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import nats as nats_client
import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError

from akeneo_connector.guard_state import WorkerStats, stats_key
from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.processes import free_port
from tests.integration.operator.running import (
    ACME_CHILDREN as CHILDREN,
)
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

pytestmark = pytest.mark.kube
NS = "tenant-life"


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_PORT=str(free_port()),
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    yield c
    await c.close()


async def get(client: KubeClient, api: str, kind: str, name: str) -> dict[str, Any] | None:
    return await client.get(api, kind, NS, name)


async def test_create_builds_everything_and_becomes_ready(operator, client, nats):
    await make_namespace(client, NS, tenant_secrets(NS, "acme"))
    created = await client.create(connection(NS, "acme", basic_spec("acme")))
    uid = created["metadata"]["uid"]

    async def all_children() -> list[dict[str, Any]] | None:
        found = [await get(client, *ref) for ref in CHILDREN]
        return None if any(f is None for f in found) else [f for f in found if f]

    children = await poll(all_children, what="all children", operators=(operator,))
    for child in children:
        owners = child["metadata"].get("ownerReferences") or []
        assert [(o["uid"], o["kind"], o.get("controller")) for o in owners] == [
            (uid, "AkeneoConnection", True)
        ], child["metadata"]["name"]
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == "acme"

    async def ready() -> dict[str, Any] | None:
        body = await get(client, API, "AkeneoConnection", "acme")
        # Ready may already be True with 1 of 2 receiver pods (PartiallyAvailable): wait for all
        all_pods = condition(body, "ReceiverReady").get("reason") == "PodsAvailable"
        return body if all_pods and condition(body, "Ready").get("status") == "True" else None

    body = await poll(ready, timeout=120, what="Ready=True, all pods", operators=(operator,))
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["endpoint"] == f"https://acme-receiver.{NS}.svc:443/events"
    assert condition(body, "ReconcileScheduled")["status"] == "True"
    assert "akeneo.connectors.dev/finalizer" in body["metadata"]["finalizers"]

    names = ConnectionNames(NS, "acme")
    nc = await nats_client.connect(nats_url(operator))
    try:
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        assert info.config.max_age == 168 * 3600
        await js.stream_info(f"KV_{names.guard_bucket}")
    finally:
        await nc.close()

    events = await client.list("v1", "Event", NS)
    reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == "acme"}
    assert "AllComponentsReady" in reasons
    assert "s3cr3t" not in str(events) and "s3cr3t" not in operator.log


def nats_url(op: OperatorProcess) -> str:
    return op.env["AKENEO_NATS_URL"]


async def test_steady_state_writes_nothing(operator, client):
    """Several maintenance ticks later, no child and not the status has been written again."""

    async def versions() -> dict[str, Any]:
        """Our writes only: controllers may update status (e.g. a CronJob firing)."""
        out: dict[str, Any] = {}
        for ref in CHILDREN:
            child = await get(client, *ref)
            assert child is not None
            out[ref[2] + ref[1]] = [
                (f.get("operation"), f.get("time"), f.get("subresource"))
                for f in child["metadata"].get("managedFields") or []
                if f.get("manager") == "akeneo-connector-operator"
            ]
        body = await get(client, API, "AkeneoConnection", "acme")
        assert body is not None
        out["connection"] = body["metadata"]["resourceVersion"]
        return out

    async def counters_reported() -> bool:
        """A maintenance tick ran, and the first sync's Job (kwok ends it at once) is in."""
        status = (await get(client, API, "AkeneoConnection", "acme") or {}).get("status", {})
        return "counters" in status and "lastReconcileResult" in status

    await poll(counters_reported, what="first maintenance tick", operators=(operator,))
    before = await versions()
    await asyncio.sleep(5)  # 2.5 maintenance intervals
    assert await versions() == before


async def test_spec_change_patches_children_and_stream_in_place(operator, client):
    worker = await get(client, "apps/v1", "Deployment", "acme-worker")
    cron = await get(client, "batch/v1", "CronJob", "acme-reconcile")
    assert worker is not None and cron is not None
    patch = {
        "spec": {
            "reconciliation": {"schedule": "*/5 * * * *"},
            "stream": {"maxAge": "72h"},
            "receiver": {"replicas": 3},
            "worker": {
                "replicas": 2,
                "sink": {"sqlite": None, "webhook": {"url": "https://app.example.com/akeneo"}},
            },
        }
    }
    await client.merge_patch(API, "AkeneoConnection", NS, "acme", patch)

    async def updated() -> bool:
        w = await get(client, "apps/v1", "Deployment", "acme-worker")
        c = await get(client, "batch/v1", "CronJob", "acme-reconcile")
        if not (w and c):
            return False
        env = {e["name"]: e["value"] for e in w["spec"]["template"]["spec"]["containers"][0]["env"]}
        return (
            w["spec"]["replicas"] == 2
            and c["spec"]["schedule"] == "*/5 * * * *"
            and env.get("AKENEO_SINK") == "webhook"
            and env.get("AKENEO_WEBHOOK_URL") == "https://app.example.com/akeneo"
            and "AKENEO_SQLITE_PATH" not in env
        )

    await poll(updated, what="worker replicas, sink and schedule patched", operators=(operator,))
    w2 = await get(client, "apps/v1", "Deployment", "acme-worker")
    c2 = await get(client, "batch/v1", "CronJob", "acme-reconcile")
    assert w2 and c2
    assert w2["metadata"]["uid"] == worker["metadata"]["uid"]  # patched, not recreated
    assert c2["metadata"]["uid"] == cron["metadata"]["uid"]

    names = ConnectionNames(NS, "acme")
    nc = await nats_client.connect(nats_url(operator))
    try:
        js = nc.jetstream()

        async def stream_updated() -> bool:
            return bool((await js.stream_info(names.stream)).config.max_age == 72 * 3600)

        await poll(stream_updated, what="stream maxAge updated", operators=(operator,))
    finally:
        await nc.close()

    async def ready_again() -> bool:
        body = await get(client, API, "AkeneoConnection", "acme")
        return bool(
            body
            and body["status"].get("observedGeneration") == body["metadata"]["generation"]
            and condition(body, "Ready").get("status") == "True"
            and "3/3" in condition(body, "ReceiverReady").get("message", "")
        )

    await poll(ready_again, timeout=90, what="Ready with 3 receivers", operators=(operator,))


async def test_deleted_and_edited_children_are_repaired(operator, client):
    svc = await get(client, "v1", "Service", "acme-receiver")
    assert svc is not None
    await client.delete("v1", "Service", NS, "acme-receiver")

    async def recreated() -> bool:
        s = await get(client, "v1", "Service", "acme-receiver")
        return bool(s and s["metadata"]["uid"] != svc["metadata"]["uid"])

    await poll(recreated, what="Service recreated", operators=(operator,))

    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}}}
    }
    await client.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/acme-worker",
        body=patch,
        content_type="application/strategic-merge-patch+json",
    )

    async def image_restored() -> bool:
        d = await get(client, "apps/v1", "Deployment", "acme-worker")
        return bool(
            d
            and d["spec"]["template"]["spec"]["containers"][0]["image"] == "akeneo-connector:0.1.0"
        )

    await poll(image_restored, what="Deployment image restored", operators=(operator,))

    await client.delete("v1", "Secret", NS, "acme-tls")

    async def tls_back() -> bool:
        return await get(client, "v1", "Secret", "acme-tls") is not None

    await poll(tls_back, what="TLS secret reissued", operators=(operator,))


async def test_stream_deleted_on_nats_is_recreated_by_the_timer(operator, client):
    names = ConnectionNames(NS, "acme")
    nc = await nats_client.connect(nats_url(operator))
    try:
        js = nc.jetstream()
        await js.delete_stream(names.stream)

        async def back() -> bool:
            try:
                return bool(await js.stream_info(names.stream))
            except NotFoundError:
                return False

        await poll(back, timeout=30, what="stream recreated", operators=(operator,))
    finally:
        await nc.close()


async def test_optional_children_follow_the_spec(operator, client):
    optional = {
        "spec": {
            "receiver": {
                "host": "acme.hooks.example.com",
                "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
            }
        }
    }
    await client.merge_patch(API, "AkeneoConnection", NS, "acme", optional)

    async def ingress() -> dict[str, Any] | None:
        return await get(client, "networking.k8s.io/v1", "Ingress", "acme")

    async def hpa() -> dict[str, Any] | None:
        return await get(client, "autoscaling/v2", "HorizontalPodAutoscaler", "acme-receiver")

    ing = await poll(ingress, what="Ingress created", operators=(operator,))
    assert ing["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == (
        "acme.hooks.example.com"
    )
    scaler = await poll(hpa, what="HorizontalPodAutoscaler created", operators=(operator,))
    assert scaler["spec"]["maxReplicas"] == 5
    assert scaler["spec"]["scaleTargetRef"]["name"] == "acme-receiver"
    assert [o["kind"] for o in scaler["metadata"]["ownerReferences"]] == ["AkeneoConnection"]
    await client.merge_patch(
        API,
        "AkeneoConnection",
        NS,
        "acme",
        {"spec": {"receiver": {"host": None, "autoscaling": None}}},
    )

    async def pruned() -> bool:
        return await ingress() is None and await hpa() is None

    await poll(pruned, what="Ingress and HPA pruned", operators=(operator,))


async def test_worker_counters_and_reconcile_jobs_reach_the_status(operator, client):
    names = ConnectionNames(NS, "acme")
    nc = await nats_client.connect(nats_url(operator))
    try:
        kv = await nc.jetstream().key_value(names.guard_bucket)
        now = datetime.now(UTC)
        await kv.put(
            stats_key("worker-a"),
            WorkerStats(applied=5, dead_lettered=1, updated_at=now).to_bytes(),
        )
        await kv.put(
            stats_key("worker-b"),
            WorkerStats(applied=2, skipped_outdated=3, updated_at=now).to_bytes(),
        )
    finally:
        await nc.close()

    async def counted() -> dict[str, Any] | None:
        body = await get(client, API, "AkeneoConnection", "acme")
        counters = (body or {}).get("status", {}).get("counters")
        return counters if counters and counters.get("applied") == 7 else None

    counters = await poll(counted, what="counters summed", operators=(operator,))
    assert counters == {"applied": 7, "skippedOutdated": 3, "deadLettered": 1}

    cron = await get(client, "batch/v1", "CronJob", "acme-reconcile")
    assert cron is not None
    template = cron["spec"]["jobTemplate"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "acme-reconcile-manual",
            "namespace": NS,
            "labels": template["metadata"]["labels"],
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": "acme-reconcile",
                 "uid": cron["metadata"]["uid"], "controller": True}
            ],
        },
        "spec": template["spec"],
    }  # fmt: skip
    await client.create(job)

    async def recorded() -> dict[str, Any] | None:
        body = await get(client, API, "AkeneoConnection", "acme")
        status = (body or {}).get("status", {})
        return status if status.get("lastReconcileResult") else None

    status = await poll(
        recorded, timeout=90, what="lastReconcile from the Job", operators=(operator,)
    )
    assert status["lastReconcileResult"] == "Succeeded"
    assert status["lastReconcileTime"].startswith(str(datetime.now(UTC).year))


async def test_health_and_metrics_endpoints(operator):
    port = operator.env["AKENEO_PORT"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    assert 'akeneo_operator_reconciles_total{result="ok"}' in text
    assert re.search(r"^akeneo_operator_connections [1-9]", text, re.M)


async def test_delete_removes_stream_bucket_and_children(operator, client):
    names = ConnectionNames(NS, "acme")
    await client.delete(API, "AkeneoConnection", NS, "acme")

    async def gone() -> bool:
        if await get(client, API, "AkeneoConnection", "acme") is not None:
            return False
        return all([await get(client, *ref) is None for ref in CHILDREN])

    await poll(gone, timeout=90, what="connection and children gone", operators=(operator,))
    nc = await nats_client.connect(nats_url(operator))
    try:
        js = nc.jetstream()
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            with pytest.raises(NotFoundError):
                await js.stream_info(stream)
    finally:
        await nc.close()
    assert "Traceback" not in operator.log, operator.log[-3000:]


async def test_preserve_on_delete_keeps_stream_and_bucket(operator, client):
    """``spec.stream.preserveOnDelete``: the children go, the queued events and guard stay."""
    spec = basic_spec("acme")
    spec["stream"] = {"preserveOnDelete": True}
    await client.create(connection(NS, "keep", spec))
    names = ConnectionNames(NS, "keep")

    async def stream_ready() -> dict[str, Any] | None:
        body = await get(client, API, "AkeneoConnection", "keep")
        return body if condition(body, "StreamReady").get("status") == "True" else None

    await poll(stream_ready, what="keep: StreamReady", operators=(operator,))
    await client.delete(API, "AkeneoConnection", NS, "keep")

    async def gone() -> bool:
        if await get(client, API, "AkeneoConnection", "keep") is not None:
            return False
        return await get(client, "apps/v1", "Deployment", "keep-worker") is None

    await poll(gone, timeout=90, what="keep and its children gone", operators=(operator,))
    nc = await nats_client.connect(nats_url(operator))
    try:
        js = nc.jetstream()
        for stream in (names.stream, f"KV_{names.guard_bucket}"):
            await js.stream_info(stream)  # still there
            await js.delete_stream(stream)
    finally:
        await nc.close()
