"""Reading the catalog structure: categories, families, attributes.

The periodic run reads what changed (``changed``): ``updated > watermark - margin`` (ISO
8601), which categories (6.0+), families and attributes (4.0+) accept
(https://api.akeneo.com/rest-api/filter.html); a PIM that refuses the filter (422) is read in
full instead. ``reconcile --full`` reads every item (``run``) and also finds removals, which
no ``updated`` filter can show. Either way a listing is read in pages of 100
(``iter_offset_pages``: ceil(n / 100) calls, side by side within the connection's call
budget) and every item is published as a synthetic upsert, versioned against the guard
(``reconcile_events.structure_version``) so an unchanged item changes nothing. The guard is
read before the listing: whatever it holds existed before the listing was read, so an item
read before a newer change was applied can never be versioned past that change.

The full scan reads again, by ``code IN`` (100 per call), the items the guard holds but the
listing lacks (offset pages may skip an item while another is removed) and publishes a
removal for the ones still absent, which leaves a tombstone in the guard.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext

from akeneo_connector.guard_state import GuardEntry, read_guard_entries
from akeneo_pim.normalized import NormalizedEvent
from akeneo_pim.rest import BATCH_SIZE, AkeneoApiError, AkeneoRestClient, search_param
from akeneo_pim.structure import StructureResource, updated_after
from akeneo_worker.reconcile_events import removal_event, structure_upsert

log = logging.getLogger(__name__)

Publish = Callable[[list[NormalizedEvent]], Awaitable[tuple[int, int]]]
"""Publishes events and waits for the acks: (stored, duplicates)."""


@dataclass
class StructureSummary:
    seen: int = 0
    published: int = 0  # stored by the stream
    duplicates: int = 0  # already in the stream (duplicate window)
    unchanged: int = 0  # same content as the guard's: published at its version, no sink write
    removals: int = 0
    calls: int = 0  # listing pages and ``code IN`` reads
    since: datetime | None = None  # incremental read: items updated after this
    unfiltered: bool = False  # the PIM refused the ``updated`` filter: read in full

    def line(self) -> str:
        return (
            f"seen={self.seen} published={self.published} duplicates={self.duplicates}"
            f" unchanged={self.unchanged} removals={self.removals} calls={self.calls}"
        )


class StructureScan:
    """One run's scan of the structure listings, all versioned against ``started``."""

    def __init__(
        self,
        client: AkeneoRestClient,
        js: JetStreamContext,
        bucket: str,
        publish: Publish,
        *,
        connection: str,
        started: datetime,
    ) -> None:
        self._client, self._publish = client, publish
        self._js, self._bucket = js, bucket
        self._connection, self._started = connection, started

    async def changed(
        self, listing: StructureResource, since: datetime | None, summary: StructureSummary
    ) -> None:
        """Publish the items updated after ``since`` (every item when None)."""
        known = await read_guard_entries(self._js, self._bucket, listing.kind.value)
        summary.since = since
        params = {"search": search_param(updated_after(since))} if since is not None else {}
        try:
            await self._read(listing, params, known, summary)
        except AkeneoApiError as exc:
            if exc.status != 422 or not params or summary.calls:
                raise
            # a PIM older than the filter (categories: before 6.0): read the whole listing
            log.warning("%s: the PIM refused the updated filter (%s); read in full",
                        listing.resource, exc.message)  # fmt: skip
            summary.unfiltered = True
            await self._read(listing, {}, known, summary)

    async def run(self, listing: StructureResource, summary: StructureSummary) -> None:
        """Publish every item, and a removal for each item of the guard the PIM lacks."""
        # The guard first: whatever it holds existed before the listing was read.
        known = await read_guard_entries(self._js, self._bucket, listing.kind.value)
        present = await self._read(listing, {}, known, summary)
        missing = [c for c, entry in known.items() if not entry.deleted and c not in present]
        if not missing:
            return
        still = await self._client.get_by_codes(listing.path, missing)
        summary.calls += -(-len(missing) // BATCH_SIZE)
        await self._upserts(listing, still, known, summary)  # skipped by a shifted page
        alive = {_code(item, listing) for item in still}
        removals = [
            removal_event(self._connection, listing.kind, code, known[code], self._started)
            for code in missing
            if code not in alive
        ]
        for i in range(0, len(removals), BATCH_SIZE):
            stored, duplicates = await self._publish(removals[i : i + BATCH_SIZE])
            summary.removals += stored + duplicates

    async def _read(
        self,
        listing: StructureResource,
        params: dict[str, str],
        known: dict[str, GuardEntry],
        summary: StructureSummary,
    ) -> set[str]:
        """Publish the listing's items, page by page; their codes."""
        present: set[str] = set()
        pages: AsyncGenerator[list[dict[str, Any]], None] = self._client.iter_offset_pages(
            listing.path, params
        )
        async with contextlib.aclosing(pages):  # closed at once on failure: none in flight
            async for items in pages:
                summary.calls += 1
                page = []
                for item in items:  # an offset page can repeat an item of the page before
                    code = _code(item, listing)
                    if code not in present:
                        present.add(code)
                        page.append(item)
                await self._upserts(listing, page, known, summary)
        return present

    async def _upserts(
        self,
        listing: StructureResource,
        items: list[dict[str, Any]],
        known: dict[str, GuardEntry],
        summary: StructureSummary,
    ) -> None:
        events = []
        for item in items:
            stored = known.get(_code(item, listing))
            event = structure_upsert(self._connection, listing.kind, item, stored, self._started)
            if stored is not None and not stored.deleted and event.version == stored.version:
                summary.unchanged += 1
            events.append(event)
        stored_count, duplicates = await self._publish(events)
        summary.seen += len(events)
        summary.published += stored_count
        summary.duplicates += duplicates


def _code(item: dict[str, Any], listing: StructureResource) -> str:
    code = item.get("code")
    if not isinstance(code, str) or not code:
        raise AkeneoApiError(
            200, f"a listed item has no code: {str(item)[:120]}", path=listing.path
        )
    return code
