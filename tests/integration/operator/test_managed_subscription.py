"""The operator manages the Event Platform subscription: on the real API server, with the
operator as a process (the chart's identity) and the simulator's management API over TLS.

kwok makes the receiver's pods ready; the notifications the platform sends to the receiver's
public URL are stored on the connection's stream here as the receiver stores them (a test of
the receiver covers that part), or lost, which the operator's poll must make up for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult

from akeneo_connector.event_types import HANDLED
from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import KubeClient
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.platform import (
    REASON_SUCCESS_RATE,
    EventPlatform,
    PlatformSettings,
    Subscription,
)
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from akeneo_testing.ground.tls import CertificateAuthority
from tests.e2e.test_cluster import LocalPods, pod_spec
from tests.e2e.test_local_mode import catalog_rows, sink_rows
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    OperatorSetup,
    admin_client,
    condition,
    connection,
    make_namespace,
    poll,
    secret,
)
from tests.integration.operator.test_sync_and_repair import pods, run_job

__all__ = ["pods"]  # the fixture, shared

pytestmark = pytest.mark.kube
NS = "tenant-ep"
HOST = "shop.hooks.example.com"
EMAIL = "ops@example.com"


class ManagementApi:
    """The simulated Event Platform on a fixed port over TLS, so it can go down and back."""

    def __init__(self, sim: PimSimulator, tmp: Path) -> None:
        ca = CertificateAuthority("management API CA")
        pair = ca.issue("127.0.0.1", "localhost")
        pair.write(tmp / "tls.crt", tmp / "tls.key")
        self.ca_file = tmp / "ca.crt"
        self.ca_file.write_bytes(ca.cert_pem)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
        self.sim = sim
        self.port = free_port()
        self.platform = self._new()

    def _new(self) -> EventPlatform:
        return EventPlatform(
            token_client=self.sim.token_client,
            pim_urls=[self.sim.url],
            settings=PlatformSettings(activation_delay=0),
            ssl_context=self.context,
            port=self.port,  # the same address after a restart
        )

    async def start(self) -> None:
        await self.platform.start()

    async def stop(self) -> None:
        await self.platform.stop()

    async def restart(self) -> None:
        """Back with its state (subscribers and subscriptions kept)."""
        old = self.platform
        self.platform = self._new()
        self.platform.subscribers, self.platform.subscriptions = old.subscribers, old.subscriptions
        self.platform._lanes = old._lanes
        await self.platform.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api/v1"


@pytest_asyncio.fixture(scope="module")
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=10, product_models=2, seed=5) as sim:
        yield sim


@pytest_asyncio.fixture(scope="module")
async def management(
    simulator: PimSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ManagementApi]:
    api = ManagementApi(simulator, tmp_path_factory.mktemp("ep-api"))
    await api.start()
    yield api
    await api.stop()


@pytest.fixture(scope="module")
def operator_setup(
    own_nats: NatsServer,
    management: ManagementApi,
) -> OperatorSetup:
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_ALLOW_PRIVATE_PIM="true",  # the simulator runs on 127.0.0.1
            AKENEO_OPERATOR_EVENT_PLATFORM_URL=management.url,
            AKENEO_OPERATOR_EVENT_PLATFORM_CA_FILE=str(management.ca_file),
            AKENEO_TEST_OPERATOR_LOG_LEVEL="debug",
        ),
        nats_url=own_nats.url,
    )


@pytest_asyncio.fixture(scope="module")
async def client(
    kube: KubeCluster, operator: OperatorProcess, simulator: PimSimulator
) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    creds = simulator.credentials
    pim = {
        "clientId": creds.client_id.get_secret_value(),
        "clientSecret": creds.client_secret.get_secret_value(),
        "username": creds.username.get_secret_value(),
        "password": creds.password.get_secret_value(),
    }
    await make_namespace(c, NS, [secret(NS, "shop-pim", pim)])
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, timeout=90, what="connections finalized", operators=(operator,))
    assert "Traceback" not in operator.log
    await c.close()


def spec(sim: PimSimulator, name: str, *, host: str | None = HOST, **ep: Any) -> dict[str, Any]:
    receiver: dict[str, Any] = {"signatureSecret": f"{name}-events"}
    if host:
        receiver["host"] = host
    return {
        "pim": {"url": sim.url, "credentialsSecret": "shop-pim", "allowPrivateAddresses": True},
        "receiver": receiver,
        "tls": {"mode": "selfSigned"},
        "worker": {"sink": {"sqlite": {"path": "catalog.db"}}},
        "reconciliation": {"schedule": "0 0 1 1 *", "fullScanSchedule": None},
        "eventPlatform": {"manageSubscription": True, "technicalEmail": EMAIL, **ep},
    }


async def body_of(client: KubeClient, name: str) -> dict[str, Any]:
    found = await client.get(API, "AkeneoConnection", NS, name)
    return found or {}


def ep_status(body: dict[str, Any]) -> dict[str, Any]:
    return dict((body.get("status") or {}).get("eventPlatform") or {})


async def with_condition(
    client: KubeClient, name: str, kind: str, status: str, reason: str | None = None
) -> dict[str, Any] | None:
    body = await body_of(client, name)
    cond = condition(body, kind)
    if cond.get("status") == status and (reason is None or cond.get("reason") == reason):
        return body
    return None


async def secret_values(client: KubeClient, name: str) -> dict[str, str]:
    found = await client.get("v1", "Secret", NS, name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


async def store_notification(url: str, names: ConnectionNames, body: dict[str, Any]) -> None:
    """As the receiver stores a verified notification webhook body."""
    raw = json.dumps(body).encode()
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(
            names.notifications_subject, raw, stream=names.stream,
            headers={"Nats-Msg-Id": hashlib.sha256(raw).hexdigest()},
        )  # fmt: skip
    finally:
        await nc.close()


async def jobs_for(client: KubeClient, instance: str, purpose: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={instance},akeneo.connectors.dev/job={purpose}"
    return await client.list("batch/v1", "Job", NS, selector)


async def test_the_subscription_follows_the_connection_from_apply_to_delete(
    operator: OperatorProcess,
    client: KubeClient,
    simulator: PimSimulator,
    management: ManagementApi,
    own_nats: NatsServer,
) -> None:
    ops = (operator,)
    await client.create(connection(NS, "shop", spec(simulator, "shop")))

    async def active() -> dict[str, Any] | None:
        return await with_condition(client, "shop", "EventSubscriptionActive", "True", "Active")

    body = await poll(active, timeout=90, what="subscription active", operators=ops)
    ids = ep_status(body)
    platform = management.platform
    sub: Subscription = platform.subscriptions[ids["subscriptionId"]]
    subscriber = platform.subscribers[ids["subscriberId"]]
    assert ids["status"] == "active" and ids["lastChecked"]
    assert sub.url == f"https://{HOST}/event-platform"
    assert set(sub.events) == set(HANDLED)
    assert subscriber.technical_email == EMAIL
    assert subscriber.notification_webhook_url == f"https://{HOST}/event-platform/notifications"
    assert "webhook" in subscriber.notification_channels
    # the secrets were generated into the signature Secret: what the platform signs with is
    # what the receiver verifies with
    values = await secret_values(client, "shop-events")
    assert sub.primary == values["eventPlatformSecrets"].split()[0]
    assert len(sub.primary) >= 32
    assert subscriber.notification_webhook_secret == values["eventPlatformNotificationSecret"]
    receiver = await client.get("apps/v1", "Deployment", NS, "shop-receiver")
    assert receiver is not None and "eventPlatformSecrets" in json.dumps(receiver["spec"])

    # a spec change updates the subscription
    patch = {"spec": {"eventPlatform": {"events": ["com.akeneo.pim.v1.product.updated"],
                                        "filters": 'user_type="user"'}}}  # fmt: skip
    await client.merge_patch(API, "AkeneoConnection", NS, "shop", patch)

    async def updated() -> bool:
        return sub.events == ["com.akeneo.pim.v1.product.updated"] and sub.filter == (
            'user_type="user"'
        )

    await poll(updated, timeout=60, what="subscription updated", operators=ops)
    assert len([s for s in platform.subscriptions.values() if s.status != "deleted"]) == 1

    # the platform suspends it; the notification reaches the receiver (stored here as it
    # stores it); the receiver is ready, so the operator resumes it and a catch-up follows
    await poll(
        lambda: with_condition(client, "shop", "ReceiverReady", "True"),
        timeout=60, what="receiver ready", operators=ops,
    )  # fmt: skip
    platform.suspend(sub.id, by="system", reason=REASON_SUCCESS_RATE)
    note = sub.stats.notifications[-1].body
    names = ConnectionNames(NS, "shop")
    await store_notification(own_nats.url, names, note)

    async def resumed() -> dict[str, Any] | None:
        got = await body_of(client, "shop")
        resumes = [n for n in sub.stats.notifications if n.type == "subscription.resumed"]
        return got if sub.status == "active" and resumes else None

    await poll(resumed, timeout=60, what="auto-resumed", operators=ops)
    await store_notification(own_nats.url, names, sub.stats.notifications[-1].body)

    async def caught_up() -> list[dict[str, Any]] | None:
        return await jobs_for(client, "shop", "catch-up") or None

    jobs = await poll(caught_up, timeout=60, what="catch-up Job", operators=ops)
    assert jobs
    events = [e for e in await client.list("v1", "Event", NS)
              if (e.get("involvedObject") or {}).get("name") == "shop"]  # fmt: skip
    reasons = {e.get("reason") for e in events}
    assert {"SubscriptionCreated", "SubscriptionResumed", "SuspendedBySystem"} <= reasons, reasons
    await poll(active, timeout=30, what="active again", operators=ops)

    # a user's suspension is never resumed
    platform.suspend(sub.id, by="user")
    await store_notification(own_nats.url, names, sub.stats.notifications[-1].body)
    await poll(
        lambda: with_condition(client, "shop", "EventSubscriptionActive", "False",
                               "SuspendedByUser"),
        timeout=30, what="SuspendedByUser", operators=ops,
    )  # fmt: skip
    await asyncio.sleep(5)  # several maintenance ticks
    assert sub.status == "suspended"
    assert ep_status(await body_of(client, "shop"))["suspendedBy"] == "user"
    platform.resume(sub.id)
    await poll(active, timeout=30, what="resumed by the user", operators=ops)

    # delete: the subscription and the subscriber the operator created go with it
    await client.delete(API, "AkeneoConnection", NS, "shop")

    async def gone() -> bool:
        return await client.get(API, "AkeneoConnection", NS, "shop") is None

    await poll(gone, timeout=60, what="connection finalized", operators=ops)
    assert platform.report()[sub.id]["status"] == "deleted"
    assert platform.subscribers[ids["subscriberId"]].status == "deleted"
    for value in values.values():
        assert value.strip() not in operator.log


async def test_a_lost_notification_is_made_up_for_by_the_poll(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator,
    management: ManagementApi,
) -> None:  # fmt: skip
    ops = (operator,)
    await client.create(connection(NS, "quiet", spec(simulator, "quiet", host="quiet.example.com")))

    async def active() -> dict[str, Any] | None:
        return await with_condition(client, "quiet", "EventSubscriptionActive", "True", "Active")

    body = await poll(active, timeout=90, what="subscription active", operators=ops)
    sub = management.platform.subscriptions[ep_status(body)["subscriptionId"]]
    # suspended, and its notification never reaches the receiver (unreachable host)
    management.platform.suspend(sub.id, by="system", reason=REASON_SUCCESS_RATE)
    down = await poll(
        lambda: with_condition(client, "quiet", "EventSubscriptionActive", "False"),
        timeout=30, what="suspension seen by the poll", operators=ops,
    )  # fmt: skip
    assert ep_status(down)["status"] == "suspended" and ep_status(down)["suspendedSince"]
    assert condition(down, "Ready")["status"] == "False"
    # who suspended it is unknown: it is not resumed blindly; once resumed, a gap is recorded
    await asyncio.sleep(3)
    assert sub.status == "suspended"
    management.platform.resume(sub.id)
    await poll(active, timeout=30, what="active again", operators=ops)
    jobs = await poll(
        lambda: _nonempty(jobs_for(client, "quiet", "catch-up")),
        timeout=60, what="catch-up Job for the polled window", operators=ops,
    )  # fmt: skip
    assert jobs


async def _nonempty(got: Any) -> Any:
    found = await got
    return found or None


async def test_needs_a_host_and_survives_a_management_api_outage(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator,
    management: ManagementApi,
) -> None:  # fmt: skip
    ops = (operator,)
    await client.create(connection(NS, "nohost", spec(simulator, "nohost", host=None)))
    body = await poll(
        lambda: with_condition(client, "nohost", "Ready", "False", "EventPlatformNeedsHost"),
        timeout=90, what="EventPlatformNeedsHost", operators=ops,
    )  # fmt: skip
    assert "receiver.host" in condition(body, "Ready")["message"]

    await management.stop()
    try:
        await client.create(
            connection(NS, "later", spec(simulator, "later", host="later.example.com"))
        )
        down = await poll(
            lambda: with_condition(
                client, "later", "EventSubscriptionActive", "Unknown", "EventPlatformUnavailable"
            ),
            timeout=90, what="EventPlatformUnavailable", operators=ops,
        )  # fmt: skip
        assert ep_status(down)["failures"] >= 1
    finally:
        await management.restart()
    await poll(
        lambda: with_condition(client, "later", "EventSubscriptionActive", "True", "Active"),
        timeout=90, what="recovered after the outage", operators=ops,
    )  # fmt: skip


class PinnedResolver(AbstractResolver):
    """The public host, as the platform resolves it, is the local receiver's port."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"{host} does not resolve here")
        return [{"hostname": host, "host": "127.0.0.1", "port": self.port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]  # fmt: skip

    async def close(self) -> None:
        return None


async def route_to(platform: EventPlatform, host: str, port: int, ca_pem: str) -> None:
    """Deliveries and notifications to ``https://host/...`` reach the local receiver, whose
    certificate (the connection's own CA) the platform verifies, host name included."""
    context = ssl.create_default_context(cadata=ca_pem)
    if platform._http is not None:
        await platform._http.close()
    platform._http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, resolver=PinnedResolver(host, port)),
        auto_decompress=False,
    )


