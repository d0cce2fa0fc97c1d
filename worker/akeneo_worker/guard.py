"""The ordering guard: last applied version per resource, in the connection's KV bucket.

``decide`` is the pure rule; ``GuardStore`` reads and compare-and-sets entries, a batch at a
time (``PipelinedKV``). Entries read or written by this process are cached with their KV
revision, absent ones too: a cached entry can only be older than the live one (versions
never go back), so a skip decided on it is still right, and a write decided on it goes
straight out with the cached revision; the CAS refuses it if another replica wrote
meanwhile, and only then is the entry read again and the decision taken anew.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from akeneo_connector.changes import Change
from akeneo_connector.guard_state import NEVER_APPLIED, GuardEntry, guard_key
from akeneo_connector.kv_pipeline import PipelinedKV, Read, Write, WrongRevision

R = TypeVar("R")
Resource = tuple[str, str]  # (kind, key)
Claim = tuple[bool, GuardEntry | None]  # (claimed, last applied entry)


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
    # (pydantic's validating __init__ is faster than model_construct's Python loop)
    return GuardEntry(
        version=change.version,
        deleted=change.deleted,
        digest=change.digest,
        event_id=change.event_id,
    )


def _with_claim(
    stored: GuardEntry | None, holder: str | None, until: datetime | None
) -> GuardEntry:
    """``stored`` (or an entry of a never-applied resource) with this claim (None: none)."""
    if stored is None:
        return GuardEntry(version=NEVER_APPLIED, claimed_by=holder, claimed_until=until)
    return GuardEntry(
        version=stored.version, deleted=stored.deleted, digest=stored.digest,
        event_id=stored.event_id, claimed_by=holder, claimed_until=until,
    )  # fmt: skip


class Superseded(Exception):
    """A newer change of the same resource was stored meanwhile (another replica)."""


class TooManyConflicts(Exception):
    """Other writers kept changing the entry: the outcome is unsettled, try again later."""


@dataclass(frozen=True)
class Put(Generic[R]):
    """Write ``entry`` (None: a delete marker); ``result`` once the CAS succeeded."""

    entry: GuardEntry | None
    result: R


@dataclass(frozen=True)
class Keep(Generic[R]):
    """Nothing to write: ``result`` as it stands."""

    result: R


Plan = Callable[[GuardEntry | None], Put[R] | Keep[R]]
"""Decides, from a key's current entry, what to write; run again after a CAS conflict."""


