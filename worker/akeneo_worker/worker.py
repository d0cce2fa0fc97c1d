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

from akeneo_connector import dead_letters as dl
from akeneo_connector.changes import Change, resource_updated
from akeneo_connector.guard_state import GUARD_RESET_HEADER, GuardEntry, WorkerStats, stats_key
from akeneo_connector.kv_pipeline import PipelinedKV
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import NormalizedEvent, ResourceKind
from akeneo_connector.records import RecordError
from akeneo_connector.stopping import bounded
from akeneo_connector.trim import trim_applied
from akeneo_worker.consumer import consumer_config, ensure_consumer
from akeneo_worker.guard import GuardStore, Superseded, Verdict, decide, decide_change
from akeneo_worker.hydration import Hydrator
from akeneo_worker.metrics import WorkerMetrics
from akeneo_worker.sinks.base import Sink, SinkError
from akeneo_worker.turns import Turns

log = logging.getLogger("akeneo_worker")

CLAIM_ATTEMPTS = 8  # about 1 s of waiting for another replica's claim before a retry
# a guard write the KV cannot take yet (a new leader being elected: 4 to 9 s) is retried
RECORD_RETRY_FOR = 30.0
RECORD_RETRY_WAIT = 0.25
STOP_STEP = 0.1  # each clean-up step of a stop (final stats, unsubscribe, ...) at most


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
    batches_in_flight: int = 2
    # a stop waits this long for the batches in flight (sink, guard, acks), then cuts them
    # short: their unacked messages come back after ack wait, nothing acked is undone
    stop_grace: float = 0.6

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
    recorded: bool = False  # the guard holds this change (or a newer one): claim released
    finished: bool = False  # acked, handed back or dead-lettered
    after: asyncio.Future[None] | None = None  # turn of the previous batch on this resource
    turn: asyncio.Future[None] | None = None


