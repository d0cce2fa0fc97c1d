"""The unit tests' in-process API (``tests/unit/operator/fake_api.py``) answers as the real
kube-apiserver does, for each answer the reconciler relies on: the same calls on both give
the same outcomes (created, unchanged, the status code and reason of a refusal)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import pytest_asyncio

from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_operator.meta import Manifest
from akeneo_testing.ground.kube import KubeCluster
from tests.integration.operator.running import admin_client
from tests.unit.operator.fake_api import FakeKube

pytestmark = pytest.mark.kube
NS = "fake-api-parity"
Outcome = str | int | bool | None
Scenario = Callable[[KubeClient, KubeClient, str], Awaitable[list[Outcome]]]


@pytest_asyncio.fixture(scope="module")
async def real(kube: KubeCluster) -> AsyncIterator[KubeClient]:
    client = admin_client(kube)
    await client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield client
    await client.close()


def other_manager(kube: KubeCluster) -> KubeClient:
    client = admin_client(kube)
    client.field_manager = "someone-else"
    return client


async def outcome(call: Awaitable[Any]) -> Outcome:
    """``status reason`` of a refusal, else what the call returned when it is a plain value,
    else "ok"."""
    try:
        result = await call
    except ApiError as exc:
        return f"{exc.status} {exc.reason}"
    if result is None or isinstance(result, bool):
        return result
    return "ok"


def service(name: str, port: int = 80, **meta: Any) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, **meta},
        "spec": {"ports": [{"port": port, "protocol": "TCP"}]},
    }


def deployment(name: str, app: str) -> Manifest:
    labels = {"app": app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


async def apply_twice(client: KubeClient, _other: KubeClient, name: str) -> list[Outcome]:
    first = await client.apply(service(name), force=False)
    again = await client.apply(service(name), force=False)
    changed = await client.apply(service(name, port=81), force=False)
    rv = [int(o["metadata"]["resourceVersion"]) for o in (first, again, changed)]
    return [rv[0] == rv[1], rv[2] > rv[1], again["metadata"]["uid"] == first["metadata"]["uid"]]


async def conflicts(client: KubeClient, other: KubeClient, name: str) -> list[Outcome]:
    """A field another manager set to another value: refused without force, taken with."""
    await other.apply(service(name, labels={"tier": "theirs"}), force=False)
    return [
        await outcome(client.apply(service(name, labels={"tier": "ours"}), force=False)),
        await outcome(client.apply(service(name, labels={"tier": "ours"}), force=True)),
    ]


async def uid_preconditions(client: KubeClient, _other: KubeClient, name: str) -> list[Outcome]:
    live = await client.apply(service(name), force=False)
    wrong = "00000000-0000-0000-0000-000000000000"
    pinned = service(name, port=81, uid=wrong)
    out: list[Outcome] = [await outcome(client.apply(pinned, force=True))]
    try:
        await client.apply(pinned, force=True)
    except ApiError as exc:
        out.append("uid" in exc.message.lower())
    right = service(name, port=81, uid=live["metadata"]["uid"])
    out.append(await outcome(client.apply(right, force=True)))
    out.append(await outcome(client.delete("v1", "Service", NS, name, uid=wrong)))
    out.append(await outcome(client.delete("v1", "Service", NS, name, uid=live["metadata"]["uid"])))
    out.append(await outcome(client.delete("v1", "Service", NS, name)))
    out.append(await outcome(client.apply(pinned, force=True)))  # the name is free now
    return out


async def missing(client: KubeClient, _other: KubeClient, name: str) -> list[Outcome]:
    out: list[Outcome] = [await outcome(client.get("v1", "Service", NS, name))]
    patch: Manifest = {"status": {"conditions": []}}
    out.append(await outcome(client.merge_patch("v1", "Service", NS, name, patch, "status")))
    try:
        await client.get("keda.sh/v1alpha1", "ScaledObject", NS, name)
    except ApiError as exc:
        out.append(exc.kind_missing)
    return out


async def immutable(client: KubeClient, _other: KubeClient, name: str) -> list[Outcome]:
    live = await client.apply(deployment(name, "one"), force=True)
    moved = deployment(name, "two")
    moved["metadata"]["uid"] = live["metadata"]["uid"]
    try:
        await client.apply(moved, force=True)
    except ApiError as exc:
        return [exc.status, "immutable" in exc.message]
    return ["applied"]


async def generation(client: KubeClient, _other: KubeClient, name: str) -> list[Outcome]:
    first = await client.apply(deployment(name, "g"), force=True)
    relabelled = deployment(name, "g")
    relabelled["metadata"]["labels"] = {"x": "y"}
    second = await client.apply(relabelled, force=True)
    scaled = {**relabelled, "spec": {**relabelled["spec"], "replicas": 2}}
    third = await client.apply(scaled, force=True)
    return [int(o["metadata"]["generation"]) for o in (first, second, third)]


@pytest.mark.parametrize(
    "scenario", [apply_twice, conflicts, uid_preconditions, missing, immutable, generation]
)
async def test_the_fake_answers_as_the_api_server(
    real: KubeClient, kube: KubeCluster, scenario: Scenario
) -> None:
    name = scenario.__name__.replace("_", "-")
    other = other_manager(kube)
    try:
        expected = await scenario(real, other, name)
    finally:
        await other.close()
    fake = FakeKube(field_manager=real.field_manager)
    as_client = cast(KubeClient, fake)
    someone = FakeKube(field_manager="someone-else", objects=fake.objects, _versions=fake._versions)
    got = await scenario(as_client, cast(KubeClient, someone), name)
    assert got == expected
