"""The connection's shared PIM call budget (``KvBudget``) on a real nats-server.

Each "process" is a ``KvBudget`` on its own NATS connection, as worker replicas and the
reconcile job are. Akeneo allows 4 concurrent calls per connection
(https://api.akeneo.com/documentation/overview.html#rate-limiting-and-concurrency-limiting):
together they never hold more than 4 slots, a busy one does not starve the others, a slot of
a process that died comes back when its lease ends, and a budget that cannot be had fails
clearly within its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats as nats_client
import pytest
from nats.js import JetStreamContext

from akeneo_connector.guard_state import BUDGET_SLOTS, BudgetSlot, budget_slot_key
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.rest import AkeneoRestClient, CallSlotUnavailable
from akeneo_pim.rest_budget import KvBudget
from akeneo_pim.simulator import PimSimulator
from akeneo_resync.reconcile import Resync, ResyncSettings
from akeneo_worker.hydration import RestHydrator
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.conftest import fresh_connection
from tests.integration.worker.support import FAST, eventually, publish, running, sqlite_state


@asynccontextmanager
async def process(nats: str, names: ConnectionNames, holder: str, **kwargs: Any
                  ) -> AsyncIterator[KvBudget]:  # fmt: skip
    """A budget on its own NATS connection: another process of the connection."""
    nc = await nats_client.connect(nats)
    budget = KvBudget(nc, names.guard_bucket, holder=holder, **kwargs)
    try:
        yield budget
    finally:
        await budget.close()
        await nc.drain()


class InFlight:
    """Counts the calls inside ``slot()`` across every budget."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0
        self.by: dict[str, int] = {}

    async def call(self, budget: KvBudget, seconds: float) -> None:
        async with budget.slot():
            self.now += 1
            self.max = max(self.max, self.now)
            self.by[budget.holder] = self.by.get(budget.holder, 0) + 1
            try:
                await asyncio.sleep(seconds)
            finally:
                self.now -= 1


async def slots(js: JetStreamContext, names: ConnectionNames) -> list[BudgetSlot]:
    kv = await js.key_value(names.guard_bucket)
    found = []
    for n in range(BUDGET_SLOTS):
        entry = await kv.get(budget_slot_key(n))
        found.append(BudgetSlot.model_validate_json(entry.value or b"{}"))
    return found


async def test_three_processes_together_never_hold_more_than_four_slots(
    nats: str, js: JetStreamContext, names: ConnectionNames
) -> None:
    flight = InFlight()
    rng = random.Random(7)

    async def busy(budget: KvBudget) -> None:
        for _ in range(25):
            await flight.call(budget, rng.uniform(0.001, 0.008))

    async with (
        process(nats, names, "a") as a,
        process(nats, names, "b") as b,
        process(nats, names, "c") as c,
    ):
        await asyncio.wait_for(
            asyncio.gather(*(busy(p) for p in (a, b, c) for _ in range(6))), timeout=120
        )
        assert flight.max == 4  # the budget was used in full, never exceeded
        assert flight.now == 0
        assert flight.by == {"a": 150, "b": 150, "c": 150}
        assert sum(p.stats.acquired for p in (a, b, c)) == 450
        assert sum(p.stats.conflicts for p in (a, b, c)) > 0  # they did compete
    # every slot given back, none left reserved for long
    for state in await slots(js, names):
        assert state.holder is None and state.ticket is None


async def test_a_process_keeping_every_slot_busy_does_not_starve_another(
    nats: str, names: ConnectionNames
) -> None:
    """A reconcile-like process keeps 8 calls of 200 ms going; a worker-like one makes 12
    calls with other work in between. Each of its calls waits for one of the busy slots to
    end (at most 200 ms) and gets it through its reservation of the next turn. Without the
    reservation, the busy process re-takes each freed slot within a round trip and the
    other one only gets a slot when a poll falls into that gap: measured, 12 calls then
    take 13 to 16 s, with waits of up to 3 s (instead of 2.5 s and 0.2 s)."""
    flight = InFlight()
    done = asyncio.Event()

    async def hog(budget: KvBudget) -> None:
        while not done.is_set():
            await flight.call(budget, 0.2)

    async with process(nats, names, "reconcile") as busy, process(nats, names, "worker") as other:
        hogs = [asyncio.create_task(hog(busy)) for _ in range(8)]
        try:
            await asyncio.sleep(0.3)
            assert flight.now == 4  # it holds the whole budget
            started = time.monotonic()
            for _ in range(12):  # with other work between the calls, as a worker has
                await flight.call(other, 0.005)
                await asyncio.sleep(0.03)
            took = time.monotonic() - started
        finally:
            done.set()
            await asyncio.gather(*hogs)
        assert other.stats.waited >= 10  # it did have to wait for the busy process
        assert other.stats.max_wait < 1.0, other.stats.max_wait
        assert took < 8, took
        assert other.stats.reservations > 0
        assert flight.max == 4


