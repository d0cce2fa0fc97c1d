"""The operator as a real process (``akeneo-connector operator``), and polling helpers.

Tests run the same console script the chart runs, with the chart's identity, so peering,
RBAC and kopf's watches are all exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from akeneo_operator.kubeclient import Credentials, KubeClient
from akeneo_testing.ground.helm import ChartIdentity
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.processes import ServerProcess

T = TypeVar("T")
SCRIPT = Path(sys.executable).parent / "akeneo-connector"
API = "akeneo.connectors.dev/v1alpha1"


def admin_client(kube: KubeCluster) -> KubeClient:
    return KubeClient(
        Credentials(server=kube.server, token=kube.token, ca_path=str(kube.ca_file)), "akeneo-tests"
    )


class OperatorProcess:
    def __init__(self, workdir: Path, name: str, kubeconfig: Path, nats_url: str, **env: str):
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AKENEO_")},
            "KUBECONFIG": str(kubeconfig),
            "AKENEO_NATS_URL": nats_url,
            "AKENEO_PORT": "0",
            "AKENEO_OPERATOR_MAINTENANCE_INTERVAL": "2s",
            "AKENEO_LOG_LEVEL": os.environ.get("AKENEO_TEST_OPERATOR_LOG_LEVEL", "info"),
            **env,
        }
        self.process = ServerProcess(name, [SCRIPT, "operator"], workdir)

    def start(self) -> OperatorProcess:
        self.process.start(env=self.env)
        return self

    def stop(self) -> None:
        self.process.stop(timeout=15)

    @property
    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def assert_alive(self) -> None:
        assert self.process.alive, f"operator exited:\n{self.process.log_tail(60)}"


@dataclass(frozen=True)
class OperatorSetup:
    """What a test module's operator differs in: the module's ``operator_setup`` fixture
    returns one, and the one ``operator`` fixture (tests/conftest.py) starts it."""

    env: dict[str, str] = field(default_factory=dict)  # AKENEO_* settings, as the chart's env
    nats_url: str | None = None  # default: the session's nats-server
    namespaces: Sequence[str] = ()  # watch only these (standalone); default: cluster-wide


@contextlib.contextmanager
def chart_operator(
    tmp_path_factory: pytest.TempPathFactory,
    identity: ChartIdentity,
    nats_url: str,
    label: str,
    *,
    namespaces: Sequence[str] = (),
    **env: str,
) -> Iterator[OperatorProcess]:
    """The operator as a process with the chart's identity and peering; stopped on exit.

    With ``namespaces`` it watches only those, standalone: the chart identity is the
    cluster-wide one (ClusterKopfPeering), a namespaced operator would need KopfPeering
    objects, and one such operator at a time runs anyway.
    """
    if namespaces:
        env = {
            "AKENEO_WATCH_NAMESPACES": ",".join(namespaces),
            "AKENEO_OPERATOR_STANDALONE": "true",
            **env,
        }
    op = OperatorProcess(
        tmp_path_factory.mktemp(label),
        "operator",
        identity.kubeconfig,
        nats_url,
        AKENEO_PEERING_NAME=identity.peering_name,
        **env,
    ).start()
    try:
        yield op
    finally:
        op.stop()


async def poll(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 60,
    what: str,
    operators: tuple[OperatorProcess, ...] = (),
) -> T:
    """Await ``check`` until it returns a truthy value; fail with operator logs on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        for op in operators:
            op.assert_alive()
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    logs = "\n".join(op.process.log_tail(40) for op in operators)
    raise AssertionError(f"{what}: not reached in {timeout:.0f}s (last: {last!r})\n{logs}")


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for c in ((body or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def connection(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AkeneoConnection",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


async def make_namespace(client: KubeClient, name: str, secrets: list[dict[str, Any]]) -> None:
    await client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for s in secrets:
        await client.apply(s)


def tenant_secrets(namespace: str, prefix: str) -> list[dict[str, Any]]:
    return [
        secret(namespace, f"{prefix}-events", {"eventsApiSecret": "s3cr3t-events"}),
        secret(
            namespace,
            f"{prefix}-pim-api",
            {"clientId": "id", "clientSecret": "cs", "username": "u", "password": "p"},
        ),
    ]


# What the operator builds for ``connection(ns, "acme", basic_spec("acme"))``.
ACME_CHILDREN = [
    ("v1", "ServiceAccount", "acme"),
    ("apps/v1", "Deployment", "acme-receiver"),
    ("v1", "Service", "acme-receiver"),
    ("policy/v1", "PodDisruptionBudget", "acme-receiver"),
    ("networking.k8s.io/v1", "NetworkPolicy", "acme-receiver"),
    ("apps/v1", "Deployment", "acme-worker"),
    ("networking.k8s.io/v1", "NetworkPolicy", "acme-worker"),
    ("batch/v1", "CronJob", "acme-reconcile"),
    ("batch/v1", "CronJob", "acme-full-scan"),
    ("v1", "Secret", "acme-tls"),
    ("v1", "Secret", "acme-ca"),
]


def basic_spec(prefix: str) -> dict[str, Any]:
    return {
        "pim": {"url": "https://pim.example.com", "credentialsSecret": f"{prefix}-pim-api"},
        "receiver": {"signatureSecret": f"{prefix}-events"},
    }
