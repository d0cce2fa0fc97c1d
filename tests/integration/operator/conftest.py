"""Operator fixtures on the real control plane: the CRDs, and the chart's identity.

``rbac_kubeconfig`` is a kubeconfig for the ServiceAccount the Helm chart creates, bound to
exactly the chart's ClusterRoles (rendered with ``helm template``), so an operator started
with it proves the chart grants enough, and nothing hides a missing permission.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes_asyncio import client as k8s_client

from akeneo_testing.ground.helm import (
    ChartIdentity,
    apply,
    crd_manifests,
    crds_established,
    install_chart_identity,
)
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import wait_until

OPERATOR_NAMESPACE = "akeneo-operator"


@pytest.fixture(scope="session")
def crd_installed(kube: KubeCluster) -> list[str]:
    """Apply the generated AkeneoConnection CRD (+ kopf peering CRDs); wait until Established."""
    docs = crd_manifests()
    apply(kube.kubeconfig, docs)
    names = [d["metadata"]["name"] for d in docs]
    wait_until(lambda: crds_established(kube, names), timeout=60, what="CRDs Established")
    return names


@pytest_asyncio.fixture(scope="session")
async def kube_api(kube: KubeCluster) -> AsyncIterator[k8s_client.ApiClient]:
    """An admin API client for test set-up and assertions (never for the operator)."""
    api = await kube.api()
    async with api:
        yield api


@pytest_asyncio.fixture(scope="session")
async def chart_identity(
    kube: KubeCluster,
    crd_installed: list[str],
    kube_api: k8s_client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> ChartIdentity:
    """The chart's ServiceAccount/ClusterRoles/bindings/peering object, cluster-wide mode."""
    path = tmp_path_factory.mktemp("operator-identity") / "kubeconfig"
    return await install_chart_identity(kube, kube_api, path, namespace=OPERATOR_NAMESPACE)


@pytest.fixture(scope="session")
def rbac_kubeconfig(chart_identity: ChartIdentity) -> Path:
    """Kubeconfig of the chart's ServiceAccount (TokenRequest token): run the operator with it."""
    return chart_identity.kubeconfig


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of the test module's own, for tests that take it down."""
    server = NatsServer(tmp_path_factory.mktemp("own-nats")).start()
    try:
        yield server
    finally:
        server.stop()
