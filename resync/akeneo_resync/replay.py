"""Re-publishing dead letters, and re-delivering the stream to rebuild a sink.

Both publish into the connection's own stream, so the worker's ordering guard decides as for
any event. Re-published messages get a fresh ``Nats-Msg-Id`` (the original ``event_id`` is
still inside the duplicate window and would be dropped as a duplicate otherwise).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext

from akeneo_connector import dead_letters as dl
from akeneo_connector.guard_state import GUARD_PREFIX, GUARD_RESET_HEADER
from akeneo_connector.names import ConnectionNames
from akeneo_connector.stream_reader import read_messages


@dataclass(frozen=True)
class DeadLetterFilter:
    since: datetime | None = None
    until: datetime | None = None
    key: str | None = None
    kind: str | None = None
    include_malformed: bool = False

    def matches(self, letter: dl.DeadLetter) -> bool:
        if letter.cause == dl.CAUSE_MALFORMED and not self.include_malformed:
            return False
        if self.key is not None and letter.key != self.key:
            return False
        if self.kind is not None and letter.kind != self.kind:
            return False
        at = letter.dead_at
        if self.since is not None and (at is None or at < self.since):
            return False
        return not (self.until is not None and (at is None or at >= self.until))


@dataclass
class ReplayReport:
    scanned: int = 0
    published: int = 0
    removed: int = 0


async def replay_dead_letters(
    js: JetStreamContext,
    names: ConnectionNames,
    selection: DeadLetterFilter | None = None,
    *,
    remove: bool = True,
) -> ReplayReport:
    """Re-publish matching dead letters to their original subject (removing them by default)."""
    selection = selection or DeadLetterFilter()
    report = ReplayReport()
    run = uuid.uuid4().hex[:12]
    async for msg in read_messages(js, names.stream, names.dead_letter_subject):
        report.scanned += 1
        seq = int(msg.metadata.sequence.stream)
        letter = dl.DeadLetter.from_parts(seq, msg.data, msg.headers)
        if not selection.matches(letter):
            continue
        subject = letter.subject
        if not subject or not subject.startswith(names.events_subject + "."):
            continue  # never publish outside the connection's event subjects
        await js.publish(subject, letter.data, headers={dl.MSG_ID: f"replay.{run}.{seq}"})
        report.published += 1
        if remove:
            await js.delete_msg(names.stream, seq)
            report.removed += 1
    return report


async def redeliver_stream(
    js: JetStreamContext,
    names: ConnectionNames,
    *,
    start_sequence: int | None = None,
    start_time: datetime | None = None,
    reset_guard: bool = False,
) -> ReplayReport:
    """Re-publish the stream's events from a sequence or time (all when neither is given).

    With ``reset_guard`` the ordering guard is emptied first, so a sink rebuilt from scratch
    gets every resource again (otherwise the guard skips what it already applied); the
    re-delivered events carry ``GUARD_RESET_HEADER``, so running workers forget their cache.
    """
    if reset_guard:
        await js.purge_stream(
            f"KV_{names.guard_bucket}", subject=f"$KV.{names.guard_bucket}.{GUARD_PREFIX}.>"
        )
    report = ReplayReport()
    run = uuid.uuid4().hex[:12]
    last = (await js.stream_info(names.stream)).state.last_seq
    async for msg in read_messages(
        js,
        names.stream,
        f"{names.events_subject}.>",
        start_sequence=start_sequence,
        start_time=start_time,
    ):
        seq = int(msg.metadata.sequence.stream)
        if seq > last:
            break  # our own re-published copies
        report.scanned += 1
        headers = {dl.MSG_ID: f"redeliver.{run}.{seq}"}
        if reset_guard:
            headers[GUARD_RESET_HEADER] = run
        await js.publish(msg.subject, msg.data, headers=headers)
        report.published += 1
    return report
