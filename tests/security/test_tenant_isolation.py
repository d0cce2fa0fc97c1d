"""Two tenants on one nats-server with per-role users from ``nats_auth``: real clients, real
receiver and worker processes, and a request signed for one tenant sent to the other.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from akeneo_connector.guard_state import guard_key
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import (
    NatsUser,
    Permissions,
    Role,
    inbox_prefix,
    render_authorization,
    tenant_users,
    user_name,
)
from akeneo_connector.spec import StreamSpec
from akeneo_connector.stream_reader import kv_latest
from akeneo_pim.rest import CallSlotUnavailable
from akeneo_pim.rest_budget import KvBudget
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import cloud_event, legacy_batch
from tests.security.conftest import ReceiverProcess, stream_messages
from tests.security.reach import assert_out_of_reach


@dataclass
class Tenant:
    names: ConnectionNames
    passwords: dict[Role, str]
    events_api_secret: str
    event_platform_secret: str
    password_files: dict[Role, Path] = field(default_factory=dict)

    @classmethod
    def new(cls, namespace: str, name: str) -> Tenant:
        return cls(
            ConnectionNames(namespace, name),
            {role: f"nats-pw-{role.value}-{secrets.token_hex(12)}" for role in Role},
            f"legacy-{namespace}-{secrets.token_hex(12)}",
            f"ep-{namespace}-{secrets.token_hex(12)}",
        )

    def users(self) -> list[NatsUser]:
        return tenant_users(self.names, self.passwords)


@dataclass
class Cluster:
    server: NatsServer
    admin_password: str
    a: Tenant
    b: Tenant
    root: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("tenants")
    a = Tenant.new("tenant-a", "shop")
    b = Tenant.new("tenant-b", "shop")
    admin = NatsUser("admin", secrets.token_hex(16), Permissions((">",), (">",)))
    config = render_authorization([admin, *a.users(), *b.users()])
    (root / "nats").mkdir()
    server = NatsServer(root / "nats", config=config).start()
    for tenant in (a, b):
        for role, password in tenant.passwords.items():
            path = root / f"{tenant.names.namespace}-{role.value}.pw"
            path.write_text(password + "\n")
            tenant.password_files[role] = path
    try:
        yield Cluster(server, admin.password, a, b, root)
    finally:
        server.stop()


async def _connect(url: str, user: str, password: str, **extra: Any) -> tuple[Client, list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        url, user=user, password=password, error_cb=on_error, allow_reconnect=False, **extra
    )
    return nc, errors


@pytest.fixture(scope="module")
async def admin(cluster: Cluster) -> AsyncIterator[Client]:
    nc, _ = await _connect(cluster.server.url, "admin", cluster.admin_password)
    js = nc.jetstream()
    for tenant in (cluster.a, cluster.b):
        await ensure_all(js, tenant.names, StreamSpec())
    yield nc
    await nc.close()


async def as_role(cluster: Cluster, tenant: Tenant, role: Role) -> tuple[Client, list[str]]:
    return await _connect(
        cluster.server.url,
        user_name(tenant.names, role),
        tenant.passwords[role],
        inbox_prefix=inbox_prefix(tenant.names),
    )


async def _settle(nc: Client) -> None:
    """A round trip: any -ERR for what was sent before has arrived by then."""
    await nc.flush(timeout=5)


async def test_rendered_config_holds_every_user(cluster: Cluster) -> None:
    config = cluster.server.config_file
    assert config is not None
    text = config.read_text()
    for tenant in (cluster.a, cluster.b):
        for role in Role:
            assert json.dumps(user_name(tenant.names, role)) in text


async def test_own_stream_publish_consume_and_kv(cluster: Cluster, admin: Client) -> None:
    a = cluster.a
    receiver, errors_r = await as_role(cluster, a, Role.RECEIVER)
    worker, errors_w = await as_role(cluster, a, Role.WORKER)
    try:
        ack = await receiver.jetstream().publish(
            a.names.event_subject("product"), b"{}", headers={"Nats-Msg-Id": "own-1"}
        )
        assert ack.stream == a.names.stream
        wjs = worker.jetstream()
        await wjs.add_consumer(
            a.names.stream,
            config=ConsumerConfig(
                durable_name=a.names.consumer,
                filter_subject=f"{a.names.events_subject}.>",
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        sub = await wjs.pull_subscribe_bind(durable=a.names.consumer, stream=a.names.stream)
        msgs = await sub.fetch(1, timeout=5)
        assert msgs[0].headers is not None and msgs[0].headers["Nats-Msg-Id"] == "own-1"
        await msgs[0].ack_sync()
        kv = await wjs.key_value(a.names.guard_bucket)
        await kv.put("guard.product.x", b"1")
        assert (await kv.get("guard.product.x")).value == b"1"
        await worker.jetstream().publish(a.names.dead_letter_subject, b"dead")
        reconcile, errors_c = await as_role(cluster, a, Role.RECONCILE)
        rjs = reconcile.jetstream()
        assert await kv_latest(rjs, a.names.guard_bucket, "guard.product.>") == {
            "guard.product.x": b"1"
        }
        await reconcile.close()
        for nc in (receiver, worker):
            await _settle(nc)
        assert errors_r == errors_w == errors_c == []
    finally:
        await receiver.close()
        await worker.close()


async def test_workers_and_reconcile_share_the_budget_on_their_own_credentials(
    cluster: Cluster, admin: Client
) -> None:
    """Worker and reconcile users take and free their connection's PIM call slots; the
    other tenant's slots, and the slots to the receiver and replay users, stay out of reach
    (the budget then fails clearly, within its bound, instead of calling the PIM)."""
    a, b = cluster.a, cluster.b
    worker, errors_w = await as_role(cluster, a, Role.WORKER)
    reconcile, errors_c = await as_role(cluster, a, Role.RECONCILE)
    budgets = [KvBudget(nc, a.names.guard_bucket, holder=f"{a.names.name}-{n}")
               for n, nc in enumerate((worker, reconcile))]  # fmt: skip
    try:
        in_flight = peak = 0

        async def call(budget: KvBudget) -> None:
            nonlocal in_flight, peak
            async with budget.slot():
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.005)
                in_flight -= 1

        await asyncio.gather(*(call(budget) for budget in budgets for _ in range(12)))
        assert peak == 4
        assert sum(budget.stats.acquired for budget in budgets) == 24
        for nc in (worker, reconcile):
            await _settle(nc)
        assert errors_w == errors_c == []
        stolen = KvBudget(worker, b.names.guard_bucket, holder="thief", max_wait=0.5)
        with pytest.raises(CallSlotUnavailable, match="did not answer"):
            async with stolen.slot():
                pass
        await stolen.close()
        await _settle(worker)
        assert errors_w and all("permissions violation" in e and b.names.guard_bucket.lower()
                                in e.lower() for e in errors_w)  # fmt: skip
        for role in (Role.RECEIVER, Role.REPLAY):
            nc, _ = await as_role(cluster, a, role)
            denied = KvBudget(nc, a.names.guard_bucket, holder=str(role), max_wait=0.5)
            try:
                with pytest.raises(CallSlotUnavailable):
                    async with denied.slot():
                        pass
            finally:
                await denied.close()
                await nc.close()
    finally:
        for budget in budgets:
            await budget.close()
        await worker.close()
        await reconcile.close()


async def test_other_tenant_stream_consumer_and_bucket_are_out_of_reach(
    cluster: Cluster, admin: Client
) -> None:
    a, b = cluster.a, cluster.b
    ajs = admin.jetstream()
    await ajs.publish(
        b.names.event_subject("product"), b"secret of b", headers={"Nats-Msg-Id": "b-1"}
    )
    bkv = await ajs.key_value(b.names.guard_bucket)
    await bkv.put("guard.product.y", b"b-data")
    before = stream_messages(cluster.server, b.names.stream)
    for role in Role:
        nc, errors = await as_role(cluster, a, role)
        try:
            await assert_out_of_reach(nc, errors, b.names, ajs, bkv, str(role))
        finally:
            await nc.close()
    info = await ajs.stream_info(b.names.stream)
    assert stream_messages(cluster.server, b.names.stream) == before + len(Role)
    assert info.state.consumer_count == 0
    assert (await bkv.get("guard.product.y")).value == b"b-data"


# --- the real receiver and worker with nothing but their tenant's credentials ---------------


def _worker(cluster: Cluster, tenant: Tenant, root: Path) -> tuple[ServerProcess, int, Path]:
    port = free_port()
    db = root / "catalog.db"
    argv = [
        str(Path(sys.executable).parent / "akeneo-connector"), "worker",
        "--connection", tenant.names.ref,
        "--nats-url", cluster.server.url,
        "--nats-user", user_name(tenant.names, Role.WORKER),
        "--nats-password-file", str(tenant.password_files[Role.WORKER]),
        "--sink", "sqlite",
        "--sqlite-path", str(db),
        "--port", str(port),
        "--replica", "r1",
        "--log-level", "debug",
    ]  # fmt: skip
    process = ServerProcess("worker", argv, root).start()
    return process, port, db


@dataclass
class Deployed:
    receivers: dict[str, ReceiverProcess]
    worker: ServerProcess
    worker_port: int
    db: Path


@pytest.fixture(scope="module")
def deployed(
    cluster: Cluster, admin: Client, security_ca: CertificateAuthority
) -> Iterator[Deployed]:
    receivers: dict[str, ReceiverProcess] = {}
    for key, tenant in (("a", cluster.a), ("b", cluster.b)):
        receivers[key] = ReceiverProcess(
            tenant.names,
            security_ca,
            cluster.root / f"receiver-{key}",
            cluster.server.url,
            events_api_secret=tenant.events_api_secret,
            event_platform_secrets=(tenant.event_platform_secret,),
            extra_args=(
                "--nats-user",
                user_name(tenant.names, Role.RECEIVER),
                "--nats-password-file",
                str(tenant.password_files[Role.RECEIVER]),
            ),
        ).start()
    (cluster.root / "worker-a").mkdir()
    worker, port, db = _worker(cluster, cluster.a, cluster.root / "worker-a")
    try:
        wait_until(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200
            ),
            timeout=30,
            what="worker",
            proc=worker,
        )
        yield Deployed(receivers, worker, port, db)
    finally:
        worker.stop()
        for receiver in receivers.values():
            receiver.stop()


def _post(receiver: ReceiverProcess, body: bytes, headers: dict[str, str]) -> int:
    with receiver.client() as http:
        return http.post("/events", content=body, headers=headers).status_code


async def events_stored(admin: Client, names: ConnectionNames) -> int:
    """Messages on the event subjects (the stream also holds the worker's dead letters)."""
    info = await admin.jetstream().stream_info(
        names.stream, subjects_filter=f"{names.events_subject}.>"
    )
    return sum((info.state.subjects or {}).values())


async def test_request_signed_for_a_is_refused_by_b(
    cluster: Cluster, admin: Client, deployed: Deployed
) -> None:
    a, b = cluster.a, cluster.b
    before_b = stream_messages(cluster.server, b.names.stream)
    legacy = legacy_batch(2, prefix="iso")
    single = json.dumps(cloud_event("iso-ep")).encode()
    signed_for_a = [
        (legacy, events_api_headers(a.events_api_secret, legacy)),
        (single, event_platform_headers(a.event_platform_secret, single)),
    ]
    for body, headers in signed_for_a:
        assert await asyncio.to_thread(_post, deployed.receivers["b"], body, headers) == 401
    assert stream_messages(cluster.server, b.names.stream) == before_b
    before_a = await events_stored(admin, a.names)
    for body, headers in signed_for_a:
        assert await asyncio.to_thread(_post, deployed.receivers["a"], body, headers) == 200
    assert await events_stored(admin, a.names) == before_a + 3


async def test_real_receiver_and_worker_run_on_their_tenant_credentials_only(
    cluster: Cluster, admin: Client, deployed: Deployed
) -> None:
    a = cluster.a
    body = legacy_batch(3, prefix="worked")
    status = await asyncio.to_thread(
        _post, deployed.receivers["a"], body, events_api_headers(a.events_api_secret, body)
    )
    assert status == 200

    expected = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"worked-{i}")) for i in range(3)]

    def applied() -> bool:
        with sqlite3.connect(deployed.db) as db:
            keys = {row[0] for row in db.execute("SELECT key FROM akeneo_resources")}
        return set(expected) <= keys

    await asyncio.to_thread(
        wait_until, applied, timeout=30, what="events applied", proc=deployed.worker
    )
    # the worker wrote its ordering guard into the tenant's bucket and acked on its consumer
    kv = await admin.jetstream().key_value(a.names.guard_bucket)
    for key in expected:
        assert (await kv.get(guard_key("product", key))).value
    info = await admin.jetstream().consumer_info(a.names.stream, a.names.consumer)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    for log in (deployed.worker.log_path.read_text(), deployed.receivers["a"].output()):
        assert "Permissions Violation" not in log and "Authorization" not in log


