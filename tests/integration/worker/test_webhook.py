"""The webhook sink's signatures, checked by the merchant's side: Standard Webhooks and legacy.

Standard Webhooks, https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
(version 1.0.0), says what the merchant's library checks:

- "the message's: ID, timestamp and body are concatenated (delimited by full-stops) and then
  signed. The content to be signed is therefore: `msg_id.timestamp.payload`."
- "a symmetric signature will be v1, followed by a comma (`,`), followed by the base64
  encoded signature"; secrets are "base64 encoded, prefixed with `whsec_`".
- "`webhook-id`: the unique webhook identifier [...] `webhook-timestamp`: integer unix
  timestamp (seconds since epoch). `webhook-signature`: the signature(s) of this webhook."
- "The signature header is a space delimited list of signatures [...] to support zero
  downtime secret rotation."
- The id "remains the same no matter how many times a webhook that has failed is retried";
  "Every time an attempt is retried the timestamp of the attempt is updated".

Every POST goes through real TLS to a real aiohttp endpoint that verifies it with the
``standardwebhooks`` package, an implementation independent of ours.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import WebhookSignature
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.sinks import webhook as webhook_module
from akeneo_worker.sinks.webhook import Signer, WebhookSink
from tests.integration.worker.support import (
    LEGACY_SECRET,
    STANDARD_SECRETS,
    Post,
    WebhookReceiver,
    event,
    eventually,
    publish,
    running,
    standard_verifies,
)

README = Path(__file__).resolve().parents[3] / "README.md"
OTHER_SECRET = "whsec_" + base64.b64encode(b"\x07" * 32).decode()
SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]+={0,2}$")


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


def sink_for(hook: WebhookReceiver, ca: CertificateAuthority, signer: Signer) -> WebhookSink:
    return WebhookSink(
        hook.url, signer=signer, allow_private=True, ssl_context=ca.client_context(), timeout=5
    )


def signer_of(hook: WebhookReceiver) -> Signer:
    return Signer.from_text(hook.signing_secret, WebhookSignature(hook.signature))


def batch_id(change_ids: list[str]) -> str:
    """The documented id of a POST of several changes (README, webhook contract)."""
    joined = "\n".join(sorted(set(change_ids)))
    return "batch_" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def spec_signature(secret: str, post: Post) -> str:
    """``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.payload">``, from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = b"%s.%s.%s" % (
        post.headers["webhook-id"].encode(),
        post.headers["webhook-timestamp"].encode(),
        post.body,
    )
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


async def test_every_post_verifies_with_the_standardwebhooks_library(
    js: JetStreamContext, names: ConnectionNames, hook: WebhookReceiver, ca: CertificateAuthority
) -> None:
    for n in range(1, 7):  # one batch of several changes...
        await publish(js, names, event(names, f"p{n}", n))
    async with running(js, names, sink_for(hook, ca, signer_of(hook))) as worker:
        await eventually(lambda: worker.metrics.counts["applied"] == 6, what="first batch")
        await publish(js, names, event(names, "p1", 10))  # ...then a POST of one change
        await eventually(lambda: worker.metrics.counts["applied"] == 7, what="single change")
    assert hook.bad_signatures == 0 and len(hook.live()) == 6
    singles = 0
    for post in hook.posts:
        headers, ids = post.headers, post.change_ids
        assert standard_verifies(STANDARD_SECRETS[0], post)
        assert headers["webhook-signature"] == spec_signature(STANDARD_SECRETS[0], post)
        assert SIGNATURE.match(headers["webhook-signature"])
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
        assert "X-Connector-Signature" not in headers and "X-Connector-Timestamp" not in headers
        if len(ids) == 1:
            singles += 1
            assert headers["webhook-id"] == ids[0]  # the change's own idempotency key
        else:
            assert headers["webhook-id"] == batch_id(ids)
            assert headers["webhook-id"] == batch_id(ids[::-1])  # the set, not the order
        assert "." not in headers["webhook-id"]  # the spec: ids must not contain "."
    assert singles >= 1 and any(len(p.change_ids) > 1 for p in hook.posts)

    # the checks can fail: an altered body, or a secret the merchant does not hold
    post = hook.posts[0]
    assert not standard_verifies(OTHER_SECRET, post)
    assert not standard_verifies(STANDARD_SECRETS[0], Post(post.headers, post.body + b" "))


async def test_rotation_both_secrets_sign_and_a_rotated_file_is_followed(
    js: JetStreamContext,
    names: ConnectionNames,
    ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_module, "RELOAD_INTERVAL", 0.05)
    hook = await WebhookReceiver(ca, secrets=STANDARD_SECRETS).start(tmp_path)
    secret_file = tmp_path / "signingSecret"
    secret_file.write_text(hook.signing_secret)  # old and new, one per line
    try:
        signer = Signer.from_file(secret_file, WebhookSignature.STANDARD)
        async with running(js, names, sink_for(hook, ca, signer)) as worker:
            await publish(js, names, event(names, "p1", 1))
            await eventually(lambda: worker.metrics.counts["applied"] == 1, what="applied")
            assert hook.bad_signatures == 0  # the receiver checked each secret alone
            rotating = hook.posts[-1]
            signatures = rotating.headers["webhook-signature"].split(" ")
            assert signatures == [spec_signature(s, rotating) for s in STANDARD_SECRETS]
            for secret in STANDARD_SECRETS:
                assert standard_verifies(secret, rotating)
            assert not standard_verifies(OTHER_SECRET, rotating)

            # the merchant switched: the old secret is removed from the Secret's file
            hook.secrets = STANDARD_SECRETS[1:]
            secret_file.write_text(STANDARD_SECRETS[1] + "\n")
            await asyncio.sleep(0.1)  # past RELOAD_INTERVAL: the next POST re-reads it
            await publish(js, names, event(names, "p1", 2))
            await eventually(lambda: worker.metrics.counts["applied"] == 2, what="applied")
            after = hook.posts[-1]
            assert len(after.headers["webhook-signature"].split(" ")) == 1
            assert standard_verifies(STANDARD_SECRETS[1], after)
            assert not standard_verifies(STANDARD_SECRETS[0], after)

            # a broken rotation (a raw secret) keeps the secrets that work
            secret_file.write_text("oops-a-raw-secret\n")
            await asyncio.sleep(0.1)
            await publish(js, names, event(names, "p1", 3))
            await eventually(lambda: worker.metrics.counts["applied"] == 3, what="applied")
            assert standard_verifies(STANDARD_SECRETS[1], hook.posts[-1])
        assert hook.bad_signatures == 0
    finally:
        await hook.stop()


