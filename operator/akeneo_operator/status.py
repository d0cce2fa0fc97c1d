"""Pure status logic: observations -> conditions (with stable transition times) -> status.

The condition types below are the CRD's (``CONDITION_TYPES``; ``status_model`` documents them
and their reasons); ``Ready`` is derived.
Messages never hold secret values: only names of Secrets and keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from akeneo_pim import notifications

TLS_READY = "TLSReady"
STREAM_READY = "StreamReady"
NATS_CREDENTIALS = "NatsCredentialsReady"
RECEIVER_READY = "ReceiverReady"
WORKER_READY = "WorkerReady"
RECONCILE_SCHEDULED = "ReconcileScheduled"
READY = "Ready"
# Known only once the Event Platform sent a subscription notification (suspended, revoked,
# resumed): absent before, so a legacy-only connection never shows it.
EVENT_SUBSCRIPTION = "EventSubscriptionActive"
# Known once a gap window (events possibly lost) was recorded: False while its catch-up
# reconcile is pending or running, True once every recorded window was repaired.
CATCH_UP = "CatchUp"
# Only for a connection with receiver.host: whether Akeneo's senders will trust its
# certificate (they verify TLS; a self-signed one is refused).
PUBLICLY_TRUSTED = "PubliclyTrusted"
# Whether the connection's pods have NATS users of their own (an account signing key) or
# share the platform's credentials. Shown, never a reason for Ready=False: sharing is the
# platform's explicit choice (the chart needs nats.insecureSharedCredentials=true), and
# the pipeline works; blocking Ready would only hide real faults behind a constant one.
NATS_ISOLATED = "NatsIsolated"
# Present only when spec.worker.autoscaling asks for a KEDA ScaledObject.
WORKER_AUTOSCALER = "WorkerAutoscalerReady"
# Present once a rotation of the Event Platform secrets is configured or asked for
# (``rotation``): False while one is under way, never holding Ready down.
SECRET_ROTATION = "SecretRotation"
OPTIONAL = (
    EVENT_SUBSCRIPTION,
    CATCH_UP,
    PUBLICLY_TRUSTED,
    NATS_ISOLATED,
    WORKER_AUTOSCALER,
    SECRET_ROTATION,
)
# Shown, never holding Ready down: a repair in progress is not a fault, a receiver only
# private senders reach (tests, an on-premise PIM trusting a private CA) works as it is, and
# shared NATS credentials are the platform's choice.
NON_BLOCKING = frozenset({CATCH_UP, PUBLICLY_TRUSTED, NATS_ISOLATED, SECRET_ROTATION})
# Conditions that report every change as a Kubernetes Event, their first one included.
ALWAYS_REPORTED = frozenset({READY, EVENT_SUBSCRIPTION, PUBLICLY_TRUSTED})
COMPONENTS = (
    TLS_READY,
    STREAM_READY,
    NATS_CREDENTIALS,
    RECEIVER_READY,
    WORKER_READY,
    RECONCILE_SCHEDULED,
)
# Every condition type, in the order they are rendered (the CRD lists them).
CONDITION_TYPES = (READY, *COMPONENTS, *OPTIONAL)
# ReconcileScheduled=False with these reasons is a choice of the user, not a fault.
BENIGN_RECONCILE_REASONS = frozenset({"Suspended", "NoPimCredentials"})


@dataclass(frozen=True)
class Cond:
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""

    @classmethod
    def ok(cls, reason: str, message: str = "") -> Cond:
        return cls("True", reason, message)

    @classmethod
    def fail(cls, reason: str, message: str = "") -> Cond:
        return cls("False", reason, message)


UNKNOWN = Cond("Unknown", "Pending", "not observed yet")


@dataclass
class Observed:
    """What the operator last saw of one connection; rendered into ``.status``."""

    generation: int | None = None
    blocker: Cond | None = None  # invalid spec / missing Secret: nothing else can be trusted
    conditions: dict[str, Cond] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, UNKNOWN))
    endpoint: str | None = None
    endpoints: dict[str, str] | None = None
    last_reconcile_time: str | None = None
    last_reconcile_result: str | None = None
    counters: dict[str, int] | None = None
    sync: dict[str, Any] | None = None  # status.sync: on-demand syncs handled
    catch_up: dict[str, Any] | None = None  # status.catchUp: gap repair progress
    event_platform: dict[str, Any] | None = None  # status.eventPlatform: managed subscription
    secret_rotation: dict[str, Any] | None = None  # status.secretRotation (``rotation``)


def deployment_condition(deployment: dict[str, Any] | None, component: str) -> Cond:
    """Readiness from the Deployment's available replicas (real pod readiness)."""
    if deployment is None:
        return Cond.fail("DeploymentMissing", f"{component} Deployment does not exist")
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    available = int(status.get("availableReplicas") or 0)
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return Cond.fail("ProgressDeadlineExceeded", f"{component} rollout is stuck")
    if desired == 0:
        return Cond.ok("ScaledToZero", f"{component} has 0 replicas")
    text = f"{available}/{desired} {component} pods available"
    if available >= desired:
        return Cond.ok("PodsAvailable", text)
    if available > 0:
        return Cond.ok("PartiallyAvailable", text)
    return Cond.fail("NoPodsAvailable", text)


