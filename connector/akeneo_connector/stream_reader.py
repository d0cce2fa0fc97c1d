"""Reading a stream, or a KV bucket's latest values, once, through an ephemeral pull consumer.

nats-py's ``kv.watch`` signals "no more entries" from a consumer-info call that races the
push consumer's first deliveries: under load the end marker can come before any entry, and
a caller reading "everything the guard holds" sees an empty bucket. A pull consumer
delivers nothing until asked, so its ``num_pending`` at creation, then each message's own
``num_pending``, say exactly when the read is complete.

A read can be bounded (``limit`` messages, ``batch`` per fetch, a ``deadline``): what a
bucket holds may come from a compromised pod, and its reader must not be made to hold it all.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

_FETCH = 256
_BOUNDED_FETCH = 32  # messages held at once by a bounded read (each at most max_payload)
_KV_OPERATION = "KV-Operation"  # DEL / PURGE on a removed key
_MARKER_REASON = "Nats-Marker-Reason"  # nats-server 2.11+: server-placed removal markers


async def read_messages(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    last_per_subject: bool = False,
    start_sequence: int | None = None,
    start_time: datetime | None = None,
    limit: int | None = None,
    batch: int = _FETCH,
    deadline: float | None = None,
) -> AsyncIterator[Any]:
    """Every message of ``subject`` (the last of each subject with ``last_per_subject``),
    from the start or from a sequence or time on; messages removed meanwhile are not waited
    for longer than one fetch timeout. At most ``limit`` messages, fetched ``batch`` at a
    time, until ``deadline`` (``time.monotonic()``), when given."""
    config = ConsumerConfig(
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else DeliverPolicy.ALL,
        mem_storage=True,
    )
    if start_sequence is not None:
        config.deliver_policy, config.opt_start_seq = (
            DeliverPolicy.BY_START_SEQUENCE,
            start_sequence,
        )
    elif start_time is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = start_time
    info = await js.add_consumer(stream, config=config)
    sub = await js.pull_subscribe_bind(durable=info.name, stream=stream)
    try:
        pending = int(info.num_pending or 0)
        left = pending if limit is None else min(pending, limit)
        while pending > 0 and left > 0:
            wait = 5.0 if deadline is None else min(5.0, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                msgs = await sub.fetch(min(batch, pending, left), timeout=wait)
            except (NatsTimeoutError, TimeoutError):
                break
            for msg in msgs[:left]:
                yield msg
            left -= len(msgs)
            pending = int(msgs[-1].metadata.num_pending)
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream, info.name)


async def kv_latest(
    js: JetStreamContext,
    bucket: str,
    keys: str,
    *,
    max_keys: int | None = None,
    max_value_bytes: int | None = None,
    timeout: float | None = None,
) -> dict[str, bytes]:
    """``key -> value`` of every live key of ``bucket`` matching ``keys`` (a subject
    pattern, e.g. ``guard.product.>``); removed keys are left out.

    Bounded when asked: at most ``max_keys`` keys are read (then the read stops), values
    over ``max_value_bytes`` are dropped, and the read stops after ``timeout`` seconds."""
    prefix = f"$KV.{bucket}."
    values: dict[str, bytes] = {}
    bounded = max_keys is not None or max_value_bytes is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    async for msg in read_messages(
        js,
        f"KV_{bucket}",
        prefix + keys,
        last_per_subject=True,
        limit=max_keys,
        batch=_BOUNDED_FETCH if bounded else _FETCH,
        deadline=deadline,
    ):
        headers = msg.headers or {}
        if _KV_OPERATION in headers or _MARKER_REASON in headers:
            continue
        if max_value_bytes is not None and len(msg.data) > max_value_bytes:
            continue
        values[msg.subject[len(prefix) :]] = msg.data
    return values
