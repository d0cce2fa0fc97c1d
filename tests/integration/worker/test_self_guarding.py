"""Self-guarding SQL sinks: no claim in the guard, and still newest-wins across replicas.

Real NATS, real sqlite and real PostgreSQL. Two worker replicas race on the same resources
with interleaved updates and removals; the interleaving the claim used to prevent (replica
A holds an old update while replica B applies a newer removal, A's update lands last) is
driven step by step through the workers themselves; the guard's own CAS never lets a loser
overwrite a newer entry.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import nats as nats_client
import psycopg
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from akeneo_connector.changes import Change
from akeneo_connector.guard_state import GuardEntry, guard_key, read_guard_entries
from akeneo_connector.kv_pipeline import PipelinedKV
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent
from akeneo_worker import consumer
from akeneo_worker.guard import GuardStore, Superseded
from akeneo_worker.sinks.base import Sink
from akeneo_worker.sinks.postgres import PostgresSink
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import (
    FAST,
    event,
    eventually,
    publish,
    running,
    two_replicas_drain,
    version,
)

_tables = itertools.count()
State = tuple[dict[str, int], set[str]]  # rows (key -> n of the resource), tombstoned keys


@dataclass
class SqlTarget:
    """One SQL destination shared by every replica: a sink per replica, and its state."""

    make: Callable[[], Sink]
    read: Callable[[], State]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> SqlTarget:
    if request.param == "sqlite":
        db = tmp_path / "shared.db"

        def read_sqlite() -> State:
            sink = SqliteSink(db)
            rows = {key: r["n"] for (_, key), (_, r) in sink.read_all().items()}
            return rows, {key for _, key in sink.read_tombstones()}

        return SqlTarget(lambda: SqliteSink(db), read_sqlite)
    dsn: str = request.getfixturevalue("postgres")
    table = f"replicas_{next(_tables)}"

    def read_postgres() -> State:
        sink = PostgresSink(dsn, table=table, allow_private=True)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT key, resource FROM {sink.table}").fetchall()
            gone = conn.execute(f"SELECT key FROM {sink.tombstones}").fetchall()
        return {key: r["n"] for key, r in rows}, {key for (key,) in gone}

    return SqlTarget(lambda: PostgresSink(dsn, table=table, allow_private=True), read_postgres)


def newest_events(history: Sequence[NormalizedEvent]) -> dict[str, NormalizedEvent]:
    newest: dict[str, NormalizedEvent] = {}
    for ev in history:
        if ev.key not in newest or ev.version > newest[ev.key].version:
            newest[ev.key] = ev
    return newest


def expected(history: Sequence[NormalizedEvent]) -> State:
    newest = newest_events(history)
    rows = {k: e.resource["n"] for k, e in newest.items() if e.resource is not None}
    return rows, {k for k, e in newest.items() if e.resource is None}


async def test_two_replicas_race_on_updates_and_removals(
    js: JetStreamContext, names: ConnectionNames, nats: str, target: SqlTarget
) -> None:
    rng = random.Random(11)
    history = []
    for i in range(20):
        for n in range(1, 9):
            history.append(event(names, f"p{i}", n, delete=rng.random() < 0.3))
    deliveries = history + rng.sample(history, 40)  # 40 duplicates, new event ids
    deliveries = [
        e.model_copy(update={"event_id": f"{e.event_id}-{j}"}) for j, e in enumerate(deliveries)
    ]
    rng.shuffle(deliveries)
    sinks = (target.make(), target.make())
    await two_replicas_drain(nats, js, names, sinks, (7, 5), deliveries)
    assert target.read() == expected(history)
    entries = await read_guard_entries(js, names.guard_bucket, "product")
    assert {k: (g.version, g.deleted) for k, g in entries.items()} == {
        k: (e.version, e.resource is None) for k, e in newest_events(history).items()
    }  # the guard never went back either
    assert all(g.claimed_by is None for g in entries.values())  # no claim was taken


class Held:
    """A sink that holds the batch carrying one change (key, version) until released."""

    def __init__(self, inner: Sink, key: str, at: datetime) -> None:
        self.inner, self.key, self.at = inner, key, at
        self.name, self.max_batch, self.max_concurrency = inner.name, 1, 1
        self.self_guarding = inner.self_guarding
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def open(self) -> None:
        await self.inner.open()

    async def apply(self, changes: Sequence[Change]) -> None:
        if any((c.key, c.version) == (self.key, self.at) for c in changes):
            self.entered.set()
            await self.release.wait()
        await self.inner.apply(changes)

    async def close(self) -> None:
        await self.inner.close()


class PausableSubscription:
    """A's pull subscription: once paused it fetches nothing more (``fetching``: in flight)."""

    def __init__(self, sub: Any) -> None:
        self.sub, self.paused, self.fetching = sub, False, 0

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        if self.paused:
            await asyncio.sleep(timeout)
            raise TimeoutError
        self.fetching += 1
        try:
            msgs: list[Any] = await self.sub.fetch(batch, timeout=timeout)
            return msgs
        finally:
            self.fetching -= 1

    async def unsubscribe(self) -> None:
        await self.sub.unsubscribe()


