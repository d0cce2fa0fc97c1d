"""The receiver's outage record: first and last 503, kept until JetStream takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_receiver.outages import OutageRecorder

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_an_outage_is_one_window_from_the_first_to_the_last_503(tmp_path: Path) -> None:
    clock = Clock()
    rec = OutageRecorder(clock=clock, detail="receiver pod-a")
    rec.close_if_quiet(quiet=0)
    assert not rec.pending  # nothing happened
    rec.hit()
    clock.advance(30)
    rec.hit()
    rec.close_if_quiet(quiet=3600)  # 503s are still coming: not over
    assert rec.open and not rec.pending
    rec.close_if_quiet(quiet=0)
    assert not rec.open
    assert rec.pending == [
        GapRecord(
            source=GapSource.RECEIVER_503,
            start=T0,
            end=T0 + timedelta(seconds=30),
            detail="receiver pod-a",
        )
    ]


async def test_a_window_nats_refuses_is_kept_and_sent_again() -> None:
    rec = OutageRecorder(clock=Clock())
    rec.hit()
    rec.close_if_quiet(quiet=0)
    sent: list[GapRecord] = []

    async def down(record: GapRecord) -> None:
        raise TimeoutError

    async def up(record: GapRecord) -> None:
        sent.append(record)

    assert await rec.flush(down) == 0 and len(rec.pending) == 1
    assert await rec.flush(up) == 1 and not rec.pending
    assert sent[0].start == T0


async def test_the_spool_file_carries_windows_across_a_restart(tmp_path: Path) -> None:
    spool = tmp_path / "gaps.json"
    clock = Clock()
    first = OutageRecorder(spool, clock=clock)
    first.hit()
    first.close_if_quiet(quiet=0)  # closed, not yet stored
    clock.advance(60)
    first.hit()  # a second outage, open when the container dies
    assert spool.exists()

    second = OutageRecorder(spool, clock=clock)  # the restarted container
    assert [(r.start, r.end) for r in second.pending] == [
        (T0, T0),
        (T0 + timedelta(seconds=60), T0 + timedelta(seconds=60)),
    ]

    async def up(record: GapRecord) -> None:
        return None

    assert await second.flush(up) == 2
    assert not spool.exists()  # nothing left to record
    assert OutageRecorder(spool).pending == []


async def test_a_very_long_outage_of_nats_keeps_bounded_memory() -> None:
    clock = Clock()
    rec = OutageRecorder(clock=clock)
    for _ in range(150):
        rec.hit()
        clock.advance(10)
        rec.close_if_quiet(quiet=0)
    assert len(rec.pending) <= 100
    assert min(r.start for r in rec.pending) == T0  # still reaching back to the first 503


def test_an_unwritable_spool_does_not_fail_the_request(tmp_path: Path) -> None:
    rec = OutageRecorder(tmp_path / "missing-dir" / "gaps.json", clock=Clock())
    rec.hit()  # logged, not raised
    assert rec.open
