"""Synthetic events of the reconcile job: versions and message ids that make reruns harmless.

Products and product models carry ``updated``: it is their version, and their message id
depends on (kind, key, updated) only, so a rerun inside the stream's duplicate window is
dropped by JetStream and one after it is skipped by the worker's guard.

The catalog structure (categories, families, attributes, attribute options) shows no
``updated`` in its representation, but for categories on 6.0+/SaaS; and the Event Platform's
structure events, versioned by their time, meet the reconcile's in the same guard. Its
version is chosen against the guard entry (what the sink was last given), see
``structure_version``:

1. same content as applied (equal digest): the applied version, so the worker's guard takes
   it for a duplicate and the sink gets no write;
2. else the item's own ``updated``, when it is newer than the applied version;
3. else the run's start time, pushed past the applied version or tombstone: the change is
   applied exactly once, ordered after everything applied before.

Its message id hashes (kind, code, version, content digest): an unchanged item keeps its id
from run to run (JetStream drops it inside the duplicate window), while a change A -> B -> A
is three distinct messages. The job never leaves an item out because of its guard snapshot:
the worker's guard stays the one judge, so a stale snapshot costs at most a duplicate write.

Removals (the PIM gives no removal time) are versioned past what the guard applied.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from akeneo_connector.changes import resource_digest, resource_updated
from akeneo_connector.guard_state import GuardEntry
from akeneo_connector.normalized import (
    Action,
    NormalizedEvent,
    ResourceKind,
    SourceFormat,
    utc_version,
)

RECONCILE_AUTHOR = "reconcile"
_TICK = timedelta(microseconds=1)


def event_id(kind: ResourceKind, key: str, version: datetime, *, removed: bool = False) -> str:
    """Deterministic message id: the same item at the same version always maps to it."""
    digest = hashlib.sha256(f"{kind.value}\0{key}\0{utc_version(version)}".encode()).hexdigest()
    return f"reconcile-{'rm' if removed else 'up'}-{kind.value}-{digest[:40]}"


def parse_updated(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise ValueError(f"item without an 'updated' date: {raw!r}")
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def removal_event(
    connection: str, kind: ResourceKind, key: str, entry: GuardEntry, started: datetime
) -> NormalizedEvent:
    """A removal newer than what the guard applied (the PIM gives no removal time)."""
    version = max(started, entry.version + _TICK)
    return NormalizedEvent.model_validate(  # checked: key and resource are the PIM's
        {
            "connection": connection,
            "source": SourceFormat.RECONCILE,
            "event_id": event_id(kind, key, entry.version, removed=True),
            "action": Action.DELETE,
            "kind": kind,
            "key": key,
            "version": version,
            "author": RECONCILE_AUTHOR,
            "received_at": started,
        }
    )


def structure_version(
    updated: datetime | None, digest: str | None, stored: GuardEntry | None, started: datetime
) -> datetime:
    """The version of a structure item read at ``started`` (rules in the module docstring)."""
    if stored is None or not stored.applied:
        return updated or started
    if not stored.deleted and stored.digest == digest:
        return stored.version
    if updated is not None and updated > stored.version:
        return updated
    return max(started, stored.version + _TICK)


def structure_event_id(kind: ResourceKind, code: str, version: datetime, digest: str) -> str:
    text = f"{kind.value}\0{code}\0{utc_version(version)}\0{digest}"
    return f"reconcile-up-{kind.value}-{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def structure_upsert(
    connection: str,
    kind: ResourceKind,
    item: dict[str, Any],
    stored: GuardEntry | None,
    started: datetime,
    *,
    key: str | None = None,
) -> NormalizedEvent:
    """The upsert of one listed category, family, attribute or attribute option (its
    ``_links`` left out); ``key`` when it is not the item's code (attribute options)."""
    resource = {k: v for k, v in item.items() if k != "_links"}
    code = key if key is not None else str(resource["code"])
    digest = resource_digest(resource) or ""
    version = structure_version(resource_updated(resource), digest, stored, started)
    return NormalizedEvent.model_validate(  # checked: key and resource are the PIM's
        {
            "connection": connection,
            "source": SourceFormat.RECONCILE,
            "event_id": structure_event_id(kind, code, version, digest),
            "action": Action.UPSERT,
            "kind": kind,
            "key": code,
            "version": version,
            "author": RECONCILE_AUTHOR,
            "resource": resource,
            "received_at": started,
        }
    )
