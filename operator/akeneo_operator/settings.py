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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class OperatorOption:
    """One operator setting: its flag, env variable, field, ``--help`` text and, for the
    reference, a longer meaning (``doc``, else the help) and how its default reads."""

    flag: str
    env: str
    field: str
    help: str
    doc: str | None = None
    default_doc: str = "none"

    @property
    def meaning(self) -> str:
        return self.doc or self.help


# The operator's flags, each with its env variable; docs/configuration.md's operator table is
# generated from these (``akeneo_operator.settings_docs``).
OPTIONS: tuple[OperatorOption, ...] = (
    OperatorOption(
        "--nats-url",
        "AKENEO_NATS_URL",
        "nats_url",
        "NATS the operator provisions streams on",
        doc=(
            "NATS URL(s) of the operator's own connection (stream and bucket provisioning, "
            "counters); a comma-separated list for a cluster"
        ),
        default_doc="`nats://nats.nats:4222`",
    ),
    OperatorOption(
        "--nats-user",
        "AKENEO_NATS_USER",
        "nats_user",
        "NATS user of the operator",
        doc="NATS user of the operator's own connection (with `--nats-password-file`)",
    ),
    OperatorOption(
        "--nats-password-file",
        "AKENEO_NATS_PASSWORD_FILE",
        "nats_password_file",
        "file with the NATS password",
        doc="file with the password of `--nats-user`",
    ),
    OperatorOption(
        "--nats-creds-file",
        "AKENEO_NATS_CREDS_FILE",
        "nats_creds_file",
        "NATS .creds file of the operator",
        doc=(
            "NATS `.creds` file of the operator; with none of these but a signing key, the "
            "operator issues its own user in memory (publish `$JS.API.>`, `$JS.FC.>`; "
            "replies on `_INBOX_akeneo_operator.>`)"
        ),
    ),
    OperatorOption(
        "--pod-nats-url",
        "AKENEO_OPERATOR_POD_NATS_URL",
        "pod_nats_url",
        "NATS URL written into pods (default: --nats-url)",
        doc="NATS URL(s) written into the pods (comma-separated list allowed)",
        default_doc="`--nats-url`",
    ),
    OperatorOption(
        "--pod-nats-user",
        "AKENEO_OPERATOR_POD_NATS_USER",
        "pod_nats_user",
        "NATS user written into pods",
        doc="`AKENEO_NATS_USER` of the pods",
    ),
    OperatorOption(
        "--pod-nats-secret",
        "AKENEO_OPERATOR_POD_NATS_SECRET",
        "pod_nats_secret",
        "Secret in each connection namespace holding the pods' NATS password or creds",
        doc="Secret in each connection's namespace, mounted at `/etc/akeneo/nats/`",
    ),
    OperatorOption(
        "--pod-nats-secret-key",
        "AKENEO_OPERATOR_POD_NATS_SECRET_KEY",
        "pod_nats_secret_key",
        "key of that Secret: `password` or `nats.creds`",
        doc=("its key: `password` sets `AKENEO_NATS_PASSWORD_FILE`, else `AKENEO_NATS_CREDS_FILE`"),
        default_doc="`nats.creds`",
    ),
    OperatorOption(
        "--nats-signing-key-file",
        "AKENEO_OPERATOR_NATS_SIGNING_KEY_FILE",
        "nats_signing_key_file",
        "file with the NATS account signing key seed: issue per-connection NATS users",
        doc=(
            "NATS account signing key seed (`SA...`): issue each connection its own NATS "
            "users (excludes `--pod-nats-secret`/`--pod-nats-user`); re-read when it "
            "changes"
        ),
    ),
    OperatorOption(
        "--nats-account",
        "AKENEO_OPERATOR_NATS_ACCOUNT",
        "nats_account",
        "public key of the NATS account the signing key belongs to",
        doc="public key (`A...`) of the account the signing key belongs to",
        default_doc="the key's own account",
    ),
    OperatorOption(
        "--nats-creds-validity",
        "AKENEO_OPERATOR_NATS_CREDS_VALIDITY",
        "nats_creds_validity",
        "lifetime of the issued NATS user JWTs",
        doc=(
            "lifetime of the issued user JWTs (NATS users are not revoked: a deleted or "
            "reissued connection's users stop working within it)"
        ),
        default_doc="`2h`",
    ),
    OperatorOption(
        "--nats-creds-renew-before",
        "AKENEO_OPERATOR_NATS_CREDS_RENEW_BEFORE",
        "nats_creds_renew_before",
        "reissue NATS user JWTs this long before expiry",
        doc=(
            "reissue the user JWTs this long before they expire (about how long the "
            "operator may be down)"
        ),
        default_doc="`90m`",
    ),
    OperatorOption(
        "--keda-nats-monitoring",
        "AKENEO_OPERATOR_KEDA_NATS_MONITORING",
        "keda_nats_monitoring",
        "host:port of the NATS monitoring endpoint KEDA reads consumer lag from",
        doc=(
            "`host:port` of the NATS monitoring endpoint KEDA's `nats-jetstream` scaler "
            "reads consumer lag from (`spec.worker.autoscaling`); chart "
            "`keda.natsMonitoringEndpoint`"
        ),
        default_doc="host of `--nats-url`, port 8222",
    ),
    OperatorOption(
        "--keda-nats-account",
        "AKENEO_OPERATOR_KEDA_NATS_ACCOUNT",
        "keda_nats_account",
        "NATS account KEDA looks the streams up in",
        doc="NATS account the scaler looks the streams up in; chart `keda.natsAccount`",
        default_doc="`--nats-account`, else `$G`",
    ),
    OperatorOption(
        "--metrics-namespace",
        "AKENEO_OPERATOR_METRICS_NAMESPACE",
        "metrics_namespace",
        "namespace of the Prometheus scraping the pods: their NetworkPolicies admit it",
        doc=(
            "namespace of the Prometheus scraping receiver and worker pods: their "
            "NetworkPolicies admit it (worker port 8080; receiver 8443 when "
            "`allowedSourceRanges` restricts it); chart "
            "`metrics.podMonitor.prometheusNamespace`"
        ),
    ),
    OperatorOption(
        "--image",
        "AKENEO_IMAGE",
        "image",
        "image of receiver, worker and reconcile pods",
        default_doc="`akeneo-connector:0.1.0`",
    ),
    OperatorOption(
        "--image-pull-policy",
        "AKENEO_OPERATOR_IMAGE_PULL_POLICY",
        "image_pull_policy",
        "imagePullPolicy of the pods",
        default_doc="`IfNotPresent`",
    ),
    OperatorOption(
        "--log-level",
        "AKENEO_LOG_LEVEL",
        "log_level",
        "log level of the operator and AKENEO_LOG_LEVEL of its pods",
        doc="log level of the operator and `AKENEO_LOG_LEVEL` of its pods",
        default_doc="`info`",
    ),
    OperatorOption(
        "--default-resources",
        "AKENEO_DEFAULT_RESOURCES",
        "default_resources",
        "JSON {requests, limits} of every pod the operator creates",
        doc="JSON `{requests, limits}` of every pod",
        default_doc="requests 100m/128Mi, limit 256Mi",
    ),
    OperatorOption(
        "--receiver-resources",
        "AKENEO_OPERATOR_RECEIVER_RESOURCES",
        "receiver_resources",
        "JSON {requests, limits}",
        doc="receiver pods' override of `--default-resources`",
        default_doc="default resources",
    ),
    OperatorOption(
        "--worker-resources",
        "AKENEO_OPERATOR_WORKER_RESOURCES",
        "worker_resources",
        "JSON {requests, limits}",
        doc="worker pods' override of `--default-resources`",
        default_doc="default resources",
    ),
    OperatorOption(
        "--reconcile-resources",
        "AKENEO_OPERATOR_RECONCILE_RESOURCES",
        "reconcile_resources",
        "JSON {requests, limits}",
        doc="reconcile pods' override of `--default-resources`",
        default_doc="default resources",
    ),
    OperatorOption(
        "--ingress-class",
        "AKENEO_OPERATOR_INGRESS_CLASS",
        "ingress_class",
        "ingressClassName of Ingresses",
        doc="`ingressClassName` of Ingresses",
    ),
    OperatorOption(
        "--ingress-namespace",
        "AKENEO_OPERATOR_INGRESS_NAMESPACE",
        "ingress_namespace",
        ("namespace of the ingress controller (let into receivers with allowedSourceRanges)"),
        doc=(
            "the ingress controller's namespace: with `receiver.host` and "
            "`allowedSourceRanges`, its pods may reach the receiver too (the Ingress "
            "enforces the ranges on the client's address)"
        ),
        default_doc="`ingress-nginx`",
    ),
    OperatorOption(
        "--allow-private-webhooks",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_WEBHOOKS",
        "allow_private_webhooks",
        ("true: honour spec.worker.sink.webhook.allowPrivateAddresses (default: refuse it)"),
        doc=(
            "honour `sink.webhook.allowPrivateAddresses`; off, such a connection is "
            "refused (`Ready=False`, reason `PrivateAddressesNotAllowed`), and so is a "
            "webhook URL on a private IP literal or `localhost`"
        ),
        default_doc="`false`",
    ),
    OperatorOption(
        "--allow-private-pim",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_PIM",
        "allow_private_pim",
        "true: honour spec.pim.allowPrivateAddresses (default: refuse it)",
        doc="the same for `pim.allowPrivateAddresses` and `pim.url`",
        default_doc="`false`",
    ),
    OperatorOption(
        "--allow-private-postgres",
        "AKENEO_OPERATOR_ALLOW_PRIVATE_POSTGRES",
        "allow_private_postgres",
        ("true: honour spec.worker.sink.postgres.allowPrivateAddresses (default: refuse it)"),
        doc=(
            "the same for `sink.postgres.allowPrivateAddresses` and the DSN's hosts; the "
            "operator reads the DSN from its Secret to refuse, before building anything, a "
            "DSN with a refused parameter or Unix socket (`DsnNotAllowed`) or a private "
            "literal host (`PrivateAddressesNotAllowed`), never repeating it"
        ),
        default_doc="`false`",
    ),
    OperatorOption(
        "--default-tls",
        "AKENEO_OPERATOR_DEFAULT_TLS",
        "default_tls",
        (
            "JSON tls spec for connections with receiver.host that leave tls out, e.g. "
            '{"mode":"certManager","issuerRef":{"kind":"ClusterIssuer","name":"letsencrypt"}}'
        ),
        doc=(
            "JSON `tls` spec for connections with `receiver.host` whose spec leaves `tls` "
            "out, e.g. "
            '`{"mode":"certManager","issuerRef":{"kind":"ClusterIssuer","name":"letsencrypt"}}` '
            "(chart value `defaultTLS`); host-less connections stay `selfSigned`"
        ),
    ),
    OperatorOption(
        "--event-platform-url",
        "AKENEO_OPERATOR_EVENT_PLATFORM_URL",
        "event_platform_url",
        "base URL of Akeneo's Event Platform management API (managed subscriptions)",
        doc=(
            "base URL of Akeneo's Event Platform management API, used for connections with "
            "`spec.eventPlatform.manageSubscription` (chart `eventPlatform.url`)"
        ),
        default_doc="`https://event.prd.sdk.akeneo.cloud/api/v1`",
    ),
    OperatorOption(
        "--event-platform-ca-file",
        "AKENEO_OPERATOR_EVENT_PLATFORM_CA_FILE",
        "event_platform_ca_file",
        "CA bundle verifying the management API (default: the system's trust store)",
        doc=(
            "CA bundle verifying the management API's certificate (chart "
            "`eventPlatform.caConfigMap`: a ConfigMap with key `ca.crt`, mounted for it)"
        ),
        default_doc="the system's CAs",
    ),
    OperatorOption(
        "--stream-quotas",
        "AKENEO_OPERATOR_STREAM_QUOTAS",
        "stream_quotas",
        'JSON {"default": {...}, "max": {...}} of stream and bucket quotas',
        doc=(
            'JSON `{"default": {...}, "max": {...}}` (chart `streamQuotas`): quotas of '
            "every connection's stream and bucket; a spec above `max` is refused "
            "(`Ready=False`, reason `QuotaExceedsPlatformLimit`)"
        ),
        default_doc="see below",
    ),
    OperatorOption(
        "--allowed-issuers",
        "AKENEO_OPERATOR_ALLOWED_ISSUERS",
        "allowed_issuers",
        ("comma list of Kind/name a tls.issuerRef may name, name * for any (default: Issuer/*)"),
        doc=(
            "comma list of `Kind/name` (`name` may be `*`; `*` alone: any) a "
            "`tls.issuerRef` may name; else `Ready=False`, `IssuerNotAllowed`"
        ),
        default_doc="`Issuer/*`",
    ),
    OperatorOption(
        "--host-pattern",
        "AKENEO_OPERATOR_HOST_PATTERN",
        "host_pattern",
        ("receiver.host must match, e.g. *.{namespace}.connectors.example.com (default: any)"),
        doc=(
            "`receiver.host` must match, e.g. `*.{namespace}.connectors.example.com` (`*`: "
            "one DNS label); else `HostNotAllowed`. A host an older connection uses is "
            "always refused (`HostConflict`)"
        ),
        default_doc="any host",
    ),
    OperatorOption(
        "--allowed-egress-cidrs",
        "AKENEO_OPERATOR_ALLOWED_EGRESS_CIDRS",
        "allowed_egress_cidrs",
        ("comma list of private CIDRs the connections' pods may reach besides public addresses"),
        doc=(
            "private CIDRs the worker and reconcile pods may reach besides DNS, NATS and "
            "public addresses (receivers: on the NATS ports)"
        ),
    ),
    OperatorOption(
        "--egress-dns-namespace",
        "AKENEO_OPERATOR_EGRESS_DNS_NAMESPACE",
        "egress_dns_namespace",
        "namespace of the cluster DNS the pods may query on port 53",
        doc="the cluster DNS the pods may query (port 53)",
        default_doc="`kube-system`",
    ),
    OperatorOption(
        "--egress-nats-namespace",
        "AKENEO_OPERATOR_EGRESS_NATS_NAMESPACE",
        "egress_nats_namespace",
        "namespace of the NATS servers (default: from the pod NATS URLs)",
        doc=(
            "namespace of the NATS servers (URL hosts `<svc>.<namespace>[.svc…]` give it; "
            "IP literals become `ipBlock`s)"
        ),
        default_doc="from the pod NATS URLs",
    ),
    OperatorOption(
        "--namespaces",
        "AKENEO_WATCH_NAMESPACES",
        "namespaces",
        "comma list of watched namespaces (default: all)",
        doc="comma list of watched namespaces",
        default_doc="all",
    ),
    OperatorOption(
        "--peering-name",
        "AKENEO_PEERING_NAME",
        "peering_name",
        "kopf peering object shared by replicas",
        doc="kopf peering object shared by the replicas",
        default_doc="`akeneo-connector`",
    ),
    OperatorOption(
        "--priority",
        "AKENEO_OPERATOR_PRIORITY",
        "priority",
        "peering priority (default: random, so one replica acts)",
        doc="peering priority: the highest live replica acts",
        default_doc="random",
    ),
    OperatorOption(
        "--maintenance-interval",
        "AKENEO_OPERATOR_MAINTENANCE_INTERVAL",
        "maintenance_interval",
        "stream drift / TLS renewal check period (jittered)",
        doc=(
            "how often the maintenance loop ticks each connection (jittered): stream drift, "
            "TLS renewal, retries, counters"
        ),
        default_doc="`60s`",
    ),
    OperatorOption(
        "--cert-validity",
        "AKENEO_OPERATOR_CERT_VALIDITY",
        "cert_validity",
        "validity of self-signed serving certs",
        doc="validity of self-signed serving certificates",
        default_doc="`2160h`",
    ),
    OperatorOption(
        "--cert-renew-before",
        "AKENEO_OPERATOR_CERT_RENEW_BEFORE",
        "cert_renew_before",
        "renew serving certs this long before expiry",
        doc="renew self-signed serving certificates this long before they expire",
        default_doc="`720h`",
    ),
    OperatorOption(
        "--watch-server-timeout",
        "AKENEO_OPERATOR_WATCH_SERVER_TIMEOUT",
        "watch_server_timeout",
        "seconds before the API server ends a watch",
        doc="seconds after which the API server ends a watch (it is reopened)",
        default_doc="`300`",
    ),
    OperatorOption(
        "--watch-client-timeout",
        "AKENEO_OPERATOR_WATCH_CLIENT_TIMEOUT",
        "watch_client_timeout",
        "seconds before a stalled watch is dropped and reconnected",
        doc="seconds after which a stalled watch is dropped and reconnected",
        default_doc="`360`",
    ),
    OperatorOption(
        "--port",
        "AKENEO_PORT",
        "port",
        "port of the operator's /healthz and /metrics",
        doc="`/healthz` and `/metrics` (0: none)",
        default_doc="8080",
    ),
    OperatorOption(
        "--kubeconfig",
        "KUBECONFIG",
        "kubeconfig",
        "kubeconfig file (default: in-cluster service account)",
        default_doc="in-cluster service account",
    ),
)

# A switch (``--standalone`` takes no value); in env any true word turns it on.
STANDALONE = OperatorOption(
    "--standalone",
    "AKENEO_OPERATOR_STANDALONE",
    "standalone",
    "no peering: act even if other replicas run (tests, single replica)",
    doc="no peering: act even if other replicas run (single replica, tests)",
    default_doc="off",
)


def configure(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        parser.add_argument(option.flag, default=None, help=f"{option.help} [env {option.env}]")
    parser.add_argument(
        STANDALONE.flag,
        action="store_true",
        default=None,
        help=f"{STANDALONE.help} [env {STANDALONE.env}]",
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
    for option in OPTIONS:
        raw = getattr(args, option.field, None) if args is not None else None
        if raw is None:
            raw = env.get(option.env) or None
        if raw is not None:
            values[option.field] = _convert(option.field, str(raw))
    standalone = getattr(args, "standalone", None) if args is not None else None
    if standalone is None:
        standalone = _truthy(env.get(STANDALONE.env, ""))
    values["standalone"] = bool(standalone)
    return OperatorSettings.model_validate(values)


def from_env() -> OperatorSettings:
    return from_sources(None, os.environ)
