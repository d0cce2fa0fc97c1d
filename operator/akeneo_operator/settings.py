"""Operator-wide settings: flags with environment-variable equivalents (the flag wins).

Nothing here is per connection; per-connection choices live in the AkeneoConnection spec.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from akeneo_connector.durations import parse_duration
from akeneo_connector.quotas import StreamQuotas
from akeneo_connector.settings_contract import TRUE
from akeneo_connector.spec import TLSSpec
from akeneo_operator.egress import normalize_cidr

DEFAULT_IMAGE = "akeneo-connector:0.1.0"
MANAGED_BY = "akeneo-connector-operator"
DEFAULT_EVENT_PLATFORM_URL = "https://event.prd.sdk.akeneo.cloud/api/v1"


class Resources(BaseModel):
    """Container resources as in a pod spec (quantities as canonical Kubernetes strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    def manifest(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.limits:
            out["limits"] = dict(self.limits)
        return out


def _default_resources() -> Resources:
    return Resources(requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "256Mi"})


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # NATS as the operator reaches it (stream/bucket provisioning, counters).
    nats_url: str = "nats://nats.nats:4222"
    nats_user: str | None = None
    nats_password_file: str | None = None
    nats_creds_file: str | None = None
    # NATS as the pods reach it; credentials come from a Secret in the connection's namespace.
    pod_nats_url: str | None = None
    pod_nats_user: str | None = None
    pod_nats_secret: str | None = Field(
        default=None,
        description="Secret (in each connection's namespace) with key `password` or `nats.creds`",
    )
    pod_nats_secret_key: str = "nats.creds"
    # Decentralized JWT auth: with the account's signing key, the operator issues each
    # connection's own NATS users (Secret <name>-nats) instead of a shared pod credential.
    nats_signing_key_file: str | None = Field(
        default=None, description="file with the NATS account signing key seed (SA...)"
    )
    nats_account: str | None = Field(
        default=None,
        description="public key of the account (A...); default: the signing key's own account",
    )
    # Not revoked (the account JWT is the NATS operator's, not ours): a deleted or reissued
    # connection's users stop working when they expire, so keep the validity short; the
    # operator may be down for about renew_before before pods lose NATS.
    nats_creds_validity: str = "2h"
    nats_creds_renew_before: str = "90m"
    # Where KEDA's nats-jetstream scaler reads consumer lag (spec.worker.autoscaling).
    keda_nats_monitoring: str | None = Field(
        default=None,
        description="host:port of the NATS monitoring endpoint; default <nats host>:8222",
    )
    keda_nats_account: str | None = Field(
        default=None, description='NATS account of the streams; default nats_account, else "$G"'
    )

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    log_level: str = "info"
    default_resources: Resources = Field(default_factory=_default_resources)
    receiver_resources: Resources | None = None
    worker_resources: Resources | None = None
    reconcile_resources: Resources | None = None
    ingress_class: str | None = None
    # Where the ingress controller runs: with spec.receiver.host and allowedSourceRanges the
    # receiver's NetworkPolicy must still let the controller's pods in (the Ingress itself
    # enforces the ranges on the client's address, which the controller's hop hides).
    ingress_namespace: str = "ingress-nginx"
    # Namespace of the Prometheus that scrapes receiver and worker pods (NetworkPolicies).
    metrics_namespace: str | None = None
    # A tenant's spec.worker.sink.webhook.allowPrivateAddresses is honoured only when the
    # platform allows it: otherwise any tenant could point its worker at cluster internals.
    allow_private_webhooks: bool = False
    # The same for spec.pim.allowPrivateAddresses and spec.worker.sink.postgres.
    # allowPrivateAddresses (a PIM or a database inside the platform's network).
    allow_private_pim: bool = False
    allow_private_postgres: bool = False
    # The TLS of connections with a receiver.host whose spec leaves tls out, e.g.
    # {"mode": "certManager", "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}}:
    # a certificate Akeneo's senders trust without each tenant asking for one.
    default_tls: TLSSpec | None = None
    # Akeneo's Event Platform management API (spec.eventPlatform.manageSubscription), and a CA
    # bundle to verify it with instead of the system's (a test ground or a proxy's CA).
    event_platform_url: str = Field(
        default=DEFAULT_EVENT_PLATFORM_URL, pattern=r"^https://[^\s/]+(/[^\s]*)?$"
    )
    event_platform_ca_file: str | None = None
    # Every connection's stream and bucket limits: defaults for what a spec leaves unset and
    # ceilings a spec may not pass (refused: Ready=False, QuotaExceedsPlatformLimit).
    stream_quotas: StreamQuotas = Field(default_factory=StreamQuotas)

    # What a tenant's spec may claim, and what its pods may reach (issue 15). Issuers:
    # "Kind/name" entries, name "*" for any; the default lets a tenant use only the Issuers of
    # its own namespace, never a platform ClusterIssuer. hostPattern: receiver.host must match
    # it ("*" one DNS label, {namespace} and {name} the connection's); unset, any host.
    allowed_issuers: tuple[str, ...] = ("Issuer/*",)
    host_pattern: str | None = None
    # Egress of the connections' pods: DNS in this namespace, NATS (the pod NATS URLs' hosts:
    # <svc>.<namespace>[.svc...] names and IP literals, or this namespace), public addresses,
    # and the private CIDRs the platform lists (a private PIM, sink database, ...).
    allowed_egress_cidrs: tuple[str, ...] = ()
    egress_dns_namespace: str = "kube-system"
    egress_nats_namespace: str | None = None

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    peering_name: str = "akeneo-connector"
    priority: int = Field(default_factory=lambda: random.randint(1, 1_000_000))
    standalone: bool = False

    # Timers. Short values only make sense in tests.
    maintenance_interval: str = "60s"  # stream drift, TLS renewal, retry of failed reconciles
    cert_validity: str = "2160h"  # 90 days
    cert_renew_before: str = "720h"  # 30 days
    ca_validity: str = "87600h"  # 10 years
    watch_server_timeout: int = 300
    watch_client_timeout: int = 360
    request_timeout: int = 30
    kubeconfig: str | None = None
    port: int = 8080  # 0: no health/metrics server

    @field_validator("allowed_issuers")
    @classmethod
    def _issuers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            kind, _, name = entry.partition("/")
            if entry != "*" and (
                kind not in ("Issuer", "ClusterIssuer") or not _ISSUER_NAME.match(name)
            ):
                raise ValueError(
                    f"allowed_issuers: {entry!r} is not Issuer/<name>, ClusterIssuer/<name> or *"
                )
        return value

    @field_validator("host_pattern")
    @classmethod
    def _host_pattern(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_PATTERN.match(value):
            raise ValueError(
                "host_pattern: lowercase DNS labels, '*' for one label, {namespace} and {name}"
            )
        return value

    @field_validator("allowed_egress_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_cidr(c) for c in value)

    def resources(self, component: str) -> Resources:
        own = {
            "receiver": self.receiver_resources,
            "worker": self.worker_resources,
            "reconcile": self.reconcile_resources,
        }.get(component)
        return own or self.default_resources

    @field_validator(
        "maintenance_interval",
        "cert_validity",
        "cert_renew_before",
        "ca_validity",
        "nats_creds_validity",
        "nats_creds_renew_before",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _nats_credentials(self) -> OperatorSettings:
        if self.nats_signing_key_file and (self.pod_nats_secret or self.pod_nats_user):
            raise ValueError(
                "nats_signing_key_file issues each connection's NATS users: "
                "pod_nats_secret / pod_nats_user (one shared credential) cannot be used with it"
            )
        if self.nats_creds_renew_before_delta >= self.nats_creds_validity_delta:
            raise ValueError("nats_creds_renew_before must be shorter than nats_creds_validity")
        return self

    @property
    def issues_nats_credentials(self) -> bool:
        return bool(self.nats_signing_key_file)

    @property
    def effective_pod_nats_url(self) -> str:
        return self.pod_nats_url or self.nats_url

    @property
    def nats_monitoring_endpoint(self) -> str:
        """host:port KEDA polls for consumer lag (the first server of ``nats_url``)."""
        if self.keda_nats_monitoring:
            return self.keda_nats_monitoring
        first = self.nats_url.split(",")[0].strip()
        host = urlsplit(first if "://" in first else f"nats://{first}").hostname
        return f"{host or 'localhost'}:8222"

    @property
    def nats_monitoring_account(self) -> str:
        return self.keda_nats_account or self.nats_account or "$G"

    @property
    def maintenance_seconds(self) -> float:
        return parse_duration(self.maintenance_interval).total_seconds()

    @property
    def cert_validity_delta(self) -> timedelta:
        return parse_duration(self.cert_validity)

    @property
    def cert_renew_before_delta(self) -> timedelta:
        return parse_duration(self.cert_renew_before)

    @property
    def ca_validity_delta(self) -> timedelta:
        return parse_duration(self.ca_validity)

    @property
    def nats_creds_validity_delta(self) -> timedelta:
        return parse_duration(self.nats_creds_validity)

    @property
    def nats_creds_renew_before_delta(self) -> timedelta:
        return parse_duration(self.nats_creds_renew_before)


_ISSUER_NAME = re.compile(r"^(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
_LABEL = r"(\*|\{namespace\}|\{name\}|[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
_HOST_PATTERN = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")
TUPLE_FIELDS = frozenset({"namespaces", "allowed_issuers", "allowed_egress_cidrs"})

# flag name, env name, settings field, help
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--nats-url", "AKENEO_NATS_URL", "nats_url", "NATS the operator provisions streams on"),
    ("--nats-user", "AKENEO_NATS_USER", "nats_user", "NATS user of the operator"),
    (
        "--nats-password-file",
        "AKENEO_NATS_PASSWORD_FILE",
        "nats_password_file",
        "file with the NATS password",
    ),
    (
        "--nats-creds-file",
        "AKENEO_NATS_CREDS_FILE",
        "nats_creds_file",
        "NATS .creds file of the operator",
    ),
    (
        "--pod-nats-url",
        "AKENEO_OPERATOR_POD_NATS_URL",
        "pod_nats_url",
        "NATS URL written into pods (default: --nats-url)",
    ),
    (
        "--pod-nats-user",
        "AKENEO_OPERATOR_POD_NATS_USER",
        "pod_nats_user",
        "NATS user written into pods",
    ),
    (
        "--pod-nats-secret",
        "AKENEO_OPERATOR_POD_NATS_SECRET",
        "pod_nats_secret",
        "Secret in each connection namespace holding the pods' NATS password or creds",
    ),
    (
        "--pod-nats-secret-key",
        "AKENEO_OPERATOR_POD_NATS_SECRET_KEY",
        "pod_nats_secret_key",
        "key of that Secret: `password` or `nats.creds`",
    ),
    (
        "--nats-signing-key-file",
        "AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE",
        "nats_signing_key_file",
        "file with the NATS account signing key seed: issue per-connection NATS users",
    ),
    (
        "--nats-account",
        "AKENEO_OPERATOR_NATS_ACCOUNT",
        "nats_account",
        "public key of the NATS account the signing key belongs to",
    ),
    (
        "--nats-creds-validity",
        "AKENEO_OPERATOR_NATS_CREDS_VALIDITY",
        "nats_creds_validity",
        "lifetime of the issued NATS user JWTs",
    ),
    (
        "--nats-creds-renew-before",
        "AKENEO_OPERATOR_NATS_CREDS_RENEW_BEFORE",
        "nats_creds_renew_before",
        "reissue NATS user JWTs this long before expiry",
    ),
    (
        "--keda-nats-monitoring",
        "AKENEO_OPERATOR_KEDA_NATS_MONITORING",
        "keda_nats_monitoring",
        "host:port of the NATS monitoring endpoint KEDA reads consumer lag from",
    ),
    (
        "--keda-nats-account",
        "AKENEO_OPERATOR_KEDA_NATS_ACCOUNT",
        "keda_nats_account",
        "NATS account KEDA looks the streams up in",
    ),
    (
        "--metrics-namespace",
        "AKENEO_OPERATOR_METRICS_NAMESPACE",
        "metrics_namespace",
        "namespace of the Prometheus scraping the pods: their NetworkPolicies admit it",
    ),
    ("--image", "AKENEO_IMAGE", "image", "image of receiver, worker and reconcile pods"),
    (
        "--image-pull-policy",
        "AKENEO_OPERATOR_IMAGE_PULL_POLICY",
        "image_pull_policy",
        "imagePullPolicy of the pods",
    ),
    (
        "--log-level",
        "AKENEO_LOG_LEVEL",
        "log_level",
        "log level of the operator and AKENEO_LOG_LEVEL of its pods",
    ),
    (
        "--default-resources",
        "AKENEO_DEFAULT_RESOURCES",
        "default_resources",
        "JSON {requests, limits} of every pod the operator creates",
    ),
    (
        "--receiver-resources",
        "AKENEO_OPERATOR_RECEIVER_RESOURCES",
        "receiver_resources",
        "JSON {requests, limits}",
    ),
    (
        "--worker-resources",
        "AKENEO_OPERATOR_WORKER_RESOURCES",
        "worker_resources",
        "JSON {requests, limits}",
    ),
    (
        "--reconcile-resources",
        "AKENEO_OPERATOR_RECONCILE_RESOURCES",
        "reconcile_resources",
        "JSON {requests, limits}",
    ),
    (
        "--ingress-class",
        "AKENEO_OPERATOR_INGRESS_CLASS",
        "ingress_class",
        "ingressClassName of Ingresses",
    ),
    (
        "--ingress-namespace",
        "AKENEO_OPERATOR_INGRESS_NAMESPACE",
        "ingress_namespace",
        "namespace of the ingress controller (let into receivers with allowedSourceRanges)",
    ),
    (
        "--allow-private-webhooks",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_WEBHOOKS",
        "allow_private_webhooks",
        "true: honour spec.worker.sink.webhook.allowPrivateAddresses (default: refuse it)",
    ),
    (
        "--allow-private-pim",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_PIM",
        "allow_private_pim",
        "true: honour spec.pim.allowPrivateAddresses (default: refuse it)",
    ),
    (
        "--allow-private-postgres",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_POSTGRES",
        "allow_private_postgres",
        "true: honour spec.worker.sink.postgres.allowPrivateAddresses (default: refuse it)",
    ),
    (
        "--default-tls",
        "AKENEO_OPERATOR_DEFAULT_TLS",
        "default_tls",
        "JSON tls spec for connections with receiver.host that leave tls out, e.g. "
        '{"mode":"certManager","issuerRef":{"kind":"ClusterIssuer","name":"letsencrypt"}}',
    ),
    (
        "--event-platform-url",
        "AKENEO_OPERATOR_EVENT_PLATFORM_URL",
        "event_platform_url",
        "base URL of Akeneo's Event Platform management API (managed subscriptions)",
    ),
    (
        "--event-platform-ca-file",
        "AKENEO_OPERATOR_EVENT_PLATFORM_CA_FILE",
        "event_platform_ca_file",
        "CA bundle verifying the management API (default: the system's trust store)",
    ),
    (
        "--stream-quotas",
        "AKENEO_OPERATOR_STREAM_QUOTAS",
        "stream_quotas",
        'JSON {"default": {...}, "max": {...}} of stream and bucket quotas',
    ),
    (
        "--allowed-issuers",
        "AKENEO_OPERATOR_ALLOWED_ISSUERS",
        "allowed_issuers",
        "comma list of Kind/name a tls.issuerRef may name, name * for any (default: Issuer/*)",
    ),
    (
        "--host-pattern",
        "AKENEO_OPERATOR_HOST_PATTERN",
        "host_pattern",
        "receiver.host must match, e.g. *.{namespace}.connectors.example.com (default: any)",
    ),
    (
        "--allowed-egress-cidrs",
        "AKENEO_OPERATOR_ALLOWED_EGRESS_CIDRS",
        "allowed_egress_cidrs",
        "comma list of private CIDRs the connections' pods may reach besides public addresses",
    ),
    (
        "--egress-dns-namespace",
        "AKENEO_OPERATOR_EGRESS_DNS_NAMESPACE",
        "egress_dns_namespace",
        "namespace of the cluster DNS the pods may query on port 53",
    ),
    (
        "--egress-nats-namespace",
        "AKENEO_OPERATOR_EGRESS_NATS_NAMESPACE",
        "egress_nats_namespace",
        "namespace of the NATS servers (default: from the pod NATS URLs)",
    ),
    (
        "--namespaces",
        "AKENEO_WATCH_NAMESPACES",
        "namespaces",
        "comma list of watched namespaces (default: all)",
    ),
    (
        "--peering-name",
        "AKENEO_PEERING_NAME",
        "peering_name",
        "kopf peering object shared by replicas",
    ),
    (
        "--priority",
        "AKENEO_OPERATOR_PRIORITY",
        "priority",
        "peering priority (default: random, so one replica acts)",
    ),
    (
        "--maintenance-interval",
        "AKENEO_OPERATOR_MAINTENANCE_INTERVAL",
        "maintenance_interval",
        "stream drift / TLS renewal check period (jittered)",
    ),
    (
        "--cert-validity",
        "AKENEO_OPERATOR_CERT_VALIDITY",
        "cert_validity",
        "validity of self-signed serving certs",
    ),
    (
        "--cert-renew-before",
        "AKENEO_OPERATOR_CERT_RENEW_BEFORE",
        "cert_renew_before",
        "renew serving certs this long before expiry",
    ),
    (
        "--watch-server-timeout",
        "AKENEO_OPERATOR_WATCH_SERVER_TIMEOUT",
        "watch_server_timeout",
        "seconds before the API server ends a watch",
    ),
    (
        "--watch-client-timeout",
        "AKENEO_OPERATOR_WATCH_CLIENT_TIMEOUT",
        "watch_client_timeout",
        "seconds before a stalled watch is dropped and reconnected",
    ),
    ("--port", "AKENEO_PORT", "port", "port of the operator's /healthz and /metrics"),
    (
        "--kubeconfig",
        "KUBECONFIG",
        "kubeconfig",
        "kubeconfig file (default: in-cluster service account)",
    ),
)


def configure(parser: argparse.ArgumentParser) -> None:
    for flag, env, _field, help_text in _OPTIONS:
        parser.add_argument(flag, default=None, help=f"{help_text} [env {env}]")
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=None,
        help="no peering: act even if other replicas run (tests, single replica)",
    )


def _convert(field: str, raw: str) -> Any:
    if field in TUPLE_FIELDS:
        return tuple(n.strip() for n in raw.split(",") if n.strip())
    if field.endswith("_resources"):
        return Resources.model_validate(json.loads(raw))
    if field == "stream_quotas":
        return StreamQuotas.model_validate(json.loads(raw))
    if field in ("allow_private_webhooks", "allow_private_pim", "allow_private_postgres"):
        return _truthy(raw)
    if field == "default_tls":
        parsed = json.loads(raw) if raw.strip() else None
        return TLSSpec.model_validate(parsed) if parsed else None  # {} (chart default): none
    return raw


def _truthy(raw: str) -> bool:
    """The components' boolean words (``on`` too); the operator stays lenient: else false."""
    return raw.strip().lower() in TRUE


def from_sources(args: argparse.Namespace | None, env: Mapping[str, str]) -> OperatorSettings:
    """Merge flags over env over defaults; raise ``pydantic.ValidationError`` when invalid."""
    values: dict[str, Any] = {}
    for _flag, env_name, field, _help in _OPTIONS:
        raw = getattr(args, field, None) if args is not None else None
        if raw is None:
            raw = env.get(env_name) or None
        if raw is not None:
            values[field] = _convert(field, str(raw))
    standalone = getattr(args, "standalone", None) if args is not None else None
    if standalone is None:
        standalone = _truthy(env.get("AKENEO_OPERATOR_STANDALONE", ""))
    values["standalone"] = bool(standalone)
    return OperatorSettings.model_validate(values)


def from_env() -> OperatorSettings:
    return from_sources(None, os.environ)
