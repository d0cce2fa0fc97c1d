"""Operator at scale: N AkeneoConnections in M namespaces on a real control plane.

Starts its own KubeCluster (etcd, kube-apiserver, controllers, kwok) and nats-server, installs
the CRDs and the chart's RBAC, runs ``akeneo-connector operator`` as the chart's ServiceAccount,
and prints:

- time until every connection is Ready (baseline: creating the objects with no operator);
- API requests per connection: all clients from ``apiserver_request_total`` deltas (baseline:
  the same window length with the operator idle, before any connection exists), and the
  operator's own from an API server audit log restricted to its ServiceAccount;
- operator RSS (peak, sampled);
- handler errors in the operator log;
- convergence after a restart: the operator is stopped, every spec is changed, and the time
  until every connection has observedGeneration == generation and Ready=True is measured;
- churn in steady state: resourceVersions of the connections and their children over a window.

    .venv/bin/python -m bench.operator_scale [--connections 200 --namespaces 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s_client
from tests.ground.binaries import REPO
from tests.ground.helm import apply, crd_manifests, crds_established, install_chart_identity
from tests.ground.kube import KubeCluster
from tests.ground.nats import NatsServer
from tests.ground.processes import ServerProcess, wait_until

from akeneo_connector.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION

CHILD_LABEL = "app.kubernetes.io/name=akeneo-connector"
OPERATOR_NAMESPACE = "akeneo-operator"
METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


# -- measurements -----------------------------------------------------------------------------


class AuditedCluster(KubeCluster):
    """A KubeCluster whose API server writes an audit log of the operator's requests only."""

    def __init__(self, data_dir: Path):
        super().__init__(data_dir)
        self.audit_log = data_dir / "audit.log"

    def _start(self, name: str, argv: list[str | Path]) -> ServerProcess:
        if name == "kube-apiserver":
            policy = self.dir / "audit-policy.yaml"
            policy.write_text(
                json.dumps(
                    {
                        "apiVersion": "audit.k8s.io/v1",
                        "kind": "Policy",
                        "omitStages": ["RequestReceived", "ResponseStarted"],
                        "rules": [
                            {
                                "level": "Metadata",
                                "userGroups": [f"system:serviceaccounts:{OPERATOR_NAMESPACE}"],
                            },
                            {"level": "None"},
                        ],
                    }
                )
            )
            argv = [
                *argv,
                "--audit-policy-file", policy,
                "--audit-log-path", self.audit_log,
                "--audit-log-format", "json",
            ]  # fmt: skip
        return super()._start(name, argv)

    def operator_requests(self) -> Counter[str]:
        """The operator's requests so far by "verb group/resource[/subresource]"."""
        counts: Counter[str] = Counter()
        if not self.audit_log.exists():
            return counts
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            resource = "/".join(
                p for p in (ref.get("apiGroup"), ref.get("resource"), ref.get("subresource")) if p
            )
            counts[f"{event.get('verb', '?')} {resource}"] += 1
        return counts


