"""One-off reconcile Jobs on the real API server, run for real: the first sync of a new
connection, syncs on demand, the catch-up of gap windows; and TLS the senders trust.

The operator runs as a process with the chart's identity and its own nats-server (one test
stops it). kwok fakes the Jobs' pods (they "succeed" at once), so where the data matters
the test runs the Job's container as a local process from its pod spec
(``akeneo_testing.podrunner``), with the worker's and receiver's containers beside it, against
the PIM simulator: what reaches the sqlite sink is what the Jobs really read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio

from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_connector.names import ConnectionNames
from akeneo_operator.kubeclient import ApiError, KubeClient
from akeneo_pim.simulator import EventSender, PimSimulator
from akeneo_testing.ground import crds
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import free_port
from tests.e2e.cluster_harness import pinned_name_context
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
from tests.integration.operator.test_tls_cert_manager import CM, CRD_NAME

pytestmark = pytest.mark.kube
NS = "tenant-sync"
LEGACY_SECRET = "sync-legacy-secret"
NOTIFICATION_SECRET = "sync-notification-secret-0123456789"
ISSUER = "letsencrypt-test"
MARGIN = timedelta(minutes=5)  # reconciliation.safetyMargin's default


@pytest.fixture(scope="module")
def operator_setup(
    own_nats: NatsServer,
) -> OperatorSetup:
    default_tls = {"mode": "certManager", "issuerRef": {"kind": "ClusterIssuer", "name": ISSUER}}
    return OperatorSetup(
        env=dict(
            AKENEO_OPERATOR_MAINTENANCE_INTERVAL="1s",
            AKENEO_OPERATOR_DEFAULT_TLS=json.dumps(default_tls),
            AKENEO_OPERATOR_ALLOW_PRIVATE_PIM="true",  # the simulator runs on 127.0.0.1
        ),
        nats_url=own_nats.url,
    )


@pytest_asyncio.fixture(scope="module")
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=40, product_models=5, seed=23) as sim:
        yield sim


@pytest_asyncio.fixture(scope="module")
async def client(
    kube: KubeCluster, operator: OperatorProcess, simulator: PimSimulator
) -> AsyncIterator[KubeClient]:
    c = admin_client(kube)
    creds = simulator.credentials
    await make_namespace(
        c,
        NS,
        [
            secret(
                NS,
                "shop-events",
                {
                    "eventsApiSecret": LEGACY_SECRET,
                    "eventPlatformNotificationSecret": NOTIFICATION_SECRET,
                },
            ),
            secret(
                NS,
                "shop-pim",
                {
                    "clientId": creds.client_id.get_secret_value(),
                    "clientSecret": creds.client_secret.get_secret_value(),
                    "username": creds.username.get_secret_value(),
                    "password": creds.password.get_secret_value(),
                },
            ),
        ],
    )
    yield c
    for item in await c.list(API, "AkeneoConnection", NS):
        await c.delete(API, "AkeneoConnection", NS, item["metadata"]["name"])

    async def none_left() -> bool:
        return not await c.list(API, "AkeneoConnection", NS)

    await poll(none_left, timeout=90, what="connections finalized", operators=(operator,))
    assert "Traceback" not in operator.log
    await c.close()


def spec(sim: PimSimulator, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pim": {"url": sim.url, "credentialsSecret": "shop-pim", "allowPrivateAddresses": True},
        "receiver": {"signatureSecret": "shop-events"},
        "worker": {"sink": {"sqlite": {"path": "catalog.db"}}},
        # never due during the tests: whatever runs, runs because of what is tested
        "reconciliation": {"schedule": "0 0 1 1 *", "fullScanSchedule": None},
    }
    out.update(extra)
    return out


async def job_named(client: KubeClient, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await client.get("batch/v1", "Job", NS, name)
    return found


async def jobs_for(client: KubeClient, instance: str, purpose: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={instance},akeneo.connectors.dev/job={purpose}"
    return await client.list("batch/v1", "Job", NS, selector)


async def event_with(client: KubeClient, name: str, reason: str) -> dict[str, Any] | None:
    for event in await client.list("v1", "Event", NS):
        if (
            event.get("reason") == reason
            and (event.get("involvedObject") or {}).get("name") == name
        ):
            return event
    return None


def command(job: dict[str, Any]) -> list[str]:
    cmd: list[str] = pod_spec(job)["containers"][0]["command"]
    return cmd


async def run_job(pods: LocalPods, job: dict[str, Any], label: str) -> str:
    """The Job's container, run to completion as its pod would run it."""
    plan = pods.plan(label, pod_spec(job), "reconcile")
    proc = await asyncio.create_subprocess_exec(
        *plan.argv, env=plan.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


async def ready(client: KubeClient, name: str) -> dict[str, Any] | None:
    body = await client.get(API, "AkeneoConnection", NS, name)
    return body if condition(body, "Ready").get("status") == "True" else None


async def start_pipeline(
    client: KubeClient, pods: LocalPods, name: str, *, receiver: bool = False, **env: str
) -> tuple[Path, int]:
    """The worker's (and receiver's, with ``env`` added) containers from their Deployments:
    the sink's file and the receiver's port (every "pod" shares the loopback)."""
    pods.secrets = {s["metadata"]["name"]: s for s in await client.list("v1", "Secret", NS)}
    worker = pod_spec(await client.get("apps/v1", "Deployment", NS, f"{name}-worker"))
    plan = pods.plan(f"{name}-worker", worker, "worker", AKENEO_PORT=str(free_port()))
    pods.start(f"{name}-worker", plan)
    port = free_port()
    if receiver:
        spec_ = pod_spec(await client.get("apps/v1", "Deployment", NS, f"{name}-receiver"))
        plan = pods.plan(f"{name}-receiver", spec_, "receiver", AKENEO_PORT=str(port), **env)
        pods.start(f"{name}-receiver", plan)
    return pods.root / f"{name}-worker" / "data" / "catalog.db", port


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[LocalPods]:
    local = LocalPods(tmp_path / "pods", {})
    yield local
    local.stop()


async def test_a_new_connection_syncs_at_once_and_again_on_demand(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator, pods: LocalPods
) -> None:
    sim = simulator
    await client.create(connection(NS, "first", spec(sim)))
    # no schedule is due: the operator starts the first sync itself
    job = await poll(
        lambda: job_named(client, "first-initial-sync"),
        timeout=90, what="initial sync Job", operators=(operator,),
    )  # fmt: skip
    assert command(job) == ["akeneo-connector", "reconcile", "--lock-wait", "30m"]
    await poll(lambda: ready(client, "first"), timeout=90, what="Ready", operators=(operator,))
    db, _ = await start_pipeline(client, pods, "first")
    out = await run_job(pods, job, "initial-sync")
    size = len(catalog_rows(sim))
    assert f"seen={size} published={size}" in out

    async def synced() -> bool:
        pods.assert_alive()
        return sink_rows(db) == catalog_rows(sim)

    await poll(synced, timeout=90, what="sink holds the catalog")
    assert await event_with(client, "first", "InitialSync") is not None
    body = await client.get(API, "AkeneoConnection", NS, "first")
    assert body is not None and body["status"]["sync"]["initialJob"] == "first-initial-sync"

    # edits whose events never came: `kubectl annotate akc first sync-now=...` fetches them
    for _ in range(3):
        sim.edit_product()
    sim.edit_product_model()
    assert sink_rows(db) != catalog_rows(sim)
    patch = {"metadata": {"annotations": {"akeneo.connectors.dev/sync-now": "one"}}}
    await client.merge_patch(API, "AkeneoConnection", NS, "first", patch)
    digest = hashlib.sha256(b"one").hexdigest()[:10]
    sync_job = await poll(
        lambda: job_named(client, f"first-sync-now-{digest}"),
        timeout=60, what="sync-now Job", operators=(operator,),
    )  # fmt: skip
    assert "--full" not in command(sync_job)
    await run_job(pods, sync_job, "sync-now")
    await poll(synced, timeout=90, what="sink holds the edited catalog")

    async def handled(value: str) -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, "first")
        sync = ((body or {}).get("status") or {}).get("sync") or {}
        return body if sync.get("syncNow") == value else None

    await poll(lambda: handled("one"), timeout=30, what="syncNow one", operators=(operator,))
    assert await event_with(client, "first", "SyncRequested") is not None

    # the same value again (another change to the object): no second run
    relabel = {"metadata": {"labels": {"touched": "yes"}}}
    await client.merge_patch(API, "AkeneoConnection", NS, "first", relabel)
    await asyncio.sleep(4)  # several maintenance ticks and the update handler
    assert len(await jobs_for(client, "first", "sync-now")) == 1

    # a new value: a new run; full-scan-now: a --full one
    patch = {
        "metadata": {
            "annotations": {
                "akeneo.connectors.dev/sync-now": "two",
                "akeneo.connectors.dev/full-scan-now": "1",
            }
        }
    }
    await client.merge_patch(API, "AkeneoConnection", NS, "first", patch)

    async def two_more() -> list[dict[str, Any]] | None:
        now = await jobs_for(client, "first", "sync-now")
        full = await jobs_for(client, "first", "full-scan-now")
        return [*now, *full] if len(now) == 2 and len(full) == 1 else None

    jobs = await poll(two_more, timeout=60, what="second sync-now and a full scan")
    full_runs = {j["metadata"]["name"] for j in jobs if "--full" in command(j)}
    assert full_runs == {f"first-full-scan-now-{hashlib.sha256(b'1').hexdigest()[:10]}"}
    await poll(lambda: handled("two"), timeout=30, what="syncNow two", operators=(operator,))
    # the first sync ran: an operator restart or a re-reconcile does not start another one
    assert len(await jobs_for(client, "first", "initial-sync")) == 1


