"""Pure builders: one connection's spec -> the manifests of all its Kubernetes children.

Every manifest carries the common labels and a build-hash annotation. Owner references are
added by the caller (``kopf.adopt``) so that these functions stay free of kopf.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from akeneo_connector.gaps import CatchUpPlan
from akeneo_connector.spec import FULL_SCAN_ONLY
from akeneo_operator.egress import receiver_egress, worker_egress
from akeneo_operator.meta import (
    CONNECTION,
    L_COMPONENT,
    L_INSTANCE,
    RECEIVER,
    RECONCILE,
    TLS_SERIAL_ANNOTATION,
    WORKER,
    Manifest,
    nats_secret_name,
    object_meta,
    selector,
    with_hash,
)
from akeneo_operator.pods import (
    RECEIVER_PORT,
    WORKER_PORT,
    BuildInput,
    container,
    pod_template,
    receiver_parts,
    reconcile_parts,
    worker_parts,
)
from akeneo_pim.paths import Endpoints

SERVICE_PORT = 443


@dataclass(frozen=True)
class ChildRef:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class ChildNames:
    """Object names of one connection's children (kind-local: different kinds may share a
    name), from the connection's name."""

    connection: str

    @property
    def service_account(self) -> str:
        return self.connection

    @property
    def receiver(self) -> str:
        """Deployment, Service, PodDisruptionBudget, NetworkPolicy, HPA of the receiver."""
        return f"{self.connection}-receiver"

    @property
    def worker(self) -> str:
        """Deployment, NetworkPolicy and KEDA ScaledObject of the worker."""
        return f"{self.connection}-worker"

    @property
    def reconcile(self) -> str:
        return f"{self.connection}-reconcile"

    @property
    def full_scan(self) -> str:
        return f"{self.connection}-full-scan"

    @property
    def ingress(self) -> str:
        return self.connection

    @property
    def tls_secret(self) -> str:
        return f"{self.connection}-tls"

    @property
    def ca_secret(self) -> str:
        return f"{self.connection}-ca"

    @property
    def certificate(self) -> str:
        return self.connection

    @property
    def nats_secret(self) -> str:
        return nats_secret_name(self.connection)


def child_names(name: str) -> ChildNames:
    return ChildNames(name)


def receiver_base(inp: BuildInput) -> str:
    """Where the receiver is reached: the public host, else the in-cluster Service."""
    if inp.spec.receiver.host:
        return f"https://{inp.spec.receiver.host}"
    n = child_names(inp.names.name)
    return f"https://{n.receiver}.{inp.names.namespace}.svc:{SERVICE_PORT}"


def endpoints(inp: BuildInput) -> dict[str, str]:
    """``status.endpoints``: the legacy Events API Request URL, the Event Platform
    subscription destination and the subscriber's notification webhook URL."""
    return Endpoints.of(receiver_base(inp)).as_status()


def endpoint(inp: BuildInput) -> str:
    """``status.endpoint`` (kept for existing users): the legacy Events API Request URL."""
    return endpoints(inp)["events"]


def service_dns_names(name: str, namespace: str) -> list[str]:
    svc = child_names(name).receiver
    return [
        f"{svc}.{namespace}.svc",
        svc,
        f"{svc}.{namespace}",
        f"{svc}.{namespace}.svc.cluster.local",
    ]


def tls_dns_names(inp: BuildInput) -> list[str]:
    base = service_dns_names(inp.names.name, inp.names.namespace)
    host = inp.spec.receiver.host
    return [host, *base] if host else base


def _meta(inp: BuildInput, name: str, component: str, **annotations: str) -> Manifest:
    return object_meta(name, inp.names.namespace, inp.names.name, component, annotations or None)


def service_account(inp: BuildInput) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(inp, child_names(inp.names.name).service_account, CONNECTION),
        "automountServiceAccountToken": False,
    }


def receiver_deployment(inp: BuildInput) -> Manifest:
    parts = receiver_parts(inp)
    cont = container(inp, RECEIVER, ["receiver"], parts, RECEIVER_PORT)
    annotations = {TLS_SERIAL_ANNOTATION: inp.tls_revision} if inp.tls_revision else None
    spec: Manifest = {
        "selector": {"matchLabels": selector(inp.names.name, RECEIVER)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "revisionHistoryLimit": 3,
        "template": pod_template(inp, RECEIVER, cont, parts, annotations=annotations),
    }
    if inp.spec.receiver.autoscaling is None:
        spec["replicas"] = inp.spec.receiver.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(inp, child_names(inp.names.name).receiver, RECEIVER),
        "spec": spec,
    }


