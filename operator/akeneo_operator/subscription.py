"""The Event Platform subscription a connection asks for, and what to do about it: pure.

With ``spec.eventPlatform.manageSubscription`` the operator keeps one subscriber and one
subscription per connection on Akeneo's management API. Everything here decides from values
(the spec, the signature Secret's keys, what the API listed, ``status.eventPlatform``); the
async glue (``ep_manager``) only performs the calls. Nothing here puts a secret in a message:
secrets only enter ``Desired`` and leave it as a digest.

- Adoption: the subscriber is found by id (status), else by its name
  (``akeneo-connector <namespace>/<name>``); the subscription by id, else by destination.
- Drift: the API never shows secrets, so what was last written is remembered as a digest
  (``status.eventPlatform.specHash``) and compared with the desired one, plus the visible
  fields (events, destination, filter, email, notification URL).
- Suspensions: who suspended comes from the newest notification (the management API's
  subscription does not say); a system suspension is resumed once ``ReceiverReady`` is True,
  with backoff, at most once per maintenance interval; a user's never.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.status import Cond
from akeneo_pim.paths import Endpoints

# Keys of the signature Secret (``pods.SIGNATURE_FILES``): the subscription's secrets, one a
# line (primary, then secondary), and the subscriber's notification webhook secret.
EVENT_SECRETS_KEY = "eventPlatformSecrets"
NOTIFICATION_KEY = "eventPlatformNotificationSecret"
SECRET_BYTES = 32  # 43 URL-safe characters: within every length Akeneo accepts

NEEDS_HOST = "EventPlatformNeedsHost"
ACTIVE = "active"
SUSPENDED = "suspended"
SuspendedBy = Literal["system", "user", "unknown"]
SUSPENDED_SYSTEM = "subscription.suspended.system"
SUSPENDED_USER = "subscription.suspended.user"
RESUMED = "subscription.resumed"
REVOKED = "subscription.revoked"
BACKOFF_FIRST = timedelta(seconds=10)
BACKOFF_MAX = timedelta(hours=1)
RESUME_MEMORY = timedelta(hours=1)
CLOCK_SKEW = timedelta(
    seconds=30
)  # between Akeneo's notification times and ours  # the platform's success-rate window


def generate_secret() -> str:
    """A new signing secret (URL-safe text: one line, no padding)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def missing_secrets(present: Mapping[str, str], *, notifications: bool) -> dict[str, str]:
    """Keys of the signature Secret to add, with generated values: the subscription's primary
    secret and the notification secret when absent or empty. What a user put there is kept."""
    out: dict[str, str] = {}
    if not present.get(EVENT_SECRETS_KEY, "").strip():
        out[EVENT_SECRETS_KEY] = generate_secret() + "\n"
    if notifications and not present.get(NOTIFICATION_KEY, "").strip():
        out[NOTIFICATION_KEY] = generate_secret()
    return out


def secret_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Desired:
    subscriber_name: str
    technical_email: str
    notification_url: str | None
    notification_secret: str | None = field(repr=False)
    destination: str
    events: tuple[str, ...]
    filters: str | None
    send_product_identifier: bool
    primary: str = field(repr=False)  # secrets never in a repr
    secondary: str | None = field(repr=False)

    def digest(self) -> str:
        """What was written, secrets included, as a short digest (never the values)."""
        text = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:24]

    @property
    def channels(self) -> list[str]:
        return ["email", "webhook"] if self.notification_url else ["email"]


def subscriber_name(names: ConnectionNames) -> str:
    return f"akeneo-connector {names.namespace}/{names.name}"


