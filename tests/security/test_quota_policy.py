"""A tenant's spec cannot raise its quotas past the platform's ceilings, nor keep events
forever: the real API server (CEL) and the real operator (``streamQuotas``) refuse it with a
precise reason, and what is accepted is what the connection's stream on nats-server gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio.client.exceptions import ApiException
from nats import connect as nats_connect
from nats.js.api import DiscardPolicy

from akeneo_connector.names import ConnectionNames
from akeneo_connector.quotas import QUOTA_EXCEEDS_PLATFORM_LIMIT
from akeneo_connector.spec import GROUP, PLURAL, VERSION, MiB
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

pytestmark = pytest.mark.kube
NS = "tenant-quota"
QUOTAS = {
    "default": {"maxBytes": 16 * MiB, "bucket": {"maxBytes": 4 * MiB}},
    "max": {"maxBytes": 64 * MiB, "maxAge": "200h", "bucket": {"maxBytes": 8 * MiB}},
}


@pytest.fixture(scope="module")
def operator_setup() -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_STREAM_QUOTAS=json.dumps(QUOTAS),
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def client(kube: KubeCluster, operator: OperatorProcess) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    await make_namespace(c, NS, tenant_secrets(NS, "acme"))
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, what="connections finalized", operators=(operator,))
    await c.close()


def _spec(stream: dict[str, Any]) -> dict[str, Any]:
    return {**basic_spec("acme"), "stream": stream}


async def _ready(client: KubeClient, name: str) -> dict[str, Any]:
    body = await client.get(API, "AkeneoConnection", NS, name)
    return condition(body, "Ready")


async def test_a_quota_above_the_ceiling_is_refused_and_nothing_is_built(
    operator: OperatorProcess, client: KubeClient
) -> None:
    await client.create(connection(NS, "greedy", _spec({"maxBytes": 128 * MiB, "maxAge": "2000h"})))

    async def refused() -> dict[str, Any] | None:
        ready = await _ready(client, "greedy")
        return ready if ready.get("reason") == QUOTA_EXCEEDS_PLATFORM_LIMIT else None

    ready = await poll(refused, what="QuotaExceedsPlatformLimit", operators=(operator,))
    assert ready["status"] == "False"
    assert (
        f"spec.stream.maxBytes {128 * MiB} exceeds the platform limit {64 * MiB}"
        in (ready["message"])
    )
    assert "spec.stream.maxAge 2000h exceeds the platform limit 200h" in ready["message"]
    assert await client.get("apps/v1", "Deployment", NS, "greedy-receiver") is None


async def test_an_accepted_spec_is_the_stream_and_bucket_nats_server_enforces(
    operator: OperatorProcess, client: KubeClient, nats: str
) -> None:
    stream = {"maxBytes": 32 * MiB, "maxMsgs": 5000, "bucket": {"maxMsgSize": 4096}}
    await client.create(connection(NS, "modest", _spec(stream)))
    names = ConnectionNames(NS, "modest")

    async def provisioned() -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, "modest")
        ready = condition(body, "StreamReady")
        return ready if ready.get("status") == "True" else None

    await poll(provisioned, what="StreamReady", operators=(operator,))
    nc = await nats_connect(nats)
    try:
        js = nc.jetstream()
        live = (await js.stream_info(names.stream)).config
        bucket = (await js.stream_info(f"KV_{names.guard_bucket}")).config
    finally:
        await nc.close()
    assert (live.max_bytes, live.max_msgs, live.discard) == (32 * MiB, 5000, DiscardPolicy.NEW)
    assert live.max_msg_size == 2 * MiB  # the built-in default: the platform set no other
    assert (bucket.max_bytes, bucket.max_msg_size) == (4 * MiB, 4096)  # default, and lowered
    assert bucket.discard == DiscardPolicy.NEW


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"maxAge": "0s", "duplicateWindow": "0s"}, "stream.maxAge must be longer than 0"),
        ({"duplicateWindow": "0h"}, "stream.duplicateWindow must be longer than 0"),
        ({"maxBytes": 2 * MiB, "maxMsgSize": 4 * MiB}, "maxMsgSize must not exceed"),
        ({"bucket": {"maxMsgSize": 2 * MiB}}, "spec.stream.bucket.maxMsgSize"),
    ],
)
async def test_the_api_server_refuses_what_no_platform_allows(
    kube_api: k8s_client.ApiClient, client: KubeClient, stream: dict[str, Any], message: str
) -> None:
    objects = k8s_client.CustomObjectsApi(kube_api)
    body = connection(NS, "forever", _spec(stream))
    with pytest.raises(ApiException) as caught:
        await objects.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    assert caught.value.status == 422, caught.value.body
    assert message in json.loads(caught.value.body or b"{}")["message"]
