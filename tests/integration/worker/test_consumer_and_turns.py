"""The worker's consumer settings, and its promise of one change per resource at a time."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.api import AckPolicy

from akeneo_connector.changes import Change
from akeneo_connector.names import ConnectionNames
from tests.integration.worker.support import FAST, event, eventually, publish, running


class ConcurrencyProbe:
    """A slow sink, many calls in flight, that records how many changes of a key overlap."""

    name = "probe"
    max_batch = 7
    max_concurrency = 4
    self_guarding = False

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.most_at_once = 0
        self.calls_overlapping = 0
        self.newest: dict[str, int] = {}
        self._calls = 0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def apply(self, changes: Sequence[Change]) -> None:
        self._calls += 1
        self.calls_overlapping = max(self.calls_overlapping, self._calls)
        for c in changes:
            self.in_flight[c.key] += 1
            self.most_at_once = max(self.most_at_once, self.in_flight[c.key])
        try:
            await asyncio.sleep(random.uniform(0.001, 0.01))
            for c in changes:
                n = int((c.resource or {}).get("n", 0))
                self.newest[c.key] = max(self.newest.get(c.key, 0), n)
        finally:
            for c in changes:
                self.in_flight[c.key] -= 1
            self._calls -= 1


async def test_the_durable_consumer_follows_the_configuration(
    js: JetStreamContext, names: ConnectionNames
) -> None:
    config = replace(FAST, max_deliver=7, ack_wait=3.0)
    async with running(js, names, ConcurrencyProbe(), config):
        info = await js.consumer_info(names.stream, names.consumer)
    c = info.config
    assert c.durable_name == names.consumer
    assert c.ack_policy == AckPolicy.EXPLICIT
    assert c.filter_subject == f"{names.events_subject}.>"
    assert c.ack_wait == 3.0
    assert c.max_deliver == 8  # maxDeliver tries, then the worker dead-letters; +1 for a crash


async def test_never_two_changes_of_one_resource_at_once(
    js: JetStreamContext, names: ConnectionNames
) -> None:
    """Twenty resources, fifteen versions each, shuffled: sink calls overlap, never a key."""
    rng = random.Random(3)
    history = [event(names, f"p{k}", n) for k in range(20) for n in range(1, 16)]
    rng.shuffle(history)
    for ev in history:
        await publish(js, names, ev)
    probe = ConcurrencyProbe()
    async with running(js, names, probe) as worker:

        def settled() -> bool:
            counts = worker.metrics.counts
            return sum(counts[k] for k in ("applied", "outdated", "duplicate")) == len(history)

        await eventually(settled, what="every event acked", timeout=60)
    assert probe.calls_overlapping > 1  # the sink really was called concurrently
    assert probe.most_at_once == 1
    assert probe.newest == {f"p{k}": 15 for k in range(20)}