def desired(
    spec: AkeneoConnectionSpec, names: ConnectionNames, secret_values: Mapping[str, str]
) -> Desired | Cond:
    """The subscriber and subscription ``spec`` asks for; a condition when it cannot be had."""
    ep = spec.event_platform
    assert ep is not None and ep.technical_email is not None  # spec validation
    host = spec.receiver.host
    if not host:
        return Cond.fail(
            NEEDS_HOST,
            "eventPlatform.manageSubscription needs receiver.host: the Event Platform delivers "
            "to the receiver's public https://<host>/event-platform",
        )
    lines = secret_lines(secret_values.get(EVENT_SECRETS_KEY, ""))
    if not lines:
        return Cond.fail(
            "EventPlatformSecretMissing",
            f"Secret {spec.receiver.signature_secret} has no {EVENT_SECRETS_KEY}: add it (one "
            "secret per line), or delete that Secret and the operator generates its own",
        )
    urls = Endpoints.of(f"https://{host}")
    # the first line: while it rotates (``rotation``) the key holds the one in use first
    notification_lines = secret_lines(secret_values.get(NOTIFICATION_KEY, ""))
    notification_secret = notification_lines[0] if notification_lines else None
    webhook = ep.notifications and notification_secret is not None
    return Desired(
        subscriber_name=subscriber_name(names),
        technical_email=ep.technical_email,
        notification_url=urls.notifications if webhook else None,
        notification_secret=notification_secret if webhook else None,
        destination=urls.event_platform,
        events=tuple(ep.event_types),
        filters=ep.filters,
        send_product_identifier=ep.send_product_identifier,
        primary=lines[0],
        secondary=lines[1] if len(lines) > 1 else None,
    )


# -- what the management API shows, in the planner's own terms ---------------------------------


@dataclass(frozen=True)
class RemoteSubscriber:
    id: str
    name: str
    technical_email: str | None = None
    notification_url: str | None = None
    channels: tuple[str, ...] = ()
    status: str = ACTIVE


@dataclass(frozen=True)
class RemoteSubscription:
    id: str
    subscriber_id: str
    status: str
    destination: str
    events: tuple[str, ...] = ()
    filters: str | None = None
    send_product_identifier: bool = False


def live(status: str) -> bool:
    return status not in ("deleted",)


def find_subscriber(
    subscribers: Sequence[RemoteSubscriber], known_id: str | None, name: str
) -> RemoteSubscriber | None:
    """Ours: the one status remembers, else the one named for this connection."""
    usable = [s for s in subscribers if live(s.status)]
    for s in usable:
        if known_id and s.id == known_id:
            return s
    for s in usable:
        if s.name == name:
            return s
    return None


def find_subscription(
    subscriptions: Sequence[RemoteSubscription], known_id: str | None, destination: str
) -> RemoteSubscription | None:
    """Ours: the one status remembers, else one delivering to this receiver."""
    usable = [s for s in subscriptions if live(s.status) and s.status != "revoked"]
    for s in usable:
        if known_id and s.id == known_id:
            return s
    for s in usable:
        if s.destination.rstrip("/") == destination.rstrip("/"):
            return s
    return None


def subscriber_drifted(want: Desired, got: RemoteSubscriber, digest_changed: bool) -> bool:
    return (
        digest_changed
        or got.name != want.subscriber_name
        or got.technical_email != want.technical_email
        or got.notification_url != want.notification_url
        or set(got.channels) != set(want.channels)
    )


def subscription_drifted(want: Desired, got: RemoteSubscription, digest_changed: bool) -> bool:
    return (
        digest_changed
        or got.destination.rstrip("/") != want.destination
        or set(got.events) != set(want.events)
        or (got.filters or None) != want.filters
        or got.send_product_identifier != want.send_product_identifier
    )


# -- suspensions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastNotification:
    """The newest subscription notification the receiver stored (``akeneo_pim.notifications``)."""

    type: str
    subscription_id: str
    timestamp: datetime
    reason: str | None = None


def suspended_by(note: LastNotification | None, subscription_id: str) -> SuspendedBy:
    """Who suspended ``subscription_id``, from the newest notification about it."""
    if note is None or note.subscription_id != subscription_id:
        return "unknown"
    if note.type == SUSPENDED_SYSTEM:
        return "system"
    if note.type == SUSPENDED_USER:
        return "user"
    return "unknown"


def backoff(attempts: int, floor: timedelta = BACKOFF_FIRST) -> timedelta:
    """Wait after ``attempts`` failures in a row: floor, 2x, 4x, ... at most an hour."""
    if attempts <= 0:
        return timedelta(0)
    wait: timedelta = floor * 2 ** min(attempts - 1, 16)
    return min(wait, max(BACKOFF_MAX, floor))


