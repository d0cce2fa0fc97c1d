"""``gather_in_order``: a reconcile's independent API calls at once, failures as before."""

from __future__ import annotations

import asyncio

import pytest

from akeneo_operator.apply import ChildConflict
from akeneo_operator.reconciler import gather_in_order


async def test_calls_overlap_and_results_keep_their_order():
    running = 0
    most = 0

    async def call(value: int, delay: float) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(delay)
        running -= 1
        return value

    assert await gather_in_order([call(1, 0.03), call(2, 0.01), call(3, 0.02)]) == [1, 2, 3]
    assert most == 3


async def test_every_call_ends_and_the_first_failure_in_order_is_raised_as_itself():
    done: list[str] = []

    async def ok(name: str) -> str:
        await asyncio.sleep(0.01)
        done.append(name)
        return name

    async def fails(exc: Exception, delay: float) -> str:
        await asyncio.sleep(delay)
        raise exc

    with pytest.raises(ChildConflict) as raised:
        await gather_in_order(
            [ok("a"), fails(ChildConflict("Deployment", "d"), 0.02), fails(KeyError("k"), 0)]
        )
    assert raised.value.name == "d"  # the earlier call's error, though the later one came first
    assert done == ["a"]
