"""Prometheus metrics of the receiver (default registry, so process metrics come along)."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "akeneo_receiver_requests_total",
    "Deliveries by format (events_api, event_platform, notification, unknown) and answer code",
    ["format", "code"],
)
REJECTED = Counter(
    "akeneo_receiver_rejected_requests_total",
    "Deliveries not answered 200, by reason",
    ["reason"],
)
EVENTS = Counter(
    "akeneo_receiver_events_total",
    "Events by delivery format and outcome (accepted, duplicate, rejected, ignored)",
    ["format", "outcome"],
)
IGNORED = Counter(
    "akeneo_receiver_ignored_events_total",
    "CloudEvents acknowledged and not stored, by type (types outside Akeneo's reference: "
    "other) and reason (unhandled_type, missing_id, invalid_id)",
    ["type", "reason"],
)
NOTIFICATIONS = Counter(
    "akeneo_receiver_notifications_total",
    "Event Platform notifications stored, by notification_type (undocumented types: other)",
    ["type"],
)
SPOOLED = Gauge(
    "akeneo_receiver_spooled",
    "Messages kept on disk while JetStream cannot take them, not yet stored, by spool "
    "(events, notifications)",
    ["spool"],
)
SPOOL_ITEMS = Counter(
    "akeneo_receiver_spool_messages_total",
    "Messages by spool (events, notifications) and outcome: spooled (kept on disk, answered "
    "200), drained (stored on the stream later), dropped (never storable, or unreadable lines "
    "of the file)",
    ["spool", "outcome"],
)
LATENCY = Histogram(
    "akeneo_receiver_request_seconds",
    "Time from request start to answer, by delivery format",
    ["format"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONSUMER_PENDING = Gauge(
    "akeneo_receiver_consumer_pending",
    "Last seen pending count of the worker consumer (-1 when unknown)",
)
RELOADS = Counter("akeneo_receiver_reloads_total", "Reloads of rotated files by kind", ["kind"])


# The labelled series of every request, looked up once: ``labels()`` takes a lock and builds
# a key each time, a few microseconds per call that every request would pay three times.


@cache
def requests(fmt: str, code: int) -> Counter:
    return REQUESTS.labels(fmt, str(code))


@cache
def latency(fmt: str) -> Histogram:
    return LATENCY.labels(fmt)


@cache
def events(fmt: str, outcome: str) -> Counter:
    return EVENTS.labels(fmt, outcome)


@cache
def ignored(type_label: str, reason: str) -> Counter:
    return IGNORED.labels(type_label, reason)