def worker_deployment(inp: BuildInput) -> Manifest:
    parts = worker_parts(inp)
    cont = container(inp, WORKER, ["worker"], parts, WORKER_PORT)
    spec: Manifest = {
        "selector": {"matchLabels": selector(inp.names.name, WORKER)},
        # one consumer group: no overlap needed, avoid double hydration on rollout
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
        },
        "revisionHistoryLimit": 3,
        "template": pod_template(inp, WORKER, cont, parts),
    }
    if inp.spec.worker.autoscaling is None:  # else KEDA's HPA owns replicas: never fight it
        spec = {"replicas": inp.spec.worker.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(inp, child_names(inp.names.name).worker, WORKER),
        "spec": spec,
    }


SCALED_OBJECT_API = "keda.sh/v1alpha1"


def worker_scaled_object(inp: BuildInput) -> Manifest | None:
    """KEDA ScaledObject scaling the worker Deployment on its durable consumer's lag.

    KEDA's ``nats-jetstream`` scaler reads the lag from the NATS monitoring endpoint; it is
    applied apart from ``build_children`` because KEDA's CRDs may not be installed."""
    auto = inp.spec.worker.autoscaling
    if auto is None:
        return None
    name = child_names(inp.names.name).worker
    return with_hash(
        {
            "apiVersion": SCALED_OBJECT_API,
            "kind": "ScaledObject",
            "metadata": _meta(inp, name, WORKER),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicaCount": auto.min_replicas,
                "maxReplicaCount": auto.max_replicas,
                "triggers": [
                    {
                        "type": "nats-jetstream",
                        "metadata": {
                            "natsServerMonitoringEndpoint": inp.settings.nats_monitoring_endpoint,
                            "account": inp.settings.nats_monitoring_account,
                            "stream": inp.names.stream,
                            "consumer": inp.names.consumer,
                            "lagThreshold": str(auto.lag_per_replica),
                        },
                    }
                ],
            },
        }
    )


def receiver_service(inp: BuildInput) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(inp, child_names(inp.names.name).receiver, RECEIVER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(inp.names.name, RECEIVER),
            "ports": [
                {"name": "https", "port": SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}
            ],
        },
    }


def ingress(inp: BuildInput) -> Manifest | None:
    host = inp.spec.receiver.host
    if host is None:
        return None
    n = child_names(inp.names.name)
    annotations = {
        "external-dns.alpha.kubernetes.io/hostname": host,
        "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
        "nginx.ingress.kubernetes.io/proxy-body-size": str(inp.spec.receiver.max_body_bytes),
    }
    if inp.spec.receiver.allowed_source_ranges:
        annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] = ",".join(
            inp.spec.receiver.allowed_source_ranges
        )
    spec: Manifest = {
        "tls": [{"hosts": [host], "secretName": inp.tls_secret}],
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": n.receiver,
                                    "port": {"number": SERVICE_PORT},
                                }
                            },
                        }
                    ]
                },
            }
        ],
    }
    if inp.settings.ingress_class:
        spec = {"ingressClassName": inp.settings.ingress_class, **spec}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(inp, n.ingress, RECEIVER, **annotations),
        "spec": spec,
    }


def receiver_pdb(inp: BuildInput) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(inp, child_names(inp.names.name).receiver, RECEIVER),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(inp.names.name, RECEIVER)},
        },
    }


