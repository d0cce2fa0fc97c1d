"""Tenant isolation with the users the operator issues (decentralized JWT auth).

nats-server runs in operator mode; each tenant's creds files come from
``akeneo_operator.natscreds.issue``, exactly what the operator writes into ``<name>-nats``.
Tenant A's users reach A's stream, consumer and bucket and nothing of B's; expired creds and
creds signed by a key the account does not know are refused; a client following its creds
file survives the expiry of the JWT it connected with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from akeneo_connector import creds_watch
from akeneo_connector import dead_letters as dl
from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role, inbox_prefix
from akeneo_connector.nats_jwt import KeyKind, Signer
from akeneo_connector.spec import StreamSpec
from akeneo_operator.natscreds import issue
from akeneo_resync.replay import DeadLetterFilter, redeliver_stream, replay_dead_letters
from akeneo_testing.ground.nats_auth import JwtNatsServer
from tests.security.conftest import stream_messages
from tests.security.reach import assert_out_of_reach

A = ConnectionNames("tenant-a", "shop")
B = ConnectionNames("tenant-b", "shop")
VALIDITY = timedelta(days=30)


def creds_file(server: JwtNatsServer, names: ConnectionNames, role: Role, **kw: Any) -> Path:
    now = kw.pop("now", datetime.now(UTC))
    validity = kw.pop("validity", VALIDITY)
    path = server.data_dir / f"{names.namespace}-{role.value}-{now.timestamp()}.creds"
    path.write_text(issue(names, role, server.authority.issuer, now, validity))
    return path


async def connect(
    server: JwtNatsServer, creds: Path, names: ConnectionNames | None = None, **kw: Any
) -> tuple[Client, list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    options: dict[str, Any] = {"allow_reconnect": False, **kw}
    if names is not None:
        options["inbox_prefix"] = inbox_prefix(names)
    nc = await nats.connect(server.url, user_credentials=str(creds), error_cb=on_error, **options)
    return nc, errors


@pytest.fixture(scope="module")
async def admin(jwt_nats_server: JwtNatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(jwt_nats_server.url, user_credentials=str(jwt_nats_server.admin_creds))
    js = nc.jetstream()
    for names in (A, B):
        await ensure_all(js, names, StreamSpec())
    await js.publish(B.event_subject("product"), b"secret of b", headers={"Nats-Msg-Id": "b-1"})
    await (await js.key_value(B.guard_bucket)).put("guard.product.y", b"b-data")
    yield nc
    await nc.close()


async def test_own_receiver_worker_and_replay_work(jwt_nats_server, admin) -> None:
    server = jwt_nats_server
    receiver, errors_r = await connect(server, creds_file(server, A, Role.RECEIVER), A)
    worker, errors_w = await connect(server, creds_file(server, A, Role.WORKER), A)
    replay, errors_p = await connect(server, creds_file(server, A, Role.REPLAY), A)
    try:
        ack = await receiver.jetstream().publish(
            A.event_subject("product"), b"{}", headers={"Nats-Msg-Id": "own-1"}
        )
        assert ack.stream == A.stream
        # Event Platform notification webhooks, stored by the receiver beside the events
        note = await receiver.jetstream().publish(
            A.notifications_subject, b"{}", headers={"Nats-Msg-Id": "note-1"}
        )
        assert note.stream == A.stream
        wjs = worker.jetstream()
        await wjs.add_consumer(
            A.stream,
            config=ConsumerConfig(
                durable_name=A.consumer,
                filter_subject=f"{A.events_subject}.>",
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        sub = await wjs.pull_subscribe_bind(durable=A.consumer, stream=A.stream)
        (msg,) = await sub.fetch(1, timeout=5)
        await msg.ack_sync()
        # the worker's consumer never sees the notification
        assert (await wjs.consumer_info(A.stream, A.consumer)).num_pending == 0
        kv = await wjs.key_value(A.guard_bucket)
        await kv.put("guard.product.x", b"1")
        assert (await kv.get("guard.product.x")).value == b"1"
        await wjs.publish(
            A.dead_letter_subject, b"{}", headers={dl.SUBJECT: A.event_subject("product")}
        )
        # the replay role: read dead letters, re-deliver the stream, reset the guard
        pjs = replay.jetstream()
        letters = await replay_dead_letters(pjs, A, DeadLetterFilter(include_malformed=True))
        assert letters.scanned == 1
        report = await redeliver_stream(pjs, A, reset_guard=True)
        assert report.published >= 1
        for nc in (receiver, worker, replay):
            await nc.flush(timeout=5)
        assert errors_r == errors_w == errors_p == []
    finally:
        for nc in (receiver, worker, replay):
            await nc.close()


async def test_a_cannot_read_or_write_b(jwt_nats_server, admin) -> None:
    server = jwt_nats_server
    ajs = admin.jetstream()
    bkv = await ajs.key_value(B.guard_bucket)
    before = stream_messages(server, B.stream)
    for role in Role:
        nc, errors = await connect(server, creds_file(server, A, role), A)
        try:
            await assert_out_of_reach(nc, errors, B, ajs, bkv, str(role))
        finally:
            await nc.close()
    assert stream_messages(server, B.stream) == before + len(Role)
    info = await ajs.stream_info(B.stream)
    assert info.state.consumer_count == 0
    assert (await bkv.get("guard.product.y")).value == b"b-data"


async def test_expired_creds_are_refused(jwt_nats_server) -> None:
    server = jwt_nats_server
    old = datetime.now(UTC) - timedelta(days=31)
    expired = creds_file(server, A, Role.WORKER, now=old)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(server, expired, A, connect_timeout=2)


async def test_creds_signed_by_an_unknown_key_are_refused(jwt_nats_server) -> None:
    server = jwt_nats_server
    rogue = Signer.generate(KeyKind.ACCOUNT)  # not a signing key of the account
    path = server.data_dir / "rogue.creds"
    path.write_text(server.authority.user_creds([">"], [">"], signer=rogue))
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(server, path, connect_timeout=2)


async def test_a_client_following_its_creds_file_outlives_the_first_jwt(
    jwt_nats_server, admin
) -> None:
    """The server cuts a connection when its JWT expires; renewal must reach it before."""
    server = jwt_nats_server
    # Both clients must connect, and the renewal reach the follower, before the first JWT
    # expires: 10 s leaves room for a loaded 2-core CI (4 s was tight there).
    short = timedelta(seconds=10)
    now = datetime.now(UTC)
    followed = creds_file(server, A, Role.RECEIVER, now=now, validity=short)
    unfollowed = creds_file(server, A, Role.RECEIVER, now=now + timedelta(microseconds=1),
                            validity=short)  # fmt: skip
    kept, _ = await connect(server, followed, A, allow_reconnect=True, max_reconnect_attempts=-1)
    cut, _ = await connect(server, unfollowed, A, allow_reconnect=True, max_reconnect_attempts=-1)
    task = creds_watch.start(kept, followed, interval=0.2)
    try:
        renewed = issue(A, Role.RECEIVER, server.authority.issuer, datetime.now(UTC), VALIDITY)
        followed.write_text(renewed)  # what the kubelet does when the operator renews
        await asyncio.sleep(short.total_seconds() + 2)
        assert kept.is_connected, "the following client was cut at the old JWT's expiry"
        ack = await kept.jetstream().publish(A.event_subject("product"), b"after renewal")
        assert ack.stream == A.stream
        assert not cut.is_connected  # without following, "User Authentication Expired"
    finally:
        await kept.close()
        await cut.close()
        await asyncio.wait_for(task, 5)