async def test_one_apply_events_flow_a_suspension_is_repaired_and_delete_cleans_up(
    operator: OperatorProcess,
    client: KubeClient,
    simulator: PimSimulator,
    management: ManagementApi,
    pods: LocalPods,
    own_nats: NatsServer,
) -> None:
    """The done-when flow: apply -> subscription to the receiver's URL, events delivered and
    applied -> the queue stops for longer than the receiver's event spool holds: deliveries
    answered 503 once it is full, until the platform suspends the subscription on its
    success rate -> its notification, spooled by the receiver while the
    queue is down, stored once it is back -> auto-resumed -> catch-up Jobs -> the sink equals
    the catalog, the outage's and the suspended window's edits included -> delete ->
    subscription deleted."""
    sim, ops, host = simulator, (operator,), "flow.hooks.example.com"
    body = spec(sim, "flow", host=host)
    body["reconciliation"]["resources"] = ["products", "product_models"]
    await client.create(connection(NS, "flow", body))

    async def active() -> dict[str, Any] | None:
        return await with_condition(client, "flow", "EventSubscriptionActive", "True", "Active")

    found = await poll(active, timeout=90, what="subscription active", operators=ops)
    platform = management.platform
    sub = platform.subscriptions[ep_status(found)["subscriptionId"]]
    initial = await poll(
        lambda: client.get("batch/v1", "Job", NS, "flow-initial-sync"),
        timeout=60, what="initial sync Job", operators=ops,
    )  # fmt: skip

    # the pods, as kwok will not run them: worker and receiver from their Deployments
    pods.secrets = {s["metadata"]["name"]: s for s in await client.list("v1", "Secret", NS)}
    worker = pod_spec(await client.get("apps/v1", "Deployment", NS, "flow-worker"))
    pods.start("flow-worker", pods.plan("flow-worker", worker, "worker",
                                        AKENEO_PORT=str(free_port())))  # fmt: skip
    port = free_port()
    receiver = pod_spec(await client.get("apps/v1", "Deployment", NS, "flow-receiver"))
    # an event spool of 2: the outage below outlasts it (the default 5,000 would hold this
    # test's few events, answered 200, and the platform would never suspend)
    pods.start("flow-receiver", pods.plan("flow-receiver", receiver, "receiver",
                                          AKENEO_PORT=str(port),
                                          AKENEO_EVENT_SPOOL_MAX_EVENTS="2"))  # fmt: skip
    db = pods.root / "flow-worker" / "data" / "catalog.db"
    await run_job(pods, initial, "initial-sync")

    async def synced() -> bool:
        pods.assert_alive()
        return sink_rows(db) == catalog_rows(sim)

    await poll(synced, timeout=90, what="initial sync in the sink")
    ca = base64.b64decode(pods.secrets["flow-tls"]["data"]["ca.crt"]).decode()
    await route_to(platform, host, port, ca)

    # events flow: signed with the generated secret, accepted, applied
    for change in [sim.edit_product() for _ in range(3)] + [sim.edit_product_model()]:
        platform.publish(change)
    await poll(synced, timeout=90, what="events applied")
    assert sub.stats.delivered > 0 and set(sub.stats.statuses) == {200}, sub.stats.as_dict()

    # The queue stops: past the 2 the spool takes, every delivery is answered 503 until the
    # success rate over the platform's rolling window falls below 90% (20 attempts at least)
    # and it suspends the subscription; its notification comes while the queue is down.
    own_nats.kill()
    try:
        for change in [sim.edit_product() for _ in range(30)] + [sim.create_product()]:
            platform.publish(change)

        async def suspended() -> bool:
            return sub.status == "suspended" and bool(sub.stats.notifications)

        await poll(suspended, timeout=60, what="suspended on its success rate", operators=ops)
        assert sub.stats.statuses.get(503, 0) >= 1, sub.stats.as_dict()
        notified = sub.stats.notifications[0]
        assert notified.type == "subscription.suspended.system"
        assert notified.body["reason"] == REASON_SUCCESS_RATE
        await asyncio.wait_for(notified.done.wait(), 15)
        # answered 200 by the receiver (spooled), not lost to the platform's three retries
        assert notified.delivered and not notified.email_fallback, notified.attempts
        # what is edited meanwhile is never sent
        published, dropped = sub.stats.published, sub.stats.dropped["suspended"]
        for change in [sim.edit_product() for _ in range(3)] + [sim.create_product()]:
            platform.publish(change)
        assert sub.stats.published - published == sub.stats.dropped["suspended"] - dropped > 0
    finally:
        queue_back = datetime.now(UTC)
        own_nats.start()

    # the queue is back: the spooled notification is stored, the operator sees a system
    # suspension and resumes it (it never resumes one it cannot tell from a user's)
    async def resumed() -> dict[str, Any] | None:
        found = await active()
        done = sub.status == "active" and ep_status(found or {}).get("lastResume")
        return found if done else None

    found = await poll(resumed, timeout=60, what="auto-resumed", operators=ops)
    resumed_at = datetime.fromisoformat(ep_status(found)["lastResume"].replace("Z", "+00:00"))
    assert resumed_at >= queue_back - timedelta(seconds=1)
    assert [n.type for n in sub.stats.notifications] == [
        "subscription.suspended.system", "subscription.resumed",
    ]  # fmt: skip
    # the outage's and the suspended window's edits: caught up by the catch-up Job(s)
    ran: set[str] = set()

    async def caught_up() -> bool:
        for job in await jobs_for(client, "flow", "catch-up"):
            if job["metadata"]["name"] not in ran:
                ran.add(job["metadata"]["name"])
                await run_job(pods, job, f"catch-up-{len(ran)}")
        return await synced()

    await poll(caught_up, timeout=120, what="the sink equals the catalog", operators=ops)
    assert ran, "no catch-up Job"

    # delete: the subscription goes
    await client.delete(API, "AkeneoConnection", NS, "flow")

    async def deleted() -> bool:
        return bool(platform.report()[sub.id]["status"] == "deleted")

    await poll(deleted, timeout=60, what="subscription deleted", operators=ops)