def may_resume(
    ep_status: Mapping[str, Any],
    *,
    auto_resume: bool,
    receiver_ready: bool,
    now: datetime,
    interval: timedelta,
) -> bool:
    """Resume now? Only a system suspension, with autoResume, once the receiver is ready, at
    most once per ``interval`` and with backoff over failed tries."""
    if not auto_resume or not receiver_ready:
        return False
    if ep_status.get("status") != SUSPENDED or ep_status.get("suspendedBy") != "system":
        return False
    last = parse_time(ep_status.get("lastResume"))
    if last is None:
        return True
    attempts = int(ep_status.get("resumeAttempts") or 0)
    return now >= last + max(interval, backoff(attempts, interval))


def subscription_condition(ep_status: Mapping[str, Any]) -> Cond:
    """``EventSubscriptionActive`` from ``status.eventPlatform`` (managed subscriptions)."""
    status = str(ep_status.get("status") or "")
    sid = ep_status.get("subscriptionId")
    if status == ACTIVE:
        return Cond.ok("Active", f"subscription {sid} is active")
    if status == SUSPENDED:
        by = ep_status.get("suspendedBy") or "unknown"
        reason = {"system": "SuspendedBySystem", "user": "SuspendedByUser"}.get(
            str(by), "Suspended"
        )
        since = ep_status.get("suspendedSince")
        tail = {
            "system": "; resumed automatically once the receiver is ready (autoResume)",
            "user": "; resume it in Akeneo or with the management API",
        }.get(str(by), "")
        return Cond.fail(reason, f"subscription {sid} suspended since {since}{tail}")
    if status == "revoked":
        return Cond.fail("Revoked", f"subscription {sid} was revoked")
    return Cond("Unknown", "Pending", "subscription not checked yet")


def error_condition(reason: str, message: str, *, retryable: bool) -> Cond:
    status = "Unknown" if retryable else "False"
    return Cond(status, reason, message[:500])


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Tracked:
    """``status.eventPlatform`` after one look at the subscription, and the gap window it
    closed (start, end) when a suspension ended."""

    status: dict[str, Any]
    closed: tuple[datetime, datetime] | None = None


def track(
    previous: Mapping[str, Any],
    remote_status: str,
    subscription_id: str,
    note: LastNotification | None,
    now: datetime,
) -> Tracked:
    """Fold a polled status and the newest notification into ``status.eventPlatform``.

    A suspension starts at the suspending notification's time when there is one about this
    subscription, else when the poll first saw it; it ends when a poll sees it active again
    (that window is returned, for a catch-up). Who suspended is remembered across polls: a
    later unrelated notification does not forget it."""
    out = {k: v for k, v in previous.items() if k not in ("status", "lastChecked")}
    out.update(status=remote_status, subscriptionId=subscription_id, lastChecked=stamp(now))
    closed = None
    seen_active = parse_time(previous.get("lastChecked"))
    if (
        note is not None
        and previous.get("status") == ACTIVE
        and seen_active is not None
        and note.timestamp < seen_active - CLOCK_SKEW
    ):
        note = None  # older than the last time it was seen active: about an earlier state
    if remote_status == SUSPENDED:
        by = suspended_by(note, subscription_id)
        if by == "unknown":
            by = previous.get("suspendedBy") or "unknown"
        out["suspendedBy"] = by
        if "suspendedSince" not in out:
            noted = note is not None and note.subscription_id == subscription_id
            suspending = noted and note is not None and note.type.startswith("subscription.sus")
            since = note.timestamp if suspending and note is not None else now
            out["suspendedSince"] = stamp(min(since, now))
    elif remote_status == ACTIVE:
        began = parse_time(previous.get("suspendedSince"))
        if began is not None:
            closed = (began, max(began, now))
        for key in ("suspendedBy", "suspendedSince"):
            out.pop(key, None)
        # resumes are remembered for a while: a subscription the platform suspends again
        # soon after is resumed later each time (backoff), not every interval
        last = parse_time(previous.get("lastResume"))
        if last is None or now - last > RESUME_MEMORY:
            out.pop("lastResume", None)
            out.pop("resumeAttempts", None)
    return Tracked(out, closed)