def condition_types(obs: Observed) -> tuple[str, ...]:
    """The component conditions of ``obs`` in CRD order: every component, the optional ones
    once observed."""
    return (*COMPONENTS, *(kind for kind in OPTIONAL if kind in obs.conditions))


def ready_condition(obs: Observed) -> Cond:
    if obs.blocker is not None:
        return obs.blocker
    for kind in condition_types(obs):
        cond = obs.conditions.get(kind, UNKNOWN)
        if cond.status == "True" or kind in NON_BLOCKING:
            continue
        if kind == RECONCILE_SCHEDULED and cond.reason in BENIGN_RECONCILE_REASONS:
            continue
        return Cond(
            "False" if cond.status == "False" else "Unknown", cond.reason, f"{kind}: {cond.message}"
        )
    return Cond.ok("AllComponentsReady", "receiver, worker, stream and TLS are ready")


def _time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_conditions(
    obs: Observed, previous: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Conditions in CRD order; ``lastTransitionTime`` kept while the status does not change."""
    before = {c.get("type"): c for c in previous}
    current = {**obs.conditions, READY: ready_condition(obs)}
    out = []
    for kind in (READY, *condition_types(obs)):
        cond = current.get(kind, UNKNOWN)
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == cond.status else None
        item: dict[str, Any] = {
            "type": kind,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since or _time(now),
        }
        if obs.generation is not None:
            item["observedGeneration"] = obs.generation
        out.append(item)
    return out


def render_status(obs: Observed, previous: dict[str, Any], now: datetime) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": render_conditions(obs, previous.get("conditions") or [], now)
    }
    if obs.generation is not None:
        status["observedGeneration"] = obs.generation
    if obs.endpoint:
        status["endpoint"] = obs.endpoint
    if obs.endpoints:
        status["endpoints"] = dict(obs.endpoints)
    if obs.last_reconcile_time:
        status["lastReconcileTime"] = obs.last_reconcile_time
    if obs.last_reconcile_result:
        status["lastReconcileResult"] = obs.last_reconcile_result
    if obs.counters is not None:
        status["counters"] = dict(obs.counters)
    if obs.sync:
        status["sync"] = dict(obs.sync)
    if obs.catch_up:
        status["catchUp"] = dict(obs.catch_up)
    if obs.event_platform:
        status["eventPlatform"] = dict(obs.event_platform)
    if obs.secret_rotation:
        status["secretRotation"] = dict(obs.secret_rotation)
    return status


@dataclass(frozen=True)
class Transition:
    type: str
    status: str
    reason: str
    message: str

    @property
    def event_type(self) -> str:
        return "Normal" if self.status == "True" else "Warning"


def transitions(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[Transition]:
    """Conditions whose status or reason changed: one Kubernetes Event each.

    ``Ready`` and the subscription report every change; a component only once it had a known
    status, and its recovery only while ``Ready`` stays False (when ``Ready`` turns True its
    Event tells it), so that creating a connection yields a couple of Events, not one per
    condition and Deployment rolled out.
    A new subscription notification with the same status and reason (a second suspension
    with another cause) is reported too: its message differs.
    """
    before = {c.get("type"): (c.get("status"), c.get("reason"), c.get("message")) for c in previous}
    ready_before = before.get(READY)
    ready_turns_true = any(c["type"] == READY and c["status"] == "True" for c in current) and (
        ready_before is None or ready_before[0] != "True"
    )
    out = []
    for c in current:
        old = before.get(c["type"])
        same = old is not None and old[:2] == (c["status"], c["reason"])
        if c["type"] == EVENT_SUBSCRIPTION:
            same = same and old is not None and old[2] == c["message"]
        if c["status"] == "Unknown" or same:
            continue
        if c["type"] not in ALWAYS_REPORTED and (old is None or old[0] == "Unknown"):
            continue
        if c["type"] not in ALWAYS_REPORTED and c["status"] == "True" and ready_turns_true:
            continue  # Ready's own Event (all components ready) says it: a rollout is one
        out.append(Transition(c["type"], c["status"], c["reason"], c["message"]))
    return out


def subscription_condition(raw: bytes) -> Cond | None:
    """``EventSubscriptionActive`` from a stored notification body; None for a body that
    does not parse or a notification type that says nothing of the subscription's state."""
    try:
        notification = notifications.parse_notification(raw)
    except ValueError:
        return None
    mapped = notifications.subscription_condition(notification)
    return None if mapped is None else Cond(*mapped)


def job_result(job: dict[str, Any]) -> tuple[str, str] | None:
    """(finish time, result) of a finished reconcile Job, None while it runs."""
    status = job.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") == "Complete":
            return str(status.get("completionTime") or c.get("lastTransitionTime")), "Succeeded"
        if c.get("type") == "Failed":
            return str(c.get("lastTransitionTime")), f"Failed: {c.get('reason') or 'unknown'}"
    return None