async def test_a_users_secret_is_used_as_it_is(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator,
    management: ManagementApi,
) -> None:  # fmt: skip
    ops = (operator,)
    mine = {"eventPlatformSecrets": "users-own-primary-secret-0001\n",
            "eventPlatformNotificationSecret": "users-own-notification-0001"}  # fmt: skip
    await client.apply(secret(NS, "own-events", mine))
    await client.create(connection(NS, "own", spec(simulator, "own", host="own.example.com")))
    body = await poll(
        lambda: with_condition(client, "own", "EventSubscriptionActive", "True", "Active"),
        timeout=90, what="subscription active", operators=ops,
    )  # fmt: skip
    ids = ep_status(body)
    sub = management.platform.subscriptions[ids["subscriptionId"]]
    assert sub.primary == "users-own-primary-secret-0001"
    subscriber = management.platform.subscribers[ids["subscriberId"]]
    assert subscriber.notification_webhook_secret == "users-own-notification-0001"
    assert await secret_values(client, "own-events") == mine  # untouched
    # a user's Secret without the subscription's secret is reported, never written to
    await client.apply(secret(NS, "bare-events", {"eventsApiSecret": "legacy-only-secret"}))
    await client.create(connection(NS, "bare", spec(simulator, "bare", host="bare.example.com")))
    down = await poll(
        lambda: with_condition(
            client, "bare", "EventSubscriptionActive", "False", "EventPlatformSecretMissing"
        ),
        timeout=90, what="EventPlatformSecretMissing", operators=ops,
    )  # fmt: skip
    assert "eventPlatformSecrets" in condition(down, "EventSubscriptionActive")["message"]
    assert await secret_values(client, "bare-events") == {"eventsApiSecret": "legacy-only-secret"}
    for value in (*mine.values(), "legacy-only-secret"):
        assert value.strip() not in operator.log


