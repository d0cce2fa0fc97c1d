"""Operator at scale: N AkeneoConnections in M namespaces on a real control plane.

For each size (default 100, 500 and 1,000 connections in 100 namespaces) it starts a fresh
control plane (etcd, kube-apiserver, controllers, kwok) and nats-server, installs the CRDs and
the chart's RBAC, runs ``akeneo-connector operator`` as the chart's ServiceAccount, and prints:

- time until every connection is Ready (baseline: creating the objects with no operator);
- API requests per connection: the operator's own from an API server audit log restricted to
  its ServiceAccount (every verb, watches included), and all clients' from
  ``apiserver_request_total`` deltas (minus the bench's own and the idle rate);
- operator RSS from /proc (peak, sampled every 0.5 s; idle with no connection; idle with all
  of them after the steady-state window);
- handler errors in the operator log;
- churn in steady state: resourceVersions of the connections and all their children over a
  window (``--steady-seconds``), and the operator's requests in it;
- convergence after a restart: the operator is stopped, every spec is changed, and the time
  until every connection has observedGeneration == generation and Ready=True is measured.

Then a table of all sizes, per-connection figures (growth no worse than linear: the figures
per connection of the largest size against the smallest) and the targets of the largest.

The control plane's controller-manager and scheduler get a higher client QPS than their
defaults (20/50): with their defaults they, not the operator, set the pace of thousands of
Deployments, ReplicaSets and Pods. kwok's node holds as many pods as the size needs.

    .venv/bin/python -m bench.operator_scale [--sizes 100,500,1000 --namespaces 100] [--write-docs]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s_client

from akeneo_connector.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION
from akeneo_testing.ground.helm import (
    apply,
    crd_manifests,
    crds_established,
    install_chart_identity,
)
from akeneo_testing.ground.kube import NODE_NAME, KubeCluster
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, wait_until

CHILD_LABEL = "app.kubernetes.io/name=akeneo-connector"
OPERATOR_NAMESPACE = "akeneo-operator"
METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
# Targets for the largest size (issue 16): all Ready within 5 minutes, peak RSS at most
# 250 MB, no churn, and per-connection costs no worse than linear.
TARGET_READY_SECONDS = 300.0
TARGET_PEAK_RSS_MB = 250.0
NEVER = "0 0 1 1 *"  # once a year
LINEAR_SLACK = 1.25  # per-connection figure of the largest size / of the smallest


# -- measurements -----------------------------------------------------------------------------


class AuditedCluster(KubeCluster):
    """A KubeCluster whose API server writes an audit log of the operator's requests only,
    with a node sized for ``pods`` and controllers allowed to keep up with thousands of
    objects."""

    def __init__(self, data_dir: Path, pods: int = 500):
        super().__init__(data_dir)
        self.audit_log = data_dir / "audit.log"
        self.pods = pods

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
                # the ground's /24 holds 254 Services: a connection has one
                "--service-cluster-ip-range", "10.96.0.0/16",
                "--audit-policy-file", policy,
                "--audit-log-path", self.audit_log,
                "--audit-log-format", "json",
            ]  # fmt: skip
        if name in ("kube-controller-manager", "kube-scheduler"):
            argv = [*argv, "--kube-api-qps", "200", "--kube-api-burst", "400"]
        if name == "kwok":
            argv = [*argv, "--cidr", "10.128.0.0/16"]  # pod IPs: the ground's /24 holds 254
        return super()._start(name, argv)

    def _create_node(self) -> None:
        super()._create_node()
        # room for every pod: the chart's requests (cpu 50m-100m) filled 64 cores at 640 pods
        room = {"pods": str(self.pods), "cpu": str(self.pods), "memory": f"{self.pods}Gi"}
        patch = {"status": {"allocatable": room, "capacity": room}}
        self._kubectl(
            "patch", "node", NODE_NAME, "--subresource=status", "--type=merge",
            "-p", json.dumps(patch),
        )  # fmt: skip

    def operator_requests(self) -> Counter[str]:
        """The operator's requests so far by "verb group/resource[/subresource]"."""
        counts: Counter[str] = Counter()
        if not self.audit_log.exists():
            return counts
        with self.audit_log.open() as log:
            for line in log:
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                parts = (ref.get("apiGroup"), ref.get("resource"), ref.get("subresource"))
                resource = "/".join(p for p in parts if p)
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
            # one receiver replica: the pods are kwok's, what counts is the operator's work
            "receiver": {"signatureSecret": "events", "replicas": 1},
            "worker": {"replicas": worker_replicas},
            # CronJobs that do not fire during a run: a scheduled Job is the ground's work
            # (and a status write) that would blur the figures and the steady-state window
            "reconciliation": {"schedule": NEVER, "fullScanSchedule": NEVER},
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


