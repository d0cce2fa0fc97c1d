"""The operator rotates a managed subscription's secrets, on the real API server with the
simulator's management API over TLS (the fixtures of ``test_managed_subscription``).

kwok makes the receiver pods ready but runs no receiver: their reports of loaded secrets are
written into the bucket here, as each receiver writes its own (``secret_report``; a test of
the receiver covers that part, ``tests/integration/receiver/test_secret_rotation.py`` the
whole rotation under delivery). Until they report the new secret the operator waits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.js.errors
import pytest

from akeneo_connector.names import ConnectionNames
from akeneo_connector.secret_report import fingerprint, report, report_key
from akeneo_operator.kubeclient import KubeClient
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.platform import Subscription
from akeneo_testing.ground.nats import NatsServer
from tests.integration.operator.running import API, OperatorProcess, connection, poll
from tests.integration.operator.test_managed_subscription import (
    NS,
    ManagementApi,
    body_of,
    client,
    ep_status,
    management,
    operator_setup,
    secret_values,
    simulator,
    spec,
    with_condition,
)

__all__ = ["client", "management", "operator_setup", "simulator"]  # fixtures, shared

pytestmark = pytest.mark.kube
NAME = "turn"
ANNOTATION = "akeneo.connectors.dev/rotate-secrets"
DEAD = f"{NAME}-receiver-0ld-z"


def signing(sub: Subscription) -> tuple[str, str | None]:
    """What the platform signs deliveries with now (primary, secondary)."""
    return sub.primary, sub.secondary


def rotation_of(body: dict[str, Any]) -> dict[str, Any]:
    return dict((body.get("status") or {}).get("secretRotation") or {})


async def put_reports(url: str, names: ConnectionNames, sub: list[str], note: list[str]) -> None:
    """What two receiver pods that loaded these secrets would report."""
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(names.guard_bucket)
        for pod in (f"{NAME}-receiver-5d9c-a", f"{NAME}-receiver-5d9c-b"):
            got = report(pod, datetime.now(UTC), sub, note)
            await kv.put(report_key(pod), got.to_bytes())
        # the last word of a pod long gone (the old secret only): ignored, then purged
        dead = report(DEAD, datetime.now(UTC) - timedelta(hours=2), sub[:1], note[:1])
        await kv.put(report_key(DEAD), dead.to_bytes())
    finally:
        await nc.close()


async def test_a_rotation_waits_for_the_receivers_then_promotes(
    operator: OperatorProcess,
    client: KubeClient,
    simulator: PimSimulator,
    management: ManagementApi,
    own_nats: NatsServer,
) -> None:
    ops = (operator,)
    await client.create(connection(NS, NAME, spec(simulator, NAME, host="turn.hooks.example.com")))

    async def active() -> dict[str, Any] | None:
        return await with_condition(client, NAME, "EventSubscriptionActive", "True", "Active")

    ids = ep_status(await poll(active, timeout=90, what="subscription active", operators=ops))
    await poll(
        lambda: with_condition(client, NAME, "ReceiverReady", "True"),
        timeout=60, what="receiver ready", operators=ops,
    )  # fmt: skip
    platform = management.platform
    sub = platform.subscriptions[ids["subscriptionId"]]
    before = await secret_values(client, f"{NAME}-events")
    old_sub = before["eventPlatformSecrets"].split()
    old_note = before["eventPlatformNotificationSecret"].split()
    assert len(old_sub) == 1 and signing(sub) == (old_sub[0], None)

    patch = {"metadata": {"annotations": {ANNOTATION: "2026-12-04"}}}
    await client.merge_patch(API, "AkeneoConnection", NS, NAME, patch)

    async def waiting() -> dict[str, Any] | None:
        return await with_condition(client, NAME, "SecretRotation", "False", "WaitingForReceivers")

    body = await poll(waiting, timeout=60, what="waiting for the receivers", operators=ops)
    state = rotation_of(body)
    assert state["request"] == "2026-12-04"
    assert state["eventPlatform"]["phase"] == "WaitingForReceivers"
    added = await secret_values(client, f"{NAME}-events")
    new_sub = added["eventPlatformSecrets"].split()
    new_note = added["eventPlatformNotificationSecret"].split()
    assert new_sub[0] == old_sub[0] and len(new_sub) == 2
    assert new_note[0] == old_note[0] and len(new_note) == 2
    assert state["eventPlatform"]["new"] == fingerprint(new_sub[1])
    # the subscription signs with the old and the new one; the subscriber keeps the old one
    assert signing(sub) == (old_sub[0], new_sub[1])
    subscriber = platform.subscribers[ids["subscriberId"]]
    assert subscriber.notification_webhook_secret == old_note[0]
    # no receiver reported: it stays so, and says why (kwok's ready pods report nothing)
    body = await poll(waiting, timeout=10, what="still waiting", operators=ops)
    message = next(
        c["message"] for c in body["status"]["conditions"] if c["type"] == "SecretRotation"
    )
    assert "ready pod without a report" in message
    assert await with_condition(client, NAME, "Ready", "True") is not None  # not a fault

    # a new operator picks the rotation up from status: the same new secrets, still waiting
    log_before = operator.log
    operator.stop()
    operator.start()
    body = await poll(waiting, timeout=90, what="waiting after a restart", operators=ops)
    assert rotation_of(body)["eventPlatform"] == state["eventPlatform"]
    assert await secret_values(client, f"{NAME}-events") == added
    assert signing(sub) == (old_sub[0], new_sub[1])

    names = ConnectionNames(NS, NAME)
    await put_reports(own_nats.url, names, new_sub, new_note)

    async def promoted() -> dict[str, Any] | None:
        return await with_condition(client, NAME, "SecretRotation", "False", "RetiringOldSecret")

    body = await poll(promoted, timeout=60, what="promoted", operators=ops)
    after = await secret_values(client, f"{NAME}-events")
    assert after["eventPlatformSecrets"].split() == [new_sub[1], old_sub[0]]
    assert after["eventPlatformNotificationSecret"].split() == [new_note[1], old_note[0]]
    assert signing(sub) == (new_sub[1], old_sub[0])
    subscriber = platform.subscribers[ids["subscriberId"]]
    assert subscriber.notification_webhook_secret == new_note[1]
    assert rotation_of(body)["eventPlatform"]["phase"] == "Retiring"
    nc = await nats.connect(own_nats.url)
    try:
        kv = await nc.jetstream().key_value(names.guard_bucket)
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get(report_key(DEAD))
    finally:
        await nc.close()
    # the old one stays accepted for the retry horizon (65 min) before it is dropped

    # no secret in status, Events or the operator's log (at debug level)
    events = await client.list("v1", "Event", NS)
    texts = [json.dumps(await body_of(client, NAME)), json.dumps(events), log_before, operator.log]
    for secret in {*old_sub, *new_sub, *old_note, *new_note}:
        assert not [t for t in texts if secret in t]
    reasons = {e.get("reason") for e in events}
    assert {"SecretRotationStarted", "SecretPromoted"} <= reasons
