"""The AkeneoConnection v1alpha1 spec: the public contract, and the source of the CRD schema.

Field names follow ``shared/docs/architecture.md``. Models accept the camelCase names of the
manifest (and snake_case in Python) and refuse unknown fields, so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from akeneo_connector.durations import DURATION_PATTERN, parse_duration
from akeneo_connector.event_filters import FilterError, parse_filter
from akeneo_connector.event_types import HANDLED, REFERENCE
from akeneo_connector.signing_secrets import WebhookSignature as WebhookSignature  # re-exported

GROUP = "akeneo.connectors.dev"
VERSION = "v1alpha1"
KIND = "AkeneoConnection"
PLURAL = "akeneoconnections"
API_VERSION = f"{GROUP}/{VERSION}"


def _duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_duration)]
"""A duration kept as the user wrote it (so the CRD round-trips), validated on input."""

K8sName = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]


class SpecModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class PimSpec(SpecModel):
    """Where the PIM's REST API is, for hydration and reconciliation."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/.*)?$")] = Field(
        description="Base URL of the PIM, e.g. https://acme.cloud.akeneo.com"
    )
    credentials_secret: K8sName | None = Field(
        default=None,
        description="Secret with keys clientId, clientSecret, username, password",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Allow a PIM on loopback/private/link-local addresses (local dev); "
        "honoured only when the platform allows it",
    )


class ReceiverAutoscaling(SpecModel):
    """Optional HorizontalPodAutoscaler for the receiver (CPU based)."""

    min_replicas: Annotated[int, Field(ge=1, le=50)] = Field(
        default=2,
        description="Fewest receiver pods (default 2: one answers while another restarts; "
        "Akeneo's legacy Events API does not guarantee retries)",
    )
    max_replicas: Annotated[int, Field(ge=1, le=100)] = Field(
        default=10, description="Most receiver pods the autoscaler may run (default 10)"
    )
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = Field(
        default=70,
        description="Average CPU use, in percent of the pods' CPU request, the autoscaler "
        "aims at (default 70)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ReceiverAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("receiver.autoscaling.minReplicas must not exceed maxReplicas")
        return self


class ReceiverSpec(SpecModel):
    """The HTTPS endpoint Akeneo's senders POST events to."""

    signature_secret: K8sName = Field(
        description="Secret with key eventsApiSecret (legacy Events API) and/or "
        "eventPlatformSecrets (Event Platform, one secret per line: primary, secondary); "
        "optional eventPlatformNotificationSecret (subscriber notification webhook)"
    )
    replicas: Annotated[int, Field(ge=1, le=50)] = Field(
        default=2, description="Receiver pods (default 2); ignored when autoscaling is set"
    )
    host: (
        Annotated[
            str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
        ]
        | None
    ) = Field(default=None, description="Public host name: creates an Ingress")
    timestamp_tolerance: Duration = Field(
        default="300s",
        description="Legacy Events API: how far X-Akeneo-Request-Timestamp may be from now, "
        "past or future, before a request is refused as a replay (default 300s)",
    )
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        default=1_048_576,
        description="Largest request body accepted, in bytes (default 1 MiB); a larger one "
        "is answered 413",
    )
    allowed_source_ranges: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")]] = (
        Field(default_factory=list, description="CIDRs allowed to reach the receiver")
    )
    autoscaling: ReceiverAutoscaling | None = Field(
        default=None, description="Creates a HorizontalPodAutoscaler; replicas is then ignored"
    )

    @property
    def tolerance(self) -> timedelta:
        return parse_duration(self.timestamp_tolerance)


class TLSMode(StrEnum):
    SELF_SIGNED = "selfSigned"
    CERT_MANAGER = "certManager"
    SECRET = "secret"


class IssuerRef(SpecModel):
    """The cert-manager issuer that signs the receiver's certificate."""

    kind: Literal["Issuer", "ClusterIssuer"] = Field(
        default="ClusterIssuer",
        description="Issuer (in the connection's namespace) or ClusterIssuer (default)",
    )
    name: K8sName = Field(description="Name of the Issuer or ClusterIssuer")


