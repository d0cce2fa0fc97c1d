"""The receiver's public URL paths: one per Akeneo sender, shared by receiver, operator and
local mode so the URLs in status, banners and docs are the ones the receiver serves.

Akeneo's getting-started guide for the Event Platform warns against reusing the Events API
Request URL as a subscription destination, so each sender has its own path.
"""

from __future__ import annotations

EVENTS_PATH = "/events"  # legacy Events API (Event Platform CloudEvents accepted too)
EVENT_PLATFORM_PATH = "/event-platform"  # Event Platform subscription destination
NOTIFICATIONS_PATH = "/event-platform/notifications"  # subscriber notification webhook


def public_endpoints(base: str) -> dict[str, str]:
    """``status.endpoints`` of a receiver reachable at ``base`` (scheme://host[:port])."""
    base = base.rstrip("/")
    return {
        "events": base + EVENTS_PATH,
        "eventPlatform": base + EVENT_PLATFORM_PATH,
        "notifications": base + NOTIFICATIONS_PATH,
    }
