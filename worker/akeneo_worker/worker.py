"""The worker loop: fetch a batch, guard ordering, hydrate, apply to the sink, record, ack.

Per batch, the messages are grouped by resource; each resource's newest event is the only
candidate, so two changes of one resource are never in flight at once, while different
resources go to the sink together. The order of effects for one resource is fixed: sink
confirmed -> guard entry written (CAS) -> JetStream ack. A crash between two steps leads to a
re-delivery that re-applies at most the same change, which every sink absorbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from akeneo_connector.guard_state import GuardEntry, WorkerStats, stats_key
from akeneo_connector.names import ConnectionNames
from akeneo_pim.normalized import NormalizedEvent, ResourceKind
from akeneo_worker import dead_letters as dl
from akeneo_worker.changes import Change, resource_updated
from akeneo_worker.consumer import consumer_config, ensure_consumer
from akeneo_worker.guard import GuardStore, Superseded, Verdict, decide, decide_change
from akeneo_worker.hydration import Hydrator
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.sinks.base import Sink, SinkError

log = logging.getLogger("akeneo_worker")

CLAIM_ATTEMPTS = 8  # about 1 s of waiting for another replica's claim before a retry


@dataclass(frozen=True)
class WorkerConfig:
    max_deliver: int = 10
    ack_wait: float = 30.0
    batch_size: int = 500
    fetch_timeout: float = 1.0
    retry_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    own_client_id: str | None = None
    replica: str = field(default_factory=socket.gethostname)
    stats_interval: float = 15.0

    def retry_delay(self, deliveries: int) -> float:
        return self.retry_delays[min(deliveries, len(self.retry_delays)) - 1]


@dataclass
class _Delivery:
    msg: Any
    event: NormalizedEvent

    @property
    def deliveries(self) -> int:
        return int(self.msg.metadata.num_delivered)


@dataclass
class _Group:
    """All deliveries of one resource in a batch; only the newest is a candidate."""

    kind: str
    key: str
    deliveries: list[_Delivery]
    winner: _Delivery
    change: Change
    stored: GuardEntry | None = None
    hydrate: bool = False  # fetch the resource (ids-only event, or a tie to re-read)
    tie: bool = False
    skip: str | None = None  # reason when acked without applying
    error: SinkError | None = None
    cause: str = dl.CAUSE_REJECTED


def _rank(d: _Delivery) -> tuple[datetime, bool, int]:
    # Newest version first; a removal wins at equal versions; then the later message.
    return (d.event.version, d.event.action.value == "delete", int(d.msg.metadata.sequence.stream))


class Worker:
    def __init__(
        self,
        js: JetStreamContext,
        names: ConnectionNames,
        sink: Sink,
        config: WorkerConfig | None = None,
        *,
        hydrator: Hydrator | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.js = js
        self.names = names
        self.sink = sink
        self.config = config or WorkerConfig()
        self.hydrator = hydrator
        self.metrics = metrics or WorkerMetrics()
        self.ready = False
        self._guard: GuardStore | None = None
        self._kv: Any = None
        self._stats_base = WorkerStats(updated_at=datetime.now(UTC))
        self._holder = f"{self.config.replica}/{uuid.uuid4().hex[:12]}"  # unique per process

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the current batch is finished first."""
        await self.sink.open()
        try:
            self._kv = await self.js.key_value(self.names.guard_bucket)
            self._guard = GuardStore(self._kv)
            await self._load_stats()
            cfg = consumer_config(
                self.names,
                max_deliver=self.config.max_deliver,
                ack_wait=self.config.ack_wait,
                max_ack_pending=max(1000, self.config.batch_size * 4),
            )
            sub = await ensure_consumer(self.js, self.names, cfg)
            stats_task = asyncio.create_task(self._publish_stats_periodically(stop))
            self.ready = True
            try:
                await self._loop(sub, stop)
            finally:
                self.ready = False
                stats_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stats_task
                with contextlib.suppress(Exception):
                    await self.publish_stats()
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        finally:
            await self.sink.close()

    async def _loop(self, sub: Any, stop: asyncio.Event) -> None:
        failures = 0
        me = asyncio.current_task()
        while not stop.is_set():
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            try:
                msgs = await sub.fetch(self.config.batch_size, timeout=self.config.fetch_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # nats-py's fetch may turn a cancellation into a timeout: honour it anyway.
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from exc
                if isinstance(exc, NatsTimeoutError | TimeoutError):
                    continue
                # disconnected, consumer gone, ...: back off and retry
                failures += 1
                log.warning("fetch failed: %s", type(exc).__name__)
                self.ready = False
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            failures = 0
            self.ready = True
            try:
                await self.process(msgs)
            except Exception:  # e.g. the connection dropped mid-batch: unacked ones come back
                log.exception("batch failed; its unacked messages will be redelivered")

    # -- one batch ---------------------------------------------------------------------

    async def process(self, msgs: Sequence[Any]) -> None:
        assert self._guard is not None
        if msgs:
            self.metrics.lag.set(int(msgs[-1].metadata.num_pending))
        groups = await self._groups(msgs)
        if not groups:
            return
        guard = self._guard
        misses = [g for g in groups if not guard.cached(g.kind, g.key)]
        stored = await asyncio.gather(
            *(guard.get(g.kind, g.key) for g in misses), return_exceptions=True
        )
        failed = {
            id(g): entry for g, entry in zip(misses, stored, strict=True)
            if isinstance(entry, BaseException)
        }  # fmt: skip
        for group in groups:
            if id(group) in failed:
                name = type(failed[id(group)]).__name__
                group.error = SinkError(f"guard read failed: {name}", retryable=True)
            else:
                group.stored = guard.peek(group.kind, group.key)
                self._judge(group)
        claimed = await self._claim([g for g in groups if g.error is None and g.skip is None])
        try:
            await self._hydrate(
                [g for g in claimed if g.hydrate and g.error is None and g.skip is None]
            )
            todo = [g for g in claimed if g.error is None and g.skip is None]
            await self._apply(todo)
            await asyncio.gather(*(self._record(g) for g in todo if g.error is None))
        finally:
            unrecorded = [g for g in claimed if g.error is not None or g.skip is not None]
            await asyncio.gather(
                *(guard.release(g.kind, g.key, self._holder) for g in unrecorded),
                return_exceptions=True,
            )
        for group in groups:  # in one task: acks are cheap publishes
            await self._finish(group)

    async def _claim(self, groups: list[_Group]) -> list[_Group]:
        """Claim each resource about to be applied, and judge it again on the live entry.

        Without the claim two replicas could both judge a change newer than the stored one
        and send two versions of one resource to the sink at once, the older landing last.
        """
        assert self._guard is not None
        guard = self._guard
        ttl = timedelta(seconds=self.config.ack_wait)
        claimed: list[_Group] = []
        pending = groups
        for attempt in range(CLAIM_ATTEMPTS):
            if attempt:  # the other replica holds it for one sink call: usually milliseconds
                await asyncio.sleep(min(0.01 * 2**attempt, 0.25))
            now = datetime.now(UTC)
            results = await asyncio.gather(
                *(guard.claim(g.kind, g.key, self._holder, ttl, now) for g in pending),
                return_exceptions=True,
            )
            busy = []
            for group, result in zip(pending, results, strict=True):
                if isinstance(result, BaseException):
                    name = type(result).__name__
                    group.error = SinkError(f"guard claim failed: {name}", retryable=True)
                    continue
                won, stored = result
                if not won:
                    busy.append(group)
                    continue
                claimed.append(group)
                if stored != group.stored:  # another replica applied something meanwhile
                    group.stored, group.hydrate, group.tie = stored, False, False
                    self._judge(group)
            pending = busy
            if not pending:
                break
        for group in pending:
            group.error = SinkError("resource busy on another replica", retryable=True)
        return claimed

    async def _groups(self, msgs: Sequence[Any]) -> list[_Group]:
        by_key: dict[tuple[str, str], list[_Delivery]] = {}
        for msg in msgs:
            try:
                event = NormalizedEvent.from_message(msg.data)
            except (ValidationError, ValueError) as exc:
                reason = f"malformed message: {_validation_summary(exc)}"
                await self._dead_letter(msg, None, dl.CAUSE_MALFORMED, reason)
                continue
            own = self.config.own_client_id
            if own is not None and event.author == own:
                await _ack(msg)
                self.metrics.count_skipped("own_author")
                continue
            by_key.setdefault((event.kind.value, event.key), []).append(_Delivery(msg, event))
        groups = []
        for (kind, key), deliveries in by_key.items():
            winner = max(deliveries, key=_rank)
            change = Change.from_event(winner.event)
            groups.append(_Group(kind, key, deliveries, winner, change))
        return groups

    def _judge(self, g: _Group) -> None:
        """Decide from the guard entry: skip, apply, or fetch the resource first."""
        event = g.winner.event
        if event.needs_hydration:
            verdict = decide(g.stored, event.version, deleted=False, digest=None)
            if verdict is Verdict.OUTDATED:
                g.skip = "outdated"
            elif self.hydrator is None:
                g.error = SinkError(
                    "event has no resource and no PIM API is configured", retryable=False
                )
                g.cause = dl.CAUSE_NO_HYDRATOR
            else:
                g.hydrate = True
            return
        verdict = decide_change(g.stored, g.change)
        if verdict in (Verdict.OUTDATED, Verdict.DUPLICATE):
            g.skip = verdict.value
        elif verdict is Verdict.TIE:
            g.tie = True
            if self.hydrator is not None:
                g.hydrate = True
            else:
                self.metrics.ties.labels("applied").inc()

    async def _hydrate(self, groups: list[_Group]) -> None:
        if not groups:
            return
        assert self.hydrator is not None
        for kind in ResourceKind:
            batch = [g for g in groups if g.kind == kind.value]
            if not batch:
                continue
            try:
                found = await self.hydrator.fetch(kind, [g.key for g in batch])
            except Exception as exc:
                for g in batch:
                    g.error = SinkError(f"hydration failed: {type(exc).__name__}", retryable=True)
                continue
            for g in batch:
                resource = found.get(g.key)
                if resource is None:
                    if g.tie:  # cannot re-read: apply the event's own content
                        self.metrics.ties.labels("applied").inc()
                    else:
                        g.skip = "not_found"
                    continue
                version = resource_updated(resource) or g.winner.event.version
                g.change = Change.from_event(g.winner.event, resource=resource, version=version)
                verdict = decide_change(g.stored, g.change)
                if verdict in (Verdict.OUTDATED, Verdict.DUPLICATE):
                    g.skip = verdict.value
                elif verdict is Verdict.TIE or g.tie:
                    self.metrics.ties.labels("reread").inc()

    async def _apply(self, groups: list[_Group]) -> None:
        if not groups:
            return
        size = max(1, self.sink.max_batch)
        chunks = [groups[i : i + size] for i in range(0, len(groups), size)]
        slots = asyncio.Semaphore(max(1, self.sink.max_concurrency))

        async def one(chunk: list[_Group]) -> None:
            async with slots:
                error = await self._sink_apply(chunk)
                if error is None:
                    return
                if error.retryable or len(chunk) == 1:
                    for g in chunk:
                        g.error = error
                    return
                for g in chunk:  # find which change the sink refuses
                    g.error = await self._sink_apply([g])

        await asyncio.gather(*(one(c) for c in chunks))

    async def _sink_apply(self, chunk: list[_Group]) -> SinkError | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self.sink.apply([g.change for g in chunk])
        except SinkError as exc:
            return exc
        except Exception as exc:  # a sink bug must not kill the worker: retry, then dead-letter
            return SinkError(f"{self.sink.name} sink failed: {type(exc).__name__}", retryable=True)
        finally:
            self.metrics.sink_latency.observe(loop.time() - started)
        return None

    async def _record(self, g: _Group) -> None:
        assert self._guard is not None
        try:
            await self._guard.record(g.change)
        except Superseded:
            g.skip = "outdated"  # another replica stored a newer version meanwhile
            return
        except Exception as exc:
            g.error = SinkError(f"guard write failed: {type(exc).__name__}", retryable=True)
            return
        now = datetime.now(UTC)
        latency = (now - g.winner.msg.metadata.timestamp).total_seconds()
        self.metrics.count_applied(g.kind, g.change.operation, max(0.0, latency))

    async def _finish(self, g: _Group) -> None:
        """Ack, retry or dead-letter every delivery of the group."""
        if g.error is not None:
            for d in g.deliveries:
                await self._fail(d, g)
            return
        for d in g.deliveries:
            if d is g.winner:
                if g.skip is not None:
                    self.metrics.count_skipped(g.skip)
            else:
                same = d.event.version == g.winner.event.version and (
                    d.event.resource == g.winner.event.resource
                )
                self.metrics.count_skipped("duplicate" if same else "outdated")
            await _ack(d.msg)

    async def _fail(self, d: _Delivery, g: _Group) -> None:
        assert g.error is not None
        if not g.error.retryable:
            await self._dead_letter(d.msg, g, g.cause, str(g.error))
        elif d.deliveries >= self.config.max_deliver:
            await self._dead_letter(d.msg, g, dl.CAUSE_EXHAUSTED, str(g.error))
        else:
            self.metrics.retried.inc()
            await _nak(d.msg, self.config.retry_delay(d.deliveries))

    async def _dead_letter(self, msg: Any, g: _Group | None, cause: str, reason: str) -> None:
        meta = msg.metadata
        headers = dl.dead_letter_headers(
            reason=reason,
            cause=cause,
            subject=msg.subject,
            sequence=int(meta.sequence.stream),
            deliveries=int(meta.num_delivered),
            resource=(g.kind, g.key) if g is not None else None,
        )
        try:
            await self.js.publish(self.names.dead_letter_subject, msg.data, headers=headers)
        except Exception as exc:
            log.warning("dead-letter publish failed: %s", type(exc).__name__)
            await _nak(msg, self.config.retry_delay(int(meta.num_delivered)))
            return
        await _ack(msg)
        self.metrics.count_dead_letter(cause)
        log.warning(
            "dead-lettered stream sequence %s (%s): %s", meta.sequence.stream, cause, reason
        )

    # -- stats for the operator --------------------------------------------------------

    async def _load_stats(self) -> None:
        try:
            entry = await self._kv.get(stats_key(self.config.replica))
        except NotFoundError:
            return
        if entry.value:
            self._stats_base = WorkerStats.model_validate_json(entry.value)

    def stats(self) -> WorkerStats:
        c, b = self.metrics.counts, self._stats_base
        return WorkerStats(
            applied=b.applied + c["applied"],
            skipped_outdated=b.skipped_outdated + c["outdated"],
            skipped_duplicate=b.skipped_duplicate + c["duplicate"],
            dead_lettered=b.dead_lettered + c["dead_lettered"],
            updated_at=datetime.now(UTC),
        )

    async def publish_stats(self) -> None:
        await self._kv.put(stats_key(self.config.replica), self.stats().to_bytes())

    async def _publish_stats_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.stats_interval)
            try:
                await self.publish_stats()
            except Exception as exc:
                log.warning("stats publish failed: %s", type(exc).__name__)


async def _ack(msg: Any) -> None:
    """Ack; a lost ack only means a re-delivery, which the guard absorbs."""
    try:
        await msg.ack()
    except Exception as exc:
        log.warning("ack failed: %s", type(exc).__name__)


async def _nak(msg: Any, delay: float) -> None:
    try:
        await msg.nak(delay=delay)
    except Exception as exc:  # the message comes back after ack wait anyway
        log.warning("nak failed: %s", type(exc).__name__)


def _validation_summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:3]
        ]
        return "; ".join(parts)
    return type(exc).__name__
