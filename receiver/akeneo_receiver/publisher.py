"""Durable enqueueing into the connection's JetStream stream, and what the receiver asks of it.

A batch is published pipelined (every message sent before any ack is awaited) and the answer
waits for every ack within the budget: a ``200`` is only given for events JetStream stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import NotFoundError

from akeneo_connector.nats_connect import connect
from akeneo_connector.normalized import EventMessage, ResourceKind
from akeneo_connector.stopping import close_nats
from akeneo_receiver.config import ReceiverConfig
from akeneo_receiver.metrics import CONSUMER_PENDING
from akeneo_receiver.natsclient import AckClient
from akeneo_receiver.spool import Message

log = logging.getLogger("akeneo_receiver.jetstream")

RECONNECT_WAIT = 0.5
CONNECT_TIMEOUT = 2.0
API_TIMEOUT = 2.0
MSG_ID = Header.MSG_ID.value
EXPECTED_STREAM = Header.EXPECTED_STREAM.value
NO_RESPONDERS = "503"
# No server took the publish: the stream does not exist, or (clustered) its leader died and
# no other is elected yet, or the subject is served by nothing. Told apart from a refusal
# (``stream_error``) because it passes: the event spool waits it out.
NO_STREAM = "no_responders"
QUOTA_EXCEEDED = "quota_exceeded"
EVENT_TOO_LARGE = "event_too_large"
# JetStream's refusals of a store (err_code 10077 carries the store's own error text) that
# mean this connection's stream is at its quota (DiscardPolicy.NEW), and of one message
# above the stream's max_msg_size (10054).
_STORE_FAILED = 10077
_QUOTA_TEXTS = ("maximum bytes exceeded", "maximum messages exceeded")
_MESSAGE_TOO_LARGE = 10054
# After a refusal for quota, deliveries are refused without publishing for this long: a
# tenant flooding a full stream then costs the shared nats-server (every tenant's) nothing
# but one refused message a second. The worker's trim runs every 15 s; a second of events
# refused early is what a full stream refuses anyway.
QUOTA_HOLD = 1.0
_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]")


class PublishError(Exception):
    """Not all events were acknowledged; ``reason`` is a short machine word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int