def receiver_hpa(inp: BuildInput) -> Manifest | None:
    auto = inp.spec.receiver.autoscaling
    if auto is None:
        return None
    name = child_names(inp.names.name).receiver
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(inp, name, RECEIVER),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": auto.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def receiver_network_policy(inp: BuildInput) -> Manifest:
    rule: Manifest = {"ports": [{"protocol": "TCP", "port": RECEIVER_PORT}]}
    ranges = inp.spec.receiver.allowed_source_ranges
    if ranges:
        peers: list[Manifest] = [{"ipBlock": {"cidr": cidr}} for cidr in ranges]
        if inp.spec.receiver.host is not None:
            # through the Ingress the connection comes from the controller's pods; the
            # Ingress checks the ranges (whitelist annotation) on the client's address
            ns = inp.settings.ingress_namespace
            peers.append(_namespace_peer(ns))
        if inp.settings.metrics_namespace:  # Prometheus scrapes /metrics on the same port
            peers.append(_namespace_peer(inp.settings.metrics_namespace))
        rule["from"] = peers
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(inp, child_names(inp.names.name).receiver, RECEIVER),
        "spec": {
            "podSelector": {"matchLabels": selector(inp.names.name, RECEIVER)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [rule],
            "egress": receiver_egress(inp.settings),
        },
    }


def _namespace_peer(namespace: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def worker_network_policy(inp: BuildInput) -> Manifest:
    """Worker and reconcile pods accept no inbound traffic but Prometheus's scrapes of the
    worker's /metrics (when a metrics namespace is configured), and reach DNS, NATS and
    public addresses only (``egress``)."""
    spec: Manifest = {
        "podSelector": {
            "matchLabels": {L_INSTANCE: inp.names.name},
            "matchExpressions": [
                {"key": L_COMPONENT, "operator": "In", "values": [WORKER, RECONCILE]}
            ],
        },
        "policyTypes": ["Ingress", "Egress"],
        "egress": worker_egress(inp.settings),
    }
    if inp.settings.metrics_namespace:
        spec["ingress"] = [
            {
                "from": [_namespace_peer(inp.settings.metrics_namespace)],
                "ports": [{"protocol": "TCP", "port": WORKER_PORT}],
            }
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(inp, child_names(inp.names.name).worker, WORKER),
        "spec": spec,
    }


def _cronjob(inp: BuildInput, name: str, schedule: str, args: list[str]) -> Manifest:
    parts = reconcile_parts(inp)
    cont = container(inp, RECONCILE, args, parts, None)
    template = pod_template(inp, RECONCILE, cont, parts, restart_policy="Never")
    job_labels = _meta(inp, name, RECONCILE)["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(inp, name, RECONCILE),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "suspend": inp.spec.reconciliation.suspend,
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": job_labels},
                "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 3600, "template": template},
            },
        },
    }


# -- one-off reconcile Jobs (initial sync, sync on demand, catch-up) ------------------------

JOB_PURPOSE_LABEL = "akeneo.connectors.dev/job"
INITIAL_SYNC = "initial-sync"
SYNC_NOW = "sync-now"
FULL_SCAN_NOW = "full-scan-now"
CATCH_UP = "catch-up"
# A one-off run that finds a scheduled one holding the reconcile lock waits for it: its
# window must not be lost to the schedule (and the lock keeps the two from overlapping).
ONE_OFF_LOCK_WAIT = "30m"
JOB_TTL_SECONDS = 86400  # finished one-off Jobs stay a day for `kubectl get jobs`
MAX_JOB_NAME = 63  # a Job's name becomes its pods' job-name label value


def job_name(name: str, *parts: str) -> str:
    """``<name>-<parts...>``, shortened with a digest when longer than a label value."""
    full = "-".join((name, *parts))
    if len(full) <= MAX_JOB_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return f"{full[: MAX_JOB_NAME - 11].rstrip('-')}-{digest}"


def value_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def one_off_job(inp: BuildInput, name: str, args: list[str], purpose: str) -> Manifest:
    """A Job from the reconcile CronJob's template running ``akeneo-connector <args>``."""
    parts = reconcile_parts(inp)
    cont = container(inp, RECONCILE, args, parts, None)
    template = pod_template(inp, RECONCILE, cont, parts, restart_policy="Never")
    meta = _meta(inp, name, RECONCILE)
    meta["labels"][JOB_PURPOSE_LABEL] = purpose
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": template,
        },
    }


def _reconcile_args(*extra: str) -> list[str]:
    return ["reconcile", *extra, "--lock-wait", ONE_OFF_LOCK_WAIT]


def initial_sync_job(inp: BuildInput) -> Manifest:
    """The first sync of a connection that never synced: products and models, and (with a
    full run, only when listed) the structure, which only ``--full`` reads."""
    full = any(r in FULL_SCAN_ONLY for r in inp.spec.reconciliation.resources)
    args = _reconcile_args("--full") if full else _reconcile_args()
    return one_off_job(inp, job_name(inp.names.name, INITIAL_SYNC), args, INITIAL_SYNC)


