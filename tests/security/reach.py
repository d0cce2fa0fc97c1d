"""One tenant's NATS connection against another tenant's stream: every way in is refused.

Shared by the static-user tests (``test_tenant_isolation``) and the operator-issued JWT tests
(``test_operator_creds``): the probe is the same whichever way the credentials were made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from nats.js.kv import KeyValue

from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import inbox_prefix

# A denied request never gets an answer (nats-server drops it with a permissions -ERR).
DENIED = (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError)


async def assert_out_of_reach(
    nc: Client,
    errors: list[str],
    other: ConnectionNames,
    owner_js: Any,
    other_kv: KeyValue,
    label: str,
) -> None:
    """``nc`` (tenant A) can neither read nor write ``other`` (tenant B), nor see B's traffic.

    ``owner_js`` is a JetStream context allowed on B; it publishes to B meanwhile so the spy
    subscriptions would see it if they could. ``errors`` collects ``nc``'s async errors.
    """
    js = nc.jetstream(timeout=0.5)
    seen: list[bytes] = []

    async def spy(msg: Any) -> None:
        seen.append(msg.data)

    # reading B: its subjects, its KV subjects, its inbox, the shared inbox, everything
    for subject in (
        f"{other.subject_prefix}.>",
        f"$KV.{other.guard_bucket}.>",
        f"{inbox_prefix(other)}.>",
        "_INBOX.>",
        ">",
    ):
        await nc.subscribe(subject, cb=spy)
    await nc.flush(timeout=5)  # a round trip: every -ERR for the above has arrived
    # writing B: a raw publish and a JetStream publish
    await nc.publish(other.event_subject("product"), b"forged")
    with pytest.raises(DENIED):
        await js.publish(other.event_subject("product"), b"forged")
    # B's JetStream API: stream, consumer, messages, bucket (all at once: each times out)
    calls = [
        js.stream_info(other.stream),
        js.get_msg(other.stream, 1),
        js.consumer_info(other.stream, other.consumer),
        js.add_consumer(other.stream, durable_name="stolen"),
        js.add_consumer(other.stream, config=ConsumerConfig(filter_subject=">")),
        js.delete_stream(other.stream),
        js.purge_stream(other.stream),
        js.delete_msg(other.stream, 1),
        js.key_value(other.guard_bucket),
        nc.request(f"$JS.API.DIRECT.GET.KV_{other.guard_bucket}", b"{}", timeout=0.5),
        nc.request(f"$JS.API.CONSUMER.MSG.NEXT.{other.stream}.{other.consumer}", b"1", timeout=0.5),
        nc.request(f"$KV.{other.guard_bucket}.guard.product.y", b"overwrite", timeout=0.5),
    ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, DENIED) for o in outcomes), (label, outcomes)
    # what B's own clients publish meanwhile never reaches A's spy subscriptions
    await owner_js.publish(
        other.event_subject("product"), b"later b", headers={"Nats-Msg-Id": f"b-{label}"}
    )
    await other_kv.put("guard.product.z", b"more b-data")
    await nc.flush(timeout=5)
    assert seen == [], label
    violations = [e for e in errors if "permissions violation" in e.lower()]
    assert len(violations) >= 5 and len(violations) == len(errors), errors
