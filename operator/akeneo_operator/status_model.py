"""The AkeneoConnection status as a typed model: the source of the CRD's status schema and of
the status part of ``docs/api.md``.

``status.render_status`` builds what the operator writes; the unit tests validate its output
against :class:`ConnectionStatus` (unknown fields refused), so the schema, the reference and
the writer cannot drift apart. :data:`CONDITIONS` documents each condition type of
``status.CONDITION_TYPES`` with the reasons the operator gives it; a unit test fails when the
code sets a reason listed nowhere here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from akeneo_operator import status as st

INT64: dict[str, Any] = {"format": "int64"}
Count = Annotated[int, Field(ge=0, json_schema_extra=INT64)]


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(StatusModel):
    """One observation, as Kubernetes API conventions define conditions."""

    type: Annotated[str, Field(max_length=316)] = Field(
        description="Condition type, e.g. Ready (the list is in conditions' description)"
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown")
    reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Why, in one CamelCase word (see docs/api.md)"
    )
    message: Annotated[str, Field(max_length=32768)] | None = Field(
        default=None, description="Human-readable details; never a secret value"
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When status last changed (kept while only reason changes)"
    )
    observed_generation: Count | None = Field(
        default=None, description="metadata.generation this condition was computed from"
    )


class Endpoints(StatusModel):
    """The receiver's public URLs: give each to the Akeneo sender it is named for."""

    events: str | None = Field(
        default=None,
        description="Legacy Events API Request URL (the Events API is retired 2026-12-31)",
    )
    event_platform: str | None = Field(
        default=None, description="Event Platform subscription destination URL"
    )
    notifications: str | None = Field(
        default=None,
        description="Event Platform subscriber notification_webhook_url (suspension, "
        "revocation, resumption)",
    )


class Counters(StatusModel):
    """Totals the worker keeps in the connection's bucket, read by the operator."""

    applied: Count | None = Field(default=None, description="Changes applied to the sink")
    skipped_outdated: Count | None = Field(
        default=None,
        description="Events skipped because the sink already holds a newer version",
    )
    dead_lettered: Count | None = Field(
        default=None,
        description="Events moved to the dead-letter subject after worker.maxDeliver tries "
        "or a refusal (akeneo-connector replay applies them again)",
    )


class SyncStatus(StatusModel):
    """On-demand syncs: the last handled value of each annotation."""

    sync_now: str | None = Field(
        default=None,
        description="Last handled akeneo.connectors.dev/sync-now value (sha256: form when "
        "long); a new value starts a reconcile Job",
    )
    full_scan_now: str | None = Field(
        default=None,
        description="Last handled akeneo.connectors.dev/full-scan-now value; a new value "
        "starts a full scan Job",
    )
    initial_job: str | None = Field(
        default=None, description="Job that ran the first sync of a never-synced connection"
    )


class CatchUpStatus(StatusModel):
    """Repair of the windows in which events may have been lost (condition CatchUp)."""

    through: Count | None = Field(
        default=None, description="Stream sequence of the newest gap record repaired"
    )
    job: str | None = Field(default=None, description="Current or last catch-up Job")
    planned: Count | None = Field(
        default=None, description="Newest gap record the current Job covers"
    )
    since: datetime | None = Field(
        default=None, description="The Job reads what was updated after this time"
    )
    windows: str | None = Field(
        default=None, description="The merged windows the Job repairs, as text"
    )
    attempt: Count | None = Field(
        default=None, description="Tries of the current windows (retried with backoff)"
    )
    failed_at: datetime | None = Field(
        default=None, description="When the current Job failed; the retry waits from here"
    )
    receiver_down_since: datetime | None = Field(
        default=None,
        description="No receiver pod ready since then; its return closes a gap window",
    )


Text = Annotated[str, Field(max_length=256)]
Fingerprint = Annotated[str, Field(max_length=64)]