async def test_the_slot_of_a_process_that_died_comes_back_when_its_lease_ends(
    nats: str, js: JetStreamContext, names: ConnectionNames
) -> None:
    kv = await js.key_value(names.guard_bucket)
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    for n in range(BUDGET_SLOTS):  # a process killed while holding all four
        await kv.put(
            budget_slot_key(n), BudgetSlot(holder="dead", ticket="t", until=until).to_bytes()
        )
    async with process(nats, names, "alive") as alive:
        started = time.monotonic()
        async with alive.slot():
            waited = time.monotonic() - started
    assert 1.0 < waited < 15, waited


async def test_a_long_call_renews_its_lease(nats: str, names: ConnectionNames) -> None:
    async with (
        process(nats, names, "long", lease=0.6) as long,
        process(nats, names, "other", lease=0.6, max_wait=1.5) as other,
    ):
        holding = [long.slot() for _ in range(BUDGET_SLOTS)]
        for cm in holding:
            await cm.__aenter__()
        try:
            await asyncio.sleep(1.0)  # past the lease: only the renewals keep the slots
            with pytest.raises(CallSlotUnavailable, match="held by long"):
                async with other.slot():
                    pass
        finally:
            for cm in holding:
                await cm.__aexit__(None, None, None)
        assert long.stats.renewals >= BUDGET_SLOTS * 2
        assert long.stats.lost == 0
        async with other.slot():  # freed at once
            pass


async def test_cancelled_calls_give_their_slots_back(
    nats: str, js: JetStreamContext, names: ConnectionNames
) -> None:
    flight = InFlight()
    async with process(nats, names, "a") as a, process(nats, names, "b") as b:
        for delay in (0.0, 0.0005, 0.001, 0.003, 0.01):  # while taking, holding, freeing
            tasks = [asyncio.create_task(flight.call(p, 0.005)) for p in (a, b) for _ in range(6)]
            await asyncio.sleep(delay)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.3)  # the shielded frees finish
        for state in await slots(js, names):
            assert state.holder is None
        # and the whole budget is there for the next calls, right away
        started = time.monotonic()
        await asyncio.gather(*(flight.call(a, 0.2) for _ in range(BUDGET_SLOTS)))
        assert time.monotonic() - started < 2.0


async def test_without_its_bucket_a_call_fails_clearly_within_the_bound(nats: str) -> None:
    missing = ConnectionNames("tenant-worker", "no-bucket-here")
    async with process(nats, missing, "lonely", max_wait=0.5) as budget:
        started = time.monotonic()
        with pytest.raises(CallSlotUnavailable) as raised:
            async with budget.slot():
                pass
        assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "no PIM call slot free within 0.5s" in message
    assert "KV bucket did not answer" in message


# -- three worker replicas and a reconcile run against the PIM simulator -------------------


@dataclass
class Party:
    """One process of the connection: its NATS connection, REST client and limiter."""

    nc: Any
    client: AkeneoRestClient
    budget: KvBudget | None


@asynccontextmanager
async def party(nats: str, sim: PimSimulator, names: ConnectionNames, holder: str, shared: bool
                ) -> AsyncIterator[Party]:  # fmt: skip
    nc = await nats_client.connect(nats)
    budget = KvBudget(nc, names.guard_bucket, holder=holder) if shared else None
    client = AkeneoRestClient(
        sim.url, sim.credentials, limiter=budget, backoff_base=0.01, allow_private=True
    )
    try:
        yield Party(nc, client, budget)
    finally:
        await client.aclose()
        if budget is not None:
            await budget.close()
        await nc.drain()


