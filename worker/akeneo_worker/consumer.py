"""The worker's durable pull consumer on the connection's stream."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from akeneo_connector.names import ConnectionNames


def consumer_config(
    names: ConnectionNames, *, max_deliver: int, ack_wait: float, max_ack_pending: int
) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=names.consumer,
        description=f"worker of {names.ref}",
        filter_subject=f"{names.events_subject}.>",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        # One spare delivery beyond maxDeliver: the worker dead-letters a message on its
        # maxDeliver-th failure itself; the spare covers a crash during that last try.
        max_deliver=max_deliver + 1,
        max_ack_pending=max_ack_pending,
    )


async def ensure_consumer(
    js: JetStreamContext, names: ConnectionNames, config: ConsumerConfig
) -> Any:
    """Create the durable consumer, or update it in place (same name, new settings)."""
    await js.add_consumer(names.stream, config=config)
    return await js.pull_subscribe_bind(durable=names.consumer, stream=names.stream)
