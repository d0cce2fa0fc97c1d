"""A connection's JetStream stream and KV bucket: desired config, drift, create/update/delete.

Shared by the operator, local mode and the receiver's ``--ensure-stream``. Modelled on NATS's
NACK controller: the desired config is a pure function of the spec; the live config is
compared field by field on the fields we own; drift is repaired by an update; the name never
changes; a field the server cannot change in place (storage, retention) is reported, not
silently ignored.

Quotas (``akeneo_connector.quotas``): the stream and the bucket get ``max_bytes``,
``max_msgs`` and ``max_msg_size`` with ``DiscardPolicy.NEW``, so a full stream refuses the
next event (the receiver answers 429/503 ``quota_exceeded``) instead of deleting the oldest
one, which may not be applied yet. Retention stays ``LIMITS`` with ``max_age`` (history for
``replay``), so applied events would hold the quota until they age out:
``akeneo_connector.trim`` (run by the worker) purges the events the worker has acknowledged
once the stream passes ``TRIM_AT`` of a quota. The quota thus bounds the unapplied backlog
plus whatever history still fits, and exactly the disk a tenant occupies on the shared store
(JetStream reserves each stream's ``max_bytes`` when it is created).
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from akeneo_connector.durations import parse_duration
from akeneo_connector.guard_state import MAX_VALUE_BYTES
from akeneo_connector.names import ConnectionNames
from akeneo_connector.quotas import DEFAULT_QUOTAS, StreamQuotas
from akeneo_connector.spec import StreamSpec

MANAGED_BY = "akeneo-connector"
IMMUTABLE_FIELDS = ("storage", "retention")


class Outcome(enum.StrEnum):
    CREATED = "Created"
    UPDATED = "Updated"
    UNCHANGED = "Unchanged"


@dataclass(frozen=True)
class EnsureResult:
    outcome: Outcome
    changed_fields: tuple[str, ...] = field(default_factory=tuple)


class ImmutableFieldChanged(RuntimeError):
    """The live stream differs in a field JetStream cannot update in place."""


def _int(value: int | None) -> int:
    assert value is not None, "set by StreamQuotas.resolve"
    return value


def desired_stream_config(
    names: ConnectionNames, spec: StreamSpec, quotas: StreamQuotas = DEFAULT_QUOTAS
) -> StreamConfig:
    limits = quotas.resolve(spec)
    return StreamConfig(
        name=names.stream,
        description=f"Akeneo events of {names.ref}",
        subjects=[f"{names.subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,  # kept until maxAge so `replay` can rebuild a sink
        storage=StorageType.FILE,
        max_age=parse_duration(spec.max_age).total_seconds(),
        duplicate_window=parse_duration(spec.duplicate_window).total_seconds(),
        num_replicas=spec.replicas,
        max_bytes=_int(limits.max_bytes),
        max_msgs=_int(limits.max_msgs),
        max_msg_size=_int(limits.max_msg_size),
        discard=DiscardPolicy.NEW,  # a full stream refuses; OLD would drop unapplied events
        allow_direct=True,
        metadata={"managed-by": MANAGED_BY, "connection": names.ref},
    )


def desired_bucket_config(
    names: ConnectionNames, spec: StreamSpec, quotas: StreamQuotas = DEFAULT_QUOTAS
) -> KeyValueConfig:
    """The bucket as created; ``max_msgs`` is no ``KeyValueConfig`` field: ``ensure_bucket``
    sets it (with the rest of ``bucket_limits``) on the bucket's stream."""
    limits = quotas.resolve(spec).bucket
    return KeyValueConfig(
        bucket=names.guard_bucket,
        description=f"Ordering guard and watermarks of {names.ref}",
        history=1,
        storage=StorageType.FILE,
        replicas=spec.replicas,
        max_bytes=_int(limits.max_bytes),
        max_value_size=_value_size(limits.max_msg_size),
    )