class EventPlatformStatus(StatusModel):
    """The Event Platform subscription the operator manages
    (spec.eventPlatform.manageSubscription)."""

    subscriber_id: Text | None = Field(default=None, description="The subscriber's id")
    subscription_id: Text | None = Field(default=None, description="The subscription's id")
    status: Text | None = Field(
        default=None,
        description="The subscription's status as the management API last said "
        "(active, suspended, revoked, deleted)",
    )
    last_checked: datetime | None = Field(
        default=None, description="When the management API was last read"
    )
    suspended_by: Literal["system", "user", "unknown"] | None = Field(
        default=None,
        description="Who suspended it (from the notification): system ones are resumed "
        "automatically (autoResume), user ones never",
    )
    suspended_since: datetime | None = Field(
        default=None, description="Suspended since (opens a gap window)"
    )
    created_subscriber: bool | None = Field(
        default=None,
        description="The operator created the subscriber (deleted with the connection when it "
        "holds no other subscription)",
    )
    spec_hash: Text | None = Field(
        default=None, description="Digest of what the subscription was set to"
    )
    last_resume: datetime | None = Field(
        default=None, description="The operator's last resume attempt"
    )
    resume_attempts: Count | None = Field(
        default=None, description="Resume attempts since the suspension (backoff)"
    )
    error: Text | None = Field(default=None, description="The last management API error, if any")
    failures: Count | None = Field(
        default=None, description="Consecutive management API failures (backoff)"
    )
    next_try: datetime | None = Field(
        default=None, description="No management API call before this time"
    )


class RotationTrack(StatusModel):
    """One secret's rotation: fingerprints (first 12 hex digits of SHA-256), never secrets."""

    phase: Literal["Idle", "SecretAdded", "WaitingForReceivers", "Retiring"] | None = Field(
        default=None, description="Where the rotation stands"
    )
    old: Fingerprint | None = Field(
        default=None, description="Fingerprint of the secret being retired"
    )
    new: Fingerprint | None = Field(
        default=None, description="Fingerprint of the secret taking over"
    )
    signing_since: datetime | None = Field(
        default=None, description="The remote side signs with the new secret since"
    )


class SecretRotationStatus(StatusModel):
    """Rotation of the Event Platform secrets (secretRotationPeriod,
    akeneo.connectors.dev/rotate-secrets)."""

    event_platform: RotationTrack | None = Field(
        default=None, description="The subscription's secrets"
    )
    notification: RotationTrack | None = Field(
        default=None, description="The notification webhook secret"
    )
    request: Text | None = Field(
        default=None, description="The last rotate-secrets value handled (sha256: when long)"
    )
    rotated: datetime | None = Field(
        default=None, description="Last rotation completed (or first seen)"
    )


