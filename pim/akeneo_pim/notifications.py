"""Event Platform notification webhooks: a subscription was suspended, revoked or resumed.

Payload per https://api.akeneo.com/event-platform/notification-webhooks.html#payload. The
receiver verifies and stores the raw body on the connection's stream
(``ConnectionNames.notifications_subject``); the operator and local mode read it back with
``parse_notification`` and turn it into the ``EventSubscriptionActive`` condition with
``subscription_condition``. Everything here is text from outside: bounded before it is shown.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from akeneo_pim.formats import PayloadError, Timestamp

SUSPENDED_BY_SYSTEM = "subscription.suspended.system"
SUSPENDED_BY_USER = "subscription.suspended.user"
REVOKED = "subscription.revoked"
RESUMED = "subscription.resumed"
NOTIFICATION_TYPES: tuple[str, ...] = (SUSPENDED_BY_SYSTEM, SUSPENDED_BY_USER, REVOKED, RESUMED)

CONDITION_TYPE = "EventSubscriptionActive"
MESSAGE_MAX = 512
_ID_MAX = 200
_REASON_READ_MAX = 4096  # of a reason, only this much is looked at before cleaning it up
_UNPRINTABLE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
_SPACES = re.compile(r"\s+")

Bounded = Annotated[str, Field(min_length=1, max_length=_ID_MAX)]


class Notification(BaseModel):
    """One notification webhook body. Extra fields are kept: Akeneo may add some."""

    model_config = ConfigDict(extra="allow", frozen=True)

    notification_type: Bounded
    timestamp: Timestamp
    subscription_id: Bounded
    subscriber_id: Bounded
    destination: str
    events: list[str]
    reason: str | None = None  # "Present when applicable."
    subject: str | None = None  # the PIM URL


ConditionStatus = Literal["True", "False"]

_CONDITIONS: dict[str, tuple[ConditionStatus, str, str]] = {
    RESUMED: ("True", "Resumed", "resumed"),
    SUSPENDED_BY_SYSTEM: ("False", "SuspendedBySystem", "suspended by the Event Platform"),
    SUSPENDED_BY_USER: ("False", "SuspendedByUser", "suspended by a user"),
    REVOKED: ("False", "Revoked", "revoked"),
}


def type_label(notification_type: str) -> str:
    """The notification type as a metric label: one of the documented four, else ``other``."""
    return notification_type if notification_type in NOTIFICATION_TYPES else "other"


def parse_notification(body: bytes) -> Notification:
    """The notification in ``body``; ``PayloadError`` (``invalid_json`` or
    ``invalid_notification``, with the first problem as detail) when it is not one."""
    try:
        doc = from_json(body)
    except ValueError as exc:
        raise PayloadError("invalid_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise PayloadError("invalid_notification", "expected a JSON object")
    try:
        return Notification.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise PayloadError("invalid_notification", f"{where}: {first['msg']}") from None


def printable(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` without control or format characters (runs of them and of white space become
    one space), cut to ``limit`` characters: safe to show in a status or a terminal."""
    kept = "".join(
        " " if unicodedata.category(c) in _UNPRINTABLE_CATEGORIES else c
        for c in text[:_REASON_READ_MAX]
    )
    cleaned = _SPACES.sub(" ", kept).strip()
    if len(cleaned) <= limit:
        return cleaned
    return cleaned[: limit - 1].rstrip() + "…"


def subscription_condition(notification: Notification) -> tuple[ConditionStatus, str, str] | None:
    """(status, reason, message) of the ``EventSubscriptionActive`` condition this notification
    sets, or None for a type the connector does not know (it changes nothing).

    The message names the subscription and carries Akeneo's ``reason`` text when there is one.
    """
    known = _CONDITIONS.get(notification.notification_type)
    if known is None:
        return None
    status, reason, verb = known
    message = f"Event Platform subscription {notification.subscription_id} {verb}"
    if notification.reason:
        message = f"{message}: {notification.reason[:_REASON_READ_MAX]}"
    return status, reason, printable(message)
