"""The operator on the real API server, for the hostile-tenant tests of issue 15.

The operator runs as a process with the chart's ServiceAccount (``chart_operator``), watching
only the namespaces a test names, so the operators of different test modules never act on
each other's connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from akeneo_operator.kubeclient import KubeClient
from akeneo_testing.ground.helm import ChartIdentity
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    chart_operator,
    condition,
    poll,
)

# Every kind the operator writes into a connection's namespace.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
OUR_LABEL_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
}
OPERATOR_MANAGER = "akeneo-connector-operator"


@contextlib.contextmanager
def operator_in(
    tmp_path_factory: pytest.TempPathFactory,
    identity: ChartIdentity,
    nats_url: str,
    namespaces: list[str],
    **env: str,
) -> Iterator[OperatorProcess]:
    """The operator watching only ``namespaces``, with extra settings as env."""
    with chart_operator(
        tmp_path_factory,
        identity,
        nats_url,
        f"op-{namespaces[0]}",
        namespaces=namespaces,
        AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
        **env,
    ) as op:
        yield op


async def ready_with(
    client: KubeClient,
    op: OperatorProcess,
    namespace: str,
    name: str,
    status: str,
    reason: str | None = None,
    timeout: float = 90,
) -> dict[str, Any]:
    """The connection once its Ready condition has ``status`` (and ``reason``)."""

    async def check() -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", namespace, name)
        ready = condition(body, "Ready")
        if ready.get("status") != status:
            return None
        if reason is not None and ready.get("reason") != reason:
            return None
        return body

    what = f"{namespace}/{name}: Ready={status} {reason or ''}"
    return await poll(check, timeout=timeout, what=what, operators=(op,))


async def written_for(client: KubeClient, namespace: str, name: str) -> list[str]:
    """``Kind/name`` of every object in ``namespace`` the operator wrote for connection
    ``name``: carrying its instance label, an owner reference to it, or the operator's
    field manager."""
    found = []
    for api_version, kind in CHILD_KINDS:
        for obj in await client.list(api_version, kind, namespace):
            meta = obj["metadata"]
            labelled = (meta.get("labels") or {}).get("app.kubernetes.io/instance") == name
            owned = any(
                o.get("kind") == "AkeneoConnection" and o.get("name") == name
                for o in meta.get("ownerReferences") or []
            )
            if labelled or owned:
                found.append(f"{kind}/{meta['name']}")
    return sorted(found)


def managers(obj: dict[str, Any]) -> set[str]:
    return {str(f.get("manager")) for f in obj["metadata"].get("managedFields") or []}


async def delete_connections(client: KubeClient, op: OperatorProcess, namespace: str) -> None:
    """Delete every connection of ``namespace`` while its operator runs (finalizers)."""
    for item in await client.list(API, "AkeneoConnection", namespace):
        await client.delete(API, "AkeneoConnection", namespace, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await client.list(API, "AkeneoConnection", namespace)

    await poll(none_left, what=f"connections of {namespace} finalized", operators=(op,))
