"""The cluster path end to end: the manifests the operator writes are the ones that work.

On the test ground's control plane (no kubelet: kwok only fakes pod status) the chart is
installed with ``helm install`` and the operator runs as a process with the chart's
ServiceAccount token and the chart Deployment's env and mounted Secret (the NATS account
signing key: nats-server runs in operator mode, JWT auth). A connection (self-signed TLS,
webhook sink, PIM simulator credentials) becomes Ready; then the receiver and worker Deployments'
containers and a Job made from the reconcile CronJob are run here as local processes, with
exactly the command, args, env and mounted Secret files of their pod specs
(``akeneo_testing.podrunner``), so each connects to NATS with the user the operator issued
for its role and nothing else. The simulator posts both delivery formats, duplicated and
reordered, over TLS to the endpoint in the connection's status, verifying the certificate
the operator issued; the webhook recorder must receive signed, ordered, de-duplicated
changes, equal to the PIM's catalog after the reconcile Job, and the status must count them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
import pytest
import yaml
from kubernetes_asyncio import client as k8s_client

from akeneo_connector.nats_auth import Role
from akeneo_connector.nats_jwt import Creds, parse_creds
from akeneo_operator.kubeclient import KubeClient
from akeneo_operator.natscreds import creds_key
from akeneo_pim.signatures import notification_headers
from akeneo_pim.simulator import Change, EventSender, PimSimulator
from akeneo_testing.ground.helm import (
    CHART,
    apply,
    helm,
    service_account_token,
    write_token_kubeconfig,
)
from akeneo_testing.ground.kube import KubeCluster
from akeneo_testing.ground.nats_auth import JwtNatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port
from akeneo_testing.podrunner import ContainerPlan, plan_container
from tests.e2e.cluster_harness import Key, WebhookRecorder, pinned_name_context
from tests.integration.operator.running import (
    API,
    OperatorProcess,
    admin_client,
    condition,
    connection,
    make_namespace,
    poll,
    secret,
)

pytestmark = pytest.mark.kube

RELEASE, OPERATOR_NS, NS, NAME = "e2e", "e2e-operator", "e2e-tenant", "shop"
# A correctness test, not a timing one: on a loaded 2-core CI machine an answer may take
# longer than the PIM's 0.5 s, which the simulator would count as lost. The 0.5 s budget is
# measured by bench/receiver.py (p99) and bench/faults.py, so here the sender waits longer.
ANSWER_BUDGET = 5.0
LEGACY_SECRET = "e2e-cluster-legacy"
PLATFORM_SECRETS = ("e2e-cluster-platform-a", "e2e-cluster-platform-b")
NOTIFICATION_SECRET = "e2e-cluster-notification-secret"
SIGNING_SECRET = "whsec_ZTJlLWNsdXN0ZXItc2lnbmluZy1zZWNyZXQtMzItYnl0ZXM="  # Standard Webhooks
VENV_BIN = str(Path(sys.executable).parent)
ACCOUNT_SECRET = "nats-account"  # the platform admin's Secret with the account signing key


@pytest.fixture
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=60, product_models=8, seed=17) as sim:
        yield sim


@pytest.fixture
async def recorder() -> AsyncIterator[WebhookRecorder]:
    rec = await WebhookRecorder(SIGNING_SECRET).start()
    yield rec
    await rec.stop()


@pytest.fixture
def installed_chart(
    kube: KubeCluster, crd_installed: list[str], jwt_nats_server: JwtNatsServer
) -> Iterator[str]:
    """``helm install`` in namespaced mode watching the tenant namespace, with the NATS
    account signing key Secret the platform admin created; yields the release's name."""
    authority = jwt_nats_server.authority
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in (NS, OPERATOR_NS)
    ]
    seed = authority.signing_key.seed.decode()
    apply(kube.kubeconfig, [*namespaces, secret(OPERATOR_NS, ACCOUNT_SECRET, {"seed": seed})])
    signing = {"existingSecret": ACCOUNT_SECRET, "account": authority.account.public}
    # the merchant's endpoint (the recorder) and its PIM (the simulator) are on loopback:
    # this platform allows that
    values = yaml.safe_dump(
        {
            "watchNamespaces": [NS],
            "nats": {"accountSigningKey": signing},
            "allowPrivateWebhooks": True,
            "allowPrivatePim": True,
        }
    )
    helm(
        "install", RELEASE, CHART, "--namespace", OPERATOR_NS, "--create-namespace",
        "--values", "-", "--wait", "--timeout", "180s",
        kubeconfig=kube.kubeconfig, timeout=240, stdin=values,
    )  # fmt: skip
    try:
        yield f"{RELEASE}-akeneo-connector-operator"
    finally:
        helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", kubeconfig=kube.kubeconfig)