async def test_a_retried_change_carries_the_same_webhook_id_and_a_newer_timestamp(
    js: JetStreamContext, names: ConnectionNames, hook: WebhookReceiver, ca: CertificateAuthority
) -> None:
    hook.status = 503
    await publish(js, names, event(names, "p1", 1))
    async with running(js, names, sink_for(hook, ca, signer_of(hook))) as worker:
        await eventually(lambda: hook.requests >= 2, what="a retry")
        hook.status = 200
        await eventually(lambda: worker.metrics.counts["applied"] == 1, what="applied")
    ids = {p.headers["webhook-id"] for p in hook.posts}
    assert ids == {hook.posts[0].change_ids[0]} and len(hook.posts) >= 3
    stamps = [int(p.headers["webhook-timestamp"]) for p in hook.posts]
    assert stamps == sorted(stamps)
    assert hook.bad_signatures == 0


async def test_legacy_signature_keeps_the_x_connector_headers_with_the_first_secret(
    js: JetStreamContext, names: ConnectionNames, ca: CertificateAuthority, tmp_path: Path
) -> None:
    hook = await WebhookReceiver(
        ca, secrets=(LEGACY_SECRET, "another-line"), signature="legacy"
    ).start(tmp_path)
    try:
        async with running(js, names, sink_for(hook, ca, signer_of(hook))) as worker:
            for n in (1, 2):
                await publish(js, names, event(names, f"p{n}", n))
            await eventually(lambda: worker.metrics.counts["applied"] == 2, what="applied")
        assert hook.bad_signatures == 0 and hook.posts
        for post in hook.posts:  # verified by the receiver with the first line only
            assert re.fullmatch(r"[0-9a-f]{64}", post.headers["X-Connector-Signature"])
            assert not any(h.lower().startswith("webhook-") for h in post.headers)
        # the check can fail: a receiver keyed with the second line refuses the same POST
        hook.secrets = ("another-line",)
        assert not hook._verified(hook.posts[0])
    finally:
        await hook.stop()


def readme_example() -> Callable[..., Any]:
    """The README's five-line verification example, as a merchant's handler would run it."""
    section = README.read_text().split("### Webhook contract", 1)[1].split("\n### ", 1)[0]
    code = textwrap.dedent(section.split("```python\n", 1)[1].split("```", 1)[0])
    assert len([line for line in code.splitlines() if line.strip()]) == 5, code
    source = "def handle(request_body_bytes, request_headers, SIGNING_SECRET, apply_once):\n"
    source += "  try:\n" + textwrap.indent(code, "    ") + "    return 204\n"
    source += "  except __import__('standardwebhooks').WebhookVerificationError:\n"
    source += "    return 401\n"
    scope: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), scope)
    return scope["handle"]  # type: ignore[no-any-return]


async def test_the_readme_verification_example_works_on_a_real_post(
    js: JetStreamContext, names: ConnectionNames, hook: WebhookReceiver, ca: CertificateAuthority
) -> None:
    async with running(js, names, sink_for(hook, ca, signer_of(hook))) as worker:
        await publish(js, names, event(names, "p1", 1))
        await eventually(lambda: worker.metrics.counts["applied"] == 1, what="applied")
    handle, post = readme_example(), hook.posts[0]
    applied: list[str] = []

    def apply_once(change_id: str, change: dict[str, Any]) -> None:
        applied.append(change_id)

    assert handle(post.body, post.headers, STANDARD_SECRETS[0], apply_once) == 204
    assert applied == post.change_ids
    assert handle(post.body + b" ", post.headers, STANDARD_SECRETS[0], apply_once) == 401
    assert handle(post.body, post.headers, OTHER_SECRET, apply_once) == 401


def test_worker_refuses_a_raw_secret_for_standard_signatures_and_names_the_way_out(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "signingSecret"
    secret_file.write_text("merchant-raw-secret\n")
    env = dict(
        os.environ,
        AKENEO_CONNECTION="tenant-worker/raw",
        AKENEO_NATS_URL="nats://127.0.0.1:1",  # never reached: the sink is refused first
        AKENEO_SINK="webhook",
        AKENEO_WEBHOOK_URL="https://127.0.0.1:9/hook",
        AKENEO_WEBHOOK_SIGNING_SECRET_FILE=str(secret_file),
    )
    done = subprocess.run(
        [sys.executable, "-m", "akeneo_cli", "worker", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "line 1 is not a whsec_ secret" in done.stderr
    assert "signature: legacy" in done.stderr
    assert "merchant-raw-secret" not in done.stderr and "Traceback" not in done.stderr