def bucket_limits(spec: StreamSpec, quotas: StreamQuotas = DEFAULT_QUOTAS) -> dict[str, int]:
    """The bucket stream's fields ``ensure_bucket`` keeps as the spec says."""
    limits = quotas.resolve(spec).bucket
    return {
        "num_replicas": spec.replicas,
        "max_bytes": _int(limits.max_bytes),
        "max_msgs": _int(limits.max_msgs),
        "max_msg_size": _value_size(limits.max_msg_size),
    }


def _value_size(quota: int | None) -> int:
    """A bucket value's size: within the quota, and never over ``MAX_VALUE_BYTES`` whatever
    the quota says (the bucket is written by pods a tenant may control, and the operator,
    one process for every tenant, reads part of it)."""
    size = _int(quota)
    return MAX_VALUE_BYTES if size < 0 else min(size, MAX_VALUE_BYTES)


_COMPARED = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "duplicate_window",
    "num_replicas",
    "max_bytes",
    "max_msgs",
    "max_msg_size",
    "discard",
    "description",
)


def stream_drift(desired: StreamConfig, live: StreamConfig) -> tuple[str, ...]:
    """Names of the owned fields where the live stream differs from the desired one."""
    drift = []
    for name in _COMPARED:
        want, have = getattr(desired, name), getattr(live, name)
        if isinstance(want, float) and isinstance(have, int | float):
            if abs(want - have) > 1e-3:
                drift.append(name)
        elif name == "subjects":
            if sorted(want or []) != sorted(have or []):
                drift.append(name)
        elif want != have:
            drift.append(name)
    return tuple(drift)


async def ensure_stream(
    js: JetStreamContext,
    names: ConnectionNames,
    spec: StreamSpec,
    quotas: StreamQuotas = DEFAULT_QUOTAS,
) -> EnsureResult:
    """Create the stream, or update the fields that drifted; never rename or recreate it.

    Lowering a quota below what the stream holds keeps every event (``DiscardPolicy.NEW``
    never deletes): new ones are refused until the worker's trim has made room."""
    desired = desired_stream_config(names, spec, quotas)
    try:
        info = await js.stream_info(names.stream)
    except NotFoundError:
        await js.add_stream(config=desired)
        return EnsureResult(Outcome.CREATED)
    drift = stream_drift(desired, info.config)
    if not drift:
        return EnsureResult(Outcome.UNCHANGED)
    immutable = [f for f in drift if f in IMMUTABLE_FIELDS]
    if immutable:
        raise ImmutableFieldChanged(
            f"stream {names.stream}: {', '.join(immutable)} cannot be changed in place"
        )
    await js.update_stream(config=desired)
    return EnsureResult(Outcome.UPDATED, drift)


async def ensure_bucket(
    js: JetStreamContext,
    names: ConnectionNames,
    spec: StreamSpec,
    quotas: StreamQuotas = DEFAULT_QUOTAS,
) -> EnsureResult:
    """Create the guard bucket if missing; keep its replicas and limits as the spec says."""
    stream = f"KV_{names.guard_bucket}"
    created = False
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.create_key_value(config=desired_bucket_config(names, spec, quotas))
        info = await js.stream_info(stream)
        created = True
    live = info.config
    drift = []
    for name, want in bucket_limits(spec, quotas).items():
        if getattr(live, name) != want:
            setattr(live, name, want)
            drift.append(name)
    if drift:
        live.discard = DiscardPolicy.NEW  # as nats-py creates buckets: never drop a key
        await js.update_stream(config=live)
    if created:
        return EnsureResult(Outcome.CREATED)
    return EnsureResult(Outcome.UPDATED, tuple(drift)) if drift else EnsureResult(Outcome.UNCHANGED)


async def ensure_all(
    js: JetStreamContext,
    names: ConnectionNames,
    spec: StreamSpec,
    quotas: StreamQuotas = DEFAULT_QUOTAS,
) -> tuple[EnsureResult, EnsureResult]:
    return (
        await ensure_stream(js, names, spec, quotas),
        await ensure_bucket(js, names, spec, quotas),
    )


async def delete_all(js: JetStreamContext, names: ConnectionNames) -> None:
    """Remove the stream and bucket; absent ones are fine (deletion is idempotent)."""
    for stream in (names.stream, f"KV_{names.guard_bucket}"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