@pytest.fixture
async def operator(
    kube: KubeCluster,
    jwt_nats_server: JwtNatsServer,
    installed_chart: str,
    kube_api: k8s_client.ApiClient,
    tmp_path: Path,
) -> AsyncIterator[OperatorProcess]:
    """The operator with the installed ServiceAccount's token and the chart Deployment's env
    and mounted Secret (run like the pods, through ``plan_container``)."""
    name = installed_chart
    token = await service_account_token(kube_api, OPERATOR_NS, name)
    user = f"system:serviceaccount:{OPERATOR_NS}:{name}"
    kubeconfig = write_token_kubeconfig(kube, user, token, tmp_path / "operator-kubeconfig")
    client = admin_client(kube)
    try:
        deployment = await client.get("apps/v1", "Deployment", OPERATOR_NS, name)
        account_secret = await client.get("v1", "Secret", OPERATOR_NS, ACCOUNT_SECRET)
    finally:
        await client.close()
    assert deployment is not None and account_secret is not None
    nats = jwt_nats_server.url
    # The session's JWT-auth nats-server stands in for the chart's in-cluster NATS, for both
    # the operator and (through --pod-nats-url) the pods it declares.
    plan = plan_container(
        pod_spec(deployment), "operator", root=tmp_path / "operator-pod",
        secrets={ACCOUNT_SECRET: account_secret}, config_maps={},
        overrides={
            "AKENEO_PORT": str(free_port()),
            "AKENEO_NATS_URL": nats,
            "AKENEO_OPERATOR_POD_NATS_URL": nats,
            "AKENEO_OPERATOR_MAINTENANCE_INTERVAL": "2s",
        },
    )  # fmt: skip
    plan.write_files()
    env = {k: v for k, v in plan.env.items() if k.startswith("AKENEO_")}
    assert Path(env["AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE"]) in plan.files
    op = OperatorProcess(tmp_path / "operator", "operator", kubeconfig, nats, **env).start()
    yield op
    op.stop()


def tenant_secrets(sim: PimSimulator) -> list[dict[str, Any]]:
    creds = sim.credentials
    events = secret(
        NS,
        "shop-events",
        {
            "eventsApiSecret": LEGACY_SECRET,
            "eventPlatformSecrets": "\n".join(PLATFORM_SECRETS),
            "eventPlatformNotificationSecret": NOTIFICATION_SECRET,
        },
    )
    pim = secret(
        NS,
        "shop-pim",
        {
            "clientId": creds.client_id.get_secret_value(),
            "clientSecret": creds.client_secret.get_secret_value(),
            "username": creds.username.get_secret_value(),
            "password": creds.password.get_secret_value(),
        },
    )
    sink = secret(NS, "shop-sink", {"signingSecret": SIGNING_SECRET})
    return [events, pim, sink]