def sync_now_job(inp: BuildInput, value: str, *, full: bool) -> Manifest:
    """``kubectl annotate akc NAME akeneo.connectors.dev/sync-now=<value>`` (or
    ``full-scan-now``): one run per distinct value."""
    purpose = FULL_SCAN_NOW if full else SYNC_NOW
    args = _reconcile_args("--full") if full else _reconcile_args()
    return one_off_job(inp, job_name(inp.names.name, purpose, value_digest(value)), args, purpose)


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def catch_up_job(inp: BuildInput, plan: CatchUpPlan, attempt: int = 1) -> Manifest:
    """The catch-up of the gap windows ``plan`` covers: ``reconcile --since <start - margin>``
    (whole seconds, rounded down: never later than the plan's time)."""
    suffix = [str(plan.through)] + ([str(attempt)] if attempt > 1 else [])
    name = job_name(inp.names.name, CATCH_UP, *suffix)
    since = plan.since.replace(microsecond=0)
    return one_off_job(inp, name, _reconcile_args("--since", rfc3339(since)), CATCH_UP)


def reconcile_cronjobs(inp: BuildInput) -> list[Manifest]:
    """The incremental reconcile CronJob and, when scheduled, the full-scan one.

    Without PIM credentials there is nothing a reconcile job could fetch: none is built.
    """
    if inp.spec.pim.credentials_secret is None:
        return []
    rec = inp.spec.reconciliation
    n = child_names(inp.names.name)
    jobs = [_cronjob(inp, n.reconcile, rec.schedule, ["reconcile"])]
    if rec.full_scan_schedule:
        jobs.append(_cronjob(inp, n.full_scan, rec.full_scan_schedule, ["reconcile", "--full"]))
    return jobs


def build_children(inp: BuildInput) -> list[Manifest]:
    """All Kubernetes children of a connection except the TLS material (see ``tls``)."""
    optional = [ingress(inp), receiver_hpa(inp)]
    manifests = [
        service_account(inp),
        receiver_deployment(inp),
        receiver_service(inp),
        receiver_pdb(inp),
        receiver_network_policy(inp),
        worker_deployment(inp),
        worker_network_policy(inp),
        *reconcile_cronjobs(inp),
        *(m for m in optional if m is not None),
    ]
    return [with_hash(m) for m in manifests]


# Kinds whose objects make pods or point at what does: written after the rest of a
# connection's children (a pod of a Deployment created before its ServiceAccount is refused,
# and the ReplicaSet controller backs off before it tries again).
SECOND_WAVE_KINDS = frozenset({"Deployment", "CronJob", "Job", "HorizontalPodAutoscaler"})


def apply_waves(manifests: list[Manifest]) -> list[list[Manifest]]:
    """The children in the order they can be written: what the pods need first, then what
    makes pods; the manifests of one wave are independent and can be written at once."""
    first = [m for m in manifests if m["kind"] not in SECOND_WAVE_KINDS]
    second = [m for m in manifests if m["kind"] in SECOND_WAVE_KINDS]
    return [wave for wave in (first, second) if wave]


def possible_children(name: str) -> list[ChildRef]:
    """Every child a connection may have (optional ones included), for pruning."""
    n = child_names(name)
    return [
        ChildRef("v1", "ServiceAccount", n.service_account),
        ChildRef("apps/v1", "Deployment", n.receiver),
        ChildRef("v1", "Service", n.receiver),
        ChildRef("policy/v1", "PodDisruptionBudget", n.receiver),
        ChildRef("networking.k8s.io/v1", "NetworkPolicy", n.receiver),
        ChildRef("apps/v1", "Deployment", n.worker),
        ChildRef("networking.k8s.io/v1", "NetworkPolicy", n.worker),
        ChildRef("batch/v1", "CronJob", n.reconcile),
        ChildRef("batch/v1", "CronJob", n.full_scan),
        ChildRef("networking.k8s.io/v1", "Ingress", n.ingress),
        ChildRef("autoscaling/v2", "HorizontalPodAutoscaler", n.receiver),
    ]


def ref_of(manifest: Manifest) -> ChildRef:
    return ChildRef(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