class TLSSpec(SpecModel):
    """The receiver's serving certificate."""

    mode: TLSMode = Field(
        default=TLSMode.SELF_SIGNED,
        description="selfSigned (a CA of the connection's own, default; Akeneo's senders "
        "refuse it on a public host), certManager (a cert-manager Certificate from issuerRef) "
        "or secret (a kubernetes.io/tls Secret you manage, secretName)",
    )
    issuer_ref: IssuerRef | None = Field(
        default=None, description="certManager mode: the issuer to ask (required then)"
    )
    secret_name: K8sName | None = Field(
        default=None,
        description="secret mode: Secret with keys tls.crt and tls.key (required then)",
    )

    @model_validator(mode="after")
    def _mode_fields(self) -> TLSSpec:
        if self.mode is TLSMode.CERT_MANAGER and self.issuer_ref is None:
            raise ValueError("tls.issuerRef is required when tls.mode is certManager")
        if self.mode is TLSMode.SECRET and self.secret_name is None:
            raise ValueError("tls.secretName is required when tls.mode is secret")
        return self


KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class BucketSpec(SpecModel):
    """Limits of the KV bucket (ordering guard, watermarks); unset: the platform's defaults."""

    # A bucket at its limit refuses new keys (the worker cannot record a new resource and
    # retries), it never drops existing ones.

    max_bytes: Annotated[int, Field(ge=1 * MiB, le=1024 * GiB)] | None = Field(
        default=None, description="Bytes the bucket may hold (default: the platform's)"
    )
    max_msgs: Annotated[int, Field(ge=1000, le=1_000_000_000)] | None = Field(
        default=None, description="Keys the bucket may hold (default: the platform's)"
    )
    max_msg_size: Annotated[int, Field(ge=1 * KiB, le=1 * MiB)] | None = Field(
        default=None, description="Largest value, in bytes (default: the platform's)"
    )

    @model_validator(mode="after")
    def _size_within_bytes(self) -> BucketSpec:
        _size_within_bytes("stream.bucket", self.max_msg_size, self.max_bytes)
        return self


def _size_within_bytes(where: str, size: int | None, total: int | None) -> None:
    if size is not None and total is not None and size > total:
        raise ValueError(f"{where}.maxMsgSize must not exceed {where}.maxBytes")


class StreamSpec(SpecModel):
    """The event stream and its bucket. Unset quotas take the platform's defaults; a tenant
    may lower them, never raise them past the platform's ceilings."""

    # A value above a ceiling is refused (Ready=False, QuotaExceedsPlatformLimit). A stream
    # at its quota refuses new events (the receiver answers 429 to the Event Platform, 503
    # to the legacy PIM) rather than drop unapplied ones; the worker trims applied events
    # when the stream nears its quota, so the quota bounds the backlog and history is kept
    # as room allows (akeneo_connector.jetstream).

    max_age: Duration = Field(
        default="168h",
        description="How long applied events are kept for replay (> 0; at most the "
        "platform's ceiling)",
    )
    duplicate_window: Duration = Field(
        default="2h",
        description="Redeliveries within this window are stored once (> 0, <= maxAge)",
    )
    replicas: Annotated[int, Field(ge=1, le=5)] = Field(
        default=1,
        description="Copies of the stream and its bucket across the NATS cluster's servers "
        "(default 1; 3 survives the loss of one server)",
    )
    preserve_on_delete: bool = Field(
        default=False,
        description="Keep the stream and bucket (events, ordering state) when the connection "
        "is deleted (default false: both are removed)",
    )
    max_bytes: Annotated[int, Field(ge=1 * MiB, le=1024 * GiB)] | None = Field(
        default=None, description="Bytes the stream may hold (default: the platform's)"
    )
    max_msgs: Annotated[int, Field(ge=1000, le=1_000_000_000)] | None = Field(
        default=None, description="Events the stream may hold (default: the platform's)"
    )
    max_msg_size: Annotated[int, Field(ge=4 * KiB, le=64 * MiB)] | None = Field(
        default=None, description="Largest event, in bytes (default: the platform's)"
    )
    bucket: BucketSpec = Field(
        default_factory=BucketSpec,
        description="Limits of the key-value bucket that holds the ordering guard's state",
    )

    @model_validator(mode="after")
    def _window_within_age(self) -> StreamSpec:
        age, window = parse_duration(self.max_age), parse_duration(self.duplicate_window)
        if age <= timedelta(0):
            raise ValueError("stream.maxAge must be longer than 0 (0 would keep events forever)")
        if window <= timedelta(0):
            raise ValueError("stream.duplicateWindow must be longer than 0")
        if window > age:
            raise ValueError("stream.duplicateWindow must not exceed stream.maxAge")
        _size_within_bytes("stream", self.max_msg_size, self.max_bytes)
        return self


