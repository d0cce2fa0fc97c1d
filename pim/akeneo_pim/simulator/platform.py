"""The Akeneo Event Platform, simulated: management API, delivery engine, notification webhooks.

What it does, and where Akeneo says so (https://api.akeneo.com/event-platform/...):

- Deliveries (key-platform-behaviors.html): one CloudEvent per HTTPS POST, signed with the
  subscription's primary (and secondary) secret; "Your endpoint is expected to handle requests
  within 5 seconds"; transient failures (5xx, timeouts, connection errors) are retried "5
  minutes", "10 minutes", "20 minutes after the previous attempt", then "After three retry
  attempts, the message is dropped"; other 4xx are not retried (retries "apply only to transient
  errors or timeouts"). ``429`` lowers the rate ("dynamically adjusts its delivery rate from 1
  to 100 events per second"): halved on each 429, +1 event/s on each 2xx; an event still
  throttled after an hour counts as one failure and is dropped (the docs: "Events that are
  throttled and remain undelivered for more than one hour will negatively impact your success
  rate"; dropping it then is this simulator's choice).
- Suspension: "immediately suspended" on a ``404`` or any ``3xx``; and "If the success rate
  drops below 90% within the last rolling hour" where 5xx, long-throttled 429, every 4xx and
  timeouts count as failures. The docs give no minimum sample: this simulator evaluates the
  rate once ``min_sample`` (20) attempts fall in the window, so one early failure cannot
  suspend, and clears the window on resume. "Events are not saved and are lost until the
  subscription is resumed": while not active, events (queued, retrying or new) are dropped.
- Notifications (notification-webhooks.html): on suspension (system or user), revocation and
  resume, a JSON POST to the subscriber's ``notification_webhook_url`` when ``webhook`` is one
  of its ``notification_channels``, signed with ``X-AKENEO-SIGNATURE-PRIMARY`` (hex HMAC-SHA256
  of the raw body with ``notification_webhook_secret``) and ``X-AKENEO-SIGNATURE-ALGORITHM:
  HmacSHA256``, ``User-Agent: akeneo/event-platform``; "2xx status within 5 seconds"; "retries
  up to 3 times with delays of 1s and 2s between attempts. 5xx and 429 responses are retried
  within that budget; other 4xx responses are not" (timeouts and connection errors are retried
  too: this simulator's choice); then the email fallback (recorded, not sent).
- Management API: the OpenAPI document Akeneo published in akeneo/pim-api-docs
  (content/swagger/aep/public-oas.yml, last at commit 039db85b; the "OAS" below), with the
  plural paths that replaced its singular ones (getting-started.html, logs.html), and
  concepts.html, notification-webhooks.html, limitations.html. Base ``/api/v1``; every call
  needs ``X-PIM-URL``, ``X-PIM-TOKEN`` (an access token the simulated PIM issued, valid now)
  and ``X-PIM-CLIENT-ID`` (the client it was issued to), else ``401`` (the OAS's "tenant
  context not found or invalid credentials"). Subscribers: ``POST /subscribers`` (201),
  ``GET /subscribers`` (the OAS: "either active or revoked"; deleted ones are not listed),
  ``GET|PATCH /subscribers/{id}``, ``DELETE`` (200, the deleted subscriber). Subscriptions:
  ``POST /subscribers/{id}/subscriptions`` (201), ``GET`` (the OAS: "either active and
  suspended"), ``GET|PATCH .../subscriptions/{id}``, ``DELETE`` (200, "Returns the deleted
  subscription."), ``POST .../{id}/suspend`` and ``.../resume`` (202 with the subscription;
  409 when not active, resp. not suspended). Errors are the OAS's ``HTTPError``,
  ``{"errors": [{"message": ...}]}``: 400 malformed, 401, 403 "Not allowed" (a connection
  without the Event Platform permission creating, updating or resuming a subscription:
  authentication-and-authorization.html; ``set_permission``), 404, 409 (a maximum reached on
  creation: 20 subscribers per PIM, 20 subscriptions per subscriber, limitations.html; a
  deleted or revoked subscription). Payloads: ``source`` defaults to ``pim`` (the OAS),
  ``config.secret.primary`` and ``.secondary`` 16 to 256 characters (the OAS),
  ``filter`` in the grammar of available-filters.html (``akeneo_connector.event_filters``),
  custom headers by concepts.html's rules, bodies ``application/json``. Answers show
  secrets as ``***redacted***`` (logs.html), header values too (concepts.html),
  ``notification_webhook_secret`` never.
  This simulator's choices, where the OAS and the pages are silent: dates are
  ``created_at``/``updated_at`` as the pages' answers show (the OAS's examples say
  ``createdAt``); ``name`` and ``contact.technical_email`` are required; only ``https``
  subscriptions (``pubsub`` and ``kafka`` are refused with 400, nothing could deliver them);
  a deleted subscriber or subscription can still be read (status ``deleted``); PATCH changes
  only the fields it carries (a ``config.secret`` replaces both secrets). A new subscription
  delivers after ``activation_delay`` ("a delay of several minutes before it becomes fully
  active"); events before that are dropped. Filters "are automatically evaluated when an
  event is processed": an event that does not match "is silently skipped"
  (``event_filters.matches``; counted as dropped ``filtered``).

``time_scale`` divides the platform's minute- and hour-long clocks (retry delays, the success
window, the throttling hour, the activation delay): ``time_scale=60`` makes 5 minutes 5 s and
the hour 60 s. Per-request deadlines (5 s) and the notification retry gaps (1 s, 2 s) and the
delivery rates (events per second) are real time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import uuid as uuidlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp
from aiohttp import web

from akeneo_connector.event_filters import MAX_LENGTH, Expr, FilterError, matches, parse_filter
from akeneo_connector.event_types import REFERENCE
from akeneo_pim.signatures import (
    EVENT_PLATFORM_ALGORITHM,
    EVENT_PLATFORM_ALGORITHM_HEADER,
    EVENT_PLATFORM_PRIMARY_HEADER,
    event_platform_headers,
    sign_event_platform,
)
from akeneo_pim.simulator.catalog import Change
from akeneo_pim.simulator.events import EVENT_CONTENT_TYPE, PimEvent, pim_events, rfc3339

_log = logging.getLogger(__name__)
SubscriptionStatus = Literal["active", "suspended", "revoked", "deleted"]
NotificationType = Literal[
    "subscription.suspended.system",
    "subscription.suspended.user",
    "subscription.revoked",
    "subscription.resumed",
]
Outcome = int | Literal["timeout", "error"]
USER_AGENT = "akeneo/event-platform"
REDACTED = "***redacted***"
# the sample reason of notification-webhooks.html, verbatim
REASON_SUCCESS_RATE = "Success rate dropped below 90%"
REASON_REVOKED = "The connection or the app linked to the subscriber was removed from the PIM"
REASON_RIGHTS = "Insufficient rights: the Event Platform permission was removed"
SECRET_MIN, SECRET_MAX = 16, 256  # the OAS: config.secret.primary/secondary
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_RESERVED_HEADERS = {"content-type", "user-agent", "x-correlation-id", "host", "authorization",
                     "cookie"}  # fmt: skip
_MAX_BODY = 64 * 1024
_MAX_EVENTS = 100
_MAX_TEXT = 2048


@dataclass
class PlatformSettings:
    """Knobs; durations in the platform's own seconds unless said otherwise (see module)."""

    time_scale: float = 1.0
    retry_delays: tuple[float, ...] = (300.0, 600.0, 1200.0)
    delivery_timeout: float = 5.0  # real seconds
    success_window: float = 3600.0
    success_threshold: float = 0.9
    min_sample: int = 20  # attempts in the window before the rate is judged (docs: silent)
    throttle_limit: float = 3600.0
    max_rate: float = 100.0  # events per real second
    min_rate: float = 1.0
    concurrency: int = 16  # deliveries in flight per subscription
    activation_delay: float = 120.0
    notification_timeout: float = 5.0  # real seconds
    notification_gaps: tuple[float, ...] = (1.0, 2.0)  # real seconds: 3 tries
    max_subscribers: int = 20
    max_subscriptions: int = 20
    allow_http: bool = False  # Akeneo requires HTTPS destinations and notification URLs

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale


@dataclass
class NotificationRecord:
    """One notification: its body, every try's outcome, and whether it got through."""

    type: NotificationType
    body: dict[str, Any]
    channel: Literal["webhook", "email"]
    attempts: list[Outcome] = field(default_factory=list)
    delivered: bool = False
    email_fallback: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class SubscriptionStats:
    """What happened to a subscription's events (an attempt is one POST)."""

    published: int = 0  # events addressed to it (active or not)
    attempts: int = 0
    delivered: int = 0
    failed: int = 0  # attempts counted as failures by the success rate
    retried: int = 0  # retries scheduled after a transient failure
    throttled: int = 0  # 429 answers
    timeouts: int = 0
    errors: int = 0  # connection / TLS errors
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    statuses: Counter[int] = field(default_factory=Counter)
    suspensions: list[tuple[datetime, str, str]] = field(default_factory=list)  # when, by, why
    notifications: list[NotificationRecord] = field(default_factory=list)
    delivered_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "throttled": self.throttled,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "dropped": dict(self.dropped),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "suspended_at": [(rfc3339(w), by, why) for w, by, why in self.suspensions],
            "notifications": [
                {
                    "type": n.type,
                    "channel": n.channel,
                    "attempts": n.attempts,
                    "delivered": n.delivered,
                    "email_fallback": n.email_fallback,
                }
                for n in self.notifications
            ],
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(value: datetime) -> str:
    """Management API dates, as getting-started.html shows them: ``2024-06-27T16:26:00.503422Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid() -> str:
    return str(uuidlib.uuid4())


@dataclass
class Subscriber:
    id: str
    client_id: str
    subject: str  # the PIM URL (X-PIM-URL)
    name: str
    technical_email: str
    notification_channels: list[str] = field(default_factory=lambda: ["email"])
    notification_webhook_url: str | None = None
    notification_webhook_secret: str | None = None  # never returned
    status: Literal["active", "revoked", "deleted"] = "active"  # the OAS's enum
    revoked: bool = False  # its connection was removed from the PIM
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def public(self) -> dict[str, Any]:
        contact: dict[str, Any] = {"technical_email": self.technical_email}
        contact["notification_channels"] = list(self.notification_channels)
        if self.notification_webhook_url is not None:
            contact["notification_webhook_url"] = self.notification_webhook_url
        return {
            "id": self.id,
            "name": self.name,
            "subject": self.subject,
            "status": self.status,
            "contact": contact,
            "created_at": _stamp(self.created_at),
            "updated_at": _stamp(self.updated_at),
        }


@dataclass
class Subscription:
    id: str
    subscriber_id: str
    subject: str
    events: list[str]
    url: str
    primary: str
    secondary: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    filter: str | None = None
    send_product_identifier: bool = False
    source: str = "pim"
    type: str = "https"
    status: SubscriptionStatus = "active"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    active_from: float = 0.0  # loop time deliveries start (the activation delay)
    stats: SubscriptionStats = field(default_factory=SubscriptionStats)

    @property
    def filter_tree(self) -> Expr | None:
        return None if self.filter is None else _parsed_filter(self.filter)

    def public(self) -> dict[str, Any]:
        secret = {"primary": REDACTED}
        if self.secondary:
            secret["secondary"] = REDACTED
        config: dict[str, Any] = {"url": self.url, "secret": secret}
        if self.headers:
            config["headers"] = dict.fromkeys(self.headers, REDACTED)
        out: dict[str, Any] = {
            "id": self.id,
            "config": config,
            "events": list(self.events),
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "status": self.status,
            "subscriber_id": self.subscriber_id,
            "send_product_identifier": self.send_product_identifier,
            "created_at": _stamp(self.created_at),
            "updated_at": _stamp(self.updated_at),
        }
        if self.filter is not None:
            out["filter"] = self.filter
        return out


@functools.lru_cache(maxsize=256)
def _parsed_filter(text: str) -> Expr:
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise PlatformError(400, f"filter: {exc}") from None


@dataclass
class _Item:
    event: PimEvent
    body: bytes
    attempt: int = 0  # retries made so far
    throttled_since: float | None = None


class _Lane:
    """One subscription's delivery queue, workers, pacing, retry timers and success window."""

    def __init__(self, sub: Subscription, settings: PlatformSettings) -> None:
        self.sub = sub
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self.timers: dict[asyncio.TimerHandle, _Item] = {}
        self.window: deque[tuple[float, bool]] = deque()
        self.rate = settings.max_rate
        self.next_slot = 0.0
        self.outstanding = 0  # items queued, in flight or waiting for a retry
        self.idle = asyncio.Event()
        self.idle.set()

    async def pace(self, settings: PlatformSettings) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self.next_slot)
        self.next_slot = slot + 1.0 / max(self.rate, settings.min_rate)
        if slot > now:
            await asyncio.sleep(slot - now)