def hydrate_event(names: ConnectionNames, uuid: str, product: dict[str, Any]) -> NormalizedEvent:
    """``com.akeneo.pim.v1.product.updated`` as the receiver publishes it: the uuid only."""
    return NormalizedEvent(
        connection=names.ref,
        source=SourceFormat.EVENT_PLATFORM,
        event_id=f"ep-{uuid}",
        action=Action.UPSERT,
        kind=ResourceKind.PRODUCT,
        key=uuid,
        version=datetime.fromisoformat(product["updated"]),
    )


@pytest.mark.parametrize("shared", [True, False], ids=["shared-budget", "negative-control"])
async def test_replicas_hydrating_while_a_reconcile_runs_stay_within_four_calls(
    nats: str, js: JetStreamContext, tmp_path: Path, shared: bool
) -> None:
    """Three worker replicas hydrate a burst of Event Platform product events (ids only) while
    a reconcile run pages the same PIM, all with the same client id. The simulator admits 4
    calls in flight per client id and answers 429 past them, as Akeneo does. With the shared
    budget: not one 429, the 4 calls in use; without it (each process capped at 4 on its
    own), the same load gets 429s: the test can tell the two apart."""
    names = await fresh_connection(js, "budget")
    db = tmp_path / "catalog.db"
    products = 1200
    async with PimSimulator(products=products, product_models=20, latency=0.04) as sim:
        catalog = sim.catalog.products.items
        for uuid, product in catalog.items():  # the burst, waiting in the stream
            await publish(js, names, hydrate_event(names, uuid, product))
        config = replace(FAST, batch_size=10, ack_wait=30.0, max_deliver=20)
        async with contextlib.AsyncExitStack() as stack:
            parties = [
                await stack.enter_async_context(party(nats, sim, names, h, shared))
                for h in ("worker-a", "worker-b", "worker-c", "reconcile")
            ]
            peak = 0
            overlap = 0

            async def watch() -> None:  # calls in flight, as the four clients count them
                nonlocal peak, overlap
                while True:
                    flights = [p.client.stats.in_flight for p in parties]
                    peak = max(peak, sum(flights))
                    overlap += flights[3] > 0 and sum(flights[:3]) > 0
                    await asyncio.sleep(0.002)

            watcher = asyncio.create_task(watch())
            workers = [
                await stack.enter_async_context(
                    running(
                        p.nc.jetstream(),
                        names,
                        SqliteSink(db),
                        replace(config, replica=f"w{i}"),
                        hydrator=RestHydrator(p.client),
                    )
                )
                for i, p in enumerate(parties[:3])
            ]
            reconcile = parties[3]
            settings = ResyncSettings(names=names, resources=("products", "product_models"))
            kv = await reconcile.nc.jetstream().key_value(names.guard_bucket)
            summary = await asyncio.wait_for(
                Resync(settings, reconcile.client, reconcile.nc.jetstream(), kv).run(), 120
            )
            assert summary.seen == products + 20

            def settled() -> bool:
                return len(sqlite_state(db)) == products + 20

            await eventually(settled, timeout=120, what="every product hydrated and applied")
            watcher.cancel()
            hydrated = sum(p.client.stats.calls for p in parties[:3])
        assert all(w.metrics.counts["dead_lettered"] == 0 for w in workers)
        assert hydrated >= products // 10 // 2  # batches of up to 10 uuids, one call each
        assert overlap > 0  # the reconcile's calls and the workers' were in flight together
        stats = sim.stats
        if shared:
            assert stats.throttled_by["client_concurrency"] == 0
            assert stats.throttled_by["instance_concurrency"] == 0
            assert stats.throttled_429 == 0
            assert stats.client_max_in_flight["sim-client"] == 4  # the whole budget, used
            assert peak <= 4
            assert sum(p.budget.stats.acquired for p in parties if p.budget) == sum(
                p.client.stats.calls for p in parties
            )
        else:
            assert stats.throttled_by["client_concurrency"] > 0
            assert peak > 4