async def _store_notification(names: ConnectionNames, url: str, kind: str, at: datetime) -> int:
    """As the receiver stores a verified notification webhook body; its stream sequence."""
    body = json.dumps(
        {
            "notification_type": kind,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subscription_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a6",
            "subscriber_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a5",
            "reason": "Success rate dropped below 90%" if "suspended" in kind else None,
        }
    ).encode()
    nc = await nats.connect(url)
    try:
        ack = await nc.jetstream().publish(
            names.notifications_subject,
            body,
            stream=names.stream,
            headers={"Nats-Msg-Id": hashlib.sha256(body).hexdigest()},
        )
    finally:
        await nc.close()
    return int(ack.seq)


async def test_a_suspended_window_gets_a_catch_up_job_from_its_start(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator, own_nats: NatsServer
) -> None:
    await client.create(connection(NS, "paused", spec(simulator)))
    await poll(lambda: ready(client, "paused"), timeout=90, what="Ready", operators=(operator,))
    names = ConnectionNames(NS, "paused")
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    t2 = t1 + timedelta(minutes=12)
    await _store_notification(names, own_nats.url, "subscription.suspended.system", t1)
    await _store_notification(names, own_nats.url, "subscription.resumed", t2)

    async def catch_up_job() -> dict[str, Any] | None:
        jobs = await jobs_for(client, "paused", "catch-up")
        return jobs[0] if jobs else None

    job = await poll(catch_up_job, timeout=60, what="catch-up Job", operators=(operator,))
    since = (t1 - MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert command(job) == [
        "akeneo-connector", "reconcile", "--since", since, "--lock-wait", "30m",
    ]  # fmt: skip
    name = job["metadata"]["name"]

    async def shown() -> dict[str, Any] | None:
        body = await client.get(API, "AkeneoConnection", NS, "paused")
        cond = condition(body, "CatchUp")
        return body if name in cond.get("message", "") and cond.get("reason") else None

    body = await poll(shown, timeout=60, what="CatchUp condition", operators=(operator,))
    cond = condition(body, "CatchUp")
    assert since in cond["message"] and "subscription" in cond["message"]
    # a repair in progress does not make the connection unready
    assert condition(body, "Ready")["status"] == "True"
    # kwok lets the Job's pod succeed: the window counts as repaired, and the status says so
    done = await poll(
        lambda: _condition_reason(client, "paused", "CatchUp", "CaughtUp"),
        timeout=60, what="CatchUp=True", operators=(operator,),
    )  # fmt: skip
    assert condition(done, "CatchUp")["status"] == "True"
    assert done["status"]["catchUp"]["through"] == done["status"]["catchUp"]["planned"] > 0
    started = await event_with(client, "paused", "CatchUpStarted")
    assert started is not None and f"--since {since}" in started["message"]
    gap = await event_with(client, "paused", "GapRecorded")
    assert gap is not None and gap["type"] == "Warning"
    # one window, one Job: later ticks do not start another
    await asyncio.sleep(3)
    assert len(await jobs_for(client, "paused", "catch-up")) == 1


async def _condition_reason(
    client: KubeClient, name: str, kind: str, reason: str
) -> dict[str, Any] | None:
    body = await client.get(API, "AkeneoConnection", NS, name)
    return body if condition(body, kind).get("reason") == reason else None


async def test_events_lost_in_a_nats_outage_come_back_through_the_catch_up(
    operator: OperatorProcess,
    client: KubeClient,
    simulator: PimSimulator,
    own_nats: NatsServer,
    pods: LocalPods,
) -> None:
    sim = simulator
    await client.create(connection(NS, "outage", spec(sim)))
    job = await poll(
        lambda: job_named(client, "outage-initial-sync"),
        timeout=90, what="initial sync Job", operators=(operator,),
    )  # fmt: skip
    await poll(lambda: ready(client, "outage"), timeout=90, what="Ready", operators=(operator,))
    # no room in the receiver's event spool: the outage's deliveries cannot be kept (as when
    # it is full, or the pod lost it), so they are answered 503 and lost
    db, port = await start_pipeline(
        client, pods, "outage", receiver=True, AKENEO_EVENT_SPOOL_MAX_EVENTS="0"
    )
    await run_job(pods, job, "initial-sync")

    async def synced() -> bool:
        pods.assert_alive()
        return sink_rows(db) == catalog_rows(sim)

    await poll(synced, timeout=90, what="sink holds the catalog")

    body = await client.get(API, "AkeneoConnection", NS, "outage")
    assert body is not None
    endpoint = body["status"]["endpoints"]["events"]
    host = endpoint.split("//", 1)[1].split(":", 1)[0]
    ca = base64.b64decode(pods.secrets["outage-tls"]["data"]["ca.crt"]).decode()
    sender = EventSender(
        f"https://127.0.0.1:{port}/events", events_api_secret=LEGACY_SECRET,
        verify=pinned_name_context(ca, host), timeout=5.0,
    )  # fmt: skip
    async with sender:

        async def serving() -> bool:
            return await sender.send_test_request() == 200

        await poll(serving, timeout=60, what="receiver serving")
        # events flow: 200, applied
        report = await sender.send([sim.catalog.edit_product() for _ in range(3)])
        assert report.accepted == report.deliveries > 0, report.as_dict()
        await poll(synced, timeout=60, what="events applied")

        # JetStream goes away: the PIM's deliveries are answered 503, and it never resends
        killed_at = datetime.now(UTC)
        own_nats.kill()
        lost = [sim.catalog.edit_product() for _ in range(4)] + [sim.catalog.create_product()]
        lost.append(sim.catalog.edit_product_model())
        report = await sender.send(lost)
        assert report.accepted == 0 and report.statuses[503] > 0, report.as_dict()
        answered_at = datetime.now(UTC)
        own_nats.start()

    async def catch_up_job() -> dict[str, Any] | None:
        jobs = await jobs_for(client, "outage", "catch-up")
        return jobs[0] if jobs else None

    job = await poll(catch_up_job, timeout=90, what="catch-up Job", operators=(operator,))
    since = datetime.fromisoformat(command(job)[3].replace("Z", "+00:00"))
    await run_job(pods, job, "catch-up")
    await poll(synced, timeout=90, what="sink equals the catalog again, lost edits included")

    # the window is on the stream, recorded by the receiver
    nc = await nats.connect(own_nats.url)
    try:
        names = ConnectionNames(NS, "outage")
        msg = await nc.jetstream().get_last_msg(
            names.stream, names.gap_subject(GapSource.RECEIVER_503.value)
        )
    finally:
        await nc.close()
    record = GapRecord.model_validate_json(msg.data or b"")
    # from the first 503 to the last, read back from the first 503 minus the safety margin
    assert killed_at <= record.start <= record.end <= answered_at
    assert since == (record.start - MARGIN).replace(microsecond=0)


async def test_trusted_tls_for_public_hosts(
    operator: OperatorProcess, client: KubeClient, simulator: PimSimulator
) -> None:
    """defaultTLS applies to a public host whose spec leaves tls out; a self-signed public
    host is flagged PubliclyTrusted=False without holding Ready down."""
    assert await crds.install(client, crds.CERTIFICATES) == CRD_NAME  # the real CRD

    async def served() -> bool:
        try:
            await client.list(CM, "Certificate", NS)
        except ApiError:
            return False
        return True

    await poll(served, what="Certificate kind served")
    try:
        base = spec(simulator)
        selfhost = {**base, "receiver": {**base["receiver"], "host": "self.hooks.example.com"}}
        selfhost["tls"] = {"mode": "selfSigned"}
        await client.create(connection(NS, "selfhost", selfhost))
        body = await poll(lambda: ready(client, "selfhost"), timeout=90, what="Ready",
                          operators=(operator,))  # fmt: skip
        trusted = condition(body, "PubliclyTrusted")
        assert (trusted["status"], trusted["reason"]) == ("False", "SelfSignedCertificate")
        assert "the PIM and the Event Platform" in trusted["message"]
        warning = await poll(
            lambda: event_with(client, "selfhost", "SelfSignedCertificate"),
            timeout=30, what="Event",
        )  # fmt: skip
        assert warning["type"] == "Warning"

        public = {**base, "receiver": {**base["receiver"], "host": "shop.hooks.example.com"}}
        await client.create(connection(NS, "public", public))

        async def certificate() -> dict[str, Any] | None:
            found: dict[str, Any] | None = await client.get(CM, "Certificate", NS, "public")
            return found

        cert = await poll(certificate, timeout=60, what="Certificate from defaultTLS",
                          operators=(operator,))  # fmt: skip
        assert cert["spec"]["issuerRef"] == {
            "group": "cert-manager.io", "kind": "ClusterIssuer", "name": ISSUER,
        }  # fmt: skip
        assert cert["spec"]["dnsNames"] == ["shop.hooks.example.com"]
        stored = await client.get(API, "AkeneoConnection", NS, "public")
        assert stored is not None and "tls" not in stored["spec"]  # left out stays left out

        await client.create(connection(NS, "inside", spec(simulator)))  # no host: selfSigned
        await poll(lambda: ready(client, "inside"), timeout=90, what="Ready",
                   operators=(operator,))  # fmt: skip
        assert await client.get(CM, "Certificate", NS, "inside") is None
        assert await client.get("v1", "Secret", NS, "inside-ca") is not None
        inside = await client.get(API, "AkeneoConnection", NS, "inside")
        assert condition(inside, "PubliclyTrusted") == {}
    finally:
        names = ("public", "selfhost", "inside")
        for name in names:
            await client.delete(API, "AkeneoConnection", NS, name)

        async def gone() -> bool:
            left = [await client.get(API, "AkeneoConnection", NS, n) for n in names]
            return left == [None] * len(names)

        await poll(gone, timeout=60, what="deleted", operators=(operator,))
        await client.request(
            "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
        )

        async def crd_gone() -> bool:
            return not await served()

        await poll(crd_gone, what="Certificate CRD removed")