class EventPlatform:
    """The Event Platform of one simulated PIM; use ``async with``.

    ``token_client`` maps a PIM access token to its client id (``PimSimulator.token_client``);
    ``pim_urls`` are the PIM URLs accepted in ``X-PIM-URL`` (``PimSimulator.url``).
    ``verify``: how deliveries and notifications verify TLS (a CA bundle path or context).
    """

    def __init__(
        self,
        *,
        token_client: Callable[[str], str | None],
        pim_urls: Collection[str],
        settings: PlatformSettings | None = None,
        verify: bool | str | ssl.SSLContext = True,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings or PlatformSettings()
        self._token_client = token_client
        self.pim_urls = {u.rstrip("/") for u in pim_urls}
        self.subscribers: dict[str, Subscriber] = {}
        self.withdrawn: set[str] = set()  # client ids without the Event Platform permission
        self.subscriptions: dict[str, Subscription] = {}
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._verify = verify
        self._http: aiohttp.ClientSession | None = None
        self._host, self._port, self._ssl = host, port, ssl_context
        self._runner: web.AppRunner | None = None
        self.url = ""  # the management API's base, ``<scheme>://host:port/api/v1``
        self.app = _management_app(self)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> EventPlatform:
        # aiohttp's client: httpx stalled for seconds under 8+ concurrent requests in tests
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, ssl=self._verify),
            auto_decompress=False,
        )
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        scheme = "https" if self._ssl is not None else "http"
        self.url = f"{scheme}://{self._host}:{runner.addresses[0][1]}/api/v1"
        return self

    async def stop(self) -> None:
        for lane in self._lanes.values():
            for handle in lane.timers:
                handle.cancel()
            lane.timers.clear()
            for worker in lane.workers:
                worker.cancel()
        pending = [w for lane in self._lanes.values() for w in lane.workers] + list(self._tasks)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> EventPlatform:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- subscribers and subscriptions (also behind the management API) -------------------

    def add_subscriber(
        self,
        *,
        client_id: str,
        subject: str,
        name: str = "simulated subscriber",
        technical_email: str = "ops@example.com",
        notification_url: str | None = None,
        notification_secret: str | None = None,
        channels: list[str] | None = None,
    ) -> Subscriber:
        """A subscriber; with ``notification_url`` its channels default to webhook only."""
        if channels is None:
            channels = ["webhook"] if notification_url else ["email"]
        active = [s for s in self.subscribers.values() if s.status == "active"]
        if len([s for s in active if s.subject == subject]) >= self.settings.max_subscribers:
            raise PlatformError(409, "Maximum number of subscribers reached for this PIM")
        subscriber = Subscriber(
            id=_uuid(),
            client_id=client_id,
            subject=subject.rstrip("/"),
            name=name,
            technical_email=technical_email,
            notification_channels=channels,
            notification_webhook_url=notification_url,
            notification_webhook_secret=notification_secret,
        )
        self.subscribers[subscriber.id] = subscriber
        return subscriber

    def add_subscription(
        self,
        subscriber: Subscriber,
        *,
        url: str,
        primary: str,
        secondary: str | None = None,
        events: Collection[str] = REFERENCE,
        send_product_identifier: bool = False,
        headers: dict[str, str] | None = None,
        filter: str | None = None,
        activation_delay: float | None = None,
    ) -> Subscription:
        """A subscription delivering ``events`` to ``url`` once the activation delay passed
        (``activation_delay`` overrides the settings' one, in platform seconds)."""
        live = [
            s
            for s in self.subscriptions.values()
            if s.subscriber_id == subscriber.id and s.status != "deleted"
        ]
        if len(live) >= self.settings.max_subscriptions:
            raise PlatformError(409, "Maximum number of subscriptions reached for this subscriber")
        if filter is not None:
            _parsed_filter(filter)  # refused as the management API would
        delay = self.settings.activation_delay if activation_delay is None else activation_delay
        sub = Subscription(
            id=_uuid(),
            subscriber_id=subscriber.id,
            subject=subscriber.subject,
            events=list(dict.fromkeys(events)),
            url=url,
            primary=primary,
            secondary=secondary or None,
            headers=dict(headers or {}),
            filter=filter,
            send_product_identifier=send_product_identifier,
            active_from=asyncio.get_running_loop().time() + self.settings.scaled(delay),
        )
        self.subscriptions[sub.id] = sub
        self._lanes[sub.id] = _Lane(sub, self.settings)
        return sub

    def subscriber_of(self, sub: Subscription) -> Subscriber:
        return self.subscribers[sub.subscriber_id]

    # -- test knobs ---------------------------------------------------------------------

    def suspend(self, subscription_id: str, *, by: Literal["user", "system"] = "user",
                reason: str | None = None) -> Subscription:  # fmt: skip
        """Suspend as the user (management API) or the system would; notifies."""
        sub = self.subscriptions[subscription_id]
        if sub.status != "active":
            raise PlatformError(409, f"Subscription is {sub.status}")
        self._suspend(sub, by, reason)
        return sub

    def resume(self, subscription_id: str) -> Subscription:
        """Resume a suspended subscription (its success window starts afresh); notifies."""
        sub = self.subscriptions[subscription_id]
        if sub.status != "suspended":
            raise PlatformError(409, f"Subscription is {sub.status}, not suspended")
        sub.status = "active"
        sub.updated_at = _now()
        lane = self._lanes[sub.id]
        lane.window.clear()
        lane.rate = self.settings.max_rate
        self._notify(sub, "subscription.resumed", None)
        return sub

    def revoke(self, subscriber_id: str) -> list[Subscription]:
        """The subscriber's connection was removed from the PIM: every subscription of it is
        revoked (notified), and its management API calls are refused from now on."""
        subscriber = self.subscribers[subscriber_id]
        subscriber.revoked = True
        if subscriber.status == "active":
            subscriber.status = "revoked"
            subscriber.updated_at = _now()
        revoked = []
        for sub in self.subscriptions.values():
            if sub.subscriber_id == subscriber_id and sub.status in ("active", "suspended"):
                sub.status = "revoked"
                sub.updated_at = _now()
                self._flush(sub, "revoked")
                self._notify(sub, "subscription.revoked", REASON_REVOKED)
                revoked.append(sub)
        return revoked

    def set_permission(self, client_id: str, allowed: bool) -> list[Subscription]:
        """The connection's Event Platform permission (authentication-and-authorization.html):
        without it "the user will not be able to subscribe to events" (creating, updating or
        resuming a subscription answers 403, the OAS's "Not allowed"), and "the subscription
        will be automatically suspended due to insufficient rights". Returns those suspended."""
        if allowed:
            self.withdrawn.discard(client_id)
            return []
        self.withdrawn.add(client_id)
        suspended = []
        for sub in self.subscriptions.values():
            if sub.status == "active" and self.subscriber_of(sub).client_id == client_id:
                self._suspend(sub, "system", REASON_RIGHTS)
                suspended.append(sub)
        return suspended

    def delete_subscription(self, subscription_id: str) -> None:
        sub = self.subscriptions[subscription_id]
        sub.status = "deleted"
        sub.updated_at = _now()
        self._flush(sub, "deleted")

    def stats(self, subscription_id: str) -> SubscriptionStats:
        return self.subscriptions[subscription_id].stats

    def report(self) -> dict[str, dict[str, Any]]:
        """Per subscription: its status and what happened to its events and notifications."""
        return {
            sid: {"status": sub.status, **sub.stats.as_dict()}
            for sid, sub in self.subscriptions.items()
        }

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no event is queued, in flight or waiting for a retry, and every
        notification is settled (``TimeoutError`` otherwise)."""
        async with asyncio.timeout(timeout):
            while True:
                for lane in self._lanes.values():
                    await lane.idle.wait()
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                if all(lane.idle.is_set() for lane in self._lanes.values()) and not self._tasks:
                    return

    # -- publishing -----------------------------------------------------------------------

    def publish(self, change: Change) -> int:
        """Announce a catalog edit (every type it produces); returns the deliveries queued."""
        return sum(self.publish_event(event) for event in pim_events(change))

    def publish_event(self, event: PimEvent) -> int:
        """Address one PIM event to every subscription of its type; returns how many queued it
        (others drop it: not active yet, suspended, revoked or deleted)."""
        loop = asyncio.get_running_loop()
        queued = 0
        for sub in self.subscriptions.values():
            if event.type not in sub.events:
                continue
            sub.stats.published += 1
            if sub.filter_tree is not None and not matches(sub.filter_tree, event.data):
                sub.stats.dropped["filtered"] += 1  # "silently skipped"
                continue
            if sub.status != "active":
                sub.stats.dropped[sub.status] += 1
                continue
            if loop.time() < sub.active_from:
                sub.stats.dropped["not_yet_active"] += 1
                continue
            cloud_event = event.cloud_event(
                sub.id, send_product_identifier=sub.send_product_identifier
            )
            lane = self._lanes[sub.id]
            self._ensure_workers(lane)
            lane.outstanding += 1
            lane.idle.clear()
            lane.queue.put_nowait(_Item(event, json.dumps(cloud_event).encode()))
            queued += 1
        return queued

    # -- delivery engine --------------------------------------------------------------------

    def _ensure_workers(self, lane: _Lane) -> None:
        if not lane.workers:
            lane.workers = [
                asyncio.create_task(self._work(lane)) for _ in range(self.settings.concurrency)
            ]

    def _finish(self, lane: _Lane, item: _Item, dropped: str | None = None) -> None:
        if dropped is not None:
            lane.sub.stats.dropped[dropped] += 1
        lane.outstanding -= 1
        if lane.outstanding == 0:
            lane.idle.set()

    async def _work(self, lane: _Lane) -> None:
        while True:
            item = await lane.queue.get()
            try:
                await self._attempt(lane, item)
            except asyncio.CancelledError:
                raise
            except Exception:  # a simulator bug must not stall the lane: counted, logged
                _log.exception("delivery to subscription %s failed", lane.sub.id)
                self._finish(lane, item, "internal_error")

    async def _attempt(self, lane: _Lane, item: _Item) -> None:
        sub, s = lane.sub, self.settings
        if sub.status != "active":
            self._finish(lane, item, sub.status)
            return
        await lane.pace(s)
        if sub.status != "active":
            self._finish(lane, item, sub.status)
            return
        outcome = await self._post(sub, item.body)
        stats = sub.stats
        stats.attempts += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        if isinstance(outcome, int):
            stats.statuses[outcome] += 1
        if isinstance(outcome, int) and 200 <= outcome < 300:
            stats.delivered += 1
            stats.delivered_ids.append(item.event.id)
            lane.rate = min(s.max_rate, lane.rate + 1.0)
            self._record(lane, ok=True)
            self._finish(lane, item)
            return
        if outcome == 429:
            stats.throttled += 1
            lane.rate = max(s.min_rate, lane.rate / 2)
            item.throttled_since = item.throttled_since or now
            if now - item.throttled_since > s.scaled(s.throttle_limit):
                stats.failed += 1
                self._record(lane, ok=False)
                self._finish(lane, item, "throttled_too_long")
            elif sub.status == "active":
                lane.queue.put_nowait(item)  # again, at the lowered rate
            else:
                self._finish(lane, item, sub.status)
            return
        stats.failed += 1
        if outcome == "timeout":
            stats.timeouts += 1
        elif outcome == "error":
            stats.errors += 1
        if isinstance(outcome, int) and (outcome == 404 or 300 <= outcome < 400):
            self._record(lane, ok=False, judge=False)
            why = "404 Not Found" if outcome == 404 else f"a redirection ({outcome})"
            self._finish(lane, item, "suspended")
            if sub.status == "active":
                self._suspend(sub, "system", f"The destination answered {why}")
            return
        transient = not isinstance(outcome, int) or outcome >= 500
        self._record(lane, ok=False)
        if sub.status != "active":
            self._finish(lane, item, sub.status)
        elif not transient:
            self._finish(lane, item, "not_retriable")
        elif item.attempt < len(s.retry_delays):
            delay = s.scaled(s.retry_delays[item.attempt])
            item.attempt += 1
            stats.retried += 1
            handle = loop.call_later(delay, self._retry, lane, item)
            lane.timers[handle] = item
        else:
            self._finish(lane, item, "retries_exhausted")

    def _retry(self, lane: _Lane, item: _Item) -> None:
        for handle, queued in list(lane.timers.items()):
            if queued is item:
                del lane.timers[handle]
        if lane.sub.status != "active":
            self._finish(lane, item, lane.sub.status)
        else:
            lane.queue.put_nowait(item)

    async def _post(self, sub: Subscription, body: bytes) -> Outcome:
        assert self._http is not None, "start() the platform first"
        headers = event_platform_headers(sub.primary, body, sub.secondary)
        headers["Content-Type"] = EVENT_CONTENT_TYPE
        headers["User-Agent"] = USER_AGENT
        headers.update(sub.headers)  # injected after signing, as Akeneo does
        return await _post(self._http, sub.url, body, headers, self.settings.delivery_timeout)

    def _record(self, lane: _Lane, *, ok: bool, judge: bool = True) -> None:
        """Add an outcome to the rolling window; suspend when the success rate falls short."""
        s = self.settings
        now = asyncio.get_running_loop().time()
        window = lane.window
        window.append((now, ok))
        horizon = now - s.scaled(s.success_window)
        while window and window[0][0] < horizon:
            window.popleft()
        if not judge or ok or len(window) < s.min_sample or lane.sub.status != "active":
            return
        successes = sum(1 for _, good in window if good)
        if successes / len(window) < s.success_threshold:
            self._suspend(lane.sub, "system", REASON_SUCCESS_RATE)

    def _flush(self, sub: Subscription, reason: str) -> None:
        """Drop everything queued or waiting for a retry (events are not kept)."""
        lane = self._lanes[sub.id]
        for handle, item in list(lane.timers.items()):
            handle.cancel()
            self._finish(lane, item, reason)
        lane.timers.clear()
        while not lane.queue.empty():
            self._finish(lane, lane.queue.get_nowait(), reason)

    def _suspend(
        self, sub: Subscription, by: Literal["user", "system"], reason: str | None
    ) -> None:
        sub.status = "suspended"
        sub.updated_at = _now()
        sub.stats.suspensions.append((sub.updated_at, by, reason or ""))
        self._flush(sub, "suspended")
        kind: NotificationType = (
            "subscription.suspended.system" if by == "system" else "subscription.suspended.user"
        )
        self._notify(sub, kind, reason)

    # -- notifications ------------------------------------------------------------------

    def _notify(self, sub: Subscription, kind: NotificationType, reason: str | None) -> None:
        subscriber = self.subscriber_of(sub)
        body: dict[str, Any] = {
            "notification_type": kind,
            "timestamp": rfc3339(_now()),
            "subscription_id": sub.id,
            "subscriber_id": subscriber.id,
            "destination": sub.url,
            "events": list(sub.events),
        }
        if reason:
            body["reason"] = reason
        body["subject"] = subscriber.subject
        webhook = (
            "webhook" in subscriber.notification_channels
            and subscriber.notification_webhook_url is not None
            and subscriber.notification_webhook_secret is not None
        )
        record = NotificationRecord(kind, body, "webhook" if webhook else "email")
        sub.stats.notifications.append(record)
        if not webhook:
            record.delivered = True  # an email, not simulated
            record.done.set()
            return
        task = asyncio.create_task(self._send_notification(subscriber, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_notification(self, subscriber: Subscriber, record: NotificationRecord) -> None:
        assert self._http is not None
        assert subscriber.notification_webhook_url and subscriber.notification_webhook_secret
        raw = json.dumps(record.body).encode()
        headers = {
            EVENT_PLATFORM_PRIMARY_HEADER: sign_event_platform(
                subscriber.notification_webhook_secret, raw
            ),
            EVENT_PLATFORM_ALGORITHM_HEADER: EVENT_PLATFORM_ALGORITHM,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        gaps = self.settings.notification_gaps
        try:
            for attempt in range(len(gaps) + 1):
                outcome = await _post(
                    self._http,
                    subscriber.notification_webhook_url,
                    raw,
                    headers,
                    self.settings.notification_timeout,
                )
                record.attempts.append(outcome)
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    record.delivered = True
                    return
                retriable = not isinstance(outcome, int) or outcome == 429 or outcome >= 500
                if not retriable or attempt == len(gaps):
                    break
                await asyncio.sleep(gaps[attempt])
            record.email_fallback = "email" not in subscriber.notification_channels
        finally:
            record.done.set()

    # -- management API: authentication -----------------------------------------------------

    def authenticate(self, headers: Any) -> tuple[str, str]:
        """``(client id, PIM URL)`` of a management call, or ``PlatformError(401)``."""
        url = str(headers.get("X-PIM-URL", "")).strip().rstrip("/")
        token = str(headers.get("X-PIM-TOKEN", "")).strip()
        client_id = str(headers.get("X-PIM-CLIENT-ID", "")).strip()
        missing = [
            n for n, v in (("X-PIM-URL", url), ("X-PIM-TOKEN", token),
                           ("X-PIM-CLIENT-ID", client_id)) if not v
        ]  # fmt: skip
        if missing:
            raise PlatformError(401, f"Missing header(s): {', '.join(missing)}")
        if url not in self.pim_urls:
            raise PlatformError(401, "Unknown PIM URL")
        owner = self._token_client(token)
        if owner is None:
            raise PlatformError(401, "The PIM access token is invalid or expired")
        if owner != client_id:
            raise PlatformError(401, "The PIM access token does not belong to this client id")
        if any(s.revoked and s.client_id == client_id for s in self.subscribers.values()):
            raise PlatformError(401, "The connection was removed from the PIM")
        return client_id, url


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], deadline: float
) -> Outcome:
    """One POST within ``deadline`` (the whole exchange), redirects not followed."""
    try:
        async with asyncio.timeout(deadline):
            async with http.post(url, data=body, headers=headers, allow_redirects=False) as got:
                await got.read()
                return got.status
    except TimeoutError:
        return "timeout"
    except (aiohttp.ClientError, OSError, ssl.SSLError):
        return "error"


class PlatformError(Exception):
    """A refusal (management API answer or knob misuse): status and a short reason, never a
    secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- management API -------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    """The OAS's ``HTTPError``: ``{"errors": [{"message": ...}]}``."""
    return web.json_response({"errors": [{"message": message}]}, status=status)