def request_totals(kube: KubeCluster) -> Counter[str]:
    """apiserver_request_total by "verb group/resource[/subresource]"."""
    text = kube.request("/metrics")
    totals: Counter[str] = Counter()
    for line in str(text).splitlines():
        match = METRIC.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource = "/".join(
            p for p in (labels.get("group"), labels.get("resource"), labels.get("subresource")) if p
        )
        totals[f"{labels.get('verb', '?')} {resource}"] += int(float(match["value"]))
    return totals


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total_kb = 0
    for task in [pid, *_children(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{task}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def _children(pid: int) -> Iterator[int]:
    with contextlib.suppress(FileNotFoundError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            yield int(child)
            yield from _children(int(child))


class Sampler:
    """Samples the operator's RSS while awaited work runs."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.pid: int | None = None

    async def run(self) -> None:
        while True:
            if self.pid is not None:
                self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.5)


# -- the workload -----------------------------------------------------------------------------


def connection(name: str, worker_replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "pim": {"url": "https://pim.example.com", "credentialsSecret": "pim-api"},
            # One receiver replica: kwok's node holds 500 pods.
            "receiver": {"signatureSecret": "events", "replicas": 1},
            "worker": {"replicas": worker_replicas},
        },
    }


def tenant_secrets(namespace: str) -> list[dict[str, Any]]:
    """The Secrets every connection of a namespace names (signature, PIM API credentials)."""
    pim = {"clientId": "id", "clientSecret": "cs", "username": "u", "password": "p"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": data,
        }
        for name, data in (("events", {"eventsApiSecret": "bench-secret"}), ("pim-api", pim))
    ]


async def gather_limited(jobs: list[Callable[[], Awaitable[Any]]], limit: int = 16) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.dir = workdir
        self.kube = AuditedCluster(workdir / "kube")
        self.nats = NatsServer(workdir / "nats")
        self.operator: ServerProcess | None = None
        self.own_calls = 0
        self.sampler = Sampler()
        self.namespaces = [f"bench-{i:02d}" for i in range(args.namespaces)]
        per_ns = -(-args.connections // args.namespaces)
        self.connections = [
            (self.namespaces[i // per_ns], f"c{i:03d}") for i in range(args.connections)
        ]

    # operator process
    def start_operator(self, env: dict[str, str]) -> None:
        argv = [str(Path(sys.executable).parent / "akeneo-connector"), "operator"]
        self.operator = ServerProcess("operator", argv, self.dir).start(env=env)
        self.sampler.pid = self.operator.pid

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.sampler.pid = None

    def operator_errors(self) -> int:
        log = (self.dir / "operator.log").read_text(errors="replace")
        pattern = re.compile(r'"level(name)?":\s*"(ERROR|CRITICAL)"|failed with an exception')
        return sum(1 for line in log.splitlines() if pattern.search(line))

    # API helpers (counted, so the figures can subtract the bench's own calls)
    async def list_connections(self, api: k8s_client.ApiClient) -> list[dict[str, Any]]:
        self.own_calls += 1
        objects = k8s_client.CustomObjectsApi(api)
        result = await objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def wait_all_ready(self, api: k8s_client.ApiClient, timeout: float) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.operator is not None and not self.operator.alive:
                print(f"operator exited ({self.operator.returncode}):\n{self.operator.log_tail()}")
                return None
            items = await self.list_connections(api)
            ready = sum(1 for o in items if _ready(o))
            if ready == len(self.connections) == len(items):
                return time.monotonic() - start
            await asyncio.sleep(1)
        items = await self.list_connections(api)
        print(f"  timeout: {sum(1 for o in items if _ready(o))}/{len(items)} Ready")
        return None

    async def child_versions(self, api: k8s_client.ApiClient) -> dict[str, str]:
        core, apps = k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api)
        batch, net = k8s_client.BatchV1Api(api), k8s_client.NetworkingV1Api(api)
        policy = k8s_client.PolicyV1Api(api)
        listers: dict[str, Callable[..., Awaitable[Any]]] = {
            "Deployment": apps.list_deployment_for_all_namespaces,
            "Service": core.list_service_for_all_namespaces,
            "Secret": core.list_secret_for_all_namespaces,
            "ServiceAccount": core.list_service_account_for_all_namespaces,
            "CronJob": batch.list_cron_job_for_all_namespaces,
            "NetworkPolicy": net.list_network_policy_for_all_namespaces,
            "PodDisruptionBudget": policy.list_pod_disruption_budget_for_all_namespaces,
        }
        versions: dict[str, str] = {}
        for kind, lister in listers.items():
            self.own_calls += 1
            result = await lister(label_selector=CHILD_LABEL)
            for item in result.items:
                key = f"{kind} {item.metadata.namespace}/{item.metadata.name}"
                versions[key] = item.metadata.resource_version
        for obj in await self.list_connections(api):
            meta = obj["metadata"]
            versions[f"{KIND} {meta['namespace']}/{meta['name']}"] = meta["resourceVersion"]
        return versions

    # phases
    async def run(self) -> int:
        args = self.args
        print(f"starting control plane and nats-server in {self.dir}")
        self.kube.start()
        self.nats.start()
        apply(self.kube.kubeconfig, crd_manifests())
        names = [d["metadata"]["name"] for d in crd_manifests()]
        wait_until(lambda: crds_established(self.kube, names), timeout=60, what="CRDs")
        api = await self.kube.api()
        sampler = asyncio.create_task(self.sampler.run())
        try:
            identity = await install_chart_identity(
                self.kube, api, self.dir / "operator.kubeconfig", namespace=OPERATOR_NAMESPACE
            )
            env = {
                **os.environ,
                "KUBECONFIG": str(identity.kubeconfig),
                "AKENEO_NATS_URL": self.nats.url,
                "AKENEO_IMAGE": "akeneo-connector:bench",
                "AKENEO_PEERING_NAME": identity.peering_name,
                "AKENEO_WATCH_NAMESPACES": "",
                "AKENEO_PORT": "0",
                "AKENEO_LOG_LEVEL": "info",
            }
            objects: Any = k8s_client.CustomObjectsApi(api)  # stubs lack _content_type
            create = objects.create_namespaced_custom_object
            delete = objects.delete_namespaced_custom_object
            patch = partial(
                objects.patch_namespaced_custom_object,
                _content_type="application/merge-patch+json",
            )
            change = {"spec": {"worker": {"replicas": 0}}}
            setup: list[dict[str, Any]] = []
            for ns in self.namespaces:
                setup.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                setup.extend(tenant_secrets(ns))
            apply(self.kube.kubeconfig, setup)

            # Baseline 1: create+delete the same objects with no operator running.
            t0 = time.monotonic()
            await gather_limited(
                [
                    partial(create, GROUP, VERSION, ns, PLURAL, connection(f"base-{n}"))
                    for ns, n in self.connections
                ]
            )
            create_only = time.monotonic() - t0
            await gather_limited(
                [
                    partial(delete, GROUP, VERSION, ns, PLURAL, f"base-{n}")
                    for ns, n in self.connections
                ]
            )
            print(f"baseline: creating {len(self.connections)} objects, no operator: "
                  f"{create_only:.1f}s")  # fmt: skip

            # Baseline 2: request rate with the operator idle (no connections).
            self.start_operator(env)
            await asyncio.sleep(args.idle_seconds)
            before_idle = request_totals(self.kube)
            op_before_idle = self.kube.operator_requests()
            await asyncio.sleep(args.idle_seconds)
            idle = request_totals(self.kube) - before_idle
            op_idle = sum((self.kube.operator_requests() - op_before_idle).values())
            idle_total = sum(idle.values())
            print(f"baseline: {idle_total} API requests in {args.idle_seconds}s idle, "
                  f"{op_idle} of them by the operator")  # fmt: skip
            if self.operator is not None:
                print(f"baseline: idle operator RSS {rss_mb(self.operator.pid):.0f} MB")

            # Create all connections; time until all Ready.
            before = request_totals(self.kube)
            op_before = self.kube.operator_requests()
            own_before = self.own_calls
            t0 = time.monotonic()
            await gather_limited(
                [
                    partial(create, GROUP, VERSION, ns, PLURAL, connection(n))
                    for ns, n in self.connections
                ]
            )
            elapsed = await self.wait_all_ready(api, args.timeout)
            window = time.monotonic() - t0
            delta = request_totals(self.kube) - before
            n = len(self.connections)
            if elapsed is None:
                print(f"NOT all Ready within {args.timeout}s")
            else:
                print(f"all {n} connections Ready after {elapsed:.1f}s")
            own = self.own_calls - own_before + n
            idle_share = idle_total * window / args.idle_seconds
            total = sum(delta.values())
            print(f"API requests during convergence: {total} total, {own} by the bench, "
                  f"~{idle_share:.0f} idle-rate share over {window:.0f}s")  # fmt: skip
            print(f"API requests per connection, all clients (total - bench - idle share): "
                  f"{(total - own - idle_share) / n:.1f}")  # fmt: skip
            op_delta = self.kube.operator_requests() - op_before
            print(f"API requests per connection by the operator (audit log): "
                  f"{sum(op_delta.values()) / n:.1f}")  # fmt: skip
            for key, count in op_delta.most_common(15):
                print(f"    {count:7d}  {key}")
            print(f"operator RSS: peak {self.sampler.peak:.0f} MB, now "
                  f"{rss_mb(self.operator.pid) if self.operator else 0:.0f} MB")  # fmt: skip
            print(f"operator handler errors (log lines): {self.operator_errors()}")
            if elapsed is None:
                return 1

            # Steady state: no churn of children over a window.
            versions = await self.child_versions(api)
            await asyncio.sleep(args.steady_seconds)
            later = await self.child_versions(api)
            changed = sorted(k for k in versions if later.get(k) != versions[k])
            children = [k for k in versions if not k.startswith(KIND)]
            changed_children = [k for k in changed if not k.startswith(KIND)]
            print(f"steady state: {len(changed_children)} of {len(children)} children and "
                  f"{len(changed) - len(changed_children)} of {n} connections changed "
                  f"resourceVersion in {args.steady_seconds}s")  # fmt: skip
            steady_ops = self.kube.operator_requests() - op_before - op_delta
            print(f"steady state: {sum(steady_ops.values())} operator requests in "
                  f"{args.steady_seconds}s: {dict(steady_ops.most_common(5))}")  # fmt: skip
            for key in changed[:10]:
                print(f"    changed: {key}")

            # Restart: stop, change every spec, start, time until converged.
            self.stop_operator()
            await gather_limited(
                [
                    partial(patch, GROUP, VERSION, ns, PLURAL, n, change)
                    for ns, n in self.connections
                ]
            )
            op_restart = self.kube.operator_requests()
            first_peak, self.sampler.peak = self.sampler.peak, 0.0
            self.start_operator(env)
            converged = await self.wait_all_ready(api, args.timeout)
            if converged is None:
                print("NOT converged after restart")
                return 1
            print(f"after restart with {n} changed specs: converged in {converged:.1f}s, "
                  f"{sum((self.kube.operator_requests() - op_restart).values()) / n:.1f} "
                  f"operator requests per connection")  # fmt: skip
            print(f"operator RSS after restart: peak {self.sampler.peak:.0f} MB "
                  f"(first run: {first_peak:.0f} MB)")  # fmt: skip
            print(f"operator handler errors (log lines): {self.operator_errors()}")
            return 0
        finally:
            sampler.cancel()
            self.stop_operator()
            await api.close()
            self.nats.stop()
            self.kube.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="akeneo-operator-bench-"))
    (workdir / "kube").mkdir()
    (workdir / "nats").mkdir()
    os.chdir(REPO)
    try:
        return asyncio.run(Bench(args, workdir).run())
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
