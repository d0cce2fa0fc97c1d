"""Sink down -> retries -> dead letter -> replay -> applied; webhook 4xx vs 5xx; malformed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from akeneo_connector import dead_letters as dl
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import WebhookSignature
from akeneo_resync.replay import DeadLetterFilter, replay_dead_letters
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.sinks.webhook import Signer, WebhookSink
from tests.integration.worker.support import (
    WebhookReceiver,
    dead_letters,
    event,
    eventually,
    publish,
    running,
    sqlite_state,
)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
async def hook(ca: CertificateAuthority, tmp_path: Path) -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver(ca).start(tmp_path)
    try:
        yield receiver
    finally:
        await receiver.stop()


def webhook_sink(hook: WebhookReceiver, ca: CertificateAuthority) -> WebhookSink:
    return WebhookSink(
        hook.url,
        signer=Signer.from_text(hook.signing_secret, WebhookSignature(hook.signature)),
        allow_private=True,  # the test endpoint is on 127.0.0.1
        ssl_context=ca.client_context(),
        timeout=5,
    )


async def test_sink_down_retries_then_dead_letter_then_replay_applies(
    js: JetStreamContext, names: ConnectionNames, hook: WebhookReceiver, ca: CertificateAuthority
) -> None:
    hook.status = 503
    await publish(js, names, event(names, "p1", 1))
    await publish(js, names, event(names, "p2", 2))
    async with running(js, names, webhook_sink(hook, ca)) as worker:
        await eventually(lambda: worker.metrics.counts["dead_lettered"] == 2, what="dead letters")
        assert worker.metrics.retried._value.get() == 2 * 2  # maxDeliver 3: two retries each
        assert hook.requests >= 3 and hook.bad_signatures == 0
        letters = await dead_letters(js, names)
        assert len(letters) == 2
        for letter in letters:
            assert letter.headers[dl.CAUSE] == dl.CAUSE_EXHAUSTED
            assert letter.headers[dl.REASON] == "webhook answered 503"
            assert letter.headers[dl.DELIVERIES] == "3"
        assert hook.live() == {}

        hook.status = 200  # the merchant's endpoint is back
        report = await replay_dead_letters(js, names, DeadLetterFilter(key="p1"))
        assert (report.scanned, report.published, report.removed) == (2, 1, 1)
        await eventually(lambda: "p1" in hook.live(), what="p1 applied after replay")
        report = await replay_dead_letters(js, names)
        assert report.published == 1
        await eventually(lambda: "p2" in hook.live(), what="p2 applied after replay")
        assert await dead_letters(js, names) == []
        assert hook.live()["p1"]["n"] == 1 and hook.live()["p2"]["n"] == 2


async def test_webhook_4xx_dead_letters_at_once_5xx_is_retried(
    js: JetStreamContext, names: ConnectionNames, hook: WebhookReceiver, ca: CertificateAuthority
) -> None:
    hook.status = 422
    await publish(js, names, event(names, "rejected", 1))
    async with running(js, names, webhook_sink(hook, ca)) as worker:
        await eventually(lambda: worker.metrics.counts["dead_lettered"] == 1, what="dead letter")
        assert worker.metrics.retried._value.get() == 0
        (letter,) = await dead_letters(js, names)
        assert letter.headers[dl.CAUSE] == dl.CAUSE_REJECTED
        assert letter.headers[dl.DELIVERIES] == "1"
        assert letter.headers[dl.REASON] == "webhook answered 422"
        assert letter.headers[dl.RESOURCE] == "product/rejected"

        hook.status = 500
        await publish(js, names, event(names, "flaky", 1))
        await eventually(lambda: worker.metrics.retried._value.get() >= 1, what="a retry")
        hook.status = 200
        await eventually(lambda: "flaky" in hook.live(), what="applied after retries")
        assert worker.metrics.counts["dead_lettered"] == 1
    assert hook.bad_signatures == 0


async def test_a_malformed_message_is_dead_lettered_and_does_not_block_others(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    await publish(js, names, event(names, "before", 1))
    await js.publish(names.event_subject("product"), b'{"not": "an event"}')
    await js.publish(names.event_subject("product"), b"\xff garbage")
    await publish(js, names, event(names, "after", 2))
    async with running(js, names, SqliteSink(db)) as worker:
        await eventually(
            lambda: set(sqlite_state(db)) == {"before", "after"}, what="others applied"
        )
        await eventually(lambda: worker.metrics.counts["dead_lettered"] == 2, what="dead letters")
    letters = await dead_letters(js, names)
    assert [m.data for m in letters] == [b'{"not": "an event"}', b"\xff garbage"]
    for letter in letters:
        assert letter.headers[dl.CAUSE] == dl.CAUSE_MALFORMED
        assert letter.headers[dl.REASON].startswith("malformed message:")
    assert letters[0].headers[dl.REASON].endswith("unknown field `not`")  # what is wrong, where
    # Replaying dead letters leaves malformed ones alone unless asked.
    report = await replay_dead_letters(js, names)
    assert (report.scanned, report.published) == (2, 0)
