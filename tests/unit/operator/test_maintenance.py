"""The one maintenance loop: its schedule, kopf's pause rule it follows, and its ticks."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from akeneo_operator.maintenance import (
    PEERING_READ_SECONDS,
    MaintenanceLoop,
    PeeringGate,
    Schedule,
    paused_by_peers,
)

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
ME = "operator@pod-a/20261205060000/a1b2"


def peer(priority: int, seen_ago: float = 1, lifetime: int = 60) -> dict[str, Any]:
    """A peer as kopf writes it in the peering object's status."""
    lastseen = (NOW - timedelta(seconds=seen_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen}


def test_a_first_tick_is_spread_over_one_interval_then_every_interval_jittered() -> None:
    schedule = Schedule(60.0, random.Random(7))
    for i in range(200):
        schedule.add(("ns", f"c{i}"), now=1000.0)
    firsts = list(schedule.due.values())
    assert all(1006.0 <= at <= 1060.0 for at in firsts)
    assert max(firsts) - min(firsts) > 40, "spread, not all at once after a restart"
    schedule.add(("ns", "c0"), now=5000.0)
    assert schedule.due[("ns", "c0")] == firsts[0], "seen again: not pushed back"
    due = schedule.pop_due(1030.0)
    assert due and all(firsts[int(k[1][1:])] <= 1030.0 for k in due)
    assert all(1030.0 + 48 <= schedule.due[k] <= 1030.0 + 72 for k in due)
    assert schedule.pop_due(1030.0) == []
    schedule.remove(("ns", "c0"))
    schedule.remove(("ns", "never"))
    assert ("ns", "c0") not in schedule.due


def test_kopfs_pause_rule() -> None:
    assert not paused_by_peers(None, ME, 0, NOW)
    assert not paused_by_peers({ME: peer(0)}, ME, 0, NOW), "itself"
    assert paused_by_peers({ME: peer(0), "other": peer(5)}, ME, 0, NOW), "a higher priority"
    assert paused_by_peers({"other": peer(3)}, ME, 3, NOW), "the same: kopf pauses both"
    assert not paused_by_peers({"other": peer(2)}, ME, 3, NOW), "a lower priority"
    assert not paused_by_peers({"other": peer(9, seen_ago=61)}, ME, 0, NOW), "dead"
    assert paused_by_peers({"other": peer(9, seen_ago=50)}, ME, 0, NOW)
    naive = {"other": {"priority": 9, "lifetime": 60, "lastseen": "2026-12-05T05:59:30"}}
    assert paused_by_peers(naive, ME, 0, NOW), "kopf's older lastseen without a zone is UTC"
    junk: Mapping[str, Any] = {"a": "x", "b": {"priority": "high", "lastseen": "now"}, "c": {}}
    assert not paused_by_peers(junk, ME, 0, NOW), "entries kopf did not write are not peers"


async def test_the_gate_reads_the_peering_object_at_most_every_few_seconds() -> None:
    reads: list[tuple[str, str | None]] = []
    status: dict[str, Any] = {}
    clock = [0.0]

    async def read(name: str, namespace: str | None) -> Mapping[str, Any] | None:
        reads.append((name, namespace))
        return {"status": dict(status)}

    gate = PeeringGate(read, "akc", ME, 0, clock=lambda: clock[0])
    assert await gate.active() and await gate.active()
    assert reads == [("akc", None)], "the cluster-wide object, read once"
    status["other"] = peer(10, seen_ago=-3600)  # alive for the next hour, whatever the clock
    clock[0] = PEERING_READ_SECONDS + 0.1
    assert not await gate.active()
    assert len(reads) == 2


async def test_the_gate_pauses_on_any_namespace_and_on_a_failed_read() -> None:
    async def read(name: str, namespace: str | None) -> Mapping[str, Any] | None:
        if namespace == "down":
            raise OSError("connection refused")
        if namespace == "b":
            return {"status": {"other": peer(1, seen_ago=-3600)}}
        return None  # no peering object there (yet)

    assert await PeeringGate(read, "akc", ME, 0, namespaces=("a",)).active()
    assert not await PeeringGate(read, "akc", ME, 0, namespaces=("a", "b")).active()
    assert not await PeeringGate(read, "akc", ME, 0, namespaces=("down",)).active()
    assert await PeeringGate(read, "akc", ME, 0, namespaces=("down",), standalone=True).active()


class Ticks:
    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.active = True

    async def tick(self, namespace: str, name: str) -> None:
        await self.release.wait()
        if name == "broken":
            raise RuntimeError("boom")
        self.done.append((namespace, name))

    async def is_active(self) -> bool:
        return self.active


async def test_ticks_never_overlap_skip_while_paused_and_survive_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Ticks()
    clock = [0.0]
    loop = MaintenanceLoop(Schedule(10.0), t.tick, t.is_active, clock=lambda: clock[0])
    for name in ("a", "broken"):
        loop.seen(("ns", name))
    slots = asyncio.Semaphore(8)

    t.active = False
    clock[0] = 10.0
    assert await loop.round(slots) == 0, "paused: no tick"
    assert t.done == []

    t.active = True
    t.release.clear()
    clock[0] = 30.0
    assert await loop.round(slots) == 2
    clock[0] = 60.0
    assert await loop.round(slots) == 0, "the previous ticks still run"
    t.release.set()
    await asyncio.gather(*loop.running.values())
    assert t.done == [("ns", "a")]
    assert "maintenance of ns/broken failed" in caplog.text

    clock[0] = 90.0
    assert await loop.round(slots) == 2, "the failed one is ticked again"


async def test_run_sleeps_until_the_next_tick_and_cancels_cleanly() -> None:
    t = Ticks()
    loop = MaintenanceLoop(Schedule(0.2), t.tick, t.is_active)
    assert loop.pause() == 1.0, "nothing scheduled: a look a second"
    loop.seen(("ns", "a"))
    assert 0.1 <= loop.pause() <= 0.2
    task = asyncio.create_task(loop.run())
    for _ in range(100):
        if len(t.done) >= 2:
            break
        await asyncio.sleep(0.05)
    assert t.done[:2] == [("ns", "a"), ("ns", "a")]
    t.release.clear()
    await asyncio.sleep(0.5)  # a tick now waits: cancelling the loop cancels it too
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not loop.running


QUEUE: contextvars.ContextVar[str] = contextvars.ContextVar("queue")


async def test_ticks_run_in_the_context_of_the_handler_that_first_saw_a_connection() -> None:
    """kopf's Event queue is a context variable of its handlers' tasks: a tick posting an
    Event (a certificate renewal) must see it, as the daemon did."""
    seen_in: list[str | None] = []

    async def tick(namespace: str, name: str) -> None:
        seen_in.append(QUEUE.get(None))

    async def active() -> bool:
        return True

    clock = [0.0]
    loop = MaintenanceLoop(Schedule(1.0), tick, active, clock=lambda: clock[0])

    async def handler() -> None:  # a kopf handler's task, with kopf's variables set
        QUEUE.set("kopf's event queue")
        loop.seen(("ns", "a"))

    await asyncio.create_task(handler())
    assert QUEUE.get(None) is None
    clock[0] = 5.0
    await loop.round(asyncio.Semaphore(2))
    await asyncio.gather(*loop.running.values())
    assert seen_in == ["kopf's event queue"]


async def test_a_failing_round_does_not_end_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    t = Ticks()
    calls = [0]

    async def flaky() -> bool:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("unexpected")
        return True

    loop = MaintenanceLoop(Schedule(0.2), t.tick, flaky)
    loop.seen(("ns", "a"))
    task = asyncio.create_task(loop.run())
    for _ in range(100):
        if t.done:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "maintenance round failed" in caplog.text
    assert t.done, "ticked after the failed round"
