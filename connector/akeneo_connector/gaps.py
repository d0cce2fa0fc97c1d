"""Gap windows: spans of time in which events may have been lost, and their catch-up.

Events alone lose data in known windows: the receiver answered 503 (JetStream unreachable;
the legacy PIM never sends again), the Event Platform subscription was suspended ("Events
are not saved and are lost until the subscription is resumed"), no receiver was ready, or
the worker dead-lettered changes. Each window is recorded durably as a ``GapRecord`` on the
connection's own stream, subject ``<prefix>.gaps.<source>`` (kept ``stream.maxAge``, read
by the operator and local mode, never by the worker). Recorded windows are repaired by one
catch-up reconcile reading ``updated > earliest start - safetyMargin``
(``akeneo-connector reconcile --since``); the last record repaired is the catch-up cursor.

Pure parts (``merge_windows``, ``plan_catch_up``, ``suspension_windows``) have no I/O; the
stream helpers publish and read records with a message id per window, so a record published
twice (a retry, two replicas) is stored once within the stream's duplicate window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from msgspec import Meta
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.records import AwareDatetime, Record
from akeneo_connector.stream_reader import read_messages

DETAIL_MAX = 300
MAX_RECORDS_READ = 10_000  # records read per planning: bounded whatever was published


class GapSource(StrEnum):
    RECEIVER_503 = "receiver-503"  # the receiver answered 503: events not stored
    SUBSCRIPTION = "subscription"  # Event Platform subscription suspended -> resumed
    RECEIVER_DOWN = "receiver-down"  # no receiver pod ready (ReceiverReady False -> True)
    DEAD_LETTERS = "dead-letters"  # changes dead-lettered after maxDeliver tries


class GapRecord(Record, frozen=True, kw_only=True, omit_defaults=True):
    """One window, as stored on ``<prefix>.gaps.<source>`` (JSON; defaults left out)."""

    source: GapSource
    start: AwareDatetime
    end: AwareDatetime
    # The source's last stream sequence this record accounts for (notifications, dead
    # letters): where the next scan of that source starts.
    cursor: int | None = None
    detail: Annotated[str, Meta(max_length=DETAIL_MAX)] = ""

    @property
    def msg_id(self) -> str:
        return (
            f"gap.{self.source.value}.{self.start.timestamp():.6f}."
            f"{self.end.timestamp():.6f}.{self.cursor or 0}"
        )

    def window(self) -> Window:
        return Window(self.start, max(self.start, self.end), frozenset({self.source.value}))


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    sources: frozenset[str] = frozenset()

    def text(self) -> str:
        kinds = ",".join(sorted(self.sources))
        return f"{stamp(self.start)}..{stamp(self.end)} ({kinds})"


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_windows(windows: Iterable[Window], slack: timedelta = timedelta(0)) -> list[Window]:
    """Overlapping windows (or closer than ``slack``) merged, sorted by start."""
    out: list[Window] = []
    for w in sorted(windows, key=lambda w: (w.start, w.end)):
        if out and w.start <= out[-1].end + slack:
            last = out[-1]
            out[-1] = Window(last.start, max(last.end, w.end), last.sources | w.sources)
        else:
            out.append(w)
    return out


@dataclass(frozen=True)
class CatchUpPlan:
    """One catch-up reconcile for every window recorded after the cursor."""

    since: datetime  # earliest start - safety margin: reconcile ``updated > since``
    through: int  # stream sequence of the newest record covered: the next cursor
    windows: tuple[Window, ...]

    def text(self, limit: int = 5) -> str:
        shown = [w.text() for w in self.windows[:limit]]
        more = len(self.windows) - limit
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def plan_catch_up(
    records: Sequence[tuple[int, GapRecord]], after: int, margin: timedelta
) -> CatchUpPlan | None:
    """The catch-up for the records with a sequence above ``after``; None when none is due."""
    pending = [(seq, r) for seq, r in records if seq > after]
    if not pending:
        return None
    windows = merge_windows((r.window() for _, r in pending), margin)
    since = min(w.start for w in windows) - margin
    return CatchUpPlan(since, max(seq for seq, _ in pending), tuple(windows))


def suspension_windows(
    states: Iterable[tuple[int, datetime, bool]],
) -> list[tuple[Window, int]]:
    """Closed suspended -> active windows from ``(sequence, time, active)`` notifications in
    stream order, each with the sequence of the notification that closed it. A suspension
    still open at the end yields nothing: it is recorded once the subscription resumes."""
    out: list[tuple[Window, int]] = []
    since: datetime | None = None
    for seq, at, active in states:
        if not active:
            since = at if since is None else min(since, at)
        elif since is not None:
            window = Window(since, max(since, at), frozenset({GapSource.SUBSCRIPTION.value}))
            out.append((window, seq))
            since = None
    return out


def parse_since(text: str) -> datetime:
    """``--since``: an RFC 3339 time (``Z`` or an offset; naive means UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- on the stream --------------------------------------------------------------------------


async def publish_gap(
    js: JetStreamContext, names: ConnectionNames, record: GapRecord, timeout: float = 5.0
) -> bool:
    """Store ``record``; True when new, False when the stream already had it."""
    ack = await js.publish(
        names.gap_subject(record.source.value),
        record.to_bytes(),
        stream=names.stream,
        timeout=timeout,
        headers={"Nats-Msg-Id": record.msg_id},
    )
    return not ack.duplicate


async def newest_gap(js: JetStreamContext, names: ConnectionNames) -> int:
    """Stream sequence of the newest record (0: none), with one direct get per source and no
    consumer: what a periodic check costs when nothing happened."""
    newest = 0
    for source in GapSource:
        try:
            msg = await js.get_last_msg(names.stream, names.gap_subject(source.value), direct=True)
        except NotFoundError:
            continue
        newest = max(newest, int(msg.seq or 0))
    return newest


async def read_gaps(
    js: JetStreamContext, names: ConnectionNames, after: int = 0
) -> list[tuple[int, GapRecord]]:
    """Records with a sequence above ``after``, oldest first (unreadable ones skipped)."""
    out: list[tuple[int, GapRecord]] = []
    if await newest_gap(js, names) <= after:
        return out
    start = after + 1 if after > 0 else None
    async for msg in read_messages(
        js, names.stream, f"{names.gaps_subject}.>", start_sequence=start
    ):
        try:
            out.append((int(msg.metadata.sequence.stream), GapRecord.model_validate_json(msg.data)))
        except ValueError:
            continue
        if len(out) >= MAX_RECORDS_READ:
            break
    return out


async def last_gap(
    js: JetStreamContext, names: ConnectionNames, source: GapSource
) -> GapRecord | None:
    """The newest record of one source (its ``cursor`` is where that source's scan resumes)."""
    try:
        msg = await js.get_last_msg(names.stream, names.gap_subject(source.value), direct=True)
    except NotFoundError:
        return None
    try:
        return GapRecord.model_validate_json(msg.data or b"")
    except ValueError:
        return None
