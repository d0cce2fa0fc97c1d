"""The aiohttp app: ``POST /events`` (both formats), ``/healthz``, ``/readyz``, ``/metrics``.

Order of checks on ``/events``: size and read time (413, 408) -> signature (401) ->
back-pressure (429, Event Platform only) -> shape (400) -> durable enqueue (503 unless
every ack arrived) -> answer.
The format is told apart by the signature headers: Event Platform sends ``X-AKENEO-SIGNATURE-*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from akeneo_pim.formats import PayloadError
from akeneo_pim.normalize import EncodedDelivery, encode_event_platform, encode_events_api
from akeneo_pim.normalized import SourceFormat
from akeneo_pim.signatures import (
    EVENT_PLATFORM_PRIMARY_HEADER,
    EVENT_PLATFORM_SECONDARY_HEADER,
    EVENTS_API_SIGNATURE_HEADER,
    SignatureError,
    verify_event_platform,
    verify_events_api,
)
from akeneo_receiver.config import ReceiverConfig
from akeneo_receiver.metrics import REJECTED, events, latency, requests
from akeneo_receiver.publisher import EventPublisher, PublishError
from akeneo_receiver.reloading import Reloader, SecretFile, TLSKeyPair

log = logging.getLogger("akeneo_receiver")

LINGERING_TIME = 2.0  # after a 413, discard what the client still sends for at most this long
# a connection's life without a complete request (aiohttp counts it from the accept): bounds
# slowloris clients that trickle their headers; aiohttp's default is an hour
KEEPALIVE_TIMEOUT = 30.0
BODY_READ_TIMEOUT = 10.0  # a body trickled slower than this is cut off with a 408
PENDING_POLL_INTERVAL = 1.0
# A SIGTERM ends the process within 2 s: requests in flight get their JetStream acks for
# ACK_GRACE (ms when NATS is up), then a 503; aiohttp cuts what still runs after STOP_GRACE.
ACK_GRACE = 0.5
STOP_GRACE = 1.0


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
        self.tls: TLSKeyPair | None = None
        if config.tls_cert_file is not None and config.tls_key_file is not None:
            self.tls = TLSKeyPair(config.tls_cert_file, config.tls_key_file)
        self.reloader = Reloader(
            [self.events_api_secrets, self.event_platform_secrets],
            self.tls,
            config.reload_interval,
        )
        self._runner: web.AppRunner | None = None

    # --- application --------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/events", self.events)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, _app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self.publisher.connect(), name="nats-connect"),
            asyncio.create_task(
                self.publisher.watch_pending(PENDING_POLL_INTERVAL), name="pending"
            ),
            asyncio.create_task(self.reloader.run(), name="reload"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.publisher.close()

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
        log.info(
            "receiver listening",
            extra={
                "port": self.config.port,
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

    # --- probes ---------------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        if not self.publisher.connected:
            return web.Response(status=503, text="NATS not connected\n")
        if not await self.publisher.stream_exists():
            return web.Response(status=503, text=f"stream {self.publisher.stream} missing\n")
        return web.Response(text="ready\n")

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- events ---------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        fmt = _format_of(request)
        label = fmt.value if fmt is not None else "unknown"
        try:
            response = await self._events(request, fmt, started)
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
                **rej.fields,
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

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.config.max_body_bytes
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
        self, request: web.Request, fmt: SourceFormat | None, started: float
    ) -> web.Response:
        body = await self._read_body(request)
        self._verify(fmt, request, body)
        assert fmt is not None
        pending = self.publisher.pending
        if (
            fmt is SourceFormat.EVENT_PLATFORM
            and pending is not None
            and pending > self.config.max_pending
        ):
            raise Rejection(429, "over_pending_limit", "the worker is behind; slow down")
        received_at = datetime.now(UTC)
        encode = encode_events_api if fmt is SourceFormat.EVENTS_API else encode_event_platform
        try:
            delivery: EncodedDelivery = encode(body, self.config.connection, received_at)
        except PayloadError as exc:
            raise Rejection(400, exc.reason, exc.detail) from None
        rejected = [
            {"index": r.index, "event_id": r.event_id, "reason": r.reason}
            for r in delivery.rejected
        ]
        if rejected:
            events(fmt.value, "rejected").inc(len(rejected))
        total = (
            self.config.ack_budget
            if fmt is SourceFormat.EVENTS_API
            else self.config.event_platform_ack_budget
        )
        budget = total - (time.monotonic() - started)
        try:
            result = await self.publisher.publish(delivery.messages, budget)
        except PublishError as exc:
            raise Rejection(
                503,
                exc.reason,
                "not all events were stored durably; send again",
                events=len(delivery.messages),
            ) from None
        events(fmt.value, "accepted").inc(result.stored)
        if result.duplicates:
            events(fmt.value, "duplicate").inc(result.duplicates)
        accepted = result.stored + result.duplicates
        if rejected:
            raise Rejection(
                400,
                "invalid_events",
                f"{len(rejected)} event(s) rejected, {accepted} accepted",
                accepted=accepted,
                rejected=rejected,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("events accepted", extra={"format": fmt.value, "accepted": accepted})
        return web.Response(
            body=_ACCEPTED % (accepted, result.duplicates), content_type="application/json"
        )
