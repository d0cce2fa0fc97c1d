"""The spool of deliveries JetStream could not take: bounded by messages and bytes, in arrival
order, one delivery all or nothing, kept across processes (also past a torn or damaged file),
never a 200 for what is not on disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from akeneo_receiver.spool import Dropped, Message, Spool


def spool(path: Path | None, messages: int = 6, max_bytes: int = 1000, drain: int = 64) -> Spool:
    return Spool(
        path, kind="events", max_messages=messages, max_bytes=max_bytes, drain_records=drain
    )


def delivery(*ids: str, size: int = 3) -> list[Message]:
    return [Message(f"s.events.{i[0]}", i, i.encode().ljust(size, b".")) for i in ids]


def ids(s: Spool) -> list[list[str]]:
    return [[m.msg_id for m in record] for record in s.records]


class Stream:
    """What JetStream was given, in order; ``up`` False: every publish fails."""

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.up = True
        self.calls = 0

    async def publish(self, messages: list[Message]) -> None:
        self.calls += 1
        if not self.up:
            raise TimeoutError
        self.got.extend(messages)


async def test_kept_in_arrival_order_once_each_and_stored_by_the_next_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.spool"
    s = spool(path)
    assert await s.add(delivery("a1", "a2")) == (True, 0)
    assert await s.add(delivery("a2", "b1")) == (True, 1)  # a retry overlapping what is kept
    assert await s.add(delivery("a1")) == (True, 1)  # a retry of one kept is kept once
    assert await s.add(delivery("c1", "c1")) == (True, 1)  # the same id twice in one delivery
    assert s.pending == 4 and ids(s) == [["a1", "a2"], ["b1"], ["c1"]]
    stream = Stream()
    stream.up = False
    assert await s.flush(stream.publish) == 0 and s.pending == 4
    # the process dies: the next one finds them, in the same order, with the same ids
    again = spool(path)
    stream.up = True
    assert await again.flush(stream.publish) == 4
    assert [m.msg_id for m in stream.got] == ["a1", "a2", "b1", "c1"]
    assert stream.got[0] == Message("s.events.a", "a1", b"a1.")
    assert again.pending == 0 and not path.exists()
    assert await again.add(delivery("a1")) == (True, 0)  # stored: a later one goes on again


async def test_bounded_by_messages_and_bytes_a_delivery_all_or_nothing(tmp_path: Path) -> None:
    s = spool(tmp_path / "events.spool", messages=5, max_bytes=100)
    assert await s.add(delivery("a1", "a2", "a3")) == (True, 0)
    assert await s.add(delivery("b1", "b2", "b3")) == (False, 0)  # 6 > 5: none of the three
    assert await s.add(delivery("b1", "b2")) == (True, 0)
    assert await s.add(delivery("c1")) == (False, 0)  # full
    assert s.pending == 5
    by_size = spool(tmp_path / "bytes.spool", messages=100, max_bytes=100)
    assert await by_size.add(delivery("a1", size=60)) == (True, 0)
    assert await by_size.add(delivery("b1", size=41)) == (False, 0)  # 101 bytes
    assert await by_size.add(delivery("b1", size=40)) == (True, 0)
    assert by_size.size == 100
    # what a previous process left is bounded as when it was written
    assert ids(spool(tmp_path / "events.spool", messages=4)) == [["a1", "a2", "a3"]]


@pytest.mark.parametrize("where", ["none", "unwritable"])
async def test_no_200_without_a_file_on_disk(tmp_path: Path, where: str) -> None:
    path = None if where == "none" else tmp_path / "missing-dir" / "events.spool"
    s = spool(path)
    assert await s.add(delivery("a1")) == (False, 0) and s.pending == 0


async def test_a_torn_or_damaged_file_loses_only_its_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.spool"
    s = spool(path)
    await s.add(delivery("a1"))
    await s.add(delivery("b1", "b2"))
    whole = path.read_bytes()
    # a crash mid-append leaves a torn last line; damage elsewhere leaves garbage lines
    path.write_bytes(
        b'[["s","x1","not base64!"]]\n{"a": 1}\n[]\n[["s","","eA=="]]\n' + whole + whole[:9]
    )
    again = spool(path)
    assert ids(again) == [["a1"], ["b1", "b2"]]  # the same ids once, whatever the file held
    # the file was rewritten with complete lines only: what is appended next reads back
    assert await again.add(delivery("c1")) == (True, 0)
    assert ids(spool(path)) == [["a1"], ["b1", "b2"], ["c1"]]
    path.write_bytes(b"\x00\xff" * 50)
    assert spool(path).pending == 0 and not path.exists()


async def test_a_delivery_never_storable_is_dropped_alone(tmp_path: Path) -> None:
    path = tmp_path / "events.spool"
    s = spool(path, messages=20)
    for name in ("a", "b", "c", "d"):
        await s.add(delivery(f"{name}1", f"{name}2"))
    got: list[str] = []

    async def publish(messages: list[Message]) -> None:
        if any(m.msg_id == "b1" for m in messages):
            raise Dropped("event_too_large")  # above the stream's maxMsgSize
        if any(m.msg_id == "d1" for m in messages):
            raise TimeoutError  # JetStream gone again
        got.extend(m.msg_id for m in messages)

    assert await s.flush(publish) == 4  # a and c stored, b dropped, d waits
    assert got == ["a1", "a2", "c1", "c2"] and ids(s) == [["d1", "d2"]]
    assert ids(spool(path)) == [["d1", "d2"]]  # the file says the same


async def test_drained_in_batches_with_what_arrives_meanwhile(tmp_path: Path) -> None:
    s = spool(tmp_path / "events.spool", messages=100, drain=2)
    for n in range(5):
        await s.add(delivery(f"a{n}"))
    batches: list[list[str]] = []

    async def publish(messages: list[Message]) -> None:
        batches.append([m.msg_id for m in messages])
        if len(batches) == 1:
            await s.add(delivery("late"))  # a delivery spooled while the first batch is in flight

    assert await s.flush(publish) == 6
    assert batches == [["a0", "a1"], ["a2", "a3"], ["a4", "late"]]


async def test_a_failed_append_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.spool"
    s = spool(path)
    await s.add(delivery("a1"))
    size = path.stat().st_size

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", broken)
        assert await s.add(delivery("b1")) == (False, 0)
    assert path.stat().st_size == size and ids(spool(path)) == [["a1"]]
    assert await s.add(delivery("b1")) == (True, 0)


async def test_deliveries_arriving_together_share_a_write_and_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.spool"
    s = spool(path, messages=100)
    fsyncs: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        fsyncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counted)
    names = [f"d{n}" for n in range(20)]
    answers = await asyncio.gather(*(s.add(delivery(name)) for name in names))
    assert answers == [(True, 0)] * 20
    assert ids(s) == [[name] for name in names] == ids(spool(path, messages=100))
    # the first delivery's write, then one for the 19 that queued behind it (a new file's
    # directory is fsynced too)
    assert len(fsyncs) <= 4