@dataclass
class SizeResult:
    """The figures of one size; ``None`` where the phase did not complete."""

    connections: int
    namespaces: int
    create_only_seconds: float = 0.0
    ready_seconds: float | None = None
    operator_calls_per_connection: float = 0.0
    all_calls_per_connection: float = 0.0
    empty_rss_mb: float = 0.0  # operator idle, no connection
    peak_rss_mb: float = 0.0  # over creation, readiness and steady state
    idle_rss_mb: float = 0.0  # idle with every connection, after the steady-state window
    children: int = 0
    children_changed: int | None = None
    connections_changed: int | None = None
    steady_operator_requests: int | None = None
    restart_seconds: float | None = None
    restart_calls_per_connection: float = 0.0
    restart_peak_rss_mb: float = 0.0
    handler_errors: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.ready_seconds is not None
            and self.restart_seconds is not None
            and self.children_changed == 0
            and self.connections_changed == 0
            and self.handler_errors == 0
        )


class Bench:
    """One size on its own control plane."""

    def __init__(
        self,
        connections: int,
        namespaces: int,
        workdir: Path,
        *,
        idle_seconds: float = 20,
        steady_seconds: float = 60,
        timeout: float = 900,
    ):
        self.dir = workdir
        (workdir / "kube").mkdir(parents=True, exist_ok=True)
        (workdir / "nats").mkdir(parents=True, exist_ok=True)
        self.idle_seconds, self.steady_seconds, self.timeout = idle_seconds, steady_seconds, timeout
        namespaces = max(1, min(namespaces, connections))
        # receiver, worker and the first sync Job's pod per connection, and room to spare
        self.kube = AuditedCluster(workdir / "kube", pods=4 * connections + 100)
        self.nats = NatsServer(workdir / "nats")
        self.operator: ServerProcess | None = None
        self.own_calls = 0
        self.sampler = Sampler()
        self.namespaces = [f"bench-{i:03d}" for i in range(namespaces)]
        self.connections = [
            (self.namespaces[i % namespaces], f"c{i:04d}") for i in range(connections)
        ]
        self.result = SizeResult(connections, namespaces)

    # operator process
    def start_operator(self, env: dict[str, str]) -> None:
        argv = [str(Path(sys.executable).parent / "akeneo-connector"), "operator"]
        self.operator = ServerProcess("operator", argv, self.dir).start(env=env)
        self.sampler.pid = self.operator.pid

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.sampler.pid = None

    def operator_rss(self) -> float:
        return rss_mb(self.operator.pid) if self.operator is not None else 0.0

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

    async def wait_all_ready(self, api: k8s_client.ApiClient) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < self.timeout:
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
        """resourceVersion of every connection and every child (by their common label)."""
        core, apps = k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api)
        batch, net = k8s_client.BatchV1Api(api), k8s_client.NetworkingV1Api(api)
        policy = k8s_client.PolicyV1Api(api)
        scaling = k8s_client.AutoscalingV2Api(api)
        listers: dict[str, Callable[..., Awaitable[Any]]] = {
            "Deployment": apps.list_deployment_for_all_namespaces,
            "Service": core.list_service_for_all_namespaces,
            "Secret": core.list_secret_for_all_namespaces,
            "ServiceAccount": core.list_service_account_for_all_namespaces,
            "CronJob": batch.list_cron_job_for_all_namespaces,
            "Job": batch.list_job_for_all_namespaces,
            "NetworkPolicy": net.list_network_policy_for_all_namespaces,
            "Ingress": net.list_ingress_for_all_namespaces,
            "PodDisruptionBudget": policy.list_pod_disruption_budget_for_all_namespaces,
            "HorizontalPodAutoscaler": scaling.list_horizontal_pod_autoscaler_for_all_namespaces,
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
    async def run(self) -> SizeResult:
        res = self.result
        n = len(self.connections)
        print(f"== {n} connections in {len(self.namespaces)} namespaces ({self.dir})")
        self.kube.start()
        self.nats.start()
        apply(self.kube.kubeconfig, crd_manifests())
        names = [d["metadata"]["name"] for d in crd_manifests()]
        wait_until(lambda: crds_established(self.kube, names), timeout=60, what="CRDs")
        api = await self.kube.api()
        sampler = asyncio.create_task(self.sampler.run())
        try:
            await self._phases(api, res, n)
        finally:
            sampler.cancel()
            self.stop_operator()
            await api.close()
            self.nats.stop()
            self.kube.stop()
        return res

    async def _phases(self, api: k8s_client.ApiClient, res: SizeResult, n: int) -> None:
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
            objects.patch_namespaced_custom_object, _content_type="application/merge-patch+json"
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
                partial(create, GROUP, VERSION, ns, PLURAL, connection(f"base-{c}"))
                for ns, c in self.connections
            ]
        )
        res.create_only_seconds = time.monotonic() - t0
        await gather_limited(
            [partial(delete, GROUP, VERSION, ns, PLURAL, f"base-{c}") for ns, c in self.connections]
        )
        print(f"baseline: creating {n} objects, no operator: {res.create_only_seconds:.1f}s")

        # Baseline 2: request rate and RSS with the operator idle (no connections).
        self.start_operator(env)
        await asyncio.sleep(self.idle_seconds)
        before_idle = request_totals(self.kube)
        op_before_idle = self.kube.operator_requests()
        await asyncio.sleep(self.idle_seconds)
        idle = request_totals(self.kube) - before_idle
        op_idle = sum((self.kube.operator_requests() - op_before_idle).values())
        idle_total = sum(idle.values())
        res.empty_rss_mb = self.operator_rss()
        print(f"baseline: {idle_total} API requests in {self.idle_seconds:.0f}s idle, "
              f"{op_idle} of them by the operator; RSS {res.empty_rss_mb:.0f} MB")  # fmt: skip

        # Create all connections; time until all Ready.
        before = request_totals(self.kube)
        op_before = self.kube.operator_requests()
        own_before = self.own_calls
        t0 = time.monotonic()
        await gather_limited(
            [
                partial(create, GROUP, VERSION, ns, PLURAL, connection(c))
                for ns, c in self.connections
            ]
        )
        res.ready_seconds = await self.wait_all_ready(api)
        window = time.monotonic() - t0
        delta = request_totals(self.kube) - before
        if res.ready_seconds is None:
            print(f"NOT all Ready within {self.timeout:.0f}s")
        else:
            print(f"all {n} connections Ready after {res.ready_seconds:.1f}s")
        own = self.own_calls - own_before + n
        idle_share = idle_total * window / self.idle_seconds
        total = sum(delta.values())
        res.all_calls_per_connection = (total - own - idle_share) / n
        print(f"API requests during convergence: {total} total, {own} by the bench, "
              f"~{idle_share:.0f} idle-rate share over {window:.0f}s")  # fmt: skip
        print(f"API requests per connection, all clients (total - bench - idle share): "
              f"{res.all_calls_per_connection:.1f}")  # fmt: skip
        op_delta = self.kube.operator_requests() - op_before
        res.operator_calls_per_connection = sum(op_delta.values()) / n
        print(f"API requests per connection by the operator (audit log): "
              f"{res.operator_calls_per_connection:.1f}")  # fmt: skip
        for key, count in op_delta.most_common(15):
            print(f"    {count:7d}  {key}")
        print(f"operator RSS: peak {self.sampler.peak:.0f} MB, now {self.operator_rss():.0f} MB")
        res.handler_errors = self.operator_errors()
        print(f"operator handler errors (log lines): {res.handler_errors}")
        if res.ready_seconds is None:
            res.peak_rss_mb = self.sampler.peak
            return

        # Steady state: no churn of children over a window.
        versions = await self.child_versions(api)
        op_steady = self.kube.operator_requests()
        await asyncio.sleep(self.steady_seconds)
        later = await self.child_versions(api)
        steady_ops = self.kube.operator_requests() - op_steady
        res.idle_rss_mb = self.operator_rss()
        res.peak_rss_mb = self.sampler.peak
        changed = sorted(k for k in versions if later.get(k) != versions[k])
        children = [k for k in versions if not k.startswith(KIND)]
        changed_children = [k for k in changed if not k.startswith(KIND)]
        res.children = len(children)
        res.children_changed = len(changed_children)
        res.connections_changed = len(changed) - len(changed_children)
        res.steady_operator_requests = sum(steady_ops.values())
        print(f"steady state: {res.children_changed} of {res.children} children and "
              f"{res.connections_changed} of {n} connections changed resourceVersion in "
              f"{self.steady_seconds:.0f}s")  # fmt: skip
        print(f"steady state: {res.steady_operator_requests} operator requests in "
              f"{self.steady_seconds:.0f}s: {dict(steady_ops.most_common(5))}")  # fmt: skip
        for key in changed[:10]:
            print(f"    changed: {key}")
        print(f"operator RSS: peak {res.peak_rss_mb:.0f} MB, idle after the window "
              f"{res.idle_rss_mb:.0f} MB")  # fmt: skip

        # Restart: stop, change every spec, start, time until converged.
        self.stop_operator()
        await gather_limited(
            [partial(patch, GROUP, VERSION, ns, PLURAL, c, change) for ns, c in self.connections]
        )
        op_restart = self.kube.operator_requests()
        self.sampler.peak = 0.0
        self.start_operator(env)
        res.restart_seconds = await self.wait_all_ready(api)
        res.restart_peak_rss_mb = self.sampler.peak
        res.handler_errors = self.operator_errors()
        if res.restart_seconds is None:
            print("NOT converged after restart")
            return
        restart_calls = self.kube.operator_requests() - op_restart
        res.restart_calls_per_connection = sum(restart_calls.values()) / n
        print(f"after restart with {n} changed specs: converged in {res.restart_seconds:.1f}s, "
              f"{res.restart_calls_per_connection:.1f} operator requests per connection, "
              f"peak RSS {res.restart_peak_rss_mb:.0f} MB")  # fmt: skip
        print(f"operator handler errors (log lines): {res.handler_errors}")