async def test_preserve_on_delete_keeps_it_and_a_new_connection_adopts_it(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator,
    management: ManagementApi,
) -> None:  # fmt: skip
    ops, host = (operator,), "kept.example.com"
    body = spec(simulator, "kept", host=host)
    body["stream"] = {"preserveOnDelete": True}

    async def active() -> dict[str, Any] | None:
        return await with_condition(client, "kept", "EventSubscriptionActive", "True", "Active")

    await client.create(connection(NS, "kept", body))
    first = ep_status(await poll(active, timeout=90, what="active", operators=ops))
    await client.delete(API, "AkeneoConnection", NS, "kept")

    async def gone() -> bool:
        return await client.get(API, "AkeneoConnection", NS, "kept") is None

    await poll(gone, timeout=60, what="connection finalized", operators=ops)
    sub = management.platform.subscriptions[first["subscriptionId"]]
    assert sub.status == "active"  # kept

    # the same connection again: the subscriber and subscription are adopted, not doubled
    await client.create(connection(NS, "kept", body))
    again = ep_status(await poll(active, timeout=90, what="adopted", operators=ops))
    assert (again["subscriberId"], again["subscriptionId"]) == (
        first["subscriberId"], first["subscriptionId"],
    )  # fmt: skip
    mine = [s for s in management.platform.subscriptions.values()
            if s.url == f"https://{host}/event-platform" and s.status != "deleted"]  # fmt: skip
    assert mine == [sub]
    values = await secret_values(client, "kept-events")
    assert sub.primary == values["eventPlatformSecrets"].split()[0]
