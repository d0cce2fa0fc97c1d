"""The clustered JetStream of the test ground: replicas 3 really spread, and a node's death
(SIGKILL, the stream leader's included) loses no acknowledged publish."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from akeneo_connector.jetstream import Outcome, ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_servers import failover_options
from akeneo_connector.spec import StreamSpec
from akeneo_testing.ground.nats_cluster import NatsCluster, stream_leader


async def connect(cluster: NatsCluster) -> Client:
    """As the receiver, worker and operator do: every server, failing over at once."""
    return await nats.connect(**failover_options(cluster.url), connect_timeout=2)


async def test_ensure_all_creates_stream_and_bucket_on_three_servers(
    nats_cluster: NatsCluster,
) -> None:
    names = ConnectionNames.parse("cluster/replicas")
    nc = await connect(nats_cluster)
    try:
        js = nc.jetstream(timeout=10)
        stream, bucket = await ensure_all(js, names, StreamSpec(replicas=3))
        assert (stream.outcome, bucket.outcome) == (Outcome.CREATED, Outcome.CREATED)
        for name in (names.stream, f"KV_{names.guard_bucket}"):
            info = await js.stream_info(name)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and info.cluster.leader
            followers = {r.name for r in info.cluster.replicas or []}
            assert {info.cluster.leader, *followers} == {"n1", "n2", "n3"}, info.cluster
    finally:
        await nc.close()


async def publish_until_acked(
    js: JetStreamContext, subject: str, payload: bytes, deadline: float
) -> int:
    """Publish (same Nats-Msg-Id on each retry, as the receiver does) until acked."""
    while True:
        try:
            ack = await js.publish(subject, payload, timeout=1, headers={"Nats-Msg-Id": subject})
            return ack.seq
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_acked_publishes_survive_sigkill_of_the_stream_leader(
    nats_cluster: NatsCluster,
) -> None:
    names = ConnectionNames.parse("cluster/leader-kill")
    nc = await connect(nats_cluster)
    try:
        js = nc.jetstream(timeout=5)
        await ensure_all(js, names, StreamSpec(replicas=3))
        subject = names.event_subject("product")
        acked = [
            await publish_until_acked(js, f"{subject}.{i}", b"before", time.monotonic() + 10)
            for i in range(50)
        ]
        leader = nats_cluster.node(await stream_leader(js, names.stream))
        leader.kill()
        # acked while the old leader is dead: the survivors elect a new one and store them
        deadline = time.monotonic() + 30
        acked += [
            await publish_until_acked(js, f"{subject}.{i}", b"during", deadline)
            for i in range(50, 60)
        ]
        new_leader = await stream_leader(js, names.stream)
        assert new_leader != leader.name
        await asyncio.to_thread(nats_cluster.restart, leader)
        info = await js.stream_info(names.stream)
        assert info.state.messages == 60
        sub = await js.pull_subscribe(f"{subject}.>", durable="check")
        seen: list[str] = []
        while len(seen) < 60:
            for msg in await sub.fetch(60, timeout=5):
                seen.append(msg.subject)
                await msg.ack()
        assert sorted(seen) == sorted(f"{subject}.{i}" for i in range(60))
        assert sorted(acked) == list(range(1, 61))
    finally:
        await nc.close()


async def test_a_client_leaves_its_killed_server_for_a_live_one_at_once(
    nats_cluster: NatsCluster,
) -> None:
    """What every component does with the whole list: no waiting for the dead one."""
    nc = await connect(nats_cluster)
    assert nc.connected_url is not None
    node = next(n for n in nats_cluster.nodes if n.port == nc.connected_url.port)
    try:
        node.kill()
        killed = time.monotonic()
        while not (nc.is_connected and nc.connected_url.port != node.port):
            assert time.monotonic() - killed < 2.0, "still not on a live server after 2 s"
            await asyncio.sleep(0.01)
        await nc.flush(timeout=2)  # the new server really answers
    finally:
        await nc.close()
        await asyncio.to_thread(nats_cluster.restart, node)