class WebhookSink(SpecModel):
    """POST each change to an HTTP endpoint of yours."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = Field(
        description="Endpoint each change is POSTed to: 2xx means applied; 408, 429, 5xx and "
        "timeouts are retried up to worker.maxDeliver; any other answer dead-letters"
    )
    signing_secret: K8sName | None = Field(
        default=None,
        description="Secret with key signingSecret, used to sign each POST: one secret per "
        "line, every one signs (rotation); whsec_ secrets for the standard signature",
    )
    signature: WebhookSignature = Field(
        default=WebhookSignature.STANDARD,
        description="standard (Standard Webhooks headers) or legacy (X-Connector-Timestamp "
        "and X-Connector-Signature, signed with the first secret only)",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Allow URLs resolving to loopback/private/link-local addresses (local dev)",
    )


class PostgresSink(SpecModel):
    """Upsert each resource into a PostgreSQL table."""

    dsn_secret: K8sName = Field(
        description="Secret with key dsn, a libpq connection string or postgresql:// URL"
    )
    table: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = Field(
        default="akeneo_resources",
        description="Table the worker creates and upserts into (default akeneo_resources)",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Allow database hosts on loopback/private/link-local addresses (local "
        "dev); honoured only when the platform allows it",
    )


class SqliteSink(SpecModel):
    """Upsert each resource into a SQLite file (local mode; in a pod the file is on an
    emptyDir, lost with the pod)."""

    path: Annotated[str, Field(min_length=1)] = Field(
        default="/data/catalog.db",
        description="Database file; a relative path is in the data dir (/data in a pod, "
        "--data-dir in local mode)",
    )


class SinkSpec(SpecModel):
    """Exactly one of webhook, postgres, sqlite."""

    webhook: WebhookSink | None = Field(
        default=None, description="POST each change to your HTTP endpoint, signed"
    )
    postgres: PostgresSink | None = Field(
        default=None, description="Upsert each resource into a PostgreSQL table"
    )
    sqlite: SqliteSink | None = Field(
        default=None,
        description="Upsert each resource into a SQLite file: for local mode (in a pod it "
        "lives on an emptyDir and goes with the pod)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SinkSpec:
        chosen = [n for n in ("webhook", "postgres", "sqlite") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "worker.sink needs exactly one of webhook, postgres, sqlite"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self

    @property
    def kind(self) -> Literal["webhook", "postgres", "sqlite"]:
        if self.webhook is not None:
            return "webhook"
        if self.postgres is not None:
            return "postgres"
        return "sqlite"


class WorkerAutoscaling(SpecModel):
    """Workers that follow the backlog: a KEDA ScaledObject (NATS JetStream scaler)."""

    min_replicas: Annotated[int, Field(ge=0, le=50)] = Field(
        default=1, description="Fewest workers; 0 lets KEDA stop them all when idle"
    )
    max_replicas: Annotated[int, Field(ge=1, le=50)] = Field(
        default=5, description="Most workers KEDA may run"
    )
    lag_per_replica: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1000,
        description="Pending messages of the worker's consumer per worker (KEDA lagThreshold)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> WorkerAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("worker.autoscaling.minReplicas must not exceed maxReplicas")
        return self


class WorkerSpec(SpecModel):
    """The workers: read the stream, hydrate from the PIM, apply to the sink in order."""

    replicas: Annotated[int, Field(ge=0, le=50)] = Field(
        default=1,
        description="Worker pods (default 1; 0 stops applying, events wait in the stream); "
        "ignored when autoscaling is set",
    )
    autoscaling: WorkerAutoscaling | None = Field(
        default=None,
        description="Scale workers on their consumer's lag with KEDA (its CRDs must be "
        "installed); replicas is then ignored",
    )
    max_deliver: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10,
        description="Tries per event before it goes to the dead-letter subject, from where "
        "`akeneo-connector replay` can apply it again (default 10)",
    )
    ack_wait: Duration = Field(
        default="30s",
        description="How long one try may take before the event is delivered again (default 30s)",
    )
    sink: SinkSpec = Field(
        default_factory=lambda: SinkSpec(sqlite=SqliteSink()),
        description="Where changes are applied: exactly one of webhook, postgres, sqlite "
        "(default sqlite)",
    )


ReconcileResource = Literal[
    "products", "product_models", "categories", "families", "attributes", "attribute_options"
]
# The catalog structure: read by every run with ``updated >`` (attribute options, which take
# no filter, by the full scan only), and only the full scan finds what was removed (the Event
# Platform announces removals; the legacy Events API does not).
FULL_SCAN_ONLY = ("categories", "families", "attributes", "attribute_options")
STRUCTURE_NEEDS_FULL_SCAN = (
    "reconciliation.fullScanSchedule is required when resources lists categories, "
    "families, attributes or attribute_options (the full scan is what finds their removals)"
)
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4}\S+)$"


class ReconciliationSpec(SpecModel):
    """Periodic catch-up from the PIM's REST API: what events missed, the PIM still has."""

    schedule: Annotated[str, Field(pattern=CRON_PATTERN)] = Field(
        default="*/15 * * * *",
        description="Cron schedule (the cluster's time zone, usually UTC) of the reconcile "
        "job reading what changed since its last run (default every 15 minutes)",
    )
    full_scan_schedule: Annotated[str, Field(pattern=CRON_PATTERN)] | None = Field(
        default="0 3 * * 0",
        description="Cron schedule of the full scan, the only run that finds removed "
        "resources (default Sundays 03:00); null: no full scan",
    )
    resources: list[ReconcileResource] = Field(
        default_factory=lambda: list[ReconcileResource](["products", "product_models"]),
        max_length=6,  # each kind once; also bounds the CEL rule's cost for the API server
        description="What the reconcile jobs read, each from its own watermark (updated >; "
        "attribute_options by the full scan only); removals are found by the full scan "
        "(fullScanSchedule)",
    )
    safety_margin: Duration = Field(
        default="5m",
        description="Each run reads updated > (last watermark - safetyMargin), so changes "
        "saved while the previous run read are not missed (default 5m)",
    )
    suspend: bool = Field(
        default=False,
        description="Stop the scheduled and catch-up jobs (events still flow); default false",
    )

    @model_validator(mode="after")
    def _structure_needs_full_scan(self) -> ReconciliationSpec:
        listed = [r for r in self.resources if r in FULL_SCAN_ONLY]
        if listed and self.full_scan_schedule is None:
            raise ValueError(STRUCTURE_NEEDS_FULL_SCAN)
        return self


