"""The aiohttp apps: the three delivery paths on the public port; ``/healthz``, ``/readyz``
and ``/metrics`` on the admin port (plain HTTP, for probes and scraping, never routed from
the internet: volumes and backlog are nobody else's business, and every ``/readyz`` used to
cost a JetStream ``STREAM.INFO``). Any other path on the public port is a plain 404.

- ``POST /events``: the legacy Events API, and Event Platform CloudEvents too (told apart by
  the signature headers: the Event Platform sends ``X-AKENEO-SIGNATURE-*``), so setups made
  before ``/event-platform`` existed keep working.
- ``POST /event-platform``: Event Platform CloudEvents only.
- ``POST /event-platform/notifications``: the Event Platform's notification webhooks.

Each is also served with a trailing slash: the Event Platform suspends a subscription at
once on a 404 or a redirect (https://api.akeneo.com/event-platform/key-platform-behaviors.html).

Order of checks for events: size and read time (413, 408) -> signature (401) -> shape (400)
-> back-pressure (429, Event Platform only, when something is to be stored) -> durable
enqueue (every ack within the budget; NATS unavailable: the on-disk spool, ``spool``; else
503) -> answer. A signed CloudEvent is answered 2xx
whatever its type: what the connector does not handle is acknowledged and counted, never
stored, because every 4xx counts against the subscription's success rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from akeneo_connector.event_types import REFERENCE
from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_connector.health import health_app, serve
from akeneo_connector.normalized import EventMessage, SourceFormat
from akeneo_connector.secret_report import SecretReport, report, report_key
from akeneo_pim.formats import PayloadError
from akeneo_pim.normalize import (
    UNHANDLED_TYPE,
    EncodedDelivery,
    IgnoredEvent,
    encode_event_platform,
    encode_events_api,
)
from akeneo_pim.notifications import parse_notification, printable, type_label
from akeneo_pim.paths import EVENT_PLATFORM_PATH, EVENTS_API_PATH, NOTIFICATIONS_PATH
from akeneo_pim.signatures import (
    EVENT_PLATFORM_PRIMARY_HEADER,
    EVENT_PLATFORM_SECONDARY_HEADER,
    EVENTS_API_SIGNATURE_HEADER,
    SignatureError,
    verify_event_platform,
    verify_events_api,
    verify_notification,
)
from akeneo_receiver.config import ReceiverConfig
from akeneo_receiver.metrics import (
    NOTIFICATIONS,
    REJECTED,
    events,
    ignored,
    latency,
    requests,
)
from akeneo_receiver.outages import OutageRecorder
from akeneo_receiver.publisher import (
    EVENT_TOO_LARGE,
    NO_STREAM,
    QUOTA_EXCEEDED,
    BatchResult,
    EventPublisher,
    PublishError,
)
from akeneo_receiver.reloading import Reloader, SecretFile, TLSKeyPair
from akeneo_receiver.spool import Dropped, Message, Publish, Spool

log = logging.getLogger("akeneo_receiver")

LINGERING_TIME = 2.0  # after a 413, discard what the client still sends for at most this long
# a connection's life without a complete request (aiohttp counts it from the accept): bounds
# slowloris clients that trickle their headers; aiohttp's default is an hour
KEEPALIVE_TIMEOUT = 30.0
BODY_READ_TIMEOUT = 10.0  # a body trickled slower than this is cut off with a 408
PENDING_POLL_INTERVAL = 1.0
OUTAGE_CHECK_INTERVAL = 0.5
REPORT_RETRY = 2.0  # a secret report NATS did not take is sent again this much later
GAP_PUBLISH_BUDGET = 2.0
# A notification is about 500 bytes: anything near this is not one, however it is signed.
NOTIFICATION_MAX_BYTES = 64 * 1024
# Distinct (type, reason) pairs of ignored CloudEvents logged once each: types are chosen
# by the sender, so the memory of what was logged is bounded.
LOGGED_IGNORED_MAX = 256
NOTIFICATION = "notification"  # the format label of notification webhooks
# Publish failures that mean NATS itself is unavailable (down, unreachable, a clustered
# stream without a leader, this process stopping): a verified delivery is then spooled to
# disk and answered 200 (``spool``); any other refusal (quota, size, a stream refusing the
# subject) stays what it was.
NATS_UNAVAILABLE = frozenset(
    {"jetstream_unavailable", "nats_disconnected", "ack_timeout", "shutting_down", NO_STREAM}
)
SPOOL_CHECK_INTERVAL = 0.5
SPOOL_PUBLISH_BUDGET = 2.0  # a batch of spooled deliveries waits this long for its acks
# A stop waits this long for JetStream to take what is spooled (a pod deleted during an
# outage loses its emptyDir): within the pods' 30 s termination grace period.
SPOOL_STOP_WAIT = 10.0
NOTIFICATION_SPOOL_MAX = 64  # notifications; a real one is about 500 bytes
SPOOLED_DETAIL = (
    "the queue is unavailable: kept on the receiver's disk and stored on the stream once it is back"
)
_SPOOLED = (
    b'{"status": "spooled", "accepted": 1, "duplicates": %d, "detail": "'
    + SPOOLED_DETAIL.encode()
    + b'"}'
)
# Rejected events named in a 400 (the rest are counted): the answer and its log line stay
# small whatever the body holds (at most formats.MAX_EVENTS_PER_REQUEST events).
REJECTED_SHOWN = 20
REASON_MAX = 200
# /readyz looks the stream up at most this often; probes and scrapers hit it every few s
READINESS_CACHE_SECONDS = 5.0
_REFERENCE = frozenset(REFERENCE)
# A SIGTERM ends the process within 2 s: requests in flight get their JetStream acks for
# ACK_GRACE (ms when NATS is up), then a 503; aiohttp cuts what still runs after STOP_GRACE.
ACK_GRACE = 0.5
STOP_GRACE = 1.0
ADMIN_STOP_GRACE = 0.2  # probes and metrics answer at once; a scraper's keep-alive waits not


def _unstored(reason: str, cloud: bool, count: int) -> Rejection:
    """The answer when not every event was stored.

    At its quota the stream refuses new events (it never drops unapplied ones): the Event
    Platform gets ``429``, which lowers its rate and counts as a failure only for an event
    throttled over an hour, while the worker's progress frees room; the legacy PIM does not
    honour 429, so it gets ``503`` like any storage failure (the reconcile catches up). An
    event above the stream's ``maxMsgSize`` can never be stored: ``413``.
    """
    if reason == QUOTA_EXCEEDED:
        if cloud:
            detail = "this connection's stream is at its quota; slow down and send again"
            return Rejection(429, reason, detail, events=count)
        detail = "this connection's stream is at its quota; the reconcile will catch up"
        return Rejection(503, reason, detail, events=count)
    if reason == EVENT_TOO_LARGE:
        detail = "an event exceeds this connection's spec.stream.maxMsgSize"
        return Rejection(413, reason, detail, events=count)
    # the Event Platform sends again minutes later; the legacy PIM never does
    if cloud:
        return Rejection(
            503, reason, "not all events were stored durably; send again", events=count
        )
    detail = "not all events were stored durably; the reconcile will catch up"
    return Rejection(503, reason, detail, events=count)


def notification_id(body: bytes) -> str:
    """The ``Nats-Msg-Id`` of a notification: a retried one is stored once."""
    return hashlib.sha256(body).hexdigest()


class Rejection(Exception):
    def __init__(self, status: int, reason: str, detail: str = "", **fields: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.fields = fields


def _format_of(request: web.Request) -> SourceFormat | None:
    headers = request.headers
    if EVENT_PLATFORM_PRIMARY_HEADER in headers or EVENT_PLATFORM_SECONDARY_HEADER in headers:
        return SourceFormat.EVENT_PLATFORM
    if EVENTS_API_SIGNATURE_HEADER in headers:
        return SourceFormat.EVENTS_API
    return None


# the answer to every accepted request, as json.dumps would write it
_ACCEPTED = b'{"status": "ok", "accepted": %d, "duplicates": %d}'
_ACCEPTED_CLOUD_EVENTS = b'{"status": "ok", "accepted": %d, "duplicates": %d, "ignored": %d}'


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


class Receiver:
    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.publisher = EventPublisher(config)
        self.events_api_secrets = SecretFile(config.events_api_secret_file, "events_api")
        self.event_platform_secrets = SecretFile(
            config.event_platform_secrets_file, "event_platform"
        )
        self.notification_secret = SecretFile(
            config.notification_secret_file, "event_platform_notification"
        )
        self.tls: TLSKeyPair | None = None
        if config.tls_cert_file is not None and config.tls_key_file is not None:
            self.tls = TLSKeyPair(config.tls_cert_file, config.tls_key_file)
        self.reloader = Reloader(
            [self.events_api_secrets, self.event_platform_secrets, self.notification_secret],
            self.tls,
            config.reload_interval,
        )
        self._runner: web.AppRunner | None = None
        self._admin_runner: web.AppRunner | None = None
        self._logged_ignored: set[tuple[str, str]] = set()
        self.outages = OutageRecorder(
            config.gap_spool_file, detail=f"receiver {socket.gethostname()}"[:200]
        )
        self.notification_spool = Spool(
            config.notification_spool_file,
            kind="notifications",
            max_messages=NOTIFICATION_SPOOL_MAX,
            max_bytes=NOTIFICATION_SPOOL_MAX * NOTIFICATION_MAX_BYTES,
            drain_records=1,  # each counted and logged as stored, or not, on its own
        )
        self.event_spool = Spool(
            config.event_spool_file,
            kind="events",
            max_messages=config.event_spool_max_events,
            max_bytes=config.event_spool_max_bytes,
        )
        self._spool_wake = asyncio.Event()
        self._event_spool_wake = asyncio.Event()
        self._stream_checked: tuple[float, bool] | None = None  # (monotonic time, exists)
        self._stream_lock = asyncio.Lock()

    # --- application --------------------------------------------------------------------

    def app(self) -> web.Application:
        """The public app: the event URLs only."""
        app = web.Application(client_max_size=self.config.max_body_bytes)
        for path, handler in (
            (EVENTS_API_PATH, self.events),
            (EVENT_PLATFORM_PATH, self.event_platform),
            (NOTIFICATIONS_PATH, self.notifications),
        ):
            app.router.add_post(path, handler)
            app.router.add_post(path + "/", handler)  # served, never redirected
            # a reachability check (HEAD) of a destination or notification URL gets a 200
            app.router.add_head(path, self.reachable)
            app.router.add_head(path + "/", self.reachable)
        app.cleanup_ctx.append(self._background)
        return app

    def admin_app(self) -> web.Application:
        """Probes and metrics, for the admin port."""
        return health_app(ready=self.not_ready)

    async def _background(self, _app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self.publisher.connect(), name="nats-connect"),
            asyncio.create_task(
                self.publisher.watch_pending(PENDING_POLL_INTERVAL), name="pending"
            ),
            asyncio.create_task(self.reloader.run(), name="reload"),
            asyncio.create_task(self._record_outages(), name="outages"),
            asyncio.create_task(
                self._drain(self.notification_spool, self._publish_notifications, self._spool_wake),
                name="notification-spool",
            ),
            asyncio.create_task(
                self._drain(self.event_spool, self._publish_spooled, self._event_spool_wake),
                name="event-spool",
            ),
            asyncio.create_task(self._report_secrets(), name="secret-report"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drain_on_stop()
        await self.publisher.close()

    async def _record_outages(self) -> None:
        """Close an outage once 503s stop; store its gap record once JetStream takes it."""
        while True:
            await asyncio.sleep(OUTAGE_CHECK_INTERVAL)
            self.outages.close_if_quiet()
            if self.outages.pending and self.publisher.connected:
                await self.outages.flush(self._publish_gap)

    async def _drain(self, spool: Spool, publish: Publish, wake: asyncio.Event) -> None:
        """Store what a spool holds (also a previous process's) once JetStream takes it."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), SPOOL_CHECK_INTERVAL)
            wake.clear()
            if spool.pending and self.publisher.connected:
                await spool.flush(publish)
                if spool.pending:  # not taken: no new try at every delivery spooled meanwhile
                    await asyncio.sleep(SPOOL_CHECK_INTERVAL)

    async def _drain_on_stop(self) -> None:
        """A stop stores what is spooled first, for at most ``SPOOL_STOP_WAIT`` seconds: a
        pod deleted while NATS is down loses its emptyDir, a restarted container does not."""
        deadline = time.monotonic() + SPOOL_STOP_WAIT
        spools = (
            (self.event_spool, self._publish_spooled),
            (self.notification_spool, self._publish_notifications),
        )
        for spool, publish in spools:
            while spool.pending and time.monotonic() < deadline:
                if self.publisher.connected:
                    await spool.flush(publish)
                if spool.pending:
                    await asyncio.sleep(0.2)
            if spool.pending:
                log.warning(
                    "stopping with spooled messages not stored: the next process on this "
                    "file stores them",
                    extra={"spool": spool.kind, "count": spool.pending},
                )

    async def _publish_spooled(self, messages: list[Message]) -> BatchResult:
        try:
            return await self.publisher.publish_messages(messages, SPOOL_PUBLISH_BUDGET)
        except PublishError as exc:
            if exc.reason == EVENT_TOO_LARGE:  # above the stream's maxMsgSize: never stored
                raise Dropped(exc.reason) from None
            raise

    async def _publish_notifications(self, messages: list[Message]) -> BatchResult:
        result = await self._publish_spooled(messages)
        if result.stored:
            for message in messages:
                self._stored_notification(message.payload, spooled=True)
        return result

    def _stored_notification(self, body: bytes, spooled: bool = False) -> None:
        """Count and log a notification JetStream stored (its type and subscription only)."""
        try:
            notification = parse_notification(body)
        except PayloadError:  # verified and parsed before it was spooled: not expected
            NOTIFICATIONS.labels("other").inc()
            return
        NOTIFICATIONS.labels(type_label(notification.notification_type)).inc()
        log.info(
            "notification stored",
            extra={
                "notification_type": printable(notification.notification_type, 200),
                "subscription_id": printable(notification.subscription_id, 200),
                "spooled": spooled,
            },
        )

    def secret_report(self) -> SecretReport:
        """Fingerprints of the Event Platform secrets this pod accepts right now."""
        return report(
            self.config.pod,
            datetime.now(UTC),
            self.event_platform_secrets.secrets,
            self.notification_secret.secrets,
        )

    async def _report_secrets(self) -> None:
        """Tell the operator what this pod accepts (``akeneo_connector.secret_report``): at
        once when it changes, and every ``secret_report_interval`` seconds; never a secret."""
        js_subject = f"$KV.{self.config.names.guard_bucket}.{report_key(self.config.pod)}"
        stream = f"KV_{self.config.names.guard_bucket}"
        sent: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        sent_at = 0.0
        retry_at = 0.0  # after a failure: tried again later, logged once until it works
        while True:
            current = self.secret_report()
            loaded = (current.event_platform, current.notification)
            now = time.monotonic()
            due = now - sent_at >= self.config.secret_report_interval
            js = self.publisher.js
            ready = js is not None and self.publisher.connected and now >= retry_at
            if (loaded != sent or due) and ready and js is not None:
                try:
                    await js.publish(js_subject, current.to_bytes(), timeout=2.0, stream=stream)
                except Exception as exc:  # events flow regardless; the bucket may come later
                    if not retry_at:
                        log.warning("secret report not stored", extra={"error": type(exc).__name__})
                    retry_at = time.monotonic() + REPORT_RETRY
                else:
                    retry_at = 0.0
                    if loaded != sent:
                        log.info(
                            "secret report stored",
                            extra={
                                "event_platform": list(current.event_platform),
                                "notification": list(current.notification),
                            },
                        )
                    sent, sent_at = loaded, time.monotonic()
            await asyncio.sleep(self.config.reload_interval)

    async def _publish_gap(self, record: GapRecord) -> None:
        subject = self.config.gap_subject(GapSource.RECEIVER_503.value)
        await self.publisher.publish_one(
            subject, record.msg_id, record.to_bytes(), GAP_PUBLISH_BUDGET
        )

    async def start(self) -> None:
        if self.tls is None:
            log.warning("no TLS key pair configured: serving plain HTTP")
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            lingering_time=LINGERING_TIME,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            handle_signals=False,
            shutdown_timeout=STOP_GRACE,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.config.host,
            self.config.port,
            ssl_context=self.tls.context if self.tls else None,
        )
        await site.start()
        if self.config.admin_port:
            self._admin_runner = await serve(
                self.admin_app(),
                self.config.host,
                self.config.admin_port,
                handle_signals=False,
                shutdown_timeout=ADMIN_STOP_GRACE,
            )
        log.info(
            "receiver listening",
            extra={
                "port": self.config.port,
                "admin_port": self.config.admin_port,
                "tls": self.tls is not None,
                "connection": self.config.connection,
                "stream": self.config.names.stream,
            },
        )

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish (bounded), close NATS."""
        if self._runner is not None:
            self.publisher.stop_waiting_after(ACK_GRACE)
            await self._runner.cleanup()
            self._runner = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None

    # --- probes ---------------------------------------------------------------------------

    async def reachable(self, _request: web.Request) -> web.Response:
        return web.Response()

    async def not_ready(self) -> str | None:
        """Why ``/readyz`` answers 503: no NATS, or no stream to store into."""
        if not self.publisher.connected:
            return "NATS not connected"
        if not await self.stream_exists():
            return f"stream {self.publisher.stream} missing"
        return None

    async def stream_exists(self) -> bool:
        """The stream lookup, at most once per ``READINESS_CACHE_SECONDS`` however many
        probes ask (concurrent ones wait for the lookup in flight)."""
        async with self._stream_lock:
            checked = self._stream_checked
            if checked is not None and time.monotonic() - checked[0] < READINESS_CACHE_SECONDS:
                return checked[1]
            exists = await self.publisher.stream_exists()
            self._stream_checked = (time.monotonic(), exists)
            return exists

    # --- events ---------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.Response:
        """``/events``: either format."""
        return await self._answer(request, cloud_events_only=False)

    async def event_platform(self, request: web.Request) -> web.Response:
        """``/event-platform``: CloudEvents only; a legacy delivery is told where to go."""
        return await self._answer(request, cloud_events_only=True)

    async def _answer(self, request: web.Request, *, cloud_events_only: bool) -> web.Response:
        started = time.monotonic()
        fmt = _format_of(request)
        label = fmt.value if fmt is not None else "unknown"
        try:
            response = await self._events(request, fmt, started, cloud_events_only)
        except Rejection as rej:
            response = self._reject(request, label, rej)
        requests(label, response.status).inc()
        latency(label).observe(time.monotonic() - started)
        return response

    def _reject(self, request: web.Request, label: str, rej: Rejection) -> web.Response:
        REJECTED.labels(rej.reason).inc()
        log.warning(
            "request rejected",
            extra={
                "status": rej.status,
                "reason": rej.reason,
                "format": label,
                "remote": request.remote,
                # counts only: the answer names the rejected events, the log does not
                **{k: v for k, v in rej.fields.items() if isinstance(v, int)},
            },
        )
        body: dict[str, Any] = {"error": rej.reason}
        if rej.detail:
            body["detail"] = rej.detail
        body.update(rej.fields)
        response = _json(rej.status, body)
        if rej.status in (408, 413):
            response.force_close()
        return response

    async def _read_body(self, request: web.Request, limit: int | None = None) -> bytes:
        limit = self.config.max_body_bytes if limit is None else limit
        too_large = Rejection(413, "body_too_large", f"limit is {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        content = request.content
        if content.is_eof():  # the usual small body arrived with the headers: no timer needed
            body = content.read_nowait()
            if len(body) > limit:
                raise too_large
            return body
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                async for chunk in content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise Rejection(
                408, "body_timeout", f"body not received within {BODY_READ_TIMEOUT:g}s"
            ) from None
        return b"".join(chunks)

    def _verify(self, fmt: SourceFormat | None, request: web.Request, body: bytes) -> None:
        try:
            if fmt is SourceFormat.EVENT_PLATFORM:
                verify_event_platform(self.event_platform_secrets.secrets, request.headers, body)
            elif fmt is SourceFormat.EVENTS_API:
                verify_events_api(
                    self.events_api_secrets.secrets,
                    request.headers,
                    body,
                    now=time.time(),
                    tolerance=self.config.timestamp_tolerance,
                )
            else:
                raise SignatureError("missing_signature")
        except SignatureError as exc:
            raise Rejection(401, exc.reason) from None

    async def _events(
        self,
        request: web.Request,
        fmt: SourceFormat | None,
        started: float,
        cloud_events_only: bool,
    ) -> web.Response:
        body = await self._read_body(request)
        if cloud_events_only and fmt is SourceFormat.EVENTS_API:
            raise Rejection(
                401,
                "use_events_url",
                f"Events API deliveries go to {EVENTS_API_PATH}; "
                f"{EVENT_PLATFORM_PATH} takes Event Platform CloudEvents only",
            )
        self._verify(fmt, request, body)
        assert fmt is not None
        cloud = fmt is SourceFormat.EVENT_PLATFORM
        received_at = datetime.now(UTC)
        encode = encode_event_platform if cloud else encode_events_api
        try:
            delivery: EncodedDelivery = encode(body, self.config.connection, received_at)
        except PayloadError as exc:
            raise Rejection(400, exc.reason, exc.detail) from None
        pending = self.publisher.pending
        # only what is to be stored is held back: an ignored CloudEvent needs no queue
        behind = pending is not None and pending > self.config.max_pending
        if cloud and behind and delivery.messages:
            raise Rejection(429, "over_pending_limit", "the worker is behind; slow down")
        rejected = [
            {"index": r.index, "event_id": r.event_id, "reason": r.reason[:REASON_MAX]}
            for r in delivery.rejected[:REJECTED_SHOWN]
        ]
        spooled = bool(delivery.messages) and self.event_spool.pending > 0
        if spooled and self.publisher.at_quota:
            # the spool's drain met a full stream: back-pressure as without a spool (429 to
            # the Event Platform), not 200s until the spool is full
            rejection = _unstored(QUOTA_EXCEEDED, cloud, len(delivery.messages))
            if rejection.status == 503:
                self.outages.hit()  # the legacy PIM's: lost unless a catch-up reads them
            raise rejection
        if spooled:  # stored in arrival order, behind what is spooled
            result = await self._spool_events(delivery.messages, "spool_not_empty", cloud)
        else:
            total = self.config.event_platform_ack_budget if cloud else self.config.ack_budget
            budget = total - (time.monotonic() - started)
            try:
                result = await self.publisher.publish(delivery.messages, budget)
            except PublishError as exc:
                if exc.reason in NATS_UNAVAILABLE and self.config.event_spool_file is not None:
                    result = await self._spool_events(delivery.messages, exc.reason, cloud)
                    spooled = True
                else:
                    rejection = _unstored(exc.reason, cloud, len(delivery.messages))
                    if rejection.status == 503:
                        self.outages.hit()  # lost unless a catch-up reconcile reads them
                    raise rejection from None
        events(fmt.value, "spooled" if spooled else "accepted").inc(result.stored)
        if result.duplicates:
            events(fmt.value, "duplicate").inc(result.duplicates)
        if delivery.ignored:
            self._count_ignored(delivery.ignored)
        accepted = result.stored + result.duplicates
        if rejected:
            count = len(delivery.rejected)
            events(fmt.value, "rejected").inc(count)
            extra = {"ignored": len(delivery.ignored)} if cloud else {}
            shown = "" if count <= REJECTED_SHOWN else f" (the first {REJECTED_SHOWN} named)"
            raise Rejection(
                400,
                "invalid_events",
                f"{count} event(s) rejected{shown}, {accepted} accepted",
                accepted=accepted,
                rejected=rejected,
                rejected_count=count,
                **extra,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("events accepted", extra={"format": fmt.value, "accepted": accepted})
        if spooled:
            payload: dict[str, Any] = {
                "status": "spooled",
                "accepted": accepted,
                "duplicates": result.duplicates,
            }
            if cloud:
                payload["ignored"] = len(delivery.ignored)
            return _json(200, {**payload, "detail": SPOOLED_DETAIL})
        if cloud:
            answer = _ACCEPTED_CLOUD_EVENTS % (accepted, result.duplicates, len(delivery.ignored))
        else:
            answer = _ACCEPTED % (accepted, result.duplicates)
        return web.Response(body=answer, content_type="application/json")

    async def _spool_events(
        self, messages: list[EventMessage], reason: str, cloud: bool
    ) -> BatchResult:
        """Keep events JetStream cannot take now on disk (answered 200), or refuse them:
        ``503`` as without a spool (no file, full, unwritable)."""
        kept, duplicates = await self.event_spool.add(self.publisher.messages(messages))
        if not kept:
            rejection = _unstored(reason, cloud, len(messages))
            if self.config.event_spool_file is not None:
                rejection = Rejection(
                    503,
                    "spool_full",
                    "the queue is unavailable and the event spool is full; "
                    + ("send again" if cloud else "the reconcile will catch up"),
                    events=len(messages),
                )
            self.outages.hit()  # lost unless a catch-up reconcile reads them
            raise rejection
        self._event_spool_wake.set()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("events spooled", extra={"reason": reason, "events": len(messages)})
        return BatchResult(len(messages) - duplicates, duplicates)

    def _count_ignored(self, items: list[IgnoredEvent]) -> None:
        """Count acknowledged-and-ignored CloudEvents; log each (type, reason) once."""
        events(SourceFormat.EVENT_PLATFORM.value, "ignored").inc(len(items))
        for item in items:
            ignored(item.type if item.type in _REFERENCE else "other", item.reason).inc()
            seen = (item.type[:200], item.reason)
            if seen in self._logged_ignored or len(self._logged_ignored) > LOGGED_IGNORED_MAX:
                continue
            self._logged_ignored.add(seen)
            if len(self._logged_ignored) > LOGGED_IGNORED_MAX:
                log.warning("too many kinds of ignored events: no more are logged")
                continue
            log.log(
                logging.INFO if item.reason == UNHANDLED_TYPE else logging.WARNING,
                "CloudEvent acknowledged and ignored (logged once per type and reason)",
                extra={
                    "type": printable(item.type, 200),
                    "reason": item.reason,
                    "event_id": item.event_id,
                },
            )

    # --- notifications ---------------------------------------------------------------------

    async def notifications(self, request: web.Request) -> web.Response:
        """``/event-platform/notifications``: a subscription was suspended, revoked, resumed."""
        started = time.monotonic()
        try:
            response = await self._notification(request, started)
        except Rejection as rej:
            response = self._reject(request, NOTIFICATION, rej)
        requests(NOTIFICATION, response.status).inc()
        latency(NOTIFICATION).observe(time.monotonic() - started)
        return response

    async def _notification(self, request: web.Request, started: float) -> web.Response:
        body = await self._read_body(
            request, min(self.config.max_body_bytes, NOTIFICATION_MAX_BYTES)
        )
        try:
            verify_notification(self.notification_secret.secrets, request.headers, body)
        except SignatureError as exc:
            raise Rejection(401, exc.reason) from None
        try:
            notification = parse_notification(body)
        except PayloadError as exc:
            raise Rejection(400, exc.reason, exc.detail) from None
        if self.notification_spool.pending:  # stored in arrival order, behind the spooled
            return await self._spool(body, notification.notification_type, "spool_not_empty")
        # Akeneo retries a notification it got no 2xx for: the same body is stored once
        msg_id = notification_id(body)
        budget = self.config.event_platform_ack_budget - (time.monotonic() - started)
        try:
            result = await self.publisher.publish_one(
                self.config.notifications_subject, msg_id, body, budget
            )
        except PublishError as exc:
            if exc.reason in NATS_UNAVAILABLE:
                return await self._spool(body, notification.notification_type, exc.reason)
            detail = "the notification was not stored durably; send again"
            if exc.reason == QUOTA_EXCEEDED:
                detail = f"this connection's stream is at its quota; {detail} later"
            raise Rejection(503, exc.reason, detail) from None
        if result.stored:
            self._stored_notification(body)
        return web.Response(
            body=_ACCEPTED % (1, result.duplicates), content_type="application/json"
        )

    async def _spool(self, body: bytes, notification_type: str, reason: str) -> web.Response:
        """Keep a notification NATS cannot take now on disk (200), or refuse it (503)."""
        message = Message(self.config.notifications_subject, notification_id(body), body)
        kept, duplicate = await self.notification_spool.add([message])
        if not kept:
            if self.config.notification_spool_file is None:
                raise Rejection(503, reason, "the notification was not stored durably; send again")
            detail = "the queue is unavailable and the notification spool is full; send again"
            raise Rejection(503, "spool_full", detail)
        self._spool_wake.set()
        log.info(
            "notification spooled",
            extra={"notification_type": printable(notification_type, 200), "reason": reason},
        )
        return web.Response(body=_SPOOLED % int(duplicate), content_type="application/json")