async def test_no_secret_in_any_output_or_metrics(cluster: Cluster, deployed: Deployed) -> None:
    """Accepted and rejected requests with known secrets, then grep everything they wrote."""
    a, b = cluster.a, cluster.b
    sent_signatures: list[str] = []
    for receiver, secret in (
        (deployed.receivers["a"], a.events_api_secret),
        (deployed.receivers["b"], a.events_api_secret),
        (deployed.receivers["b"], b.event_platform_secret + "x"),
    ):
        body = legacy_batch(1, prefix="grep")
        headers = events_api_headers(secret, body)
        sent_signatures.append(headers["X-Akeneo-Request-Signature"])
        await asyncio.to_thread(_post, receiver, body, headers)
        ep = json.dumps(cloud_event("grep-ep")).encode()
        ep_headers = event_platform_headers(secret, ep)
        sent_signatures.append(ep_headers["X-AKENEO-SIGNATURE-PRIMARY"])
        await asyncio.to_thread(_post, receiver, ep, ep_headers)
    texts: dict[str, str] = {}
    for key, receiver in deployed.receivers.items():
        with receiver.admin_client() as http:
            texts[f"receiver-{key} /metrics"] = http.get("/metrics").text
        texts[f"receiver-{key} output"] = receiver.output()
    texts["worker output"] = deployed.worker.log_path.read_text()
    with httpx.Client() as http:
        texts["worker /metrics"] = http.get(f"http://127.0.0.1:{deployed.worker_port}/metrics").text
    known = [
        *sent_signatures,
        *(t.events_api_secret for t in (a, b)),
        *(t.event_platform_secret for t in (a, b)),
        *(p for t in (a, b) for p in t.passwords.values()),
        cluster.admin_password,
    ]
    assert all(len(text) > 0 for text in texts.values())
    leaks = [(where, s[:12]) for where, text in texts.items() for s in known if s in text]
    assert leaks == []
