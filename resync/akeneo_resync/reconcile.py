"""The reconcile job: repair from the PIM's REST API what the events lost.

For each kind (products by uuid, product models by code) it pages ``updated > watermark -
safety margin`` with ``search_after`` and publishes every item into the connection's stream
as a synthetic ``NormalizedEvent`` whose message id depends only on (kind, key, updated), so a
rerun is de-duplicated by JetStream and the worker's ordering guard ignores what it applied.
The catalog structure listed in the resources (categories, families, attributes) is read the
same way, ``updated >`` from its own watermark with ``page`` pagination (``structure_scan``).
With ``full``, it also scans every identifier (small pages) and every structure item, and
publishes removals for what the guard knows but the PIM no longer has (confirmed by a
batched read before publishing): no ``updated`` filter shows a removal. Attribute options,
which take no filter, are read by the full scan only.

A catch-up run (``since``, from a recorded gap window) reads back at least to that time.

The watermark (``reconcile.watermark.<kind>``, the run's start time) and
``reconcile.last_run`` move only after the whole run succeeded, under the ``reconcile.lock``
lease, with compare-and-set writes, so a killed or overlapping run can never move it past
items it did not publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from akeneo_connector.guard_state import (
    LAST_RUN_KEY,
    LOCK_KEY,
    LastRun,
    ReconcileLock,
    Watermark,
    read_guard_entries,
    watermark_key,
)
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.rest import (
    PRODUCT_MODELS_PATH,
    PRODUCTS_UUID_PATH,
    AkeneoApiError,
    AkeneoRestClient,
    akeneo_date,
    search_param,
)
from akeneo_pim.structure import (
    ATTRIBUTE_OPTIONS,
    ATTRIBUTES_PATH,
    STRUCTURE,
    StructureResource,
)
from akeneo_resync.reconcile_events import (
    RECONCILE_AUTHOR,
    event_id,
    parse_updated,
    removal_event,
)
from akeneo_resync.structure_scan import StructureScan, StructureSummary

log = logging.getLogger(__name__)

PAGE_QUEUE = 3  # pages fetched ahead of publishing, per cursor


@dataclass(frozen=True)
class KindSpec:
    """How one resource kind is read from the REST API."""

    resource: str  # name in spec.reconciliation.resources
    kind: ResourceKind
    path: str
    key_field: str


KINDS: dict[str, KindSpec] = {
    "products": KindSpec("products", ResourceKind.PRODUCT, PRODUCTS_UUID_PATH, "uuid"),
    "product_models": KindSpec(
        "product_models", ResourceKind.PRODUCT_MODEL, PRODUCT_MODELS_PATH, "code"
    ),
}


class LockBusy(RuntimeError):
    """Another run holds ``reconcile.lock`` and its lease has not expired."""

    def __init__(self, holder: str, expires_at: datetime) -> None:
        super().__init__(
            f"another reconcile run ({holder}) holds the lock until {expires_at.isoformat()}"
        )
        self.holder = holder
        self.expires_at = expires_at


class LockLost(RuntimeError):
    """The lease could not be renewed: another run may have taken over; nothing is committed."""


@dataclass(frozen=True)
class ResyncSettings:
    names: ConnectionNames
    resources: tuple[str, ...] = ("products", "product_models")
    safety_margin: timedelta = timedelta(minutes=5)
    full: bool = False
    lock_ttl: timedelta = timedelta(minutes=10)
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    )
    # A catch-up (``--since``): read back at least to this time, further when the watermark
    # minus the margin is older; None: from the watermark (everything without one).
    since: datetime | None = None
    publish_timeout: float = 10.0
    partitions: int = 3  # product cursors side by side (+1 for product models: the 4-call cap)


@dataclass
class KindSummary:
    seen: int = 0
    published: int = 0  # stored by the stream
    duplicates: int = 0  # already in the stream (duplicate window): a rerun
    removals: int = 0
    scanned: int = 0  # identifiers seen by the full scan
    slices: int = 1  # cursors the updated range was split into
    since: datetime | None = None


@dataclass
class ResyncSummary:
    connection: str
    full: bool
    kinds: dict[str, KindSummary] = field(default_factory=dict)
    structure: dict[str, StructureSummary] = field(default_factory=dict)
    pages: int = 0
    calls: int = 0
    retries: int = 0
    throttled_429: int = 0
    max_in_flight: int = 0
    seconds: float = 0.0
    full_scan_only: list[str] = field(default_factory=list)  # listed, left to the full scan

    def _all(self) -> list[KindSummary | StructureSummary]:
        return [*self.kinds.values(), *self.structure.values()]

    @property
    def seen(self) -> int:
        return sum(k.seen for k in self._all())

    @property
    def published(self) -> int:
        return sum(k.published for k in self._all())

    @property
    def removals(self) -> int:
        return sum(k.removals for k in self._all())

    def line(self) -> str:
        parts = [
            f"reconcile {self.connection}{' (full)' if self.full else ''}:",
            f"seen={self.seen} published={self.published} removals={self.removals}",
            f"pages={self.pages} calls={self.calls} throttled_429={self.throttled_429}",
            f"retries={self.retries} seconds={self.seconds:.2f}",
        ]
        for name, k in self.kinds.items():
            parts.append(
                f"[{name}: seen={k.seen} published={k.published} duplicates={k.duplicates}"
                f" removals={k.removals}{f' scanned={k.scanned}' if self.full else ''}]"
            )
        parts += [f"[{name}: {k.line()}]" for name, k in self.structure.items()]
        if self.full_scan_only:
            parts.append(f"full-scan-only={','.join(self.full_scan_only)}")
        return " ".join(parts)


# -- pure helpers ---------------------------------------------------------------------------


def upsert_event(
    connection: str, spec: KindSpec, item: dict[str, Any], now: datetime
) -> NormalizedEvent:
    resource = {k: v for k, v in item.items() if k != "_links"}
    key = str(resource[spec.key_field])
    version = parse_updated(resource.get("updated"))
    return NormalizedEvent.model_validate(  # checked: key and resource are the PIM's
        {
            "connection": connection,
            "source": SourceFormat.RECONCILE,
            "event_id": event_id(spec.kind, key, version),
            "action": Action.UPSERT,
            "kind": spec.kind,
            "key": key,
            "version": version,
            "author": RECONCILE_AUTHOR,
            "resource": resource,
            "received_at": now,
        }
    )


def slice_bounds(sample: list[datetime], parts: int) -> list[datetime]:
    """Whole-second boundaries cutting a sample of ``updated`` values into ~equal parts."""
    if parts < 2 or len(sample) < 2 * parts:
        return []
    ordered = sorted(v.astimezone(UTC).replace(microsecond=0) for v in sample)
    bounds: list[datetime] = []
    for i in range(1, parts):
        bound = ordered[i * len(ordered) // parts]
        if not bounds or bound > bounds[-1]:
            bounds.append(bound)
    return bounds


def slice_params(since: datetime | None, bounds: list[datetime]) -> list[dict[str, str]]:
    """Filters whose union is ``updated > since``: (since, b1], (b1, b2], ..., (bn, now+).

    Akeneo compares whole seconds, so ``<= b`` is written ``< b + 1 s``. An item on a
    boundary may be read twice (harmless: same message id), never zero times.
    """
    params = []
    bounds = [b for b in bounds if since is None or b > since]  # a slice never reaches back
    for low, high in zip([since, *bounds], [*bounds, None], strict=True):
        conditions = []
        if low is not None:
            conditions.append({"operator": ">", "value": akeneo_date(low)})
        if high is not None:
            conditions.append({"operator": "<", "value": akeneo_date(high + timedelta(seconds=1))})
        params.append({"search": search_param({"updated": conditions})} if conditions else {})
    return params


def updated_params(since: datetime | None) -> dict[str, str]:
    if since is None:
        return {}
    return {"search": search_param({"updated": [{"operator": ">", "value": akeneo_date(since)}]})}


# -- the lock -------------------------------------------------------------------------------


class Lease:
    """``reconcile.lock`` held with compare-and-set and renewed in the background."""

    def __init__(self, kv: KeyValue, holder: str, ttl: timedelta) -> None:
        self._kv, self.holder, self.ttl = kv, holder, ttl
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        self.lost: BaseException | None = None

    def _value(self) -> bytes:
        return ReconcileLock(holder=self.holder, expires_at=datetime.now(UTC) + self.ttl).to_bytes()

    async def acquire(self) -> None:
        try:
            self._revision = await self._kv.create(LOCK_KEY, self._value())
        except KeyWrongLastSequenceError:
            entry = await self._kv.get(LOCK_KEY)
            current = ReconcileLock.model_validate_json(entry.value or b"{}")
            if current.expires_at > datetime.now(UTC):
                raise LockBusy(current.holder, current.expires_at) from None
            try:
                self._revision = await self._kv.update(LOCK_KEY, self._value(), last=entry.revision)
            except KeyWrongLastSequenceError:
                raise LockBusy(current.holder, current.expires_at) from None
            log.warning("took over an expired reconcile lock", extra={"previous": current.holder})
        self._task = asyncio.create_task(self._renew_forever())

    async def renew(self) -> None:
        try:
            self._revision = await self._kv.update(LOCK_KEY, self._value(), last=self._revision)
        except KeyWrongLastSequenceError:
            raise LockLost("the reconcile lock was taken over by another run") from None

    async def _renew_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.ttl.total_seconds() / 3)
                await self.renew()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.lost = exc

    async def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.lost is None and self._revision:
            with contextlib.suppress(Exception):
                await self._kv.delete(LOCK_KEY, last=self._revision)


# -- the run --------------------------------------------------------------------------------


async def _read_watermark(kv: KeyValue, kind: ResourceKind) -> tuple[Watermark | None, int]:
    try:
        entry = await kv.get(watermark_key(kind.value))
    except KeyNotFoundError:  # also raised for a deleted key
        return None, 0
    if not entry.value:
        return None, entry.revision or 0
    return Watermark.model_validate_json(entry.value), entry.revision or 0


async def _write_watermark(kv: KeyValue, kind: ResourceKind, mark: Watermark) -> None:
    """Monotonic compare-and-set: never move a watermark backwards, never lose a race."""
    key = watermark_key(kind.value)
    for _ in range(5):
        current, revision = await _read_watermark(kv, kind)
        if current is not None and current.updated_since >= mark.updated_since:
            return
        try:
            if revision:
                await kv.update(key, mark.to_bytes(), last=revision)
            else:
                await kv.create(key, mark.to_bytes())
            return
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"could not write {key}: concurrent writers")


async def _together(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run side by side; the first failure cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _pages_ahead(
    pages: AsyncIterator[list[dict[str, Any]]],
) -> AsyncIterator[list[dict[str, Any]]]:
    """Fetch the next pages while the current one is being published."""
    queue: asyncio.Queue[list[dict[str, Any]] | BaseException | None] = asyncio.Queue(PAGE_QUEUE)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await queue.put(exc)

    task = asyncio.create_task(produce())
    try:
        while True:
            page = await queue.get()
            if page is None:
                return
            if isinstance(page, BaseException):
                raise page
            yield page
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Publisher:
    def __init__(self, js: JetStreamContext, names: ConnectionNames, timeout: float) -> None:
        self._js, self._names, self._timeout = js, names, timeout

    async def publish(self, events: list[NormalizedEvent]) -> tuple[int, int]:
        """Publish a page's events at once, wait for every ack: (stored, duplicates)."""
        if not events:
            return 0, 0
        acks = await asyncio.wait_for(
            asyncio.gather(
                *(
                    self._js.publish(
                        self._names.event_subject(e.kind.value),
                        e.to_message(),
                        stream=self._names.stream,
                        headers={"Nats-Msg-Id": e.event_id},
                    )
                    for e in events
                )
            ),
            timeout=self._timeout,
        )
        duplicates = sum(1 for ack in acks if ack.duplicate)
        return len(acks) - duplicates, duplicates