# Any type of Akeneo's reference; the receiver acknowledges and ignores the ones it does not
# handle (``akeneo_connector.event_types``).
EventType = Literal[REFERENCE]  # type: ignore[valid-type]
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$"
NEEDS_TECHNICAL_EMAIL = "eventPlatform.technicalEmail is required when manageSubscription is true"


class EventPlatformSpec(SpecModel):
    """The Akeneo Event Platform subscription of this connection. With manageSubscription
    the operator creates, updates, resumes and deletes it through the management API."""

    manage_subscription: bool = Field(
        default=False,
        description="true: the operator creates (or adopts) the subscriber and subscription "
        "with the PIM credentials, keeps them as this spec says and deletes them with the "
        "connection (unless stream.preserveOnDelete); needs receiver.host",
    )
    events: list[EventType] | None = Field(
        default=None,
        min_length=1,
        max_length=len(REFERENCE),
        description="Event types to subscribe to (com.akeneo.pim.v1.*); default: every type "
        "the receiver handles (products, product models, categories, families, attributes, "
        "attribute options)",
    )
    filters: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None,
        description="The subscription's filter in Akeneo's grammar (fields user, user_type, "
        'attribute, scope, channel, locale), e.g. not user_type="api"; checked before use',
    )
    send_product_identifier: bool = Field(
        default=False,
        description="Ask the Event Platform to add the product identifier to product events",
    )
    technical_email: Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)] | None = Field(
        default=None,
        description="The subscriber's technical contact: Akeneo emails it about suspensions "
        "(required with manageSubscription)",
    )
    notifications: bool = Field(
        default=True,
        description="Send subscription notifications (suspended, resumed, revoked) to the "
        "receiver's https://<host>/event-platform/notifications webhook, signed with the "
        "generated eventPlatformNotificationSecret",
    )
    auto_resume: bool = Field(
        default=True,
        description="Resume a subscription the Event Platform suspended (never one a user "
        "suspended) once the receiver is ready again; a catch-up reconcile repairs the gap",
    )
    secret_rotation_period: Duration | None = Field(
        default=None,
        description="Rotate the subscription's signing secret this often (e.g. 720h); unset: "
        "only on request",
    )

    @field_validator("filters")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_filter(value)
            except FilterError as exc:
                raise ValueError(f"eventPlatform.filters: {exc}") from None
        return value

    @model_validator(mode="after")
    def _email(self) -> EventPlatformSpec:
        if self.manage_subscription and self.technical_email is None:
            raise ValueError(NEEDS_TECHNICAL_EMAIL)
        if self.events is not None and len(set(self.events)) != len(self.events):
            raise ValueError("eventPlatform.events lists a type twice")
        return self

    @property
    def event_types(self) -> list[str]:
        """The types the subscription asks for (the default: every handled one)."""
        return list(self.events) if self.events is not None else list(HANDLED)