def _management_app(platform: EventPlatform) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            platform.authenticate(request.headers)  # every call; handlers read it again
            return await handler(request)
        except PlatformError as exc:
            return _error(exc.status, exc.message)
        except web.HTTPException as exc:  # no such route or method: the same error body
            if exc.status < 400:
                raise
            return _error(exc.status, exc.reason)

    app = web.Application(middlewares=[guard], client_max_size=_MAX_BODY)
    api = _Api(platform)
    base = "/api/v1/subscribers"
    one = base + "/{subscriber}"
    subs = one + "/subscriptions"
    sub = subs + "/{subscription}"
    r = app.router
    r.add_post(base, api.create_subscriber)
    r.add_get(base, api.list_subscribers)
    r.add_get(one, api.get_subscriber)
    r.add_patch(one, api.patch_subscriber)
    r.add_delete(one, api.delete_subscriber)
    r.add_post(subs, api.create_subscription)
    r.add_get(subs, api.list_subscriptions)
    r.add_get(sub, api.get_subscription)
    r.add_patch(sub, api.patch_subscription)
    r.add_delete(sub, api.delete_subscription)
    r.add_post(sub + "/suspend", api.suspend)
    r.add_post(sub + "/resume", api.resume)
    return app


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object of a POST or PATCH: the OAS's request bodies are all
    ``content: application/json`` (and getting-started.html's calls send that type)."""
    if request.content_type != "application/json":
        raise PlatformError(400, "The body must be application/json")
    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise PlatformError(413, "Request body too large") from None
    except ValueError:
        raise PlatformError(400, "The body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PlatformError(400, "The body must be a JSON object")
    return body


def _secret(value: Any, name: str) -> str:
    """The OAS: ``secret.primary`` and ``secret.secondary`` are strings, minLength 16,
    maxLength 256 (the message never quotes the value)."""
    if not isinstance(value, str) or not SECRET_MIN <= len(value) <= SECRET_MAX:
        raise PlatformError(
            400, f"{name} must be a string of {SECRET_MIN} to {SECRET_MAX} characters"
        )
    return value


def _text(value: Any, name: str, *, limit: int = 255, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise PlatformError(400, f"{name} must be a non-empty string of at most {limit} characters")
    return value


class _Api:
    def __init__(self, platform: EventPlatform) -> None:
        self.p = platform

    # subscribers

    def _subscriber(self, request: web.Request) -> Subscriber:
        client_id, url = self.p.authenticate(request.headers)
        found = self.p.subscribers.get(request.match_info["subscriber"])
        if found is None or found.client_id != client_id or found.subject != url:
            raise PlatformError(404, "Subscriber not found")
        return found

    def _contact(self, contact: Any, into: Subscriber, *, creating: bool) -> None:
        if not isinstance(contact, dict):
            raise PlatformError(400, "contact must be an object")
        if creating or "technical_email" in contact:
            email = _text(contact.get("technical_email"), "contact.technical_email", limit=254)
            if email is None or "@" not in email:
                raise PlatformError(400, "contact.technical_email must be an email address")
            into.technical_email = email
        if "notification_channels" in contact:
            channels = contact["notification_channels"]
            if not isinstance(channels, list) or not set(channels) <= {"email", "webhook"}:
                raise PlatformError(400, "notification_channels accepts email and webhook")
            into.notification_channels = list(dict.fromkeys(channels)) or ["email"]
        if "notification_webhook_url" in contact:
            url = _text(contact["notification_webhook_url"], "notification_webhook_url",
                        limit=_MAX_TEXT, required=False)  # fmt: skip
            if url is not None:
                self._check_url(url, "notification_webhook_url")
            into.notification_webhook_url = url
        if "notification_webhook_secret" in contact:
            secret = contact["notification_webhook_secret"]
            if secret is not None and (not isinstance(secret, str) or not 16 <= len(secret) <= 256):
                raise PlatformError(400, "notification_webhook_secret must be 16 to 256 characters")
            into.notification_webhook_secret = secret
        if "webhook" in into.notification_channels and not (
            into.notification_webhook_url and into.notification_webhook_secret
        ):
            raise PlatformError(
                400,
                "notification_webhook_url and notification_webhook_secret are required with the "
                "webhook channel",
            )

    def _check_url(self, url: str, name: str) -> None:
        allowed = ("https://", "http://") if self.p.settings.allow_http else ("https://",)
        if not url.startswith(allowed):
            raise PlatformError(400, f"{name} must be an HTTPS URL")

    async def create_subscriber(self, request: web.Request) -> web.Response:
        client_id, url = self.p.authenticate(request.headers)
        body = await _body(request)
        name = _text(body.get("name"), "name")
        draft = Subscriber(_uuid(), client_id, url, str(name), "")
        self._contact(body.get("contact"), draft, creating=True)
        made = self.p.add_subscriber(
            client_id=client_id,
            subject=url,
            name=draft.name,
            technical_email=draft.technical_email,
            notification_url=draft.notification_webhook_url,
            notification_secret=draft.notification_webhook_secret,
            channels=draft.notification_channels,
        )
        return web.json_response(made.public(), status=201)

    async def list_subscribers(self, request: web.Request) -> web.Response:
        """The OAS: "Get all subscribers that are either active or revoked"."""
        client_id, url = self.p.authenticate(request.headers)
        found = [
            s.public()
            for s in self.p.subscribers.values()
            if s.client_id == client_id and s.subject == url and s.status != "deleted"
        ]
        return web.json_response(found)

    async def get_subscriber(self, request: web.Request) -> web.Response:
        return web.json_response(self._subscriber(request).public())

    async def patch_subscriber(self, request: web.Request) -> web.Response:
        subscriber = self._subscriber(request)
        if subscriber.status != "active":
            raise PlatformError(409, f"Subscriber is {subscriber.status}")
        body = await _body(request)
        draft = Subscriber(**{**subscriber.__dict__, "notification_channels":
                              list(subscriber.notification_channels)})  # fmt: skip
        if "name" in body:
            draft.name = str(_text(body["name"], "name"))
        if "contact" in body:
            self._contact(body["contact"], draft, creating=False)
        draft.updated_at = _now()
        self.p.subscribers[subscriber.id] = draft
        return web.json_response(draft.public())

    async def delete_subscriber(self, request: web.Request) -> web.Response:
        subscriber = self._subscriber(request)
        subscriber.status = "deleted"
        subscriber.updated_at = _now()
        for sub in self.p.subscriptions.values():
            if sub.subscriber_id == subscriber.id and sub.status != "deleted":
                self.p.delete_subscription(sub.id)
        return web.json_response(subscriber.public())  # the OAS: 200, the Subscriber

    # subscriptions

    def _subscription(self, request: web.Request) -> Subscription:
        subscriber = self._subscriber(request)
        found = self.p.subscriptions.get(request.match_info["subscription"])
        if found is None or found.subscriber_id != subscriber.id:
            raise PlatformError(404, "Subscription not found")
        return found

    def _fields(self, body: dict[str, Any], url: str, *, creating: bool) -> dict[str, Any]:
        """Validated subscription fields present in ``body`` (all required ones on create)."""
        out: dict[str, Any] = {}
        if "source" in body and body["source"] != "pim":  # the OAS: default pim
            raise PlatformError(400, 'source must be "pim"')
        if "subject" in body and str(body["subject"]).rstrip("/") != url:
            raise PlatformError(400, "subject must be the PIM URL given in X-PIM-URL")
        if (creating or "type" in body) and body.get("type") != "https":
            raise PlatformError(400, 'type: the simulated platform delivers "https" only')
        if creating or "events" in body:
            events = body.get("events")
            if not isinstance(events, list) or not 1 <= len(events) <= _MAX_EVENTS:
                raise PlatformError(400, f"events must be a list of 1 to {_MAX_EVENTS} event types")
            unknown = [e for e in events if e not in REFERENCE]
            if unknown:
                raise PlatformError(400, f"Unknown event type: {str(unknown[0])[:100]}")
            out["events"] = list(dict.fromkeys(events))
        if creating or "config" in body:
            config = body.get("config")
            if not isinstance(config, dict):
                raise PlatformError(400, "config must be an object")
            if creating or "url" in config:
                dest = str(_text(config.get("url"), "config.url", limit=_MAX_TEXT))
                self._check_url(dest, "config.url")
                out["url"] = dest
            if creating or "secret" in config:
                secret = config.get("secret")
                if not isinstance(secret, dict):
                    raise PlatformError(400, "config.secret.primary is required")
                out["primary"] = _secret(secret.get("primary"), "config.secret.primary")
                secondary = secret.get("secondary")
                out["secondary"] = (
                    None if secondary is None else _secret(secondary, "config.secret.secondary")
                )
            if "headers" in config:
                out["headers"] = _headers(config["headers"])
        if "filter" in body:
            text = _text(body["filter"], "filter", limit=MAX_LENGTH, required=False)
            if text is not None:
                try:
                    parse_filter(text)
                except FilterError as exc:
                    raise PlatformError(400, f"filter: {exc}") from None
            out["filter"] = text
        if "send_product_identifier" in body:
            if not isinstance(body["send_product_identifier"], bool):
                raise PlatformError(400, "send_product_identifier must be a boolean")
            out["send_product_identifier"] = body["send_product_identifier"]
        return out

    def _permitted(self, request: web.Request) -> None:
        client_id, _ = self.p.authenticate(request.headers)
        if client_id in self.p.withdrawn:
            raise PlatformError(
                403, "Not allowed: the connection lacks the Event Platform permission"
            )

    async def create_subscription(self, request: web.Request) -> web.Response:
        _, url = self.p.authenticate(request.headers)
        subscriber = self._subscriber(request)
        self._permitted(request)
        if subscriber.status == "deleted":
            raise PlatformError(409, "Subscriber is deleted")
        fields = self._fields(await _body(request), url, creating=True)
        made = self.p.add_subscription(
            subscriber,
            url=fields["url"],
            primary=fields["primary"],
            secondary=fields.get("secondary"),
            events=fields["events"],
            send_product_identifier=fields.get("send_product_identifier", False),
            headers=fields.get("headers"),
            filter=fields.get("filter"),
        )
        return web.json_response(made.public(), status=201)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        subscriber = self._subscriber(request)
        found = [
            s.public()
            for s in self.p.subscriptions.values()
            if s.subscriber_id == subscriber.id and s.status in ("active", "suspended")
        ]  # the OAS: "the list of subscriptions that are either active and suspended"
        return web.json_response(found)

    async def get_subscription(self, request: web.Request) -> web.Response:
        return web.json_response(self._subscription(request).public())

    async def patch_subscription(self, request: web.Request) -> web.Response:
        _, url = self.p.authenticate(request.headers)
        sub = self._subscription(request)
        self._permitted(request)
        if sub.status in ("deleted", "revoked"):
            raise PlatformError(409, f"Subscription is {sub.status}")
        fields = self._fields(await _body(request), url, creating=False)
        for name, value in fields.items():
            setattr(sub, name, value)
        sub.updated_at = _now()
        return web.json_response(sub.public())

    async def delete_subscription(self, request: web.Request) -> web.Response:
        sub = self._subscription(request)
        self.p.delete_subscription(sub.id)
        return web.json_response(sub.public())  # the OAS: 200, "Returns the deleted subscription."

    async def suspend(self, request: web.Request) -> web.Response:
        sub = self._subscription(request)
        return web.json_response(self.p.suspend(sub.id, by="user").public(), status=202)

    async def resume(self, request: web.Request) -> web.Response:
        sub = self._subscription(request)
        self._permitted(request)
        return web.json_response(self.p.resume(sub.id).public(), status=202)


def _headers(value: Any) -> dict[str, str]:
    """Custom delivery headers, with concepts.html's rules: at most 5, names ``a-zA-Z0-9-`` up
    to 128, printable ASCII values up to 256, reserved names refused."""
    if not isinstance(value, dict) or len(value) > 5:
        raise PlatformError(400, "config.headers: an object of at most 5 headers")
    out: dict[str, str] = {}
    for name, text in value.items():
        lowered = str(name).lower()
        if not _HEADER_NAME.match(str(name)):
            raise PlatformError(400, "config.headers: names are a-zA-Z0-9- up to 128 characters")
        if lowered in _RESERVED_HEADERS or lowered.startswith("x-akeneo-signature-"):
            raise PlatformError(400, f"config.headers: {str(name)[:128]} is reserved")
        if (
            not isinstance(text, str)
            or len(text) > 256
            or not all(32 <= ord(c) < 127 for c in text)
        ):
            raise PlatformError(
                400, "config.headers: values are printable ASCII up to 256 characters"
            )
        out[str(name)] = text
    return out