class GuardStore:
    """Guard entries of one connection: batched CAS writes and a bounded cache."""

    def __init__(self, kv: PipelinedKV, *, cache_size: int = 200_000, max_conflicts: int = 5):
        self._kv = kv
        self._cache: OrderedDict[str, tuple[GuardEntry | None, int]] = OrderedDict()
        self._cache_size = cache_size
        self._max_conflicts = max_conflicts

    def _remember(self, key: str, entry: GuardEntry | None, revision: int) -> None:
        self._cache[key] = (entry, revision)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _read(self, keys: Sequence[str]) -> dict[str, BaseException]:
        """Read ``keys`` into the cache; the errors of those that could not be read."""
        failed: dict[str, BaseException] = {}
        if not keys:
            return failed
        for key, found in zip(keys, await self._kv.read_many(keys), strict=True):
            if isinstance(found, Read):
                value = found.value
                entry = GuardEntry.model_validate_json(value) if value is not None else None
                self._remember(key, entry, found.revision)
            else:
                self._cache.pop(key, None)
                failed[key] = found
        return failed

    async def load(self, resources: Sequence[Resource]) -> dict[Resource, BaseException]:
        """Make sure each resource's entry is cached; the errors of those not readable."""
        keys = {r: guard_key(*r) for r in resources}
        missing = [k for k in dict.fromkeys(keys.values()) if k not in self._cache]
        failed = await self._read(missing)
        return {r: failed[k] for r, k in keys.items() if k in failed}

    def peek(self, kind: str, key: str) -> GuardEntry | None:
        """The cached entry (after ``load``); None when the resource has none."""
        cached = self._cache.get(guard_key(kind, key))
        return cached[0] if cached is not None else None

    async def cas_many(
        self, plans: dict[str, Plan[R]], exhausted: Callable[[GuardEntry | None], R]
    ) -> dict[str, R | BaseException]:
        """Plan each key's write on its cached entry, send them all, re-plan the conflicts.

        A write the CAS refused is planned again on a fresh read, at most ``max_conflicts``
        times; then ``exhausted`` gives the result. A write whose outcome is unknown (error,
        timeout) yields the error and drops the key from the cache.
        """
        results: dict[str, R | BaseException] = dict(
            await self._read([k for k in plans if k not in self._cache])
        )
        pending = [k for k in plans if k not in results]
        for _ in range(self._max_conflicts):
            if not pending:
                break
            writes: list[tuple[Write, Put[R]]] = []
            for key in pending:
                stored, revision = self._cache[key]
                step = plans[key](stored)
                if isinstance(step, Keep):
                    results[key] = step.result
                    continue
                value = step.entry.to_bytes() if step.entry is not None else None
                writes.append((Write(key, value, revision), step))
            outcomes = await self._kv.write_many([w for w, _ in writes]) if writes else []
            conflicts = []
            for (write, step), outcome in zip(writes, outcomes, strict=True):
                if isinstance(outcome, int):
                    self._remember(write.key, step.entry, outcome)
                    results[write.key] = step.result
                elif isinstance(outcome, WrongRevision):
                    conflicts.append(write.key)
                else:
                    self._cache.pop(write.key, None)
                    results[write.key] = outcome
            results.update(await self._read(conflicts))
            pending = [k for k in conflicts if k not in results]
        for key in pending:
            results[key] = exhausted(self._cache[key][0])
        return results

    async def claim_many(
        self, resources: Sequence[Resource], holder: str, ttl: timedelta, now: datetime
    ) -> dict[Resource, Claim | BaseException]:
        """Claim each resource for ``holder``: (claimed, last applied entry or None).

        The claim is a compare-and-set on the guard entry itself, so winning it also proves
        the entry is the live one: the caller judges the change against it, applies it, and
        ``record_many`` drops the claim with the same write that stores the new version.
        """

        def plan(stored: GuardEntry | None) -> Put[Claim] | Keep[Claim]:
            if stored is not None and stored.claimed_by_other(holder, now):
                return Keep((False, stored))
            claimed = _with_claim(stored, holder, now + ttl)
            return Put(claimed, (True, stored if stored is not None and stored.applied else None))

        keys = {r: guard_key(*r) for r in resources}
        results = await self.cas_many(dict.fromkeys(keys.values(), plan), lambda s: (False, s))
        return {r: results[k] for r, k in keys.items()}

    async def record_many(self, changes: Sequence[Change]) -> list[BaseException | None]:
        """Store each change as the last applied version; ``Superseded`` for one that lost.

        Each write is a CAS on the entry it was decided against; after a conflict the entry
        is read again and the change judged anew, so a loser never overwrites a newer entry
        (what self-guarding sinks rely on, as they take no claim). ``TooManyConflicts`` when
        it cannot settle: the caller retries the change later rather than drop it.
        """

        def plan_for(change: Change) -> Plan[BaseException | None]:
            new = entry_for(change)

            def plan(
                stored: GuardEntry | None,
            ) -> Put[BaseException | None] | Keep[BaseException | None]:
                verdict = decide_change(stored, change)
                if verdict in (Verdict.APPLY, Verdict.TIE):
                    return Put(new, None)
                if stored is not None and (stored.version, stored.digest) == (
                    new.version,
                    new.digest,
                ):
                    return Keep(None)  # already recorded (a re-delivery after a crash)
                return Keep(Superseded(change.key))

            return plan

        keys = [guard_key(c.kind, c.key) for c in changes]
        plans = {k: plan_for(c) for k, c in zip(keys, changes, strict=True)}
        results = await self.cas_many(plans, lambda _: TooManyConflicts())
        return [results[k] for k in keys]

    async def release_many(self, resources: Sequence[Resource], holder: str) -> None:
        """Drop our claims on resources whose change was not recorded (skipped or failed)."""

        def plan(stored: GuardEntry | None) -> Put[None] | Keep[None]:
            if stored is None or stored.claimed_by != holder:
                return Keep(None)  # not ours (any more)
            if not stored.applied:
                return Put(None, None)  # only our claim was there: remove it
            return Put(_with_claim(stored, None, None), None)

        plans: dict[str, Plan[None]] = {guard_key(*r): plan for r in resources}
        await self.cas_many(plans, lambda _: None)

    def forget(self) -> None:
        self._cache.clear()