class _Batch:
    __slots__ = ("done", "duplicates", "error", "remaining", "tokens")

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.duplicates = 0
        self.error: str | None = None
        self.tokens: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class AckPipeline:
    """JetStream publishes with one shared reply subscription and one waiter per batch.

    Equivalent to ``js.publish`` per message, but pipelined: every message of a batch is
    written before any ack is awaited, acks are counted as they come, and the batch waits
    on a single future with one timer (no task or timer per message).
    """

    def __init__(self, nc: NATS, stream: str) -> None:
        self.nc = nc
        self.stream = stream
        self.prefix = nc.new_inbox()
        self._cut = len(self.prefix) + 1
        self._waiting: dict[bytes, _Batch] = {}
        self._seq = 0
        # an HPUB frame is "HPUB <subject> <reply> <header bytes> <total bytes>", the header
        # block "NATS/1.0", Nats-Msg-Id, Nats-Expected-Stream, a blank line, then the payload
        self._reply_prefix = f"{self.prefix}.".encode()
        self._hdr_tail = f"\r\n{EXPECTED_STREAM}: {stream}\r\n\r\n".encode()
        self._hdr_fixed = len(b"NATS/1.0\r\nNats-Msg-Id: ") + len(self._hdr_tail)
        self._subjects: dict[str, bytes] = {}

    @classmethod
    async def start(cls, nc: NATS, stream: str) -> AckPipeline:
        pipeline = cls(nc, stream)
        sub = await nc.subscribe(f"{pipeline.prefix}.*", cb=pipeline._on_ack)
        if isinstance(nc, AckClient):
            nc.take_plain(sub._id, pipeline._on_plain_ack)
        return pipeline

    async def publish(self, messages: Sequence[tuple[str, str, bytes]]) -> _Batch:
        """Send (subject, message id, payload) triples; returns the batch to ``wait`` on."""
        batch = _Batch(len(messages))
        tokens = batch.tokens
        for _subject, msg_id, _payload in messages:
            if _UNSAFE_HEADER.search(msg_id):
                raise PublishError("bad_message_id")  # the wire models already refuse these
            self._seq += 1
            tokens.append(b"%x" % self._seq)
        waiting = self._waiting
        for token in tokens:
            waiting[token] = batch
        try:
            await self._send(messages, tokens)
        except Exception as exc:
            self._forget(batch)
            log.warning("publish failed", extra={"error": exc.__class__.__name__})
            raise PublishError("jetstream_unavailable") from None
        return batch

    async def _send(self, messages: Sequence[tuple[str, str, bytes]], tokens: list[bytes]) -> None:
        """All HPUB frames of a batch in one write when the client allows it.

        ``nc.publish`` re-encodes and re-validates the headers of each message, which is the
        largest cost per event here; the frames are what it would send (same protocol bytes),
        queued through the client's own pending buffer so reconnect buffering is unchanged.
        """
        nc = self.nc
        send_command = getattr(nc, "_send_command", None)
        max_payload = getattr(nc, "max_payload", 0)
        if send_command is None or not max_payload or not nc.is_connected:
            for (subject, msg_id, payload), token in zip(messages, tokens, strict=True):
                await nc.publish(
                    subject,
                    payload,
                    reply=f"{self.prefix}.{token.decode()}",
                    headers={MSG_ID: msg_id, EXPECTED_STREAM: self.stream},
                )
            return
        parts: list[bytes] = []
        reply_prefix, tail, fixed = self._reply_prefix, self._hdr_tail, self._hdr_fixed
        for (subject, msg_id, payload), token in zip(messages, tokens, strict=True):
            if len(payload) > max_payload:
                raise MaxPayloadError
            msg_id_bytes = msg_id.encode()
            hdr_len = fixed + len(msg_id_bytes)
            head = b"HPUB %b %b%b %d %d\r\nNATS/1.0\r\nNats-Msg-Id: %b%b" % (
                self._subject_bytes(subject),
                reply_prefix,
                token,
                hdr_len,
                hdr_len + len(payload),
                msg_id_bytes,
                tail,
            )
            parts += (head, payload, b"\r\n")
        await send_command(b"".join(parts))
        await self._flush()

    def _subject_bytes(self, subject: str) -> bytes:
        encoded = self._subjects.get(subject)
        if encoded is None:
            encoded = self._subjects[subject] = subject.encode()
        return encoded

    async def _flush(self) -> None:
        flush_queue = getattr(self.nc, "_flush_queue", None)
        if flush_queue is None or flush_queue.empty():
            await self.nc._flush_pending()

    async def wait(self, batch: _Batch, timeout: float) -> BatchResult:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(timeout, 0.0), _expire, batch.done)
        try:
            await batch.done
        except TimeoutError:
            raise PublishError("ack_timeout") from None
        finally:
            timer.cancel()
            self._forget(batch)
        if batch.error is not None:
            raise PublishError(batch.error)
        return BatchResult(len(batch.tokens) - batch.duplicates, batch.duplicates)

    def abandon(self, reason: str) -> int:
        """End every wait now with ``reason`` (a stop, a lost server): no 200 for them."""
        batches = {id(b): b for b in self._waiting.values() if not b.done.done()}
        for batch in batches.values():
            batch.error = reason
            batch.done.set_result(None)
        return len(batches)

    def _forget(self, batch: _Batch) -> None:
        for token in batch.tokens:
            self._waiting.pop(token, None)

    async def _on_ack(self, msg: Msg) -> None:
        """Acks through nats-py's subscription: status replies, or all with a plain client."""
        no_responders = msg.headers is not None and msg.headers.get("Status") == NO_RESPONDERS
        self._ack(msg.subject[self._cut :].encode(), msg.data, no_responders)

    def _on_plain_ack(self, subject: bytes, data: bytes) -> None:
        self._ack(subject[self._cut :], data, False)

    def _ack(self, token: bytes, data: bytes, no_responders: bool) -> None:
        batch = self._waiting.pop(token, None)
        if batch is None or batch.done.done():
            return
        if no_responders:
            batch.error = NO_STREAM  # no stream listens on the subject (yet)
        # plain acks ({"stream":..,"seq":..}) are told apart without parsing
        elif not data.startswith(b'{"stream":') or b'"error"' in data or b'"duplicate"' in data:
            self._special_ack(batch, data)
        batch.remaining -= 1
        if batch.error is not None or batch.remaining == 0:
            batch.done.set_result(None)

    @staticmethod
    def _special_ack(batch: _Batch, data: bytes) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            ack = {"error": "unreadable ack"}
        if not isinstance(ack, dict) or "error" in ack or "seq" not in ack:
            batch.error = _refusal(ack.get("error") if isinstance(ack, dict) else None)
            if batch.error != QUOTA_EXCEEDED:  # expected at quota: counted, not logged each
                reason = data[:200].decode(errors="replace")
                log.warning("publish rejected", extra={"error": reason})
        elif ack.get("duplicate"):
            batch.duplicates += 1