class ConnectionStatus(StatusModel):
    """Observed state, written by the operator."""

    observed_generation: Count | None = Field(
        default=None, description="metadata.generation the operator last acted on"
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Types: " + ", ".join(st.CONDITION_TYPES),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    endpoint: str | None = Field(
        default=None, description="Legacy Events API Request URL (same as endpoints.events)"
    )
    endpoints: Endpoints | None = Field(
        default=None, description="The receiver's public URLs, one per Akeneo sender"
    )
    last_reconcile_time: datetime | None = Field(
        default=None, description="When the last reconcile Job finished"
    )
    last_reconcile_result: str | None = Field(
        default=None, description="Outcome of the last reconcile Job (e.g. Succeeded, Failed)"
    )
    counters: Counters | None = Field(default=None, description="Figures the worker reports")
    sync: SyncStatus | None = Field(
        default=None, description="On-demand syncs: the last handled value of each annotation"
    )
    catch_up: CatchUpStatus | None = Field(
        default=None, description="Repair of the windows in which events may have been lost"
    )
    event_platform: EventPlatformStatus | None = Field(
        default=None,
        description="The Event Platform subscription the operator manages "
        "(spec.eventPlatform.manageSubscription)",
    )
    secret_rotation: SecretRotationStatus | None = Field(
        default=None,
        description="Rotation of the Event Platform secrets (fingerprints, never secrets)",
    )
    kopf: dict[str, Any] | None = Field(
        default=None,
        description="The operator framework's own progress records",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


# -- condition types and their reasons --------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    name: str
    status: Literal["True", "False", "Unknown"]
    meaning: str


@dataclass(frozen=True)
class ConditionType:
    type: str
    meaning: str
    reasons: tuple[Reason, ...]


PENDING = Reason(st.UNKNOWN.reason, "Unknown", "Not observed yet (the first reconcile is running)")

_DEPLOYMENT_REASONS = (
    Reason("PodsAvailable", "True", "Every desired pod is available"),
    Reason("PartiallyAvailable", "True", "Some pods are available, not all (e.g. a rollout)"),
    Reason("ScaledToZero", "True", "0 replicas asked for (or the autoscaler idles)"),
    Reason("NoPodsAvailable", "False", "No pod is available: see the pods' Events and logs"),
    Reason("ProgressDeadlineExceeded", "False", "The rollout is stuck (image, quota, probes)"),
    Reason("DeploymentMissing", "False", "The Deployment does not exist (yet)"),
    PENDING,
)

# Reasons that hold Ready=False by themselves, before any component is looked at.
BLOCKERS = (
    Reason("InvalidSpec", "False", "The spec fails validation: the message names each field"),
    Reason("SecretMissing", "False", "A Secret the spec names does not exist"),
    Reason("SecretKeyMissing", "False", "A Secret the spec names lacks a key it needs"),
    Reason(
        "SecretInvalid",
        "False",
        "A line of the webhook signingSecret is not usable (standard: a whsec_ secret)",
    ),
    Reason(
        "PrivateAddressesNotAllowed",
        "False",
        "The PIM, webhook or database host is private/loopback/link-local and the platform "
        "does not allow it (allowPrivateAddresses and the operator's settings)",
    ),
    Reason(
        "DsnNotAllowed",
        "False",
        "The postgres DSN is not text or uses a libpq parameter outside the allow-list",
    ),
    Reason(
        "QuotaExceedsPlatformLimit",
        "False",
        "A stream or bucket limit is above the platform's ceiling",
    ),
    Reason("IssuerNotAllowed", "False", "tls.issuerRef names an issuer the platform refuses"),
    Reason("HostNotAllowed", "False", "receiver.host does not match the platform's pattern"),
    Reason("HostConflict", "False", "An older connection already uses receiver.host"),
    Reason(
        "ChildNameConflict",
        "False",
        "An object not owned by this connection holds a child's name: nothing is built",
    ),
    Reason("KubernetesApiError", "False", "The API server refused a request of the operator"),
    Reason("ReconcileFailed", "False", "The operator failed unexpectedly; it retries"),
)

CONDITIONS: tuple[ConditionType, ...] = (
    ConditionType(
        st.READY,
        "The connection works end to end: no blocker, and every component condition True "
        "(CatchUp, PubliclyTrusted and NatsIsolated are shown but do not hold it down; nor "
        "does ReconcileScheduled when reconciliation is suspended or has no credentials). "
        "Otherwise it carries the reason of the first component that is not True, its "
        "message prefixed with that condition's type.",
        (
            Reason("AllComponentsReady", "True", "Receiver, worker, stream and TLS are ready"),
            *BLOCKERS,
        ),
    ),
    ConditionType(
        st.TLS_READY,
        "The receiver's serving certificate is valid",
        (
            Reason("CertificateValid", "True", "selfSigned: the certificate is valid"),
            Reason("CertificateIssued", "True", "certManager: the Certificate is ready"),
            Reason("SecretValid", "True", "secret: tls.secretName holds a valid pair"),
            Reason("CertificatePending", "False", "certManager: not issued yet"),
            Reason("CertManagerNotInstalled", "False", "certManager mode without cert-manager"),
            Reason("SecretKeyMissing", "False", "secret: tls.crt or tls.key is missing"),
            Reason("InvalidCertificate", "False", "secret: tls.crt is not a PEM certificate"),
            Reason("KeyMismatch", "False", "secret: tls.key does not match tls.crt"),
            Reason("CertificateNotYetValid", "False", "secret: the certificate is not valid yet"),
            Reason("CertificateExpired", "False", "secret: the certificate has expired"),
            Reason("HostNotCovered", "False", "secret: the certificate lacks receiver.host"),
            PENDING,
        ),
    ),
    ConditionType(
        st.STREAM_READY,
        "The JetStream stream and key-value bucket exist with the spec's settings",
        (
            Reason("StreamProvisioned", "True", "Stream and bucket are in place"),
            Reason(
                "NatsUnavailable", "False", "NATS unreachable, or it refused the operator; retried"
            ),
            Reason(
                "ImmutableFieldChanged",
                "False",
                "The stream's storage or retention was changed by hand; JetStream cannot "
                "change them back in place: restore them, or delete the stream",
            ),
            Reason(
                "InsufficientStorage",
                "False",
                "JetStream cannot reserve maxBytes: lower stream.maxBytes or add storage",
            ),
            PENDING,
        ),
    ),
    ConditionType(
        st.NATS_CREDENTIALS,
        "The pods have NATS credentials",
        (
            Reason("CredentialsIssued", "True", "NATS users of the connection's own are issued"),
            Reason("SharedCredentials", "True", "No signing key: pods use the platform's Secret"),
            Reason("NoCredentials", "True", "No signing key: pods connect without credentials"),
            Reason("SigningKeyInvalid", "False", "The operator's account signing key is unusable"),
            PENDING,
        ),
    ),
    ConditionType(st.RECEIVER_READY, "Receiver pods are available", _DEPLOYMENT_REASONS),
    ConditionType(st.WORKER_READY, "Worker pods are available", _DEPLOYMENT_REASONS),
    ConditionType(
        st.RECONCILE_SCHEDULED,
        "The periodic reconcile CronJobs are in place",
        (
            Reason("Scheduled", "True", "The CronJobs run on reconciliation.schedule"),
            Reason("Suspended", "False", "reconciliation.suspend is true (does not hold Ready)"),
            Reason(
                "NoPimCredentials",
                "False",
                "No pim.credentialsSecret: nothing to reconcile from (does not hold Ready)",
            ),
            PENDING,
        ),
    ),
    ConditionType(
        st.EVENT_SUBSCRIPTION,
        "The Event Platform subscription's state, from its subscriber notifications; absent "
        "until the first one",
        (
            Reason("Resumed", "True", "The subscription was resumed"),
            Reason(
                "SuspendedBySystem",
                "False",
                "The Event Platform suspended it (e.g. too many failed deliveries); events "
                "are not kept while suspended: fix the cause, resume it in Akeneo",
            ),
            Reason("SuspendedByUser", "False", "A user suspended it"),
            Reason(
                "Suspended",
                "False",
                "Managed subscription suspended, by whom is not known (no notification seen)",
            ),
            Reason("Revoked", "False", "It was revoked"),
            Reason("Active", "True", "Managed subscription: the management API says active"),
            Reason(
                "EventPlatformNeedsHost",
                "False",
                "manageSubscription needs receiver.host: the platform delivers to the "
                "receiver's public https://<host>/event-platform",
            ),
            Reason(
                "EventPlatformSecretMissing",
                "False",
                "The user's signature Secret has no eventPlatformSecrets: add them, or delete "
                "the Secret and the operator generates its own",
            ),
            Reason(
                "EventPlatformUnauthorized",
                "False",
                "The PIM or the management API refused the connection's credentials (401/403)",
            ),
            Reason("EventPlatformNotFound", "False", "The subscriber or subscription is gone"),
            Reason(
                "EventPlatformLimitReached",
                "False",
                "Akeneo's limit of subscribers per PIM or subscriptions per subscriber",
            ),
            Reason(
                "EventPlatformRejected",
                "False",
                "The management API refused the request (its message is in the condition)",
            ),
            Reason(
                "EventPlatformUnavailable",
                "Unknown",
                "The management API cannot be reached; retried with backoff",
            ),
        ),
    ),
    ConditionType(
        st.CATCH_UP,
        "Repair of the windows in which events may have been lost; absent until the first "
        "window (does not hold Ready)",
        (
            Reason("CaughtUp", "True", "Every recorded window was repaired"),
            Reason("Running", "False", "A catch-up Job reads the missed window"),
            Reason("JobFailed", "False", "The catch-up Job failed; retried with backoff"),
            Reason(
                "CannotReconcile",
                "False",
                "No pim.credentialsSecret or reconciliation suspended: windows stay open",
            ),
            Reason("KubernetesApiError", "False", "The Job could not be created or read"),
        ),
    ),
    ConditionType(
        st.PUBLICLY_TRUSTED,
        "Akeneo's senders (which verify TLS) will trust the certificate of receiver.host; "
        "only with receiver.host (does not hold Ready)",
        (
            Reason("PubliclyTrusted", "True", "The certificate chains to a public root CA"),
            Reason("SelfSignedCertificate", "False", "Self-signed: Akeneo refuses it"),
            Reason("UntrustedCertificate", "False", "No chain to a public root CA"),
            Reason("CertificatePending", "Unknown", "No certificate yet"),
            Reason("CertificateUnreadable", "Unknown", "The certificate is not PEM"),
        ),
    ),
    ConditionType(
        st.NATS_ISOLATED,
        "The connection's pods have NATS users of their own, limited to its stream and "
        "bucket (does not hold Ready: sharing is the platform's explicit choice)",
        (
            Reason("PerConnectionUsers", "True", "Own NATS users, limited to its stream"),
            Reason("SharedCredentials", "False", "Pods share the platform's NATS credentials"),
            Reason("NoCredentials", "False", "Pods connect to NATS without credentials"),
        ),
    ),
    ConditionType(
        st.WORKER_AUTOSCALER,
        "The KEDA ScaledObject of worker.autoscaling; only when it is set",
        (
            Reason("ScaledObjectApplied", "True", "KEDA scales the workers on their lag"),
            Reason("KedaNotInstalled", "False", "KEDA's ScaledObject is not served: install it"),
        ),
    ),
    ConditionType(
        st.SECRET_ROTATION,
        "Rotation of the Event Platform secrets (secretRotationPeriod or the annotation "
        "akeneo.connectors.dev/rotate-secrets); only when asked for (does not hold Ready)",
        (
            Reason("Idle", "True", "No rotation running; the message says when the next is due"),
            Reason("InProgress", "False", "The new secrets are being added"),
            Reason(
                "SecretNotManaged",
                "False",
                "The signature Secret is the user's: the operator rotates only secrets it "
                "generated",
            ),
            Reason(
                "WaitingForReceivers",
                "False",
                "Waiting until every ready receiver loaded the new secret (the old one stays "
                "in use meanwhile)",
            ),
            Reason(
                "RetiringOldSecret",
                "False",
                "The new secret is in use; the old one is still accepted until no delivery "
                "signed with it alone can arrive",
            ),
        ),
    ),
)


# What to do about each reason, by (condition type, reason); empty: nothing to do. README's
# troubleshooting table is generated from it and the meanings above (``apidoc.troubleshooting``).
REMEDIES: dict[tuple[str, str], str] = {
    ("Ready", "AllComponentsReady"): "",
    ("Ready", "InvalidSpec"): "fix the spec; nothing is built until then",
    ("Ready", "SecretMissing"): "create it (retried)",
    ("Ready", "SecretKeyMissing"): "add the key",
    ("Ready", "SecretInvalid"): '`echo "whsec_$(openssl rand -base64 32)"`, or `signature: legacy`',
    ("Ready", "PrivateAddressesNotAllowed"): (
        "use a public address, or (platform) "
        "`allowPrivatePim`/`allowPrivateWebhooks`/`allowPrivatePostgres` and "
        "`allowedEgressCIDRs`"
    ),
    ("Ready", "DsnNotAllowed"): "a plain `postgresql://user:password@host:port/db` DSN",
    ("Ready", "QuotaExceedsPlatformLimit"): "lower it, or (platform) raise the limit",
    (
        "Ready",
        "IssuerNotAllowed",
    ): "an Issuer of the namespace, no `tls` (then `defaultTLS`), or (platform) list it",
    ("Ready", "HostNotAllowed"): "choose a host the pattern allows",
    ("Ready", "HostConflict"): "another host (retried: a freed host is picked up)",
    ("Ready", "ChildNameConflict"): "remove it, or rename the connection",
    ("Ready", "KubernetesApiError"): "the message, the operator's log; retried",
    ("Ready", "ReconcileFailed"): "the operator's log; retried",
    ("TLSReady", "CertificateValid"): "",
    ("TLSReady", "CertificateIssued"): "",
    ("TLSReady", "SecretValid"): "",
    ("TLSReady", "CertificatePending"): "`kubectl describe certificate NAME`",
    ("TLSReady", "CertManagerNotInstalled"): "install cert-manager",
    ("TLSReady", "SecretKeyMissing"): "add the key",
    ("TLSReady", "InvalidCertificate"): "a valid pair for the host",
    ("TLSReady", "KeyMismatch"): "a valid pair for the host",
    ("TLSReady", "CertificateNotYetValid"): "a valid pair for the host",
    ("TLSReady", "CertificateExpired"): "a valid pair for the host",
    ("TLSReady", "HostNotCovered"): "a valid pair for the host",
    ("StreamReady", "StreamProvisioned"): "",
    ("StreamReady", "NatsUnavailable"): "`nats.url`, the servers, the operator's NATS credentials",
    (
        "StreamReady",
        "ImmutableFieldChanged",
    ): "restore them, or delete the stream (then `full-scan-now`)",
    ("StreamReady", "InsufficientStorage"): "lower `spec.stream.maxBytes`, or add storage",
    ("NatsCredentialsReady", "CredentialsIssued"): "",
    (
        "NatsCredentialsReady",
        "SharedCredentials",
    ): "[NATS tenant isolation](#nats-tenant-isolation)",
    ("NatsCredentialsReady", "NoCredentials"): "[NATS tenant isolation](#nats-tenant-isolation)",
    (
        "NatsCredentialsReady",
        "SigningKeyInvalid",
    ): "fix the `nats.accountSigningKey.existingSecret` Secret",
    ("ReceiverReady", "PodsAvailable"): "",
    ("ReceiverReady", "PartiallyAvailable"): "",
    ("ReceiverReady", "ScaledToZero"): "",
    (
        "ReceiverReady",
        "NoPodsAvailable",
    ): "`kubectl get pods -l app.kubernetes.io/instance=NAME`, their events and logs",
    ("ReceiverReady", "ProgressDeadlineExceeded"): "as above",
    ("ReceiverReady", "DeploymentMissing"): "repaired at once; else see the Events",
    ("WorkerReady", "PodsAvailable"): "",
    ("WorkerReady", "PartiallyAvailable"): "",
    ("WorkerReady", "ScaledToZero"): "",
    (
        "WorkerReady",
        "NoPodsAvailable",
    ): "`kubectl get pods -l app.kubernetes.io/instance=NAME`, their events and logs",
    ("WorkerReady", "ProgressDeadlineExceeded"): "as above",
    ("WorkerReady", "DeploymentMissing"): "repaired at once; else see the Events",
    ("ReconcileScheduled", "Scheduled"): "",
    ("ReconcileScheduled", "Suspended"): "unset it",
    ("ReconcileScheduled", "NoPimCredentials"): "add them: Event Platform events need them too",
    ("EventSubscriptionActive", "Resumed"): "",
    (
        "EventSubscriptionActive",
        "SuspendedBySystem",
    ): "fix the cause, resume it in Akeneo; the window is caught up",
    ("EventSubscriptionActive", "SuspendedByUser"): "resume or recreate it in Akeneo",
    ("EventSubscriptionActive", "Revoked"): "resume or recreate it in Akeneo",
    ("CatchUp", "CaughtUp"): "",
    ("CatchUp", "Running"): "wait",
    ("CatchUp", "JobFailed"): "`kubectl logs job/NAME`",
    ("CatchUp", "CannotReconcile"): "add them, or unsuspend",
    ("CatchUp", "KubernetesApiError"): "the message; retried",
    ("PubliclyTrusted", "PubliclyTrusted"): "",
    (
        "PubliclyTrusted",
        "SelfSignedCertificate",
    ): "`defaultTLS` or `certManager` with a public ACME issuer",
    (
        "PubliclyTrusted",
        "UntrustedCertificate",
    ): "`defaultTLS` or `certManager` with a public ACME issuer",
    ("PubliclyTrusted", "CertificatePending"): "see `TLSReady`",
    ("PubliclyTrusted", "CertificateUnreadable"): "see `TLSReady`",
    ("NatsIsolated", "PerConnectionUsers"): "",
    ("NatsIsolated", "SharedCredentials"): "[NATS tenant isolation](#nats-tenant-isolation)",
    ("NatsIsolated", "NoCredentials"): "[NATS tenant isolation](#nats-tenant-isolation)",
    ("WorkerAutoscalerReady", "ScaledObjectApplied"): "",
    ("WorkerAutoscalerReady", "KedaNotInstalled"): "install KEDA, or remove `autoscaling`",
    ("SecretRotation", "Idle"): "",
    ("SecretRotation", "InProgress"): "",
    (
        "SecretRotation",
        "SecretNotManaged",
    ): "rotate by hand: new secret as second line, subscription, then drop the old",
    ("SecretRotation", "WaitingForReceivers"): (
        "the pod's log (`secrets loaded`); a Secret mounted with `subPath` is never "
        "updated; delete the pod to have it read the Secret anew"
    ),
    ("SecretRotation", "RetiringOldSecret"): "",
    ("EventSubscriptionActive", "Suspended"): (
        "`autoResume` resumes a system suspension once the receiver is ready; otherwise "
        "look at the subscription in Akeneo and resume it"
    ),
    ("EventSubscriptionActive", "Active"): "",
    (
        "EventSubscriptionActive",
        "EventPlatformNeedsHost",
    ): "set `receiver.host`, with a publicly trusted certificate",
    ("EventSubscriptionActive", "EventPlatformSecretMissing"): (
        "add `eventPlatformSecrets` to the Secret, or delete it and the operator generates its own"
    ),
    (
        "EventSubscriptionActive",
        "EventPlatformUnauthorized",
    ): "the `pim.credentialsSecret` values, and the connection's permissions in Akeneo",
    (
        "EventSubscriptionActive",
        "EventPlatformNotFound",
    ): "the operator creates them again on its next pass; if it stays, its log",
    (
        "EventSubscriptionActive",
        "EventPlatformLimitReached",
    ): "remove unused subscribers or subscriptions in Akeneo",
    (
        "EventSubscriptionActive",
        "EventPlatformRejected",
    ): "the condition's message says why; fix `spec.eventPlatform`",
    ("EventSubscriptionActive", "EventPlatformUnavailable"): (
        "nothing: retried with backoff; if it lasts, the operator's `eventPlatform.url` and egress"
    ),
}
