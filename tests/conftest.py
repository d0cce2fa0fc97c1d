"""Session fixtures: the real servers every integration test talks to; on the control plane,
the CRDs, the chart's identity and the one ``operator`` process fixture.

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
from akeneo_testing.ground.nats_auth import JwtNatsServer
from akeneo_testing.ground.nats_cluster import NatsCluster
from akeneo_testing.ground.postgres import PostgresServer
from akeneo_testing.ground.processes import wait_until
from tests.integration.operator.running import OperatorProcess, OperatorSetup, chart_operator

OPERATOR_NAMESPACE = "akeneo-operator"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The session's nats-server (JetStream, file store); ``.url`` to connect."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats(nats_server: NatsServer) -> str:
    """URL of the session's nats-server."""
    return nats_server.url


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """Three nats-servers as one JetStream cluster; ``.url`` lists them all (comma-separated)."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok with one fake Node."""
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(kube: KubeCluster) -> Path:
    return kube.kubeconfig


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session (trust auth, 127.0.0.1); ``.dsn`` to connect."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(postgres_server: PostgresServer) -> str:
    """DSN of the session's PostgreSQL."""
    return postgres_server.dsn


@pytest.fixture(scope="session")
def jwt_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtNatsServer]:
    """A nats-server in operator mode (JWT auth, memory resolver) with one tenants account."""
    server = JwtNatsServer(tmp_path_factory.mktemp("nats-jwt"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
def operator_setup() -> OperatorSetup:
    """A module's operator settings: the defaults; a module overrides this fixture."""
    return OperatorSetup()


@pytest.fixture(scope="module")
def operator(
    operator_setup: OperatorSetup,
    chart_identity: ChartIdentity,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """The module's operator process, with the chart's identity and ``operator_setup``."""
    nats_url = operator_setup.nats_url or request.getfixturevalue("nats")
    label = "op-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with chart_operator(
        tmp_path_factory,
        chart_identity,
        nats_url,
        label,
        namespaces=operator_setup.namespaces,
        **operator_setup.env,
    ) as op:
        yield op
