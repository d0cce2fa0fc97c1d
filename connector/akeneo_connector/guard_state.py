"""What the connection's KV bucket holds, shared by worker, reconcile job and operator.

Keys (KV keys allow ``[-/_=.a-zA-Z0-9]``, so resource keys, which may hold any character,
are encoded with unpadded URL-safe base64):

- ``guard.<kind>.<b64 key>`` -> ``GuardEntry``: last applied version of one resource
- ``reconcile.watermark.<kind>`` -> ``Watermark``: reconcile progress per resource kind
- ``reconcile.lock`` -> ``ReconcileLock``: one reconcile run at a time (expiring)
- ``reconcile.last_run`` -> ``LastRun``: the last reconcile that finished (any kind); with
  the watermarks, what tells a connection that never synced (``never_synced``)
- ``catchup.through`` -> ``CatchUpCursor``: the newest gap record repaired (local mode; the
  operator keeps it in ``status.catchUp``)
- ``stats.worker.<replica>`` -> ``WorkerStats``: counters the operator sums into status
- ``budget.slot.<n>`` (n = 0..3) -> ``BudgetSlot``: the connection's 4 concurrent PIM calls,
  shared by every worker replica and the reconcile job (``akeneo_pim.rest_budget``)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from akeneo_connector.records import AwareDatetime, Record
from akeneo_connector.stream_reader import kv_latest

MAX_VALUE_BYTES = 4096
"""The bucket's max value size (``jetstream.desired_bucket_config``): every value above is a
few hundred bytes; nothing a pod writes there may be large (the operator reads it)."""
GUARD_PREFIX = "guard"
STATS_PREFIX = "stats.worker"
LOCK_KEY = "reconcile.lock"
BUDGET_PREFIX = "budget.slot"
BUDGET_SLOTS = 4  # Akeneo: concurrent calls per connection
LAST_RUN_KEY = "reconcile.last_run"
CATCH_UP_KEY = "catchup.through"
GUARD_RESET_HEADER = "Akeneo-Guard-Reset"
"""Set by ``replay --reset-guard`` on every event it re-delivers, valued with the run's id:
a worker that meets a new value drops its cached guard entries before judging the batch
(the bucket was emptied under it), so a running worker rebuilds the sink too."""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def guard_key(kind: str, key: str) -> str:
    return f"{GUARD_PREFIX}.{kind}.{_b64(key)}"


def parse_guard_key(kv_key: str) -> tuple[str, str]:
    """``guard.product.<b64>`` -> ``("product", key)``."""
    prefix, kind, encoded = kv_key.split(".", 2)
    if prefix != GUARD_PREFIX:
        raise ValueError(f"not a guard key: {kv_key!r}")
    return kind, _unb64(encoded)


def watermark_key(kind: str) -> str:
    return f"reconcile.watermark.{kind}"


def budget_slot_key(slot: int) -> str:
    return f"{BUDGET_PREFIX}.{slot}"


def stats_key(replica: str) -> str:
    return f"{STATS_PREFIX}.{_b64(replica)}"


NEVER_APPLIED = datetime(1970, 1, 1, tzinfo=UTC)
"""Version of an entry that only holds a claim: no change of the resource was applied yet."""


class GuardEntry(Record, frozen=True, kw_only=True):
    version: AwareDatetime
    deleted: bool = False
    digest: str | None = None  # sha256 of the applied resource JSON (tie detection)
    event_id: str | None = None
    # A worker applying a change first claims the resource (compare-and-set on this entry),
    # so two replicas never send two versions of one resource to the sink at once. Only for
    # sinks that cannot guard themselves (the webhook): the SQL sinks refuse older writes.
    claimed_by: str | None = None
    claimed_until: AwareDatetime | None = None

    @property
    def applied(self) -> bool:
        return self.version > NEVER_APPLIED

    def claimed_by_other(self, holder: str, now: datetime) -> bool:
        return (
            self.claimed_by is not None
            and self.claimed_by != holder
            and self.claimed_until is not None
            and self.claimed_until > now
        )


class Watermark(Record, frozen=True, kw_only=True):
    updated_since: AwareDatetime
    run_finished_at: AwareDatetime


class ReconcileLock(Record, frozen=True, kw_only=True):
    holder: str
    expires_at: AwareDatetime


class BudgetSlot(Record, frozen=True, kw_only=True):
    """One of the connection's PIM call slots: free, or held by ``holder`` until ``until``.

    ``ticket`` tells one holding from the next of the same process. ``next`` is a process
    waiting for a slot: once the slot is free, only that process may take it until
    ``next_until``, so no process keeps the slots to itself while others wait.
    """

    holder: str | None = None
    ticket: str | None = None
    until: AwareDatetime | None = None
    next: str | None = None
    next_until: AwareDatetime | None = None

    def held(self, now: datetime) -> bool:
        return self.holder is not None and self.until is not None and self.until > now

    def reserved_for_other(self, me: str, now: datetime) -> bool:
        return (
            self.next is not None
            and self.next != me
            and self.next_until is not None
            and self.next_until > now
        )


class LastRun(Record, frozen=True, kw_only=True):
    finished_at: AwareDatetime
    full: bool = False
    since: AwareDatetime | None = None  # --since of a catch-up run


class CatchUpCursor(Record, frozen=True, kw_only=True):
    through: int  # stream sequence of the newest gap record a catch-up repaired
    at: AwareDatetime


class WorkerStats(Record, frozen=True, kw_only=True):
    applied: int = 0
    skipped_outdated: int = 0
    skipped_duplicate: int = 0
    dead_lettered: int = 0
    updated_at: AwareDatetime


async def never_synced(kv: KeyValue, kinds: Iterable[str]) -> bool:
    """True when no reconcile ever finished: no last run and no watermark of ``kinds``
    (connections that synced before ``reconcile.last_run`` existed have watermarks)."""
    for key in (LAST_RUN_KEY, *(watermark_key(k) for k in kinds)):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # also raised for a deleted key
            continue
        if entry.value:
            return False
    return True


async def read_guard_entries(js: JetStreamContext, bucket: str, kind: str) -> dict[str, GuardEntry]:
    """Every guard entry of a kind (tombstones and claims included), read once."""
    values = await kv_latest(js, bucket, f"{GUARD_PREFIX}.{kind}.>")
    return {
        parse_guard_key(k)[1]: GuardEntry.model_validate_json(v) for k, v in values.items() if v
    }
