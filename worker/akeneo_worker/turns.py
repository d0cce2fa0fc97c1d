"""Whose turn it is: one change of a resource in flight at a time, in the order fetched.

The worker processes two batches at once (one waits on the KV or the sink while the other
computes); a resource present in both must still be handled by the older batch first, so
the newer one judges it against what the older one stored. ``take`` is called in fetch
order and chains each resource's turns; ``wait`` returns once the previous holder is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Turns:
    def __init__(self) -> None:
        self._last: dict[Hashable, asyncio.Future[None]] = {}

    def take(self, resource: Hashable) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """(the previous holder's turn or None, this turn): call in fetch order."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous = self._last.get(resource)
        self._last[resource] = mine
        return (previous if previous is not None and not previous.done() else None), mine

    def give_back(self, resource: Hashable, turn: asyncio.Future[None]) -> None:
        if not turn.done():
            turn.set_result(None)
        if self._last.get(resource) is turn:
            del self._last[resource]

    def __len__(self) -> int:
        return len(self._last)