class AkeneoConnectionSpec(SpecModel):
    """Desired state of one Akeneo PIM connection."""

    pim: PimSpec = Field(description="The PIM whose changes this connection follows")
    receiver: ReceiverSpec = Field(description="The HTTPS endpoint Akeneo's senders POST events to")
    # No default in the CRD on purpose: a spec that leaves tls out gets the operator's
    # defaultTLS (when it has a receiver.host), which a defaulted {mode: selfSigned} would hide.
    tls: TLSSpec | None = Field(
        default=None,
        description="Serving certificate. Left out: the operator's defaultTLS for a connection "
        "with receiver.host (e.g. certManager with an ACME ClusterIssuer), else selfSigned",
    )
    stream: StreamSpec = Field(
        default_factory=StreamSpec,
        description="The durable queue (NATS JetStream) between receiver and workers",
    )
    worker: WorkerSpec = Field(
        default_factory=WorkerSpec, description="The workers and the sink they apply to"
    )
    reconciliation: ReconciliationSpec = Field(
        default_factory=ReconciliationSpec,
        description="Periodic catch-up from the PIM's REST API",
    )
    event_platform: EventPlatformSpec | None = Field(
        default=None,
        description="The Event Platform subscription, managed by the operator when "
        "manageSubscription is true; left out: set up by hand (the receiver accepts it)",
    )

    @property
    def effective_tls(self) -> TLSSpec:
        """``tls``, or selfSigned when it is left out (the operator first applies its
        defaultTLS with ``with_default_tls``)."""
        return self.tls or TLSSpec()

    def with_default_tls(self, default: TLSSpec | None) -> AkeneoConnectionSpec:
        """The spec with ``tls`` filled: the platform's ``default`` for a public host (what
        Akeneo's senders reach, and what an ACME issuer can certify), else selfSigned (an
        in-cluster Service name no public CA issues for)."""
        if self.tls is not None:
            return self
        tls = default if default is not None and self.receiver.host else TLSSpec()
        return self.model_copy(update={"tls": tls})
