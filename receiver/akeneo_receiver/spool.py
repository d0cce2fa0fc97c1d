"""Deliveries kept on disk while JetStream cannot take them, stored once it can again.

Two kinds of delivery must not be lost to a short queue outage, and each gets a spool:

- **Events.** The legacy PIM waits 0.5 s for an answer and never sends again, so a ``503``
  is a lost event until a reconcile reads it back; a clustered stream whose leader dies
  stores nothing until the survivors elect another (nats-server's Raft election timeout,
  4 to 9 s, fixed). A verified, parseable delivery whose publish is not acknowledged within
  its budget because NATS is unavailable (``NATS_UNAVAILABLE``) is appended to
  ``--event-spool-file`` and answered ``200``; while anything is spooled, new deliveries
  are spooled behind it, so they are stored in arrival order.
- **Notifications.** The outage itself makes the Event Platform suspend the subscription,
  and Akeneo retries a notification only three times, 1 s and 2 s apart
  (https://api.akeneo.com/event-platform/notification-webhooks.html): without the
  ``subscription.suspended.system`` it sends then, the operator cannot tell a system
  suspension from a user's.

The spool holds JetStream messages as the normal path publishes them (subject,
``Nats-Msg-Id``, payload): once JetStream acknowledges again they are published in arrival
order, the same ids letting the stream's duplicate window drop what an unacknowledged
first try did store. A ``200`` is only given for what is on disk (appended and fsynced,
one line per delivery, all or nothing) and so survives a container restart (in pods the
``/tmp`` emptyDir; the next process publishes what this one could not). Each spool is
bounded by messages and bytes, whatever tenants send: full, without a file, or unwritable,
the answer is a ``503`` as before.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from akeneo_receiver.metrics import SPOOL_ITEMS, SPOOLED

log = logging.getLogger("akeneo_receiver.spool")

# Records (deliveries) published as one pipelined batch when draining: a few hundred
# events per round trip.
DRAIN_RECORDS = 64
# While draining, the file is rewritten without what is stored at most this often (and when
# the drain ends): a rewrite holds up the appends, and a process that dies in between only
# leaves stored messages in the file, which the next one sends again and the stream drops as
# duplicates (same Nats-Msg-Id).
REWRITE_EVERY = 1.0


class Message(NamedTuple):
    """One JetStream message as the normal path publishes it (a triple ``AckPipeline`` takes)."""

    subject: str
    msg_id: str
    payload: bytes


Publish = Callable[[list[Message]], Awaitable[object]]


class Dropped(Exception):
    """``publish`` raises this for messages that can never be stored (above the stream's
    ``maxMsgSize``): their delivery leaves the spool so the ones behind it are not held up."""


class Spool:
    """Deliveries in arrival order, in memory and in an append-only file of JSON lines."""

    def __init__(
        self,
        path: Path | None,
        *,
        kind: str,
        max_messages: int,
        max_bytes: int,
        drain_records: int = DRAIN_RECORDS,
    ) -> None:
        self.path = path
        self.drain_records = drain_records
        self.kind = kind  # the metrics label: "events" or "notifications"
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.records: deque[list[Message]] = deque()  # on disk, in arrival order
        self.ids: set[str] = set()
        self.size = 0  # payload bytes held
        # deliveries waiting for the next write + fsync (one for all that arrive meanwhile:
        # a few ms each, which a request per fsync would turn into a queue)
        self._queue: list[tuple[list[Message], asyncio.Future[bool]]] = []
        self._queued = 0  # their messages
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._file = asyncio.Lock()  # appends and rewrites, one at a time, off the event loop
        self._gauge = SPOOLED.labels(kind)
        self._load()
        self._gauge.set(len(self.ids))

    @property
    def pending(self) -> int:
        """Messages spooled or being written, not yet acknowledged by JetStream."""
        return len(self.ids) + self._queued

    async def add(self, messages: Sequence[Message]) -> tuple[bool, int]:
        """Keep ``messages`` (one delivery) on disk: (kept, how many were already kept).

        Not kept when there is no file, the spool would exceed a bound, or the line could
        not be written and fsynced (the file is then cut back: nothing half-written stays).
        Deliveries arriving while a write is under way share the next one.
        """
        new: list[Message] = []
        seen: set[str] = set()
        for m in messages:
            if m.msg_id not in self.ids and m.msg_id not in seen:
                seen.add(m.msg_id)
                new.append(m)
        duplicates = len(messages) - len(new)
        if not new:
            return True, duplicates  # a retry of what is kept already
        size = sum(len(m.payload) for m in new)
        if (
            self.path is None
            or self.pending + len(new) > self.max_messages
            or self.size + self._queued_bytes + size > self.max_bytes
        ):
            return False, 0
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((new, done))
        self._queued += len(new)
        self._queued_bytes += size
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name=f"{self.kind}-spool")
        kept = await asyncio.shield(done)
        return kept, duplicates if kept else 0

    async def _write_queued(self) -> None:
        """Append what is queued, one write and fsync for all; then it counts as spooled."""
        while self._queue:
            group, self._queue = self._queue, []
            data = b"".join(_line(record) for record, _ in group)
            async with self._file:
                kept = await asyncio.to_thread(self._append, data)
            for record, done in group:
                self._queued -= len(record)
                self._queued_bytes -= sum(len(m.payload) for m in record)
                if kept:
                    record = [m for m in record if m.msg_id not in self.ids]  # a racing retry
                if kept and record:
                    self.records.append(record)
                    self.ids.update(m.msg_id for m in record)
                    self.size += sum(len(m.payload) for m in record)
                    SPOOL_ITEMS.labels(self.kind, "spooled").inc(len(record))
                done.set_result(kept)
            self._gauge.set(len(self.ids))

    async def flush(self, publish: Publish) -> int:
        """Publish the spooled messages in arrival order, a batch of deliveries at a time;
        stop at the first failure (the rest waits for the next try). Returns how many left."""
        done = 0
        batch = self.drain_records
        dirty, rewritten = False, time.monotonic()
        while self.records:
            chunk = list(islice(self.records, batch))
            messages = [m for record in chunk for m in record]
            try:
                await publish(messages)
            except Dropped as exc:
                if len(chunk) > 1:
                    batch = 1  # find the delivery that can never be stored, one at a time
                    continue
                log.error(
                    "spooled delivery dropped: it can never be stored",
                    extra={"spool": self.kind, "messages": len(messages), "error": str(exc)},
                )
                SPOOL_ITEMS.labels(self.kind, "dropped").inc(len(messages))
            except Exception as exc:
                error = type(exc).__name__ if not str(exc) else str(exc)[:100]
                log.debug("spooled messages not stored yet", extra={"error": error})
                break
            else:
                SPOOL_ITEMS.labels(self.kind, "drained").inc(len(messages))
                done += len(messages)
                batch = self.drain_records
            self._forget(len(chunk))
            dirty = True
            if not self.records or time.monotonic() - rewritten >= REWRITE_EVERY:
                await self._rewrite()
                dirty, rewritten = False, time.monotonic()
        if dirty:  # stopped at a failure: the file follows
            await self._rewrite()
        self._gauge.set(len(self.ids))
        if done:
            log.info("spooled messages stored", extra={"spool": self.kind, "count": done})
        return done

    async def _rewrite(self) -> None:
        """What is left, atomically and off the event loop; appends wait for it (the file
        and ``records`` stay equal: an append counts only once it is written)."""
        async with self._file:
            data = b"".join(_line(record) for record in self.records)
            await asyncio.to_thread(self._replace, data)

    def _forget(self, records: int) -> None:
        for _ in range(records):
            for m in self.records.popleft():
                self.ids.discard(m.msg_id)
                self.size -= len(m.payload)

    # -- the file ----------------------------------------------------------------------------

    def _append(self, line: bytes) -> bool:
        assert self.path is not None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            log.warning(
                "spool not written", extra={"spool": self.kind, "error": type(exc).__name__}
            )
            return False
        try:
            end = os.fstat(fd).st_size
            try:
                os.write(fd, line)  # one write: the line is complete or cut back below
                os.fsync(fd)
            except OSError as exc:  # a full disk: the delivery gets its 503
                log.warning(
                    "spool not written", extra={"spool": self.kind, "error": type(exc).__name__}
                )
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                return False
            if end == 0:
                _sync_dir(self.path)  # the file's entry survives a crash too
        finally:
            os.close(fd)
        return True

    def _replace(self, data: bytes) -> None:
        """A crash mid-drain leaves the old file (whose stored messages are sent again and
        dropped by the stream as duplicates) or the new one, never a mix."""
        if self.path is None:
            return
        try:
            if not data:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            error = type(exc).__name__
            log.warning("spool not rewritten", extra={"spool": self.kind, "error": error})

    def _load(self) -> None:
        """What a previous process could not store, bounded as when it was written; lines
        that do not read back (a crash mid-write, a damaged file) are skipped and counted."""
        if self.path is None:
            return
        try:
            raw = self.path.read_bytes()
        except OSError:
            return
        bad = 0
        for text in raw.splitlines():
            record = _parse(text)
            if record is None:
                bad += 1
                continue
            record = [m for m in record if m.msg_id not in self.ids]
            if not record:
                continue
            size = sum(len(m.payload) for m in record)
            if self.pending + len(record) > self.max_messages or self.size + size > self.max_bytes:
                bad += 1
                continue
            self.records.append(record)
            self.ids.update(m.msg_id for m in record)
            self.size += size
        if bad:
            log.error(
                "spool lines unreadable or over the bounds",
                extra={"spool": self.kind, "lines": bad},
            )
            SPOOL_ITEMS.labels(self.kind, "dropped").inc(bad)
        if self.records:
            log.warning(
                "spooled messages of a previous run to store",
                extra={"spool": self.kind, "count": self.pending},
            )
        # appends go after complete lines only
        self._replace(b"".join(_line(record) for record in self.records))


def _line(messages: Iterable[Message]) -> bytes:
    encoded = [[m.subject, m.msg_id, base64.b64encode(m.payload).decode()] for m in messages]
    return json.dumps(encoded, separators=(",", ":")).encode() + b"\n"


def _parse(text: bytes) -> list[Message] | None:
    try:
        entries = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entries, list) or not entries:
        return None
    record = []
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and all(isinstance(part, str) for part in entry)
            and entry[0]
            and entry[1]
        ):
            return None
        subject, msg_id, data = entry
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
        record.append(Message(subject, msg_id, payload))
    return record


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
