"""Pod templates of receiver, worker and reconcile job: exactly the env and files of
``docs/configuration.md``. Secrets are mounted as files, never passed as env values."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.meta import (
    NATS_CREDS_FILE,
    RECEIVER,
    Manifest,
    labels,
    nats_creds_key,
    nats_secret_name,
)
from akeneo_operator.settings import OperatorSettings

RECEIVER_PORT = 8443  # public: the event URLs only (Service, Ingress)
ADMIN_PORT = 8081  # the receiver's probes and metrics, plain HTTP: no Service exposes it
WORKER_PORT = 8080
RUN_AS = 65532
SECRET_MODE = 0o440

TLS_DIR = "/etc/akeneo/tls"
SIGNATURE_DIR = "/etc/akeneo/signature"
PIM_DIR = "/etc/akeneo/pim/"
SINK_DIR = "/etc/akeneo/sink"
NATS_DIR = "/etc/akeneo/nats"
GAP_SPOOL_FILE = "/tmp/akeneo-gaps.json"

# Keys of the signature Secret: at least one of SIGNATURE_KEYS (a sender's secret); the
# notification secret is optional (Event Platform subscription notifications).
SIGNATURE_KEYS = {
    "eventsApiSecret": "AKENEO_EVENTS_API_SECRET_FILE",
    "eventPlatformSecrets": "AKENEO_EVENT_PLATFORM_SECRETS_FILE",
}
NOTIFICATION_KEY = "eventPlatformNotificationSecret"
SIGNATURE_FILES = {
    **SIGNATURE_KEYS,
    NOTIFICATION_KEY: "AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE",
}
PIM_KEYS = ("clientId", "clientSecret", "username", "password")


@dataclass(frozen=True)
class BuildInput:
    """Everything a build depends on: spec, names, operator settings and secret facts."""

    names: ConnectionNames
    spec: AkeneoConnectionSpec
    settings: OperatorSettings
    tls_secret: str
    tls_revision: str = ""
    signature_keys: frozenset[str] = field(default_factory=lambda: frozenset(SIGNATURE_KEYS))


@dataclass
class PodParts:
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[Manifest] = field(default_factory=list)
    mounts: list[Manifest] = field(default_factory=list)

    def set(self, name: str, value: str) -> None:
        self.env.append({"name": name, "value": value})

    def secret(
        self, volume: str, secret: str, path: str, items: list[str] | dict[str, str] | None = None
    ) -> None:
        """Mount ``items`` (keys, or key -> file name) of ``secret`` read-only at ``path``."""
        source: Manifest = {"secretName": secret, "defaultMode": SECRET_MODE}
        if items is not None:
            files = items if isinstance(items, dict) else {k: k for k in items}
            source["items"] = [{"key": k, "path": p} for k, p in files.items()]
        self.volumes.append({"name": volume, "secret": source})
        self.mounts.append({"name": volume, "mountPath": path.rstrip("/"), "readOnly": True})

    def empty_dir(self, volume: str, path: str) -> None:
        self.volumes.append({"name": volume, "emptyDir": {}})
        self.mounts.append({"name": volume, "mountPath": path})


def _common(inp: BuildInput, role: Role) -> PodParts:
    parts = PodParts()
    s = inp.settings
    parts.set("AKENEO_CONNECTION", inp.names.ref)
    parts.set("AKENEO_NATS_URL", s.effective_pod_nats_url)
    if s.issues_nats_credentials:  # this role's own user, issued by the operator
        secret = nats_secret_name(inp.names.name)
        parts.secret("nats", secret, NATS_DIR, {nats_creds_key(role.value): NATS_CREDS_FILE})
        parts.set("AKENEO_NATS_CREDS_FILE", f"{NATS_DIR}/{NATS_CREDS_FILE}")
    if s.pod_nats_user:
        parts.set("AKENEO_NATS_USER", s.pod_nats_user)
    if s.pod_nats_secret:
        key = s.pod_nats_secret_key
        parts.secret("nats", s.pod_nats_secret, NATS_DIR, [key])
        env = "AKENEO_NATS_PASSWORD_FILE" if key == "password" else "AKENEO_NATS_CREDS_FILE"
        parts.set(env, f"{NATS_DIR}/{key}")
    parts.set("AKENEO_LOG_LEVEL", s.log_level)
    parts.empty_dir("tmp", "/tmp")
    return parts


def _pim(inp: BuildInput, parts: PodParts) -> None:
    pim = inp.spec.pim
    if pim.credentials_secret is None:
        return
    parts.set("AKENEO_PIM_URL", pim.url)
    parts.secret("pim", pim.credentials_secret, PIM_DIR, list(PIM_KEYS))
    parts.set("AKENEO_PIM_CREDENTIALS_DIR", PIM_DIR)
    if pim.allow_private_addresses and inp.settings.allow_private_pim:
        parts.set("AKENEO_PIM_ALLOW_PRIVATE", "true")


def receiver_parts(inp: BuildInput) -> PodParts:
    parts = _common(inp, Role.RECEIVER)
    r = inp.spec.receiver
    parts.set("AKENEO_PORT", str(RECEIVER_PORT))
    parts.set("AKENEO_ADMIN_PORT", str(ADMIN_PORT))
    parts.secret("tls", inp.tls_secret, TLS_DIR, ["tls.crt", "tls.key"])
    parts.set("AKENEO_TLS_CERT_FILE", f"{TLS_DIR}/tls.crt")
    parts.set("AKENEO_TLS_KEY_FILE", f"{TLS_DIR}/tls.key")
    keys = [k for k in SIGNATURE_FILES if k in inp.signature_keys]
    parts.secret("signature", r.signature_secret, SIGNATURE_DIR, keys)
    for key in keys:
        parts.set(SIGNATURE_FILES[key], f"{SIGNATURE_DIR}/{key}")
    parts.set("AKENEO_MAX_BODY_BYTES", str(r.max_body_bytes))
    parts.set("AKENEO_TIMESTAMP_TOLERANCE", r.timestamp_tolerance)
    # an outage's 503 window, kept across container restarts (the /tmp emptyDir) until NATS
    # takes its gap record
    parts.set("AKENEO_GAP_SPOOL_FILE", GAP_SPOOL_FILE)
    # the key of its report of loaded secrets (fingerprints), which the rotation waits for
    parts.env.append(
        {"name": "AKENEO_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    )
    return parts


def worker_parts(inp: BuildInput) -> PodParts:
    parts = _common(inp, Role.WORKER)
    w = inp.spec.worker
    parts.set("AKENEO_PORT", str(WORKER_PORT))
    parts.set("AKENEO_MAX_DELIVER", str(w.max_deliver))
    parts.set("AKENEO_ACK_WAIT", w.ack_wait)
    sink = w.sink
    parts.set("AKENEO_SINK", sink.kind)
    if sink.webhook is not None:
        parts.set("AKENEO_WEBHOOK_URL", sink.webhook.url)
        parts.set("AKENEO_WEBHOOK_SIGNATURE", sink.webhook.signature.value)
        if sink.webhook.signing_secret is not None:
            parts.secret("sink", sink.webhook.signing_secret, SINK_DIR, ["signingSecret"])
            parts.set("AKENEO_WEBHOOK_SIGNING_SECRET_FILE", f"{SINK_DIR}/signingSecret")
        if sink.webhook.allow_private_addresses and inp.settings.allow_private_webhooks:
            parts.set("AKENEO_WEBHOOK_ALLOW_PRIVATE", "true")
    elif sink.postgres is not None:
        parts.secret("sink", sink.postgres.dsn_secret, SINK_DIR, ["dsn"])
        parts.set("AKENEO_POSTGRES_DSN_FILE", f"{SINK_DIR}/dsn")
        parts.set("AKENEO_POSTGRES_TABLE", sink.postgres.table)
        if sink.postgres.allow_private_addresses and inp.settings.allow_private_postgres:
            parts.set("AKENEO_POSTGRES_ALLOW_PRIVATE", "true")
    elif sink.sqlite is not None:
        # a relative path lives in the data dir, in a pod as in local mode (read-only root)
        path = posixpath.join("/data", sink.sqlite.path)
        parts.set("AKENEO_SQLITE_PATH", path)
        parts.empty_dir("data", posixpath.dirname(path))
    _pim(inp, parts)
    return parts


def reconcile_parts(inp: BuildInput) -> PodParts:
    parts = _common(inp, Role.RECONCILE)
    rec = inp.spec.reconciliation
    _pim(inp, parts)
    parts.set("AKENEO_RECONCILE_RESOURCES", ",".join(rec.resources))
    parts.set("AKENEO_SAFETY_MARGIN", rec.safety_margin)
    return parts


def container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(path: str, port: int | str, scheme: str, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port, "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def container(
    inp: BuildInput,
    component: str,
    args: list[str],
    parts: PodParts,
    port: int | None,
) -> Manifest:
    c: Manifest = {
        "name": component,
        "image": inp.settings.image,
        "imagePullPolicy": inp.settings.image_pull_policy,
        "command": ["akeneo-connector", *args],
        "env": parts.env,
        "volumeMounts": parts.mounts,
        "resources": inp.settings.resources(component).manifest(),
        "securityContext": container_security(),
    }
    if port is not None:
        if component == RECEIVER:  # probes on the admin port, never on the public one
            c["ports"] = [
                {"name": "https", "containerPort": port, "protocol": "TCP"},
                {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
            ]
            probe_port: int | str = "admin"
        else:
            c["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
            probe_port = port
        c["readinessProbe"] = _probe("/readyz", probe_port, "HTTP", 5, 2)
        c["livenessProbe"] = _probe("/healthz", probe_port, "HTTP", 10, 3)
        c["startupProbe"] = _probe("/healthz", probe_port, "HTTP", 2, 30)
    return c


def pod_template(
    inp: BuildInput,
    component: str,
    cont: Manifest,
    parts: PodParts,
    *,
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Always",
) -> Manifest:
    meta: Manifest = {"labels": labels(inp.names.name, component)}
    if annotations:
        meta["annotations"] = annotations
    spec: Manifest = {
        "serviceAccountName": inp.names.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(),
        "containers": [cont],
        "volumes": parts.volumes,
        "restartPolicy": restart_policy,
    }
    if restart_policy == "Always":
        spec["terminationGracePeriodSeconds"] = 30
    return {"metadata": meta, "spec": spec}
