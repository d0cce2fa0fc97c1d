"""A connection's JetStream stream and KV bucket: desired config, drift, create/update/delete.

Shared by the operator, local mode and the receiver's ``--ensure-stream``. Modelled on NATS's
NACK controller: the desired config is a pure function of the spec; the live config is
compared field by field on the fields we own; drift is repaired by an update; the name never
changes; a field the server cannot change in place (storage, retention) is reported, not
silently ignored.
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


def desired_stream_config(names: ConnectionNames, spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=names.stream,
        description=f"Akeneo events of {names.ref}",
        subjects=[f"{names.subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,  # kept until maxAge so `replay` can rebuild a sink
        storage=StorageType.FILE,
        max_age=parse_duration(spec.max_age).total_seconds(),
        duplicate_window=parse_duration(spec.duplicate_window).total_seconds(),
        num_replicas=spec.replicas,
        discard=DiscardPolicy.OLD,
        allow_direct=True,
        metadata={"managed-by": MANAGED_BY, "connection": names.ref},
    )


def desired_bucket_config(names: ConnectionNames, spec: StreamSpec) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=names.guard_bucket,
        description=f"Ordering guard and watermarks of {names.ref}",
        history=1,
        storage=StorageType.FILE,
        replicas=spec.replicas,
        # Values are small; a compromised pod must not store (nor make the operator read)
        # large ones. The bucket's total size is the stream quotas' business.
        max_value_size=MAX_VALUE_BYTES,
    )


_COMPARED = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "duplicate_window",
    "num_replicas",
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
    js: JetStreamContext, names: ConnectionNames, spec: StreamSpec
) -> EnsureResult:
    """Create the stream, or update the fields that drifted; never rename or recreate it."""
    desired = desired_stream_config(names, spec)
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
    js: JetStreamContext, names: ConnectionNames, spec: StreamSpec
) -> EnsureResult:
    """Create the guard bucket if missing; repair its replicas and max value size."""
    desired = desired_bucket_config(names, spec)
    try:
        info = await js.stream_info(f"KV_{names.guard_bucket}")
    except NotFoundError:
        await js.create_key_value(config=desired)
        return EnsureResult(Outcome.CREATED)
    live = info.config
    drift = []
    if live.num_replicas != desired.replicas:
        live.num_replicas = desired.replicas
        drift.append("replicas")
    if live.max_msg_size != desired.max_value_size:
        live.max_msg_size = desired.max_value_size
        drift.append("max_value_size")
    if drift:
        await js.update_stream(config=live)
        return EnsureResult(Outcome.UPDATED, tuple(drift))
    return EnsureResult(Outcome.UNCHANGED)


async def ensure_all(
    js: JetStreamContext, names: ConnectionNames, spec: StreamSpec
) -> tuple[EnsureResult, EnsureResult]:
    return await ensure_stream(js, names, spec), await ensure_bucket(js, names, spec)


async def delete_all(js: JetStreamContext, names: ConnectionNames) -> None:
    """Remove the stream and bucket; absent ones are fine (deletion is idempotent)."""
    for stream in (names.stream, f"KV_{names.guard_bucket}"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
