"""One maintenance loop for every connection, instead of a kopf daemon per connection.

A kopf daemon keeps, for as long as it runs, its object's latest whole body (status,
managedFields, kopf's annotations) to hand it to the daemon, plus a task and its stoppers: at
1,000 connections that was about 35 MB the operator held only to know which connections to
tick. Here the loop holds a name and a due time per connection, ticks each at the same pace
(``first_delay``, then ``jittered``), never two ticks of one connection at once, and skips
ticks while kopf's peering pauses this replica, as kopf stops its daemons then.

The schedule and the pause rule are pure; ``MaintenanceLoop`` wires them to a clock, the
tick and the peering read.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from akeneo_operator.timing import first_delay, jittered

Key = tuple[str, str]  # (namespace, name)
log = logging.getLogger("akeneo_operator")

# Ticks running at once: the daemons were not bounded, but a tick that reconciles waits for
# the reconciler's own bound anyway; this keeps a restart's burst of due ticks in check.
MAX_CONCURRENT_TICKS = 32
# How long the loop sleeps at most, and at least, between looks at the schedule.
WAKE_SECONDS = 1.0
MIN_WAKE_SECONDS = 0.1
# How long a read of the peering object decides the pause (kopf's peers touch every 60 s).
PEERING_READ_SECONDS = 5.0
PEERING_API_VERSION = "kopf.dev/v1"


@dataclass
class Schedule:
    """When each connection's next tick is due (monotonic seconds)."""

    interval: float
    rng: random.Random = field(default_factory=random.Random)
    due: dict[Key, float] = field(default_factory=dict)

    def add(self, key: Key, now: float) -> None:
        """A connection seen: its first tick within the interval (spread, as after a restart
        the daemons were); seen again: unchanged."""
        if key not in self.due:
            self.due[key] = now + first_delay(self.interval, self.rng)

    def remove(self, key: Key) -> None:
        self.due.pop(key, None)

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    def pop_due(self, now: float) -> list[Key]:
        """The connections due now, each rescheduled one jittered interval later."""
        keys = [key for key, at in self.due.items() if at <= now]
        for key in keys:
            self.due[key] = now + jittered(self.interval, self.rng)
        return keys


def paused_by_peers(
    status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime
) -> bool:
    """kopf's rule (``kopf._core.engines.peering``): a replica pauses while another live peer
    has a higher priority, or the same one. A peer is live until ``lastseen + lifetime``."""
    for peer_id, info in (status or {}).items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        try:
            peer_priority = int(info.get("priority", 0))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            lastseen = datetime.fromisoformat(str(info["lastseen"]))
        except (KeyError, TypeError, ValueError):
            continue  # not a peer kopf wrote
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=UTC)
        if lastseen + lifetime > now and peer_priority >= priority:
            return True
    return False


ReadPeering = Callable[[str, str | None], Awaitable[Mapping[str, Any] | None]]


@dataclass
class PeeringGate:
    """Whether this replica is the one acting, from the peering objects kopf keeps.

    ``namespaces`` empty: the cluster-wide peering object; else one per namespace, and any
    of them pausing pauses the replica (kopf pauses the whole operator then too). A read that
    fails counts as paused until the next one: better a skipped tick than two replicas
    renewing the same certificate.
    """

    read: ReadPeering  # (name, namespace or None) -> the peering object, None if absent
    name: str
    identity: str
    priority: int
    namespaces: tuple[str, ...] = ()
    standalone: bool = False
    clock: Callable[[], float] = time.monotonic
    _until: float = float("-inf")
    _active: bool = True

    async def active(self) -> bool:
        if self.standalone:
            return True
        if self.clock() < self._until:
            return self._active
        self._active = await self._read_active()
        self._until = self.clock() + PEERING_READ_SECONDS
        return self._active

    async def _read_active(self) -> bool:
        now = datetime.now(UTC)
        for namespace in self.namespaces or (None,):
            try:
                body = await self.read(self.name, namespace)
            except Exception as exc:  # the API is down: the ticks would fail anyway
                log.debug("peering object unreadable (%s): maintenance waits", type(exc).__name__)
                return False
            status = (body or {}).get("status")
            if paused_by_peers(status, self.identity, self.priority, now):
                return False
        return True


@dataclass
class MaintenanceLoop:
    """Ticks every scheduled connection; ``run`` until cancelled."""

    schedule: Schedule
    tick: Callable[[str, str], Awaitable[None]]
    active: Callable[[], Awaitable[bool]]
    clock: Callable[[], float] = time.monotonic
    limit: int = MAX_CONCURRENT_TICKS
    running: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    # The context ticks run in: kopf's Event posting (``kopf.event``) reads its queue from a
    # context variable kopf sets for the handlers' tasks only, so the first ``seen`` called
    # from a handler lends its context (a copy for each tick), as a daemon had it.
    context: contextvars.Context | None = None

    def seen(self, key: Key) -> None:
        if self.context is None:
            self.context = contextvars.copy_context()
        self.schedule.add(key, self.clock())

    def gone(self, key: Key) -> None:
        """Deleted or being deleted: no more ticks (kopf stopped the daemon then too)."""
        self.schedule.remove(key)

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.limit)
        try:
            while True:
                try:
                    await self.round(slots)
                except Exception:  # the loop outlives any one round: it is every connection's
                    log.exception("maintenance round failed")
                await asyncio.sleep(self.pause())
        finally:
            for task in list(self.running.values()):
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)

    def pause(self) -> float:
        """Seconds until the next tick is due, within [MIN_WAKE_SECONDS, WAKE_SECONDS]."""
        due = self.schedule.next_due()
        wait = WAKE_SECONDS if due is None else due - self.clock()
        return min(WAKE_SECONDS, max(MIN_WAKE_SECONDS, wait))

    async def round(self, slots: asyncio.Semaphore) -> int:
        """Start the ticks due now (none while paused); how many were started."""
        keys = [k for k in self.schedule.pop_due(self.clock()) if k not in self.running]
        if not keys or not await self.active():
            return 0
        for key in keys:
            context = self.context.copy() if self.context is not None else None
            task = asyncio.create_task(
                self._one(key, slots), name=f"maintain {key}", context=context
            )
            self.running[key] = task
        return len(keys)

    async def _one(self, key: Key, slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                if key in self.schedule.due:  # still there: not deleted while waiting
                    await self.tick(*key)
        except Exception:  # a cancellation (BaseException) goes through
            log.exception("maintenance of %s/%s failed", *key)
        finally:
            self.running.pop(key, None)