async def run_sizes(
    sizes: list[int],
    namespaces: int,
    root: Path,
    *,
    idle_seconds: float = 20,
    steady_seconds: float = 60,
    timeout: float = 900,
) -> list[SizeResult]:
    """Each size on a fresh control plane, one after the other."""
    results = []
    for size in sizes:
        bench = Bench(
            size,
            namespaces,
            root / f"n{size}",
            idle_seconds=idle_seconds,
            steady_seconds=steady_seconds,
            timeout=timeout,
        )
        results.append(await bench.run())
    return results


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def report(results: list[SizeResult], steady_seconds: float) -> bool:
    """The table of all sizes and the verdict on the largest; True when it meets the targets."""
    results = sorted(results, key=lambda r: r.connections)
    print()
    print(f"| connections | all Ready (s) | operator API calls / conn | all clients / conn | "
          f"peak RSS (MB) | idle RSS (MB) | RSS above empty / conn (kB) | children changed in "
          f"{steady_seconds:.0f} s | restart: converged (s) | errors |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        per_conn = (r.peak_rss_mb - r.empty_rss_mb) * 1024 / r.connections
        churn = (
            "-"
            if r.children_changed is None
            else f"{r.children_changed} of {r.children} (+{r.connections_changed} conns)"
        )
        print(f"| {r.connections} | {_f(r.ready_seconds)} | "
              f"{r.operator_calls_per_connection:.1f} | {r.all_calls_per_connection:.1f} | "
              f"{r.peak_rss_mb:.0f} | {r.idle_rss_mb:.0f} | {per_conn:.0f} | {churn} | "
              f"{_f(r.restart_seconds)} | {r.handler_errors} |")  # fmt: skip
    for before, after in pairwise(results):
        step = (
            (after.peak_rss_mb - before.peak_rss_mb)
            * 1024
            / (after.connections - before.connections)
        )
        print(f"peak RSS from {before.connections} to {after.connections} connections: "
              f"{step:+.0f} kB per added connection")  # fmt: skip
    big, small = results[-1], results[0]
    checks = [
        (
            f"all Ready within {TARGET_READY_SECONDS:.0f} s",
            big.ready_seconds is not None and big.ready_seconds <= TARGET_READY_SECONDS,
        ),
        (
            f"peak RSS at most {TARGET_PEAK_RSS_MB:.0f} MB, after a restart too",
            max(big.peak_rss_mb, big.restart_peak_rss_mb) <= TARGET_PEAK_RSS_MB,
        ),
        ("no churn, no handler error, converged after restart", big.ok),
    ]
    if big is not small and big.ready_seconds is not None and small.ready_seconds is not None:
        growth = {
            "API calls": (big.operator_calls_per_connection, small.operator_calls_per_connection),
            "seconds to Ready": (
                big.ready_seconds / big.connections,
                small.ready_seconds / small.connections,
            ),
            # the last step's growth against the smallest size's cost above the empty operator
            "RSS": (
                (big.peak_rss_mb - results[-2].peak_rss_mb)
                / (big.connections - results[-2].connections),
                (small.peak_rss_mb - small.empty_rss_mb) / small.connections,
            ),
        }
        for what, (per_big, per_small) in growth.items():
            ratio = per_big / per_small if per_small > 0 else 0.0
            checks.append(
                (
                    f"{what} per connection at {big.connections} / at {small.connections}: "
                    f"{ratio:.2f} (≤ {LINEAR_SLACK})",
                    ratio <= LINEAR_SLACK,
                )
            )
    print()
    for what, met in checks:
        print(f"{'met   ' if met else 'MISSED'}  {what}")
    return all(met for _, met in checks)
