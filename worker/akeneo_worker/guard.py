"""The ordering guard: last applied version per resource, in the connection's KV bucket.

``decide`` is the pure rule; ``GuardStore`` reads and compare-and-sets entries. Entries read
or written by this process are cached with their KV revision: a cached entry can only be
older than the live one (versions never go back), so a skip decided on it is still right,
and an apply decided on it is checked by the CAS write (a conflict re-reads and re-decides).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from datetime import datetime, timedelta

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from akeneo_connector.guard_state import NEVER_APPLIED, GuardEntry, guard_key
from akeneo_worker.changes import Change


class Verdict(enum.StrEnum):
    APPLY = "apply"
    TIE = "tie"  # same version, different content
    OUTDATED = "outdated"
    DUPLICATE = "duplicate"


def decide(
    stored: GuardEntry | None, version: datetime, *, deleted: bool, digest: str | None
) -> Verdict:
    """Newest wins; at equal versions a removal wins over an update (tombstones stick)."""
    if stored is None or version > stored.version:
        return Verdict.APPLY
    if version < stored.version:
        return Verdict.OUTDATED
    if deleted:
        return Verdict.DUPLICATE if stored.deleted else Verdict.APPLY
    if stored.deleted:
        return Verdict.OUTDATED
    if digest is not None and digest == stored.digest:
        return Verdict.DUPLICATE
    return Verdict.TIE


def decide_change(stored: GuardEntry | None, change: Change) -> Verdict:
    # The digest (canonical JSON + sha256) is only needed at equal versions.
    tie = stored is not None and stored.version == change.version
    digest = change.digest if tie and not change.deleted else None
    return decide(stored, change.version, deleted=change.deleted, digest=digest)


def entry_for(change: Change) -> GuardEntry:
    # Built from typed values: no validation needed on this hot path.
    return GuardEntry.model_construct(
        version=change.version,
        deleted=change.deleted,
        digest=change.digest,
        event_id=change.event_id,
    )


class Superseded(Exception):
    """A newer change of the same resource was stored meanwhile (another replica)."""


class GuardStore:
    """Guard entries of one connection with CAS writes and a bounded read cache."""

    def __init__(self, kv: KeyValue, *, cache_size: int = 200_000, max_conflicts: int = 5):
        self._kv = kv
        self._cache: OrderedDict[str, tuple[GuardEntry, int]] = OrderedDict()
        self._cache_size = cache_size
        self._max_conflicts = max_conflicts

    def _remember(self, key: str, entry: GuardEntry, revision: int) -> None:
        self._cache[key] = (entry, revision)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _read(self, key: str) -> tuple[GuardEntry | None, int]:
        try:
            found = await self._kv.get(key, validate_keys=False)
        except KeyDeletedError as gone:  # purged by `replay --reset-guard`
            self._cache.pop(key, None)
            return None, gone.entry.revision if gone.entry and gone.entry.revision else 0
        except KeyNotFoundError:
            self._cache.pop(key, None)
            return None, 0
        assert found.value is not None and found.revision is not None
        entry = GuardEntry.model_validate_json(found.value)
        self._remember(key, entry, found.revision)
        return entry, found.revision

    def cached(self, kind: str, key: str) -> bool:
        return guard_key(kind, key) in self._cache

    def peek(self, kind: str, key: str) -> GuardEntry | None:
        """The cached entry (after ``get``); None when the resource has none."""
        cached = self._cache.get(guard_key(kind, key))
        return cached[0] if cached is not None else None

    async def get(self, kind: str, key: str) -> GuardEntry | None:
        k = guard_key(kind, key)
        cached = self._cache.get(k)
        if cached is not None:
            return cached[0]
        return (await self._read(k))[0]

    async def record(self, change: Change) -> None:
        """Store ``change`` as the last applied version; raise ``Superseded`` if it lost."""
        k = guard_key(change.kind, change.key)
        new = entry_for(change)
        cached = self._cache.get(k)
        stored, revision = cached if cached is not None else await self._read(k)
        for _ in range(self._max_conflicts):
            if stored is not None and decide_change(stored, change) not in (
                Verdict.APPLY,
                Verdict.TIE,
            ):
                if stored.version == new.version and stored.digest == new.digest:
                    return  # already recorded (a re-delivery after a crash)
                raise Superseded(k)
            try:
                revision = await self._write(k, new, revision)
            except KeyWrongLastSequenceError:
                stored, revision = await self._read(k)
                continue
            self._remember(k, new, revision)
            return
        raise Superseded(k)

    async def _write(self, key: str, entry: GuardEntry, revision: int) -> int:
        if revision == 0:
            return await self._kv.create(key, entry.to_bytes(), validate_keys=False)
        return await self._kv.update(key, entry.to_bytes(), last=revision, validate_keys=False)

    async def claim(
        self, kind: str, key: str, holder: str, ttl: timedelta, now: datetime
    ) -> tuple[bool, GuardEntry | None]:
        """Claim the resource for ``holder``; returns (claimed, last applied entry or None).

        The claim is a compare-and-set on the guard entry itself, so winning it also proves
        the entry read is the live one: the caller judges the change against it, applies it,
        and ``record`` releases the claim with the same write that stores the new version.
        """
        k = guard_key(kind, key)
        cached = self._cache.get(k)
        stored, revision = cached if cached is not None else await self._read(k)
        for _ in range(self._max_conflicts):
            if stored is not None and stored.claimed_by_other(holder, now):
                return False, stored
            base = stored or GuardEntry(version=NEVER_APPLIED)
            claimed = base.model_copy(update={"claimed_by": holder, "claimed_until": now + ttl})
            try:
                new_revision = await self._write(k, claimed, revision)
            except KeyWrongLastSequenceError:
                stored, revision = await self._read(k)
                continue
            self._remember(k, claimed, new_revision)
            return True, stored if stored is not None and stored.applied else None
        return False, stored

    async def release(self, kind: str, key: str, holder: str) -> None:
        """Drop our claim when the change was not recorded (skipped or failed)."""
        k = guard_key(kind, key)
        cached = self._cache.get(k)
        if cached is None or cached[0].claimed_by != holder:
            return
        entry, revision = cached
        try:
            if entry.applied:
                released = entry.model_copy(update={"claimed_by": None, "claimed_until": None})
                self._remember(k, released, await self._write(k, released, revision))
            else:
                await self._kv.delete(k, last=revision, validate_keys=False)
                self._cache.pop(k, None)
        except KeyWrongLastSequenceError:
            self._cache.pop(k, None)  # someone else wrote it (our claim had expired)

    def forget(self) -> None:
        self._cache.clear()
