"""Session fixtures: the real servers every integration test talks to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.nats_auth import JwtNatsServer
from akeneo_testing.ground.nats_cluster import NatsCluster
from akeneo_testing.ground.postgres import PostgresServer


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
