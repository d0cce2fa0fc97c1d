"""One REST budget per connection: at most 4 PIM calls in flight across all its processes.

Akeneo allows 4 concurrent calls per connection and answers 429 past them. The worker
replicas (hydrating) and the reconcile job (reading) of a connection use the same PIM
connection, so a cap of 4 per process is not enough: they share 4 slot keys in the
connection's KV bucket (``budget.slot.<n>``, see ``akeneo_connector.guard_state``). A call
takes a free slot with a compare-and-set write of ``BudgetSlot`` (this process, a ticket, an
expiry), renews it every third of the lease while the call lasts, and frees it with a second
compare-and-set once the answer is read. A process killed mid-call frees its slot when the
lease runs out.

Fairness: a slot freed by a busy process is taken again by that process's next call within
a round trip, long before another process polling for it could see it free. So a process
that finds no slot free reserves the next turn of a busy one (``next``, short-lived, renewed
while it waits): a freed slot reserved for another process is left to it. A reconcile run
keeping 4 calls busy for minutes cannot starve the workers, nor the workers the run.

Cost: the slots' last revisions are cached, so taking a free slot is one KV round trip (no
read first, unless another process wrote meanwhile), on the call's path; freeing it is
another, in the background after the answer (the slot counts as taken until it lands).
Waiting processes read the 4 slots in one pipelined round trip every few milliseconds. The
``bench/rest_budget.py`` benchmark measures it against the per-process cap.

A slot that cannot be had within ``max_wait`` (the slots stayed busy, or the bucket did not
answer) raises ``CallSlotUnavailable``: the call is not sent, the worker retries the message
later, the reconcile run fails with that message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from akeneo_connector.guard_state import BUDGET_SLOTS, BudgetSlot, budget_slot_key
from akeneo_connector.kv_pipeline import PipelinedKV, Read, Write, WrongRevision
from akeneo_pim.rest import CallSlotUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
_CONFLICT_ATTEMPTS = 5  # compare-and-set retries of one release or renewal


@dataclass
class BudgetStats:
    acquired: int = 0
    waited: int = 0  # acquisitions that found no slot free at first
    max_wait: float = 0.0  # seconds, longest wait for a slot
    conflicts: int = 0  # compare-and-set writes refused (another process wrote first)
    reservations: int = 0
    renewals: int = 0
    lost: int = 0  # slots found taken over when renewing or freeing (lease expired)
    timeouts: int = 0


@dataclass
class _Known:
    state: BudgetSlot | None  # None: no entry, or one that does not parse (free)
    revision: int


@dataclass
class _Held:
    slot: int
    ticket: str
    renewal: asyncio.TimerHandle | None = None
    active: bool = True


Change = Callable[[BudgetSlot | None], BudgetSlot | None]


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(value: bytes | None) -> BudgetSlot | None:
    if not value:
        return None
    try:
        return BudgetSlot.model_validate_json(value)
    except ValueError:
        return None  # not ours: overwritten by the next compare-and-set


class KvBudget:
    """The connection's 4 PIM call slots, shared through its KV bucket (a ``CallLimiter``)."""

    def __init__(
        self,
        nc: Any,
        bucket: str,
        *,
        holder: str | None = None,
        slots: int = BUDGET_SLOTS,
        lease: float = 30.0,
        reserve: float = 1.0,
        max_wait: float = 25.0,
        poll_min: float = 0.002,
        poll_max: float = 0.02,
    ) -> None:
        self.holder = holder or f"{uuid.uuid4().hex[:12]}"
        self._kv = PipelinedKV(nc, bucket)
        self._keys = [budget_slot_key(n) for n in range(slots)]
        self._known: list[_Known | None] = [None] * slots
        self._local = asyncio.Semaphore(slots)  # at most `slots` calls of this process contend
        first = zlib.crc32(self.holder.encode()) % slots  # processes start on different slots
        self._order = [(first + i) % slots for i in range(slots)]
        self._lease = timedelta(seconds=lease)
        self._reserve_for = timedelta(seconds=reserve)
        self._max_wait = max_wait
        self._poll_min, self._poll_max = poll_min, poll_max
        self._refreshing: asyncio.Future[None] | None = None
        self._trying: set[int] = set()  # slots a call of ours is taking right now
        self._waiting = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._last_error = ""
        self.stats = BudgetStats()

    def slot(self) -> _Slot:
        return _Slot(self)

    async def close(self, timeout: float = 5.0) -> None:
        """Let the slots being freed be freed (a slot left taken waits for its lease)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._kv.close()

    # -- reading and writing the slots ------------------------------------------------------

    async def _read(self, slots: list[int]) -> None:
        try:
            results = await self._kv.read_many([self._keys[n] for n in slots])
        except Exception as exc:  # e.g. the NATS connection is closed
            results = [exc] * len(slots)
        for n, found in zip(slots, results, strict=True):
            if isinstance(found, Read):
                known = self._known[n]
                if known is None or known.revision <= found.revision:  # never go back
                    self._known[n] = _Known(_parse(found.value), found.revision)
            else:
                self._known[n] = None
                self._last_error = f"the connection's KV bucket did not answer ({found!r})"

    async def _refresh(self) -> None:
        """Read every slot; callers arriving while a read is in flight share it."""
        pending = self._refreshing
        if pending is None:
            pending = self._refreshing = asyncio.ensure_future(self._read(list(self._order)))
            pending.add_done_callback(self._refreshed)
        await asyncio.shield(pending)

    def _refreshed(self, done: asyncio.Future[None]) -> None:
        if self._refreshing is done:
            self._refreshing = None

    async def _write(self, n: int, state: BudgetSlot, revision: int) -> bool:
        """Compare-and-set one slot; on any failure the slot's cached state is dropped."""
        outcome: int | BaseException
        try:
            [outcome] = await self._kv.write_many(
                [Write(self._keys[n], state.to_bytes(), revision)]
            )
        except Exception as exc:  # e.g. the NATS connection is closed
            outcome = exc
        if isinstance(outcome, int):
            self._known[n] = _Known(state, outcome)
            return True
        self._known[n] = None
        if isinstance(outcome, WrongRevision):
            self.stats.conflicts += 1
        else:
            self._last_error = f"the connection's KV bucket did not answer ({outcome!r})"
        return False

    async def _update(self, n: int, change: Change) -> BudgetSlot | None:
        """Apply ``change(state) -> new state | None`` with compare-and-set, re-reading the
        slot after a conflict; the state written, or None when ``change`` declined."""
        fresh = False
        for _ in range(_CONFLICT_ATTEMPTS):
            known = self._known[n]
            if known is None:
                await self._read([n])
                fresh, known = True, self._known[n]
                if known is None:
                    return None  # unreadable: the lease settles it
            new = change(known.state)
            if new is None:
                if fresh:
                    return None
                self._known[n], fresh = None, True  # decide again on the live entry
                continue
            if await self._write(n, new, known.revision):
                return new
            fresh = False
        return None

    # -- taking a slot ----------------------------------------------------------------------

    def _free_for_me(self, known: _Known | None, now: datetime) -> bool:
        if known is None:
            return False
        state = known.state
        return state is None or not (state.held(now) or state.reserved_for_other(self.holder, now))

    def _candidates(self, now: datetime) -> list[int]:
        """Slots this process may take now, the ones reserved for it first."""
        free = [
            n
            for n in self._order
            if n not in self._trying and self._free_for_me(self._known[n], now)
        ]

        def mine(n: int) -> bool:
            known = self._known[n]
            return (
                known is not None and known.state is not None and (known.state.next == self.holder)
            )

        return sorted(free, key=lambda n: not mine(n))

    async def _take(self) -> _Held:
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = self._poll_min
        if any(k is None for k in self._known):
            await self._refresh()
        self._waiting += 1
        try:
            waited = False
            while True:
                now = _now()
                for n in self._candidates(now):
                    held = await self._try(n, now)
                    if held is not None:
                        self._taken(held, waited, loop.time() - started)
                        return held
                waited = True
                if loop.time() - started >= self._max_wait:
                    self.stats.timeouts += 1
                    raise CallSlotUnavailable(self._why())
                await self._reserve(now)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._poll_max)
                await self._refresh()
        finally:
            self._waiting -= 1

    async def _try(self, n: int, now: datetime) -> _Held | None:
        known = self._known[n]
        if n in self._trying or known is None or not self._free_for_me(known, now):
            return None  # changed while another call of ours tried a slot
        held = _Held(n, uuid.uuid4().hex[:16])
        state = BudgetSlot(holder=self.holder, ticket=held.ticket, until=now + self._lease)
        write = asyncio.ensure_future(self._write(n, state, known.revision))
        self._trying.add(n)
        write.add_done_callback(lambda _: self._trying.discard(n))
        try:
            won = await asyncio.shield(write)
        except asyncio.CancelledError:
            # the write may still succeed: then free the slot at once, or it stays taken
            # until the lease ends
            write.add_done_callback(lambda w: self._undo(w, held))
            raise
        if won:
            return held
        if self._known[n] is None:
            await self._read([n])  # see who has it, so the next look is accurate
        return None

    def _undo(self, write: asyncio.Future[bool], held: _Held) -> None:
        if not write.cancelled() and write.exception() is None and write.result():
            self._spawn(self._free(held))

    def _taken(self, held: _Held, waited: bool, seconds: float) -> None:
        self.stats.acquired += 1
        if waited:
            self.stats.waited += 1
            self.stats.max_wait = max(self.stats.max_wait, seconds)
        loop = asyncio.get_running_loop()
        held.renewal = loop.call_later(self._lease.total_seconds() / 3, self._renew_later, held)
        if self._waiting == 1:  # no other call of ours waits: give back our reservation
            for n, known in enumerate(self._known):
                state = known.state if known is not None else None
                if state is not None and state.next == self.holder and n != held.slot:
                    self._spawn(self._update(n, self._unreserved))

    def _unreserved(self, state: BudgetSlot | None) -> BudgetSlot | None:
        if state is None or state.next != self.holder:
            return None
        return state.model_copy(update={"next": None, "next_until": None})

    async def _reserve(self, now: datetime) -> None:
        """Ask for the next turn of a busy slot, unless this process has one for a while yet;
        one held by another process rather than by this one, the one reserved already first."""
        choices: list[tuple[bool, bool, int]] = []
        for n in self._order:
            known = self._known[n]
            state = known.state if known is not None else None
            if state is None:
                continue
            mine = state.next == self.holder and state.next_until is not None
            if (
                mine
                and state.next_until is not None
                and state.next_until - now > self._reserve_for / 2
            ):
                return
            if state.held(now) and not state.reserved_for_other(self.holder, now):
                choices.append((not mine, state.holder == self.holder, n))
        if not choices:
            return
        n = min(choices)[2]
        known = self._known[n]
        assert known is not None and known.state is not None
        update = {"next": self.holder, "next_until": now + self._reserve_for}
        if await self._write(n, known.state.model_copy(update=update), known.revision):
            self.stats.reservations += 1

    def _why(self) -> str:
        now = _now()
        holders = sorted(
            {
                k.state.holder
                for k in self._known
                if k is not None and k.state is not None and k.state.holder and k.state.held(now)
            }
        )
        if holders:
            reason = f"its {len(self._keys)} slots held by {', '.join(holders)}"
        else:
            reason = self._last_error or "its slots kept changing hands"
        return (
            f"no PIM call slot free within {self._max_wait:g}s ({reason}); Akeneo allows "
            f"{len(self._keys)} concurrent calls per connection, shared by its workers and "
            "reconcile job"
        )

    # -- holding and freeing ----------------------------------------------------------------

    def _renew_later(self, held: _Held) -> None:
        if held.active:
            self._spawn(self._renew(held))

    async def _renew(self, held: _Held) -> None:
        def longer(state: BudgetSlot | None) -> BudgetSlot | None:
            if state is None or state.ticket != held.ticket:
                return None
            return state.model_copy(update={"until": _now() + self._lease})

        if await self._update(held.slot, longer) is not None:
            self.stats.renewals += 1
        elif held.active:
            self.stats.lost += 1
            log.warning("PIM call slot %s could not be renewed: it may be taken over", held.slot)
        if held.active:
            loop = asyncio.get_running_loop()
            delay = self._lease.total_seconds() / 3
            held.renewal = loop.call_later(delay, self._renew_later, held)

    def _release(self, held: _Held) -> None:
        """Free the slot in the background, then let the next call of ours in: until the
        compare-and-set lands, the slot still counts as taken (never more than 4 in flight),
        and the next call takes another one."""
        held.active = False
        if held.renewal is not None:
            held.renewal.cancel()
        task = self._spawn(self._free(held))
        task.add_done_callback(lambda _: self._local.release())

    async def _free(self, held: _Held) -> None:
        lost = False

        def freed(state: BudgetSlot | None) -> BudgetSlot | None:
            nonlocal lost
            lost = state is None or state.ticket != held.ticket
            if lost or state is None:
                return None
            return state.model_copy(update={"holder": None, "ticket": None, "until": None})

        try:
            await self._update(held.slot, freed)
        except Exception as exc:  # the lease frees it later
            log.warning("PIM call slot %s not freed: %s", held.slot, type(exc).__name__)
        if lost:
            self.stats.lost += 1

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


class _Slot:
    """``async with budget.slot():`` one call in flight."""

    __slots__ = ("_budget", "_held")

    def __init__(self, budget: KvBudget) -> None:
        self._budget = budget
        self._held: _Held | None = None

    async def __aenter__(self) -> None:
        budget = self._budget
        await budget._local.acquire()
        try:
            self._held = await budget._take()
        except BaseException:
            budget._local.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held, self._held = self._held, None
        if held is None:
            self._budget._local.release()
        else:  # freed in the background: the call's answer is not held up by it
            self._budget._release(held)
