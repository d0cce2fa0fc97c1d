"""Pod templates of receiver, worker and reconcile job. Their env and files come from the
connection's spec through ``akeneo_connector.component_env`` (shared with local mode), placed
as a pod places them. Secrets are mounted as files, never passed as env values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akeneo_connector import component_env
from akeneo_connector.component_env import (
    SIGNATURE_FIELDS,
    Destination,
    Rendered,
    Volume,
)
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role
from akeneo_connector.settings_contract import (
    POD_DATA_DIR,
    POD_EVENT_SPOOL_FILE,
    POD_GAP_SPOOL_FILE,
    POD_NATS_CREDS_FILE,
    POD_NATS_DIR,
    POD_NOTIFICATION_SPOOL_FILE,
    POD_PIM_DIR,
    POD_SIGNATURE_DIR,
    POD_SINK_DIR,
    POD_TLS_DIR,
)
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

# Keys of the signature Secret: at least one of SIGNATURE_KEYS (a sender's secret); the
# notification secret is optional (Event Platform subscription notifications).
SIGNATURE_KEYS = ("eventsApiSecret", "eventPlatformSecrets")
NOTIFICATION_KEY = "eventPlatformNotificationSecret"
SIGNATURE_FILES = SIGNATURE_FIELDS  # every key the receiver reads -> its setting
_SECRET_DIRS: dict[Volume, str] = {
    "tls": POD_TLS_DIR,
    "signature": POD_SIGNATURE_DIR,
    "pim": POD_PIM_DIR,
    "sink": POD_SINK_DIR,
}


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


@dataclass(frozen=True)
class PodPlacement:
    """Where things are in the operator's pods (``component_env.Placement``)."""

    inp: BuildInput
    role: Role

    @property
    def nats_url(self) -> str:
        return self.inp.settings.effective_pod_nats_url

    def common(self) -> dict[str, Any]:
        s = self.inp.settings
        values: dict[str, Any] = {}
        if s.issues_nats_credentials:  # this role's own user, issued by the operator
            values["nats_creds_file"] = Path(f"{POD_NATS_DIR}/{POD_NATS_CREDS_FILE}")
        if s.pod_nats_user:
            values["nats_user"] = s.pod_nats_user
        if s.pod_nats_secret:
            key = s.pod_nats_secret_key
            name = "nats_password_file" if key == "password" else "nats_creds_file"
            values[name] = Path(f"{POD_NATS_DIR}/{key}")
        values["log_level"] = s.log_level
        return values

    def secret_dir(self, volume: Volume, secret: str) -> str:
        return _SECRET_DIRS[volume]

    def allows(self, destination: Destination) -> bool:
        s = self.inp.settings
        return {
            "pim": s.allow_private_pim,
            "webhook": s.allow_private_webhooks,
            "postgres": s.allow_private_postgres,
        }[destination]

    def tls_files(self) -> tuple[str, str] | None:
        return None  # the TLS Secret, mounted

    def receiver_listen(self) -> dict[str, Any]:
        return {"port": RECEIVER_PORT, "admin_port": ADMIN_PORT}

    def worker_port(self) -> int:
        return WORKER_PORT

    def gap_spool_file(self) -> str:
        # an outage's 503 window, kept across container restarts (the /tmp emptyDir) until
        # NATS takes its gap record
        return POD_GAP_SPOOL_FILE

    def notification_spool_file(self) -> str:
        # notifications NATS could not take (a queue outage's suspension among them), kept
        # across container restarts until JetStream stores them
        return POD_NOTIFICATION_SPOOL_FILE

    def event_spool_file(self) -> str:
        # events NATS could not acknowledge in time (an outage, a stream leader election)
        return POD_EVENT_SPOOL_FILE

    def data_dir(self) -> str:
        return POD_DATA_DIR  # a relative sqlite path: in the data dir, as in local mode


def _parts(inp: BuildInput, role: Role, rendered: Rendered[Any]) -> PodParts:
    """The pod's env and volumes: NATS credentials, /tmp, then the component's files."""
    parts = PodParts()
    s = inp.settings
    if s.issues_nats_credentials:
        secret = nats_secret_name(inp.names.name)
        parts.secret("nats", secret, POD_NATS_DIR, {nats_creds_key(role.value): NATS_CREDS_FILE})
    if s.pod_nats_secret:
        parts.secret("nats", s.pod_nats_secret, POD_NATS_DIR, [s.pod_nats_secret_key])
    parts.empty_dir("tmp", "/tmp")
    for mount in rendered.mounts:
        if mount.secret is None:
            parts.empty_dir(mount.volume, mount.path)
        else:
            parts.secret(mount.volume, mount.secret, mount.path, list(mount.keys))
    parts.env = [{"name": name, "value": value} for name, value in rendered.env]
    return parts


def receiver_parts(inp: BuildInput) -> PodParts:
    place = PodPlacement(inp, Role.RECEIVER)
    rendered = component_env.receiver(
        inp.names,
        inp.spec,
        place,
        tls_secret=inp.tls_secret,
        signature_keys=inp.signature_keys,
    )
    parts = _parts(inp, Role.RECEIVER, rendered)
    # the key of its report of loaded secrets (fingerprints), which the rotation waits for
    parts.env.append(
        {"name": "AKENEO_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    )
    return parts


def worker_parts(inp: BuildInput) -> PodParts:
    rendered = component_env.worker(inp.names, inp.spec, PodPlacement(inp, Role.WORKER))
    return _parts(inp, Role.WORKER, rendered)


def reconcile_parts(inp: BuildInput) -> PodParts:
    rendered = component_env.reconcile(inp.names, inp.spec, PodPlacement(inp, Role.RECONCILE))
    return _parts(inp, Role.RECONCILE, rendered)


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