def _groups(deliveries: Sequence[_Delivery]) -> list[_Group]:
    """One group per resource; never two changes of one resource in flight at once."""
    by_key: dict[tuple[str, str], list[_Delivery]] = {}
    for d in deliveries:
        by_key.setdefault((d.event.kind.value, d.event.key), []).append(d)
    groups = []
    for (kind, key), members in by_key.items():
        winner = members[0] if len(members) == 1 else max(members, key=_rank)
        groups.append(_Group(kind, key, members, winner, Change.from_event(winner.event)))
    return groups


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
        self._turns = Turns()
        self._resets_seen: set[str] = set()  # runs of ``replay --reset-guard`` met so far
        self._reset_pending = False
        self._sink_slots = asyncio.Semaphore(max(1, sink.max_concurrency))  # across batches

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the current batch is finished first."""
        await self.sink.open()
        try:
            self._kv = await self.js.key_value(self.names.guard_bucket)
            pipelined = PipelinedKV(_client(self.js), self.names.guard_bucket)
            self._guard = GuardStore(pipelined)
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
            finally:  # every step bounded: the server may be gone or silent
                self.ready = False
                stats_task.cancel()
                await bounded(stats_task, STOP_STEP, "stats task")
                await bounded(self.publish_stats(), STOP_STEP, "final stats")
                await bounded(sub.unsubscribe(), STOP_STEP, "unsubscribe")
                await bounded(pipelined.close(), STOP_STEP, "guard inbox close")
        finally:
            await bounded(self.sink.close(), STOP_STEP, "sink close")

    async def _loop(self, sub: Any, stop: asyncio.Event) -> None:
        """Fetch the next batch while up to ``batches_in_flight`` batches are processed.

        One batch waits on a KV round trip or the sink while another computes; a resource
        present in both is handled by the older batch first (``Turns``).
        """
        me = asyncio.current_task()
        upcoming = asyncio.create_task(self._next_batch(sub, stop))
        stopped = asyncio.create_task(stop.wait())
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError
                # a stop does not wait for the fetch (up to fetch_timeout, or a silent server)
                await asyncio.wait({upcoming, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    break  # handed back below
                deliveries = upcoming.result()
                if self._reset_pending:  # the bucket was emptied: no batch may use the cache
                    self._reset_pending = False
                    if running:
                        await asyncio.wait(running)
                        running = set()
                    assert self._guard is not None
                    self._guard.forget()
                    log.info("guard reset by a re-delivery: cached guard entries dropped")
                upcoming = asyncio.create_task(self._next_batch(sub, stop))
                groups = _groups(deliveries)
                for g in groups:
                    g.after, g.turn = self._turns.take((g.kind, g.key))
                running.add(asyncio.create_task(self._run_batch(groups)))
                if len(running) >= max(1, self.config.batches_in_flight):
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise
        finally:
            stopped.cancel()
            if not upcoming.done():
                upcoming.cancel()
            if running:  # a stop finishes the batches started, within its grace
                _, late = await asyncio.wait(running, timeout=self.config.stop_grace)
                if late:  # a sink or a NATS server that does not answer
                    log.warning("stopping: %d batch(es) cut short; their unacked messages "
                                "will be redelivered", len(late))  # fmt: skip
                    for task in late:
                        task.cancel()
                    await asyncio.wait(late, timeout=STOP_STEP)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                # a batch fetched but not processed: hand it back at once
                await asyncio.gather(*(_nak(d.msg, 0) for d in await upcoming))

    async def _run_batch(self, groups: list[_Group]) -> None:
        """Process the groups whose turn it is now, the others once their turn comes."""
        now = [g for g in groups if g.after is None]
        later = [g for g in groups if g.after is not None]

        async def when_their_turn() -> None:
            await asyncio.wait([g.after for g in later if g.after is not None])
            await self.process(later)

        try:  # both parts run to their end before any turn is given back
            outcomes = await asyncio.gather(
                self.process(now), when_their_turn() if later else _nothing(),
                return_exceptions=True,
            )  # fmt: skip
            for outcome in outcomes:
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BaseException):  # e.g. the connection dropped
                    log.error("batch failed (%s); its unacked messages will be redelivered",
                              type(outcome).__name__, exc_info=outcome)  # fmt: skip
        finally:
            for g in groups:
                if g.turn is not None:
                    self._turns.give_back((g.kind, g.key), g.turn)

    async def _next_batch(self, sub: Any, stop: asyncio.Event) -> list[_Delivery]:
        """The next non-empty batch, decoded (malformed and own messages already handled)."""
        failures = 0
        me = asyncio.current_task()
        while not stop.is_set():
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
            if msgs:
                self.metrics.lag.set(int(msgs[-1].metadata.num_pending))
            deliveries = await self._decode(msgs)
            if deliveries:
                return deliveries
        return []

    async def _decode(self, msgs: Sequence[Any]) -> list[_Delivery]:
        deliveries: list[_Delivery] = []
        own = self.config.own_client_id
        for msg in msgs:
            reset = msg.headers.get(GUARD_RESET_HEADER) if msg.headers else None
            if reset is not None and reset not in self._resets_seen:
                self._resets_seen.add(reset)
                self._reset_pending = True
            try:
                event = NormalizedEvent.from_message(msg.data)
            except ValueError as exc:  # RecordError, or not JSON
                reason = f"malformed message: {_validation_summary(exc)}"
                await self._dead_letter(msg, None, dl.CAUSE_MALFORMED, reason)
                continue
            if own is not None and event.author == own:
                await _ack(msg)
                self.metrics.count_skipped("own_author")
                continue
            deliveries.append(_Delivery(msg, event))
        return deliveries

    # -- one batch ---------------------------------------------------------------------

    async def process(self, groups: list[_Group]) -> None:
        """Guard, hydrate, apply and acknowledge the groups of one batch.

        Per chunk of the sink, the guard writes go out together as soon as the sink
        confirmed, and the acks right after them: the window in which a crash makes a
        re-delivery re-apply the same change is one KV round trip.
        """
        assert self._guard is not None
        guard = self._guard
        if not groups:
            return
        failed = await guard.load([(g.kind, g.key) for g in groups])
        for group in groups:
            error = failed.get((group.kind, group.key))
            if error is not None:
                name = type(error).__name__
                group.error = SinkError(f"guard read failed: {name}", retryable=True)
            else:
                group.stored = guard.peek(group.kind, group.key)
                self._judge(group)
        candidates = [g for g in groups if g.error is None and g.skip is None]
        claims = not self.sink.self_guarding
        chosen = await self._claim(candidates) if claims else candidates
        try:
            await self._hydrate(
                [g for g in chosen if g.hydrate and g.error is None and g.skip is None]
            )
            await self._apply([g for g in chosen if g.error is None and g.skip is None])
        finally:
            unrecorded = [g for g in chosen if not g.recorded]
            if claims and unrecorded:
                with contextlib.suppress(Exception):
                    await guard.release_many([(g.kind, g.key) for g in unrecorded], self._holder)
        for group in groups:  # in one task: acks are cheap publishes
            if not group.finished:
                await self._finish(group)

    async def _claim(self, groups: list[_Group]) -> list[_Group]:
        """Claim each resource about to be applied, and judge it again on the live entry.

        Without the claim two replicas could both judge a change newer than the stored one
        and send two versions of one resource to the sink at once, the older landing last
        (or an update landing after a removal, resurrecting a row the sink can no longer
        compare against). Claims of a batch go out together, one round trip. A
        self-guarding sink (the SQL ones) refuses those itself: no claim is taken, and the
        guard write after the sink keeps the newer entry on a conflict (``record_many``).
        """
        assert self._guard is not None
        guard = self._guard
        ttl = timedelta(seconds=self.config.ack_wait)
        claimed: list[_Group] = []
        pending = groups
        for attempt in range(CLAIM_ATTEMPTS):
            if not pending:
                break
            if attempt:  # the other replica holds it for one sink call: usually milliseconds
                await asyncio.sleep(min(0.01 * 2**attempt, 0.25))
            results = await guard.claim_many(
                [(g.kind, g.key) for g in pending], self._holder, ttl, datetime.now(UTC)
            )
            busy = []
            for group in pending:
                result = results[(group.kind, group.key)]
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
        for group in pending:
            group.error = SinkError("resource busy on another replica", retryable=True)
        return claimed

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
        hydrator = self.hydrator
        assert hydrator is not None
        batches = {k: [g for g in groups if g.kind == k.value] for k in ResourceKind}
        batches = {k: b for k, b in batches.items() if b}

        async def fetch(kind: ResourceKind, batch: list[_Group]) -> dict[str, dict[str, Any]]:
            return await hydrator.fetch(kind, [g.key for g in batch])

        # kinds side by side: the REST client keeps the calls within the connection's budget
        results = await asyncio.gather(
            *(fetch(k, b) for k, b in batches.items()), return_exceptions=True
        )
        for batch, found in zip(batches.values(), results, strict=True):
            if isinstance(found, BaseException):
                if not isinstance(found, Exception):
                    raise found  # a cancellation
                for g in batch:
                    g.error = SinkError(f"hydration failed: {type(found).__name__}", retryable=True)
                continue
            self._hydrated(batch, found)

    def _hydrated(self, batch: list[_Group], found: dict[str, dict[str, Any]]) -> None:
        """Judge each group again on the resource read; a resource gone is skipped.

        The version is the resource's own ``updated`` when its representation has one
        (products, product models, categories), else the event's time (families,
        attributes, attribute options): never older than the change the event announced.
        """
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
        """Sink chunks (concurrently, as the sink allows); each confirmed chunk is recorded
        in the guard and acknowledged at once."""
        if not groups:
            return
        size = max(1, self.sink.max_batch)
        chunks = [groups[i : i + size] for i in range(0, len(groups), size)]
        slots = self._sink_slots

        async def one(chunk: list[_Group]) -> None:
            async with slots:
                error = await self._sink_apply(chunk)
                if error is not None and not error.retryable and len(chunk) > 1:
                    for g in chunk:  # find which change the sink refuses
                        g.error = await self._sink_apply([g])
                elif error is not None:
                    for g in chunk:
                        g.error = error
            await self._record([g for g in chunk if g.error is None])

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

    async def _record(self, groups: list[_Group]) -> None:
        """Guard writes of sink-confirmed changes, all in flight at once; then their acks."""
        if not groups:
            return
        outcomes = await self._record_until_stored([g.change for g in groups])
        now = datetime.now(UTC)
        for g, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, Superseded):
                g.skip = "outdated"  # another replica stored a newer version meanwhile
                g.recorded = True
            elif outcome is not None:
                name = type(outcome).__name__
                g.error = SinkError(f"guard write failed: {name}", retryable=True)
                continue
            else:
                g.recorded = True
                latency = (now - g.winner.msg.metadata.timestamp).total_seconds()
                self.metrics.count_applied(g.kind, g.change.operation, max(0.0, latency))
            await self._finish(g)

    async def _record_until_stored(self, changes: list[Change]) -> list[BaseException | None]:
        """``record_many``, retried while the KV cannot take the writes (its leader died and
        another is being elected: a few seconds). The sink already has these changes; were
        the entries given up on, an older change of the same resource later in the stream
        would be judged against the previous entry and applied over the newer one. Retrying
        is safe: an entry already stored is kept, a newer one wins."""
        assert self._guard is not None
        guard = self._guard

        async def attempt(batch: list[Change]) -> list[BaseException | None]:
            try:
                return await guard.record_many(batch)
            except Exception as exc:
                return [exc] * len(batch)

        outcomes = await attempt(changes)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_RETRY_FOR
        while loop.time() < deadline:
            failed = [i for i, o in enumerate(outcomes) if o is not None
                      and not isinstance(o, Superseded)]  # fmt: skip
            if not failed:
                break
            await asyncio.sleep(RECORD_RETRY_WAIT)
            for i, outcome in zip(failed, await attempt([changes[i] for i in failed]),
                                  strict=True):  # fmt: skip
                outcomes[i] = outcome
        return outcomes

    async def _finish(self, g: _Group) -> None:
        """Ack, retry or dead-letter every delivery of the group."""
        g.finished = True
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
            await self.trim()

    async def trim(self) -> None:
        """Make room in a stream near its quota: applied events go before new ones are
        refused (``akeneo_connector.trim``)."""
        try:
            purged = await trim_applied(self.js, self.names)
        except Exception as exc:
            log.warning("trim of applied events failed: %s", type(exc).__name__)
            return
        if purged:
            log.info("stream near its quota: %d applied events purged", purged)


async def _nothing() -> None:
    return None


def _client(js: JetStreamContext) -> Any:
    """The NATS connection under a JetStream context (nats-py keeps no public handle)."""
    return js._nc


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
    if isinstance(exc, RecordError):  # field names and the rule broken: never a value
        return str(exc)
    return type(exc).__name__
