"""The receiver's three public URL paths, for everything that shows or configures them.

Akeneo's getting-started guide warns not to reuse the Events API Request URL as the Event
Platform destination, so each sender gets its own path. The receiver serves each with and
without a trailing slash: a 404 or a redirect suspends an Event Platform subscription at once.
Kept here, free of any web framework, so the operator and local mode can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS_API_PATH = "/events"  # legacy Events API: {"events": [...]}; also takes CloudEvents
EVENT_PLATFORM_PATH = "/event-platform"  # Event Platform CloudEvents only
NOTIFICATIONS_PATH = "/event-platform/notifications"  # subscription notification webhooks

PATHS: tuple[str, ...] = (EVENTS_API_PATH, EVENT_PLATFORM_PATH, NOTIFICATIONS_PATH)


@dataclass(frozen=True)
class Endpoints:
    """The three public URLs of one receiver, from its base URL (scheme, host, port)."""

    events_api: str
    event_platform: str
    notifications: str

    @classmethod
    def of(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(base + EVENTS_API_PATH, base + EVENT_PLATFORM_PATH, base + NOTIFICATIONS_PATH)