class Resync:
    """One run: ``await Resync(...).run()`` returns the summary or raises."""

    def __init__(
        self,
        settings: ResyncSettings,
        client: AkeneoRestClient,
        js: JetStreamContext,
        kv: KeyValue,
        *,
        on_page: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.kv = kv
        self._js = js
        self._publisher = _Publisher(js, settings.names, settings.publish_timeout)
        self._on_page = on_page
        self.summary = ResyncSummary(connection=settings.names.ref, full=settings.full)
        self._identifier: str | None = None
        self._identifier_lock = asyncio.Lock()

    async def run(self) -> ResyncSummary:
        started_clock = time.monotonic()
        started = datetime.now(UTC)
        specs = [KINDS[r] for r in self.settings.resources if r in KINDS]
        listings = [STRUCTURE[r] for r in self.settings.resources if r in STRUCTURE]
        options = ATTRIBUTE_OPTIONS in self.settings.resources
        if options and not self.settings.full:
            self.summary.full_scan_only = [ATTRIBUTE_OPTIONS]
        lease = Lease(self.kv, self.settings.holder, self.settings.lock_ttl)
        await lease.acquire()
        try:
            tasks = [self._incremental(spec, started) for spec in specs]
            if self.settings.full:
                tasks += [self._full_scan(spec, started) for spec in specs]
                tasks += [self._structure_scan(listing, started) for listing in listings]
                if options:
                    tasks.append(self._options_scan(started))
            else:
                tasks += [self._structure_changes(listing, started) for listing in listings]
            await _together(tasks)
            if lease.lost is not None:
                raise LockLost(f"reconcile lock lost during the run: {lease.lost}")
            await lease.renew()  # proves we still hold it right before committing
            finished = datetime.now(UTC)
            mark = Watermark(updated_since=started, run_finished_at=finished)
            for kind in [*(spec.kind for spec in specs), *(item.kind for item in listings)]:
                await _write_watermark(self.kv, kind, mark)
            last = LastRun(finished_at=finished, full=self.settings.full, since=self.settings.since)
            await self.kv.put(LAST_RUN_KEY, last.to_bytes())
        finally:
            await lease.release()
            stats = self.client.stats
            s = self.summary
            s.pages, s.calls, s.retries = stats.pages, stats.calls, stats.retries
            s.throttled_429, s.max_in_flight = stats.throttled_429, stats.max_in_flight
            s.seconds = time.monotonic() - started_clock
        return self.summary

    async def _identifier_attribute(self) -> str | None:
        """The PIM's identifier attribute (``sku`` on most), to keep scan pages small."""
        async with self._identifier_lock:
            if self._identifier is None:
                search = search_param(
                    {"type": [{"operator": "IN", "value": ["pim_catalog_identifier"]}]}
                )
                try:
                    page = await self.client.get_json(
                        f"{ATTRIBUTES_PATH}?{urlencode({'search': search, 'limit': '10'})}"
                    )
                    items = page.get("_embedded", {}).get("items", [])
                    self._identifier = str(items[0]["code"]) if items else ""
                except (AkeneoApiError, AttributeError, KeyError, TypeError):
                    self._identifier = ""  # unknown: scan with full values (bigger pages)
            return self._identifier or None

    def _kind_summary(self, spec: KindSpec) -> KindSummary:
        return self.summary.kinds.setdefault(spec.resource, KindSummary())

    async def _incremental(self, spec: KindSpec, started: datetime) -> None:
        summary = self._kind_summary(spec)
        mark, _ = await _read_watermark(self.kv, spec.kind)
        since = None if mark is None else mark.updated_since - self.settings.safety_margin
        if since is not None and self.settings.since is not None:
            since = min(since, self.settings.since)  # a catch-up reads at least its window
        summary.since = since
        params = updated_params(since)
        parts = self.settings.partitions if spec.kind is ResourceKind.PRODUCT else 1
        if parts < 2:
            await self._read(spec, params, started)
            return
        # The first page is a random sample of ``updated`` (pages are sorted by uuid): when
        # there is more than one page, split the range into slices read side by side.
        query = {"pagination_type": "search_after", "limit": "100", **params}
        first = await self.client.get_json(f"{spec.path}?{urlencode(query)}")
        self.client.stats.pages += 1
        items = first.get("_embedded", {}).get("items", []) if isinstance(first, dict) else []
        has_next = isinstance(first, dict) and "next" in first.get("_links", {})
        bounds = slice_bounds([parse_updated(i.get("updated")) for i in items], parts)
        if not has_next or not bounds:
            if not has_next:
                await self._publish_page(spec, items, started)
                return
            await self._read(spec, params, started)
            return
        summary.slices = len(bounds) + 1
        await _together([self._read(spec, p, started) for p in slice_params(since, bounds)])

    async def _read(self, spec: KindSpec, params: dict[str, str], started: datetime) -> None:
        async for items in _pages_ahead(self.client.iter_pages(spec.path, params)):
            await self._publish_page(spec, items, started)

    async def _publish_page(
        self, spec: KindSpec, items: list[dict[str, Any]], started: datetime
    ) -> None:
        summary = self._kind_summary(spec)
        summary.seen += len(items)
        connection = self.settings.names.ref
        events = [upsert_event(connection, spec, item, started) for item in items]
        stored, duplicates = await self._publisher.publish(events)
        summary.published += stored
        summary.duplicates += duplicates
        if self._on_page is not None:
            await self._on_page(spec.resource, len(items))

    def _structure(self, started: datetime) -> StructureScan:
        return StructureScan(
            self.client,
            self._js,
            self.settings.names.guard_bucket,
            self._publisher.publish,
            connection=self.settings.names.ref,
            started=started,
        )

    async def _structure_scan(self, listing: StructureResource, started: datetime) -> None:
        summary = self.summary.structure.setdefault(listing.resource, StructureSummary())
        await self._structure(started).run(listing, summary)

    async def _options_scan(self, started: datetime) -> None:
        summary = self.summary.structure.setdefault(ATTRIBUTE_OPTIONS, StructureSummary())
        await self._structure(started).options(summary)

    async def _structure_changes(self, listing: StructureResource, started: datetime) -> None:
        """The items updated since the last run's start (less the safety margin)."""
        summary = self.summary.structure.setdefault(listing.resource, StructureSummary())
        mark, _ = await _read_watermark(self.kv, listing.kind)
        since = None if mark is None else mark.updated_since - self.settings.safety_margin
        await self._structure(started).changed(listing, since, summary)

    async def _full_scan(self, spec: KindSpec, started: datetime) -> None:
        summary = self._kind_summary(spec)
        # Snapshot the guard first: anything it holds existed before the scan started, so a
        # key missing from the scan was removed (creations during the scan are not in it).
        bucket = self.settings.names.guard_bucket
        entries = await read_guard_entries(self._js, bucket, spec.kind.value)
        known = {key: entry for key, entry in entries.items() if not entry.deleted}
        if not known:
            return  # nothing applied yet (a first sync): nothing can have been removed
        present: set[str] = set()
        attribute = await self._identifier_attribute()
        params = {"attributes": attribute} if attribute else {}
        async for items in _pages_ahead(self.client.iter_pages(spec.path, params)):
            summary.scanned += len(items)
            present.update(str(item[spec.key_field]) for item in items)
        missing = [key for key in known if key not in present]
        if not missing:
            return
        if spec.kind is ResourceKind.PRODUCT:
            still = await self.client.get_products_by_uuid(missing)
        else:
            still = await self.client.get_product_models_by_code(missing)
        alive = {str(item[spec.key_field]) for item in still}
        connection = self.settings.names.ref
        events = [
            removal_event(connection, spec.kind, key, known[key], started)
            for key in missing
            if key not in alive
        ]
        for i in range(0, len(events), 100):
            stored, duplicates = await self._publisher.publish(events[i : i + 100])
            summary.removals += stored + duplicates
