"""Gap windows read from what the connection's stream already holds, recorded as ``GapRecord``s.

- Subscription: the notifications the receiver stored (``notifications_subject``); a
  suspension (by the system or a user) or a revocation opens a window, ``resumed`` closes
  it. Times are the notifications' own timestamps.
- Dead letters: changes the worker gave up on after ``maxDeliver`` tries (cause
  ``max_deliver``: a sink or PIM outage; a change the sink refused for good would only be
  refused again). The window starts at the oldest such change's version (its ``updated``)
  and ends at the last dead letter's time.

Each source resumes where its last record left off (``GapRecord.cursor``), so a restart of
the operator (or of local mode, which runs this too) neither loses nor repeats a window.
Scans are bounded per call; the rest is read on the next one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from akeneo_connector import dead_letters
from akeneo_connector.gaps import (
    GapRecord,
    GapSource,
    last_gap,
    publish_gap,
    suspension_windows,
)
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent
from akeneo_connector.stream_reader import read_messages
from akeneo_pim.formats import PayloadError
from akeneo_pim.notifications import parse_notification, subscription_condition

# Headers the worker writes on a dead letter (``akeneo_connector.dead_letters``; a unit test
# keeps them equal: the operator may not import the worker).
DEAD_CAUSE = "Akeneo-Dead-Cause"
DEAD_AT = "Akeneo-Dead-At"
CAUSE_EXHAUSTED = "max_deliver"

MAX_NOTIFICATIONS = 1000
MAX_DEAD_LETTERS = 10_000

SCANNED: tuple[GapSource, ...] = (GapSource.SUBSCRIPTION, GapSource.DEAD_LETTERS)


def dead_letter_window(
    letters: Iterable[tuple[bytes, dict[str, str] | None]],
) -> tuple[datetime, datetime, int] | None:
    """(start, end, count) of the dead letters worth a catch-up; None when there is none."""
    start: datetime | None = None
    end: datetime | None = None
    count = 0
    for data, headers in letters:
        h = headers or {}
        if h.get(dead_letters.CAUSE) != dead_letters.CAUSE_EXHAUSTED:
            continue
        try:
            dead_at = datetime.fromisoformat(h.get(dead_letters.DEAD_AT, ""))
        except ValueError:
            continue
        if dead_at.tzinfo is None:
            continue
        first = dead_at  # an unreadable payload: its dead letter's time has to do
        with contextlib.suppress(ValueError):
            first = min(first, NormalizedEvent.from_message(data).version)
        start = first if start is None else min(start, first)
        end = dead_at if end is None else max(end, dead_at)
        count += 1
    if start is None or end is None:
        return None
    return start, end, count


class GapScanner:
    """Turns notifications and dead letters into gap records, remembering where it stopped."""

    def __init__(self, names: ConnectionNames) -> None:
        self.names = names
        self.cursors: dict[GapSource, int] = {}

    async def _cursor(self, js: JetStreamContext, source: GapSource) -> int:
        if source not in self.cursors:
            last = await last_gap(js, self.names, source)
            self.cursors[source] = (last.cursor or 0) if last is not None else 0
        return self.cursors[source]

    async def _newer(self, js: JetStreamContext, subject: str, after: int) -> bool:
        """Whether ``subject`` holds a message past ``after`` (one direct get, no consumer)."""
        try:
            msg = await js.get_last_msg(self.names.stream, subject, direct=True)
        except NotFoundError:
            return False
        return int(msg.seq or 0) > after

    async def scan(self, js: JetStreamContext) -> list[GapRecord]:
        """New windows of both sources, stored on the stream (what is new is returned)."""
        return [*await self._subscription(js), *await self._dead_letters(js)]

    async def _subscription(self, js: JetStreamContext) -> list[GapRecord]:
        after = await self._cursor(js, GapSource.SUBSCRIPTION)
        if not await self._newer(js, self.names.notifications_subject, after):
            return []
        states: list[tuple[int, datetime, bool]] = []
        read = 0
        async for msg in read_messages(
            js, self.names.stream, self.names.notifications_subject, start_sequence=after + 1
        ):
            read += 1
            try:
                notification = parse_notification(msg.data or b"")
            except PayloadError:
                continue
            mapped = subscription_condition(notification)
            if mapped is not None:
                seq = int(msg.metadata.sequence.stream)
                states.append((seq, notification.timestamp, mapped[0] == "True"))
            if read >= MAX_NOTIFICATIONS:
                break
        out = []
        for window, seq in suspension_windows(states):
            record = GapRecord(
                source=GapSource.SUBSCRIPTION,
                start=window.start,
                end=window.end,
                cursor=seq,
                detail="Event Platform subscription not active: its events were not sent",
            )
            if await publish_gap(js, self.names, record):
                out.append(record)
            self.cursors[GapSource.SUBSCRIPTION] = seq
        return out

    async def _dead_letters(self, js: JetStreamContext) -> list[GapRecord]:
        after = await self._cursor(js, GapSource.DEAD_LETTERS)
        if not await self._newer(js, self.names.dead_letter_subject, after):
            return []
        letters: list[tuple[bytes, dict[str, str] | None]] = []
        last = after
        async for msg in read_messages(
            js, self.names.stream, self.names.dead_letter_subject, start_sequence=after + 1
        ):
            letters.append((msg.data or b"", msg.headers))
            last = int(msg.metadata.sequence.stream)
            if len(letters) >= MAX_DEAD_LETTERS:
                break
        found = dead_letter_window(letters)
        out = []
        if found is not None:
            start, end, count = found
            record = GapRecord(
                source=GapSource.DEAD_LETTERS,
                start=start,
                end=end,
                cursor=last,
                detail=f"{count} change(s) dead-lettered after maxDeliver tries",
            )
            if await publish_gap(js, self.names, record):
                out.append(record)
        self.cursors[GapSource.DEAD_LETTERS] = last
        return out
