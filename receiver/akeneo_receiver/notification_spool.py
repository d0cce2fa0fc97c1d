"""Notifications kept on disk while NATS is down, stored on the stream once it is back.

A queue outage long enough makes the Event Platform suspend the subscription, and the
``subscription.suspended.system`` notification it sends then arrives while the queue is
still down. Akeneo retries a notification only three times, 1 s and 2 s apart
(https://api.akeneo.com/event-platform/notification-webhooks.html), so a ``503`` loses it,
and without it the operator cannot tell a system suspension from a user's and leaves the
subscription suspended. A verified notification that cannot be stored because NATS is
unavailable is therefore written to a small file (``--notification-spool-file``, in pods the
``/tmp`` emptyDir: it survives a container restart) and answered ``200``; it is published
in arrival order, with the ``Nats-Msg-Id`` of the normal path, once JetStream acknowledges
again, also by the next process when this one died first. The spool is bounded: when it is
full, or has no file, or cannot be written, the answer is a ``503`` as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("akeneo_receiver.notification_spool")

MAX_SPOOLED = 64  # notifications; a real one is about 500 bytes

Publish = Callable[["Spooled"], Awaitable[None]]


def message_id(body: bytes) -> str:
    """The ``Nats-Msg-Id`` of a notification: a retried one is stored once."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Spooled:
    body: bytes

    @property
    def msg_id(self) -> str:
        return message_id(self.body)


class Dropped(Exception):
    """``publish`` raises this for a notification that can never be stored: it leaves the
    spool so the ones behind it are not held up for ever."""


class NotificationSpool:
    def __init__(self, path: Path | None, *, limit: int = MAX_SPOOLED, max_bytes: int) -> None:
        self.path = path
        self.limit = limit
        self.max_bytes = max_bytes
        self.items: list[Spooled] = []
        self._load()

    @property
    def pending(self) -> int:
        return len(self.items)

    def add(self, body: bytes) -> tuple[bool, bool]:
        """Keep ``body`` on disk: (kept, already kept). Not kept: no file, full, or the file
        could not be written (a ``200`` is only given for what survives a restart)."""
        item = Spooled(body)
        if any(s.msg_id == item.msg_id for s in self.items):
            return True, True  # Akeneo's retry of one already kept
        if self.path is None or len(self.items) >= self.limit or len(body) > self.max_bytes:
            return False, False
        self.items.append(item)
        if not self._save():
            self.items.pop()
            return False, False
        log.warning("notification spooled: NATS unavailable", extra={"spooled": len(self.items)})
        return True, False

    async def flush(self, publish: Publish) -> int:
        """Publish the spooled notifications in arrival order; stop at the first failure."""
        done = 0
        while self.items:
            item = self.items[0]
            try:
                await publish(item)
            except Dropped as exc:
                log.error("spooled notification dropped", extra={"error": str(exc)[:200]})
            except Exception as exc:
                error = type(exc).__name__
                log.debug("spooled notification not stored yet", extra={"error": error})
                break
            if self.items and self.items[0] is item:
                self.items.pop(0)
            done += 1
            self._save()
        if done:
            log.info("spooled notifications published", extra={"count": done})
        return done

    # -- the file ----------------------------------------------------------------------------

    def _save(self) -> bool:
        if self.path is None:
            return False
        try:
            if not self.items:
                self.path.unlink(missing_ok=True)
                return True
            data = json.dumps([base64.b64encode(s.body).decode() for s in self.items])
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only or full disk: the notification gets its 503
            log.warning("notification spool not written", extra={"error": type(exc).__name__})
            return False
        return True

    def _load(self) -> None:
        """What a previous process could not store (bounded as when it was written)."""
        if self.path is None:
            return
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for entry in raw if isinstance(raw, list) else []:
            if not isinstance(entry, str):
                continue
            try:
                body = base64.b64decode(entry, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(body) <= self.max_bytes and len(self.items) < self.limit:
                self.items.append(Spooled(body))
        if self.items:
            log.warning(
                "notifications of a previous run to store", extra={"count": len(self.items)}
            )
