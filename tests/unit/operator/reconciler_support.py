"""One ``Reconciler`` on the in-process API (``fake_api``) and the session's real nats-server,
with a connection in its own namespace (streams are named after it), for unit tests of the
reconciler's branches."""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from akeneo_connector.spec import API_VERSION, KIND
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.meta import FINALIZER, Manifest, adopt
from akeneo_operator.reconciler import Reconciler
from akeneo_operator.settings import OperatorSettings
from akeneo_operator.streams import NatsLink
from tests.unit.operator.fake_api import FakeKube, Write

NAME = "acme"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def spec_of(**extra: Any) -> dict[str, Any]:
    """The smallest valid spec: a public PIM, credentials and signature Secrets."""
    return {
        "pim": {"url": "https://pim.example.com", "credentialsSecret": "acme-pim-api"},
        "receiver": {"signatureSecret": "acme-events"},
        **extra,
    }


def secret(namespace: str, name: str, data: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@dataclass
class World:
    kube: FakeKube
    rec: Reconciler
    namespace: str
    events: list[tuple[str, str, str]] = field(default_factory=list)
    now: list[datetime] = field(default_factory=lambda: [NOW])  # the reconciler's clock

    def advance(self, by: timedelta) -> None:
        self.now[0] += by

    def connection(
        self, spec: dict[str, Any], name: str = NAME, created: str = "2026-01-02T00:00:00Z"
    ) -> Manifest:
        """An AkeneoConnection as the user created it (kopf's finalizer on)."""
        return self.kube.put(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "finalizers": [FINALIZER],
                    "creationTimestamp": created,
                },
                "spec": spec,
            }
        )

    def body(self, name: str = NAME) -> Manifest:
        got = self.kube.find(KIND, self.namespace, name)
        assert got is not None
        return got

    async def reconcile(self, name: str = NAME) -> Manifest:
        """One full reconcile from the stored object (as kopf hands it); its status after."""
        await self.rec.reconcile(self.body(name))
        return self.body(name)

    async def edit_spec(self, spec: dict[str, Any], name: str = NAME) -> None:
        """The user replaces the spec (a new generation); not one of the operator's writes."""
        await self.kube.replace({**self.body(name), "spec": spec})
        self.kube.writes.clear()

    def children(self) -> dict[tuple[str, str], Manifest]:
        """Every object in the namespace but the connection and the user's Secrets."""
        return {
            (kind, name): obj
            for (kind, ns, name), obj in self.kube.objects.items()
            if ns == self.namespace and kind != KIND and not name.startswith("acme-pim")
            and name != "acme-events"
        }  # fmt: skip

    def roll_out(self) -> None:
        """The Deployment controller and kubelet: every replica available."""
        for name, dep in self.kube.of_kind("Deployment", self.namespace).items():
            replicas = int(dep["spec"].get("replicas", 1))
            self.kube.set_status(
                "Deployment", self.namespace, name, {"availableReplicas": replicas}
            )

    async def settle(self) -> None:
        """Wait for the child-event drain tasks to finish."""
        for _ in range(200):
            if all(st.drain is None for st in self.rec.states.values()):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("child events were not acted on")

    def applied(self) -> list[Write]:
        return [w for w in self.kube.writes if w.kind != KIND]


def condition(body: Manifest, kind: str) -> dict[str, Any]:
    for c in (body.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    raise AssertionError(f"no {kind} condition in {body.get('status')}")


def make_world(nats_url: str, **settings: Any) -> World:
    namespace = f"unit-{uuid.uuid4().hex[:10]}"
    kube = FakeKube()
    ops = OperatorSettings(nats_url=nats_url, priority=1, port=0, **settings)
    events: list[tuple[str, str, str]] = []
    now = [NOW]
    rec = Reconciler(
        ops,
        cast(KubeClient, kube),
        NatsLink(ops),
        adopt=adopt,
        emit=lambda _body, kind, reason, message: events.append((kind, reason, message)),
        clock=lambda: now[0],
    )
    world = World(kube, rec, namespace, events, now)
    kube.put(secret(namespace, "acme-events", {"eventsApiSecret": "s3cr3t-events"}))
    kube.put(
        secret(
            namespace,
            "acme-pim-api",
            {"clientId": "id", "clientSecret": "cs", "username": "u", "password": "p"},
        )
    )
    return world
