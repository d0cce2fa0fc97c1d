"""The one small interface every sink implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from akeneo_connector.changes import Change


class SinkError(Exception):
    """The sink did not confirm. ``retryable`` decides between a retry and a dead letter.

    The message must be safe to log and to store in a dead letter: no secrets, no bodies.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    """Applies upserts and deletes, idempotently, a batch at a time.

    ``apply`` returns once every change of the batch is durable at the destination, or
    raises ``SinkError`` for the whole batch (the worker splits a batch to find the culprit
    of a permanent error). Applying the same change twice leaves the same state.
    """

    name: str
    max_batch: int  # changes per ``apply`` call
    max_concurrency: int  # ``apply`` calls in flight at once
    self_guarding: bool
    """The sink itself refuses a change older than what it holds, removals included, whatever
    the interleaving of concurrent writers (``akeneo_worker.sinks.tombstones``): the worker
    then takes no claim in the guard before applying (one KV write less per change)."""

    async def open(self) -> None: ...

    async def apply(self, changes: Sequence[Change]) -> None: ...

    async def close(self) -> None: ...
