"""Turns: a resource in two batches is handled by the older batch first."""

from __future__ import annotations

import asyncio

from akeneo_worker.turns import Turns


async def test_turns_chain_in_fetch_order_and_are_given_back() -> None:
    turns = Turns()
    first_after, first = turns.take("p1")
    second_after, second = turns.take("p1")
    other_after, other = turns.take("p2")
    assert first_after is None and other_after is None
    assert second_after is first and not first.done()
    turns.give_back("p1", first)
    await asyncio.wait_for(second_after, 1)
    third_after, third = turns.take("p1")
    assert third_after is second  # still held by the second batch
    for resource, turn in (("p1", second), ("p1", third), ("p2", other)):
        turns.give_back(resource, turn)
    assert len(turns) == 0
