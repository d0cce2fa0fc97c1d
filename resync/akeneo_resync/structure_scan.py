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

Attribute options take no filter at all (https://api.akeneo.com/api-reference.html#Attributeoption):
the full scan only reads them (``options``), the options of every select attribute
(``type IN [simpleselect, multiselect]``), keyed ``<attribute>/<code>``; a missing one is read
again with one GET before its removal is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from nats.js import JetStreamContext

from akeneo_connector.event_types import attribute_option_key
from akeneo_connector.guard_state import GuardEntry, read_guard_entries
from akeneo_connector.normalized import NormalizedEvent, ResourceKind
from akeneo_pim.rest import BATCH_SIZE, AkeneoApiError, AkeneoRestClient, search_param
from akeneo_pim.structure import (
    ATTRIBUTE_OPTIONS,
    SELECT_TYPES,
    STRUCTURE,
    StructureResource,
    attribute_options_path,
    split_option_key,
    updated_after,
)
from akeneo_resync.reconcile_events import removal_event, structure_upsert

log = logging.getLogger(__name__)

OPTION_LISTINGS = 4  # attributes whose options are paged side by side

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
        await self._upserts(listing.kind, still, known, summary)  # skipped by a shifted page
        alive = {_code(item, listing) for item in still}
        removals = [
            removal_event(self._connection, listing.kind, code, known[code], self._started)
            for code in missing
            if code not in alive
        ]
        for i in range(0, len(removals), BATCH_SIZE):
            stored, duplicates = await self._publish(removals[i : i + BATCH_SIZE])
            summary.removals += stored + duplicates

    async def options(self, summary: StructureSummary) -> None:
        """Every option of every select attribute, and a removal for each option the guard
        holds but the PIM lacks (confirmed by one GET each: the listing takes no filter)."""
        kind = ResourceKind.ATTRIBUTE_OPTION
        known = await read_guard_entries(self._js, self._bucket, kind.value)
        attributes = STRUCTURE["attributes"]
        search = search_param({"type": [{"operator": "IN", "value": list(SELECT_TYPES)}]})
        selects: list[str] = []
        pages = self._client.iter_offset_pages(attributes.path, {"search": search})
        async with contextlib.aclosing(pages):
            async for items in pages:
                summary.calls += 1
                selects += [_code(item, attributes) for item in items]
        present: set[str] = set()
        side_by_side = asyncio.Semaphore(OPTION_LISTINGS)

        async def one(attribute: str) -> None:
            listing = StructureResource(ATTRIBUTE_OPTIONS, kind, attribute_options_path(attribute))
            async with side_by_side:
                key_of = partial(attribute_option_key, attribute)
                try:
                    keys = await self._read(listing, {}, known, summary, key_of=key_of)
                except AkeneoApiError as exc:
                    if exc.status != 404:
                        raise
                    return  # the attribute was removed since listed: its options with it
            present.update(keys)

        async with asyncio.TaskGroup() as group:
            for attribute in dict.fromkeys(selects):
                group.create_task(one(attribute))
        missing = [k for k, entry in known.items() if not entry.deleted and k not in present]
        if not missing:
            return
        pairs = {key: pair for key in missing if (pair := split_option_key(key)) is not None}
        found = await asyncio.gather(
            *(self._client.get_attribute_option(*pair) for pair in pairs.values())
        )
        summary.calls += len(found)
        alive = {k: item for k, item in zip(pairs, found, strict=True) if item is not None}
        if alive:  # skipped by a shifted page
            await self._upserts(kind, list(alive.values()), known, summary, keys=list(alive))
        removals = [
            removal_event(self._connection, kind, key, known[key], self._started)
            for key in missing
            if key not in alive
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
        *,
        key_of: Callable[[str], str] | None = None,
    ) -> set[str]:
        """Publish the listing's items, page by page; their keys (their codes, unless
        ``key_of`` makes a key of a code)."""
        present: set[str] = set()
        pages: AsyncGenerator[list[dict[str, Any]], None] = self._client.iter_offset_pages(
            listing.path, params
        )
        async with contextlib.aclosing(pages):  # closed at once on failure: none in flight
            async for items in pages:
                summary.calls += 1
                page, keys = [], []
                for item in items:  # an offset page can repeat an item of the page before
                    code = _code(item, listing)
                    key = key_of(code) if key_of is not None else code
                    if key not in present:
                        present.add(key)
                        page.append(item)
                        keys.append(key)
                await self._upserts(listing.kind, page, known, summary, keys=keys)
        return present

    async def _upserts(
        self,
        kind: ResourceKind,
        items: list[dict[str, Any]],
        known: dict[str, GuardEntry],
        summary: StructureSummary,
        *,
        keys: list[str] | None = None,
    ) -> None:
        events = []
        for i, item in enumerate(items):
            key = keys[i] if keys is not None else str(item.get("code"))
            stored = known.get(key)
            event = structure_upsert(self._connection, kind, item, stored, self._started, key=key)
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