async def test_an_old_update_held_by_one_replica_lands_after_the_others_removal(
    js: JetStreamContext,
    names: ConnectionNames,
    nats: str,
    target: SqlTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A applies v1, takes v2 and is held inside its sink; B applies the removal v3; then
    A's v2 reaches the sink last. No claim was taken, so nothing stopped A: the sink
    refuses v2 itself, and A's guard write loses its CAS and keeps B's tombstone."""
    subscriptions: list[PausableSubscription] = []

    async def ensure_consumer(js_: Any, names_: Any, config: Any) -> Any:
        sub = await consumer.ensure_consumer(js_, names_, config)
        if js_ is not js:
            return sub
        subscriptions.append(PausableSubscription(sub))
        return subscriptions[-1]

    monkeypatch.setattr("akeneo_worker.worker.ensure_consumer", ensure_consumer)
    slow = replace(FAST, ack_wait=60.0)  # nothing is redelivered while A is held
    held = Held(target.make(), "p1", version(2))
    second = await nats_client.connect(nats)
    try:
        async with running(js, names, held, replace(slow, batch_size=1, replica="a")) as a:
            await publish(js, names, event(names, "p1", 1))
            await eventually(lambda: a.metrics.counts["applied"] == 1, what="A applied v1")
            await publish(js, names, event(names, "p1", 2))
            await asyncio.wait_for(held.entered.wait(), 15)  # A holds v2, judged newer than v1
            (sub,) = subscriptions
            sub.paused = True  # A fetches nothing more, so the removal goes to B
            await eventually(lambda: sub.fetching == 0, what="A's last fetch over")
            await publish(js, names, event(names, "p1", 3, delete=True))
            async with running(second.jetstream(), names, target.make(),
                               replace(slow, replica="b")) as b:  # fmt: skip
                await eventually(lambda: b.metrics.counts["applied"] == 1, what="B removed p1")
                assert target.read() == ({}, {"p1"})
                held.release.set()  # A's v2 arrives last
                await eventually(lambda: a.metrics.counts["outdated"] == 1, what="A done")
    finally:
        held.release.set()
        await second.drain()
    assert target.read() == ({}, {"p1"})  # not resurrected
    assert a.metrics.counts["applied"] == 1  # A's record lost the CAS to B's newer entry
    kv = await js.key_value(names.guard_bucket)
    entry = GuardEntry.model_validate_json((await kv.get(guard_key("product", "p1"))).value or b"")
    assert (entry.version, entry.deleted, entry.claimed_by) == (version(3), True, None)


class Probe:
    """Wraps a sink and notes, while applying, whether the guard entry holds a claim."""

    def __init__(self, inner: Sink, js: JetStreamContext, names: ConnectionNames, *,
                 self_guarding: bool) -> None:  # fmt: skip
        self.inner, self.js, self.names = inner, js, names
        self.name, self.max_batch, self.max_concurrency = inner.name, 10, 1
        self.self_guarding = self_guarding
        self.claimed_by: list[str | None] = []

    async def open(self) -> None:
        await self.inner.open()

    async def apply(self, changes: Sequence[Change]) -> None:
        kv = await self.js.key_value(self.names.guard_bucket)
        for c in changes:
            try:
                found = await kv.get(guard_key(c.kind, c.key))
            except KeyNotFoundError:
                self.claimed_by.append(None)
                continue
            entry = GuardEntry.model_validate_json(found.value or b"")
            self.claimed_by.append(entry.claimed_by)
        await self.inner.apply(changes)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("self_guarding", [False, True], ids=["claims", "no claims"])
async def test_the_claim_is_taken_only_for_sinks_that_cannot_guard_themselves(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path, self_guarding: bool
) -> None:
    probe = Probe(SqliteSink(tmp_path / "c.db"), js, names, self_guarding=self_guarding)
    await publish(js, names, event(names, "p1", 1))  # a first version, so an entry exists
    async with running(js, names, probe) as worker:
        await eventually(lambda: worker.metrics.counts["applied"] == 1, what="v1")
        await publish(js, names, event(names, "p1", 2))
        await eventually(lambda: worker.metrics.counts["applied"] == 2, what="v2")
    if self_guarding:
        assert probe.claimed_by == [None, None]
    else:  # the claim is on the entry while the sink works (the first one: a bare claim)
        assert len(probe.claimed_by) == 2 and all(
            h and h.startswith("test/") for h in probe.claimed_by
        )


def _change(n: int, *, delete: bool = False) -> Change:
    return Change(connection="t/c", kind="product", key="p1",
                  operation="delete" if delete else "upsert", version=version(n),
                  event_id=f"e{n}", resource=None if delete else {"n": n})  # fmt: skip


@pytest.fixture
async def two_guards(js: JetStreamContext, names: ConnectionNames
                     ) -> AsyncIterator[tuple[GuardStore, GuardStore]]:  # fmt: skip
    pipes = [PipelinedKV(js._nc, names.guard_bucket) for _ in range(2)]
    try:
        yield GuardStore(pipes[0]), GuardStore(pipes[1])
    finally:
        for pipe in pipes:
            await pipe.close()


async def test_a_cas_loser_never_overwrites_a_newer_guard_entry(
    js: JetStreamContext, names: ConnectionNames, two_guards: tuple[GuardStore, GuardStore]
) -> None:
    a, b = two_guards
    kv = await js.key_value(names.guard_bucket)

    async def stored() -> Any:
        entry = GuardEntry.model_validate_json((await kv.get(guard_key("product", "p1"))).value
                                               or b"")  # fmt: skip
        return entry.version, entry.deleted

    await a.load([("product", "p1")])  # A caches "no entry yet"
    assert await b.record_many([_change(5, delete=True)]) == [None]
    outcome = await a.record_many([_change(3)])  # decided on A's stale cache: CAS refused
    assert isinstance(outcome[0], Superseded) and await stored() == (version(5), True)
    assert await a.record_many([_change(5, delete=True)]) == [None]  # already there: kept
    assert await b.record_many([_change(4)]) != [None]  # B's cache is live: refused at once
    assert await a.record_many([_change(7)]) == [None]
    assert await stored() == (version(7), False)