def connection_spec(sim: PimSimulator, recorder: WebhookRecorder) -> dict[str, Any]:
    return {
        "pim": {"url": sim.url, "credentialsSecret": "shop-pim", "allowPrivateAddresses": True},
        "receiver": {"signatureSecret": "shop-events"},
        "tls": {"mode": "selfSigned"},
        "worker": {
            "sink": {
                "webhook": {
                    "url": recorder.url,
                    "signingSecret": "shop-sink",
                    "allowPrivateAddresses": True,
                }
            }
        },
        # never due during the test: it runs a Job made from the CronJob itself
        "reconciliation": {"schedule": "0 0 1 1 *", "fullScanSchedule": None},
    }


async def job_from_cronjob(client: KubeClient, cronjob: str, job: str) -> dict[str, Any]:
    """What ``kubectl create job --from=cronjob/<cronjob>`` creates."""
    cron = await client.get("batch/v1", "CronJob", NS, cronjob)
    assert cron is not None, cronjob
    template = cron["spec"]["jobTemplate"]
    return await client.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job,
                "namespace": NS,
                "labels": template["metadata"].get("labels", {}),
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                     "uid": cron["metadata"]["uid"], "controller": True}
                ],
            },
            "spec": template["spec"],
        }
    )  # fmt: skip


class LocalPods:
    """The pods' containers as local processes, planned from their pod specs."""

    def __init__(self, root: Path, secrets: dict[str, dict[str, Any]]) -> None:
        self.root, self.secrets = root, secrets
        self.processes: list[ServerProcess] = []

    def plan(self, pod: str, pod_spec: dict[str, Any], container: str, **env: str) -> ContainerPlan:
        # The only rewrites of the pod spec: ports (every "pod" shares the host's loopback)
        # and PATH, so that the image's `akeneo-connector` resolves to this venv's script.
        overrides = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env}
        plan = plan_container(
            pod_spec, container, root=self.root / pod, secrets=self.secrets,
            config_maps={}, overrides=overrides,
        )  # fmt: skip
        # Nothing of ours may leak into the container's settings from the test's environment.
        declared = {e["name"] for c in pod_spec["containers"] for e in c.get("env", [])}
        plan.env = {
            k: v
            for k, v in plan.env.items()
            if not k.startswith("AKENEO_") or k in declared or k in overrides
        }
        plan.write_files()
        return plan

    def start(self, pod: str, plan: ContainerPlan) -> ServerProcess:
        process = ServerProcess(pod, plan.argv, self.root).start(env=plan.env)
        self.processes.append(process)
        return process

    def assert_alive(self) -> None:
        for p in self.processes:
            assert p.alive, f"{p.name} exited ({p.returncode}):\n{p.log_tail(40)}"

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop(timeout=15)


def pod_spec(deployment: dict[str, Any] | None) -> dict[str, Any]:
    assert deployment is not None
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def env_of(spec: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in spec["containers"][0].get("env", [])}


def newest(changes: list[Change]) -> dict[Key, Change]:
    out: dict[Key, Change] = {}
    for change in changes:
        key = (change.kind, change.key)
        if key not in out or change.updated >= out[key].updated:
            out[key] = change
    return out


def catalog_item(sim: PimSimulator, key: Key) -> dict[str, Any] | None:
    table = sim.catalog.products if key[0] == "product" else sim.catalog.product_models
    item: dict[str, Any] | None = table.items.get(key[1])
    return item


def updated_of(resource: dict[str, Any] | None) -> str | None:
    return None if resource is None else str(resource["updated"])