def _refusal(error: Any) -> str:
    """The short reason of a JetStream refusal to store a message."""
    if isinstance(error, dict):
        code, text = error.get("err_code"), str(error.get("description", "")).lower()
        if code == _STORE_FAILED and text in _QUOTA_TEXTS:
            return QUOTA_EXCEEDED
        if code == _MESSAGE_TOO_LARGE:
            return EVENT_TOO_LARGE
    return "stream_error"


def _expire(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_exception(TimeoutError())


class EventPublisher:
    """Owns the NATS connection; connects in the background so HTTP starts at once."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.stream = config.names.stream
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.pending: int | None = None
        self.acks: AckPipeline | None = None
        self._subjects = {kind: config.event_subject(kind.value) for kind in ResourceKind}
        self.ready = asyncio.Event()
        self.stopping = False
        self._abandon: asyncio.TimerHandle | None = None
        self._full_until = 0.0  # monotonic time until which the stream is taken as full

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _on_disconnected(self) -> None:
        # Acks for what went to the lost server will never come: answer 503 now rather than
        # at the end of the budget (4 s for the Event Platform), and let the PIM retry.
        count = self.acks.abandon("nats_disconnected") if self.acks is not None else 0
        log.warning("NATS disconnected", extra={"requests": count})

    async def _on_reconnected(self) -> None:
        log.info("NATS reconnected")

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS error", extra={"error": exc.__class__.__name__})

    async def connect(self) -> None:
        """Connect, retrying until it works (the initial connect is not retried by nats-py)."""
        delay = RECONNECT_WAIT
        while True:
            try:
                self.nc = await connect(
                    self.config,
                    "receiver",
                    client=AckClient(),  # takes the plain acks directly
                    connect_timeout=CONNECT_TIMEOUT,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
                break
            except Exception as exc:  # any failure: keep serving 503s and retry
                log.warning("NATS not reachable yet", extra={"error": exc.__class__.__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.js = self.nc.jetstream(timeout=API_TIMEOUT)
        self.acks = await AckPipeline.start(self.nc, self.stream)
        log.info("NATS connected")
        if self.config.ensure_stream:
            await self._ensure()
        self.ready.set()

    async def _ensure(self) -> None:
        # imported here: the CRD's models are not needed by a pod (the operator makes the
        # stream), and cost an idle receiver 1 MB and 0.15 s of start (bench/footprint.py)
        from akeneo_connector.jetstream import ImmutableFieldChanged, ensure_bucket, ensure_stream
        from akeneo_connector.spec import StreamSpec

        assert self.js is not None
        spec = StreamSpec()
        while True:
            try:
                stream = await ensure_stream(self.js, self.config.names, spec)
                bucket = await ensure_bucket(self.js, self.config.names, spec)
            except ImmutableFieldChanged as exc:
                # retrying cannot help; the existing stream still takes the events
                log.error("stream not updated", extra={"stream": self.stream, "error": str(exc)})
                return
            except Exception as exc:
                log.warning("stream not ensured yet", extra={"error": exc.__class__.__name__})
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            log.info(
                "stream ensured",
                extra={
                    "stream": self.stream,
                    "outcome": stream.outcome.value,
                    "bucket_outcome": bucket.outcome.value,
                },
            )
            return

    def stop_waiting_after(self, grace: float) -> None:
        """A stop: new batches are refused; those in flight get their acks until ``grace``
        seconds from now, then are answered 503 (JetStream may still store them: the PIM's
        retry is then a duplicate the stream drops)."""
        self.stopping = True
        if self._abandon is None:
            self._abandon = asyncio.get_running_loop().call_later(grace, self._abandon_waits)

    def _abandon_waits(self) -> None:
        if self.acks is not None and (count := self.acks.abandon("shutting_down")):
            log.warning("stopping: requests answered 503", extra={"requests": count})

    async def close(self) -> None:
        if self._abandon is not None:
            self._abandon.cancel()
        self._abandon_waits()  # nothing waits for a connection that is going away
        await close_nats(self.nc)

    async def publish(self, events: Sequence[EventMessage], budget: float) -> BatchResult:
        """Publish all, await all acks until ``budget`` seconds from now; raise PublishError."""
        if not events:
            return BatchResult(0, 0)
        if self.stopping:
            raise PublishError("shutting_down")
        acks = self.acks
        if acks is None or not self.connected:
            raise PublishError("jetstream_unavailable")
        if time.monotonic() < self._full_until:
            raise PublishError(QUOTA_EXCEEDED)
        subjects = self._subjects
        batch = await acks.publish([(subjects[e.kind], e.event_id, e.data) for e in events])
        try:
            return await acks.wait(batch, budget)
        except PublishError as exc:
            if exc.reason == QUOTA_EXCEEDED:
                self._full_until = time.monotonic() + QUOTA_HOLD
            raise

    def messages(self, events: Sequence[EventMessage]) -> list[Message]:
        """The JetStream messages of ``events``: what ``publish`` sends, for the spool."""
        subjects = self._subjects
        return [Message(subjects[e.kind], e.event_id, e.data) for e in events]

    async def publish_one(
        self, subject: str, msg_id: str, payload: bytes, budget: float
    ) -> BatchResult:
        """Publish one message as is (a notification), await its ack; raise PublishError."""
        return await self.publish_messages([Message(subject, msg_id, payload)], budget)

    async def publish_messages(self, messages: Sequence[Message], budget: float) -> BatchResult:
        """Publish messages as they are (spooled ones too: also while stopping, when the
        spool is drained), await all acks; raise PublishError."""
        acks = self.acks
        if acks is None or not self.connected:
            raise PublishError("jetstream_unavailable")
        batch = await acks.publish(messages)
        try:
            return await acks.wait(batch, budget)
        except PublishError as exc:
            if exc.reason == QUOTA_EXCEEDED:  # the spool's drain too: deliveries see it
                self._full_until = time.monotonic() + QUOTA_HOLD
            raise

    @property
    def at_quota(self) -> bool:
        """The stream refused a message for its quota within the last ``QUOTA_HOLD``."""
        return time.monotonic() < self._full_until

    async def stream_exists(self) -> bool:
        if self.js is None or not self.connected:
            return False
        try:
            await self.js.stream_info(self.stream)
        except Exception:
            return False
        return True

    async def watch_pending(self, interval: float) -> None:
        """Keep ``pending`` = the worker consumer's undelivered count (None while unknown)."""
        while True:
            self.pending = await self._read_pending()
            CONSUMER_PENDING.set(-1 if self.pending is None else self.pending)
            await asyncio.sleep(interval)

    async def _read_pending(self) -> int | None:
        if self.js is None or not self.connected:
            return None
        try:
            info = await self.js.consumer_info(self.stream, self.config.names.consumer)
        except NotFoundError:
            return None  # no worker consumer yet: nothing to protect
        except Exception:
            return self.pending
        return int(info.num_pending or 0)
