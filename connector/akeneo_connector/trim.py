"""Room in a stream near its quota: the events the worker applied go first.

Apart from ``akeneo_connector.jetstream`` (which explains the quotas) so that the worker,
which runs it, does not load the CRD's models with it (``bench/footprint.py``).
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from akeneo_connector.names import ConnectionNames

TRIM_AT = 0.5  # share of max_bytes or max_msgs past which applied events are purged


async def trim_applied(js: JetStreamContext, names: ConnectionNames) -> int:
    """Purge the events the worker's consumer has acknowledged, once the stream holds more
    than ``TRIM_AT`` of its ``max_bytes`` or ``max_msgs``; returns how many were purged.

    Only ``<prefix>.events.>`` up to the consumer's ack floor (every event up to it is
    acknowledged) goes: dead letters and notifications stay, an unapplied event is never
    touched. Nothing is purged without the worker's consumer.
    """
    info = await js.stream_info(names.stream)
    config, state = info.config, info.state
    full = any(
        limit is not None and limit > 0 and used > TRIM_AT * limit
        for used, limit in ((state.bytes, config.max_bytes), (state.messages, config.max_msgs))
    )
    if not full:
        return 0
    try:
        consumer = await js.consumer_info(names.stream, names.consumer)
    except NotFoundError:
        return 0
    floor = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else None
    if not floor or floor < state.first_seq:
        return 0
    await js.purge_stream(names.stream, seq=floor + 1, subject=f"{names.events_subject}.>")
    after = await js.stream_info(names.stream)
    return max(0, state.messages - after.state.messages)
