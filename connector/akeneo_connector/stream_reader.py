"""Reading a stream, or a KV bucket's latest values, once, through an ephemeral pull consumer.

nats-py's ``kv.watch`` signals "no more entries" from a consumer-info call that races the
push consumer's first deliveries: under load the end marker can come before any entry, and
a caller reading "everything the guard holds" sees an empty bucket. A pull consumer
delivers nothing until asked, so its ``num_pending`` at creation, then each message's own
``num_pending``, say exactly when the read is complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

_FETCH = 256
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
) -> AsyncIterator[Any]:
    """Every message of ``subject`` (the last of each subject with ``last_per_subject``),
    from the start or from a sequence or time on; messages removed meanwhile are not waited
    for longer than one fetch timeout."""
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
        while pending > 0:
            try:
                msgs = await sub.fetch(min(_FETCH, pending), timeout=5)
            except (NatsTimeoutError, TimeoutError):
                break
            for msg in msgs:
                yield msg
            pending = int(msgs[-1].metadata.num_pending)
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream, info.name)


async def kv_latest(js: JetStreamContext, bucket: str, keys: str) -> dict[str, bytes]:
    """``key -> value`` of every live key of ``bucket`` matching ``keys`` (a subject
    pattern, e.g. ``guard.product.>``); removed keys are left out."""
    prefix = f"$KV.{bucket}."
    values: dict[str, bytes] = {}
    async for msg in read_messages(js, f"KV_{bucket}", prefix + keys, last_per_subject=True):
        headers = msg.headers or {}
        if _KV_OPERATION in headers or _MARKER_REASON in headers:
            continue
        values[msg.subject[len(prefix) :]] = msg.data
    return values
