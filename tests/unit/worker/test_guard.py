"""The ordering guard's rule, as a table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest

from akeneo_connector.changes import Change
from akeneo_connector.guard_state import GuardEntry
from akeneo_connector.kv_pipeline import PipelinedKV, Read, Write, WrongRevision
from akeneo_worker.guard import GuardStore, TooManyConflicts, Verdict, decide

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER, LATER = T - timedelta(seconds=1), T + timedelta(seconds=1)


def stored(*, deleted: bool = False, digest: str | None = "d1") -> GuardEntry:
    return GuardEntry(version=T, deleted=deleted, digest=None if deleted else digest)


@pytest.mark.parametrize(
    ("entry", "version", "deleted", "digest", "verdict"),
    [
        (None, T, False, "d1", Verdict.APPLY),
        (None, T, True, None, Verdict.APPLY),  # removal of an unknown resource: tombstone
        (stored(), LATER, False, "d2", Verdict.APPLY),
        (stored(), EARLIER, False, "d2", Verdict.OUTDATED),
        (stored(), T, False, "d1", Verdict.DUPLICATE),
        (stored(), T, False, "d2", Verdict.TIE),
        (stored(), T, True, None, Verdict.APPLY),  # a removal wins at equal versions
        (stored(), LATER, True, None, Verdict.APPLY),
        (stored(), EARLIER, True, None, Verdict.OUTDATED),
        (stored(deleted=True), EARLIER, False, "d1", Verdict.OUTDATED),  # no resurrection
        (stored(deleted=True), T, False, "d1", Verdict.OUTDATED),  # ... not even at a tie
        (stored(deleted=True), LATER, False, "d1", Verdict.APPLY),  # re-created later
        (stored(deleted=True), T, True, None, Verdict.DUPLICATE),
        (stored(deleted=True), EARLIER, True, None, Verdict.OUTDATED),
    ],
)
def test_decide(
    entry: GuardEntry | None, version: datetime, deleted: bool, digest: str | None, verdict: Verdict
) -> None:
    assert decide(entry, version, deleted=deleted, digest=digest) is verdict


def test_versions_compare_as_instants_whatever_the_offset() -> None:
    paris = timezone(timedelta(hours=1))
    same_instant = T.astimezone(paris)
    assert decide(stored(), same_instant, deleted=False, digest="d1") is Verdict.DUPLICATE
    assert decide(
        stored(), same_instant + timedelta(microseconds=1), deleted=False, digest="d1"
    ) is (Verdict.APPLY)


class _Contended:
    """A KV whose every write loses its CAS: another replica always wrote just before."""

    async def read_many(self, keys: Sequence[str]) -> list[Read]:
        return [Read(None, 0) for _ in keys]

    async def write_many(self, writes: Sequence[Write]) -> list[BaseException]:
        return [WrongRevision() for _ in writes]


async def test_a_guard_write_that_never_settles_is_retried_not_dropped() -> None:
    """After ``max_conflicts`` CAS losses the change was applied but not recorded: the worker
    must try it again later (a retryable error), not ack it as outdated."""
    change = Change(connection="t/c", kind="product", key="p1", operation="upsert",
                    version=T, event_id="e1", resource={"n": 1})  # fmt: skip
    guard = GuardStore(cast(PipelinedKV, _Contended()), max_conflicts=3)
    (outcome,) = await guard.record_many([change])
    assert isinstance(outcome, TooManyConflicts)