async def test_cluster_manifests_run_the_pipeline_end_to_end(
    kube: KubeCluster,
    jwt_nats_server: JwtNatsServer,
    operator: OperatorProcess,
    simulator: PimSimulator,
    recorder: WebhookRecorder,
    tmp_path: Path,
) -> None:
    sim = simulator
    client = admin_client(kube)
    pods = LocalPods(tmp_path / "pods", {})
    nats_creds: dict[Role, Creds] = {}
    try:
        # 1. the connection, as a user would apply it; the operator makes it Ready
        await make_namespace(client, NS, tenant_secrets(sim))
        await client.create(connection(NS, NAME, connection_spec(sim, recorder)))

        async def ready() -> dict[str, Any] | None:
            body = await client.get(API, "AkeneoConnection", NS, NAME)
            return body if condition(body, "Ready").get("status") == "True" else None

        body = await poll(ready, timeout=90, what="Ready=True", operators=(operator,))
        endpoint = urlsplit(body["status"]["endpoint"])
        assert endpoint.scheme == "https" and endpoint.hostname and endpoint.path == "/events"
        # one URL per Akeneo sender, on the same host (kubectl get akc -o wide shows them)
        urls = {k: urlsplit(v) for k, v in body["status"]["endpoints"].items()}
        assert {k: u.path for k, u in urls.items()} == {
            "events": "/events",
            "eventPlatform": "/event-platform",
            "notifications": "/event-platform/notifications",
        }
        assert {u.netloc for u in urls.values()} == {endpoint.netloc}

        # 2. the pods the operator declared, run from their specs with the mounted Secrets
        receiver = pod_spec(await client.get("apps/v1", "Deployment", NS, f"{NAME}-receiver"))
        worker = pod_spec(await client.get("apps/v1", "Deployment", NS, f"{NAME}-worker"))
        job = await job_from_cronjob(client, f"{NAME}-reconcile", f"{NAME}-reconcile-e2e")
        reconcile = job["spec"]["template"]["spec"]
        pods.secrets = {s["metadata"]["name"]: s for s in await client.list("v1", "Secret", NS)}
        tls_secret = pods.secrets[f"{NAME}-tls"]
        ca_pem = base64.b64decode(tls_secret["data"]["ca.crt"]).decode()

        receiver_port, worker_port, admin_port = free_port(), free_port(), free_port()
        receiver_plan = pods.plan(
            "receiver",
            receiver,
            "receiver",
            AKENEO_PORT=str(receiver_port),
            AKENEO_ADMIN_PORT=str(admin_port),  # its probes: the pod's admin port
        )
        worker_plan = pods.plan("worker", worker, "worker", AKENEO_PORT=str(worker_port))
        reconcile_plan = pods.plan("reconcile", reconcile, "reconcile")
        assert receiver_plan.argv[0] == worker_plan.argv[0] == "akeneo-connector"
        assert env_of(worker)["AKENEO_WEBHOOK_URL"] == recorder.url
        assert "AKENEO_WEBHOOK_SIGNING_SECRET_FILE" in env_of(worker)
        assert SIGNING_SECRET not in str(worker) and LEGACY_SECRET not in str(receiver)
        # each pod holds its own role's NATS user, issued by the operator, and only that
        nats_creds = {
            role: parse_creds(base64.b64decode(data).decode())
            for role, data in (
                (r, pods.secrets[f"{NAME}-nats"]["data"][creds_key(r)]) for r in Role
            )
        }
        for plan, role in (
            (receiver_plan, Role.RECEIVER),
            (worker_plan, Role.WORKER),
            (reconcile_plan, Role.RECONCILE),
        ):
            mounted = plan.files[Path(plan.env["AKENEO_NATS_CREDS_FILE"])]
            assert parse_creds(mounted.decode()) == nats_creds[role], role
            assert not {"AKENEO_NATS_USER", "AKENEO_NATS_PASSWORD_FILE"} & set(plan.env)
        pods.start("receiver", receiver_plan)
        pods.start("worker", worker_plan)

        # The certificate covers the Service's names, not a loopback one: connect to
        # 127.0.0.1 and verify the certificate for the endpoint's host name (SNI).
        tls = pinned_name_context(ca_pem, endpoint.hostname)

        def local(url: SplitResult) -> str:
            return urlunsplit(url._replace(netloc=f"127.0.0.1:{receiver_port}"))

        target, platform_target = local(endpoint), local(urls["eventPlatform"])

        async def serving() -> bool:
            pods.assert_alive()
            try:
                async with httpx.AsyncClient(verify=tls, timeout=2) as http:
                    r = await http.get(f"http://127.0.0.1:{admin_port}/readyz")
                    w = await http.get(f"http://127.0.0.1:{worker_port}/readyz")
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and w.status_code == 200

        await poll(serving, timeout=60, what="receiver and worker ready", operators=(operator,))

        # 3. the PIM delivers both formats over TLS, with duplicates and reordering
        changes = [sim.catalog.random_change() for _ in range(160)]
        legacy = EventSender(
            target, events_api_secret=LEGACY_SECRET, verify=tls, timeout=ANSWER_BUDGET,
            reorder=0.3, duplicate=0.2, seed=3,
        )  # fmt: skip
        platform = EventSender(
            platform_target, format="event_platform", event_platform_secrets=PLATFORM_SECRETS,
            verify=tls, timeout=ANSWER_BUDGET, reorder=0.3, duplicate=0.2, seed=4,
        )  # fmt: skip
        async with legacy, platform:
            assert await legacy.send_test_request() == 200
            reports = await asyncio.gather(legacy.send(changes[::2]), platform.send(changes[1::2]))
        for report in reports:
            assert report.duplicated > 0, report.as_dict()
            assert report.rejected == 0 and report.timed_out == 0, report.as_dict()
            assert report.dropped == 0, report.as_dict()

        want = newest(changes)

        async def delivered() -> bool:
            pods.assert_alive()
            state = recorder.state()
            for key, change in want.items():
                if key not in state:
                    return False
                got = state[key]
                if change.action == "removed":
                    if got is not None:
                        return False
                elif got is None or datetime.fromisoformat(got["updated"]) < change.updated:
                    return False
            return True

        await poll(delivered, timeout=60, what="webhook has every change", operators=(operator,))

        # 4. edits whose events the PIM never delivers: only the reconcile Job can bring them
        silent = [sim.catalog.edit_product() for _ in range(4)]
        silent += [sim.catalog.edit_product_model() for _ in range(2)]
        state = recorder.state()
        assert all(updated_of(state.get((c.kind, c.key))) != updated_of(c.resource) for c in silent)
        changed = {*want, *((c.kind, c.key) for c in silent)}

        # the reconcile Job's container, run to completion
        job_process = await asyncio.create_subprocess_exec(
            *reconcile_plan.argv, env=reconcile_plan.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(job_process.communicate(), 60)
        job_output = out.decode(errors="replace")
        assert job_process.returncode == 0, job_output

        async def equal_to_catalog() -> bool:
            pods.assert_alive()
            state = recorder.state()
            return all(
                updated_of(state.get(key)) == updated_of(catalog_item(sim, key)) for key in changed
            )

        await poll(equal_to_catalog, timeout=60, what="webhook equals the PIM's catalog")

        # signed, ordered (per resource, versions only go up) and de-duplicated
        assert recorder.refused == 0 and recorder.batches > 0
        versions: dict[Key, datetime] = {}
        for change in recorder.changes:
            key = (change["kind"], change["key"])
            version = datetime.fromisoformat(change["version"])
            assert key not in versions or version > versions[key], (key, change["version"])
            versions[key] = version

        # 5. the status counts what the worker applied, and the connection stays Ready
        async def counted() -> dict[str, Any] | None:
            pods.assert_alive()
            body = await client.get(API, "AkeneoConnection", NS, NAME)
            counters = ((body or {}).get("status") or {}).get("counters") or {}
            if counters.get("applied") == len(recorder.changes):
                return body
            return None

        body = await poll(counted, timeout=60, what="status counters", operators=(operator,))
        assert body["status"]["counters"].get("deadLettered", 0) == 0
        assert condition(body, "Ready")["status"] == "True"
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert "EventSubscriptionActive" not in {c["type"] for c in body["status"]["conditions"]}

        # 6. the Event Platform suspends the subscription, then resumes it: its notification
        # webhooks reach the status and the connection's Events
        async def notify(kind: str, reason: str | None, at: str) -> None:
            doc = {
                "notification_type": kind,
                "timestamp": at,
                "subscription_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a6",
                "subscriber_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a5",
                "destination": body["status"]["endpoints"]["eventPlatform"],
                "events": ["com.akeneo.pim.v1.product.updated"],
                "subject": sim.url,
            }
            if reason is not None:
                doc["reason"] = reason
            raw = json.dumps(doc).encode()
            async with httpx.AsyncClient(verify=tls, timeout=ANSWER_BUDGET) as http:
                answer = await http.post(
                    local(urls["notifications"]),
                    content=raw,
                    headers=notification_headers(NOTIFICATION_SECRET, raw),
                )
            assert answer.status_code == 200, answer.text

        async def subscription(reason: str) -> dict[str, Any] | None:
            pods.assert_alive()
            body = await client.get(API, "AkeneoConnection", NS, NAME)
            return (
                body if condition(body, "EventSubscriptionActive").get("reason") == reason else None
            )

        async def event_with(reason: str) -> dict[str, Any] | None:
            for event in await client.list("v1", "Event", NS):
                if (
                    event.get("reason") == reason
                    and (event.get("involvedObject") or {}).get("name") == NAME
                ):
                    return event
            return None

        await notify(
            "subscription.suspended.system",
            "Success rate dropped below 90%",
            "2026-12-04T10:00:00Z",
        )
        body = await poll(
            lambda: subscription("SuspendedBySystem"), timeout=60,
            what="EventSubscriptionActive=False", operators=(operator,),
        )  # fmt: skip
        suspended = condition(body, "EventSubscriptionActive")
        assert suspended["status"] == "False"
        assert "Success rate dropped below 90%" in suspended["message"]
        assert (condition(body, "Ready")["status"], condition(body, "Ready")["reason"]) == (
            "False",
            "SuspendedBySystem",
        )
        event = await poll(lambda: event_with("SuspendedBySystem"), timeout=30, what="Event")
        assert event["type"] == "Warning" and "Success rate" in event["message"]
        await notify("subscription.resumed", None, "2026-12-04T10:30:00Z")
        body = await poll(
            lambda: subscription("Resumed"), timeout=60, what="EventSubscriptionActive=True",
            operators=(operator,),
        )  # fmt: skip
        assert condition(body, "Ready")["status"] == "True"
        await poll(lambda: event_with("Resumed"), timeout=30, what="Event Resumed")
        # the suspended window is stored (with the operator's own NATS user) and caught up
        started = await poll(lambda: event_with("CatchUpStarted"), timeout=60, what="catch-up")
        assert "--since 2026-12-04T09:55:00Z" in started["message"]
    finally:
        pods.stop()
        await client.delete(API, "AkeneoConnection", NS, NAME)

        async def gone() -> bool:
            return await client.get(API, "AkeneoConnection", NS, NAME) is None

        try:
            await poll(gone, timeout=60, what="connection deleted", operators=(operator,))
        finally:
            await client.close()
    logs = operator.log + "".join(p.log_path.read_text(errors="replace") for p in pods.processes)
    logs += job_output
    assert "Traceback" not in logs, logs[-4000:]
    assert "Permissions Violation" not in logs and "Authorization Violation" not in logs
    seeds = [c.seed.decode() for c in nats_creds.values()]
    signing_seed = jwt_nats_server.authority.signing_key.seed.decode()
    pim = sim.credentials
    pim_secrets = [pim.client_secret.get_secret_value(), pim.password.get_secret_value()]
    secrets = (LEGACY_SECRET, SIGNING_SECRET, NOTIFICATION_SECRET, *PLATFORM_SECRETS)
    for value in (*secrets, *seeds, signing_seed):
        assert value not in logs
    for value in pim_secrets:  # the worker hydrated and the Job reconciled with them
        assert value not in logs
