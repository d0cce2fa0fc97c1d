"""A whole secret rotation while the Event Platform delivers continuously: not one 401.

Real parts: two receivers over TLS behind a per-request round robin (an ingress, TLS on both
legs), a real nats-server, the simulated Event Platform delivering and notifying, its
management API driven through the operator's client (``akeneo_pim.event_platform_api``), and
the operator's rotation driver (``akeneo_operator.rotation_driver``) deciding each step from
the receivers' own reports. The Secret is a dict here; a "kubelet" copies it into each
receiver's files late (one receiver much later, and at first not at all), as Kubernetes
updates a mounted Secret. Akeneo: "We generate two signatures for each payload to facilitate
secret rotation on your side" (https://api.akeneo.com/event-platform/concepts.html).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from nats.errors import Error as NatsError

from akeneo_connector.event_types import PREFIX
from akeneo_connector.secret_report import SecretReport, fingerprint, report_key
from akeneo_operator.rotation import ReceiverView, RotationState, Track
from akeneo_operator.rotation_driver import SecretView, turn
from akeneo_operator.subscription import generate_secret
from akeneo_pim.event_platform_api import Contact, EventPlatformApi, SubscriptionRequest
from akeneo_pim.paths import EVENT_PLATFORM_PATH, NOTIFICATIONS_PATH
from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.signatures import event_platform_headers, notification_headers
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.platform import PlatformSettings
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.receiver.conftest import Running, StartReceiver, poll

SUB, NOTE = Track.SUBSCRIPTION, Track.NOTIFICATION
FILES = {SUB: "eventPlatformSecrets", NOTE: "eventPlatformNotificationSecret"}
EVENTS = [f"{PREFIX}product.updated", f"{PREFIX}product.created"]
HORIZON = {SUB: timedelta(seconds=2), NOTE: timedelta(seconds=1)}  # 65 min / 1 min for real
EMAIL = "ops@example.com"


class Ingress:
    """Per-request round robin over the receivers, TLS on both legs, as an ingress
    controller balances a Service's pods; counts each receiver's answers."""

    def __init__(self, ca: CertificateAuthority, ports: Sequence[int]) -> None:
        self.ca, self.ports = ca, list(ports)
        self.next = itertools.cycle(self.ports)
        self.answers: Counter[tuple[int, int]] = Counter()  # (port, status)
        self.runner: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self, files: Path) -> int:
        self.ca.issue("localhost").write(files / "ingress.crt", files / "ingress.key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files / "ingress.crt", files / "ingress.key")
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ca.client_context())
        )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def forward(self, request: web.Request) -> web.Response:
        assert self.http is not None
        port = next(self.next)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        url = f"https://localhost:{port}{request.path}"
        async with self.http.post(url, data=await request.read(), headers=headers) as got:
            body = await got.read()
            self.answers[port, got.status] += 1
            return web.Response(status=got.status, body=body, content_type=got.content_type)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.http is not None:
            await self.http.close()


def _swap(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class World:
    """The Secret, a late kubelet per receiver, the management API: the driver's IO."""

    def __init__(
        self,
        receivers: list[Running],
        api: EventPlatformApi,
        subscriber_id: str,
        subscription_id: str,
        destination: str,
        notification_url: str,
        secret: Mapping[Track, tuple[str, ...]],
    ) -> None:
        self.receivers, self.api = receivers, api
        self.subscriber_id, self.subscription_id = subscriber_id, subscription_id
        self.destination, self.notification_url = destination, notification_url
        self.secret = dict(secret)
        self.delays = {r.config.pod: d for r, d in zip(receivers, (0.2, 1.5), strict=True)}
        self.released = {r.config.pod: asyncio.Event() for r in receivers}
        for event in self.released.values():
            event.set()
        self.syncs: set[asyncio.Task[None]] = set()
        for r in receivers:
            self._write(r)

    def _write(self, r: Running) -> None:
        for track, name in FILES.items():
            _swap(r.files / name, "".join(f"{line}\n" for line in self.secret[track]))

    async def _kubelet(self, r: Running, snapshot: dict[Track, tuple[str, ...]]) -> None:
        await asyncio.sleep(self.delays[r.config.pod])
        await self.released[r.config.pod].wait()
        if snapshot == self.secret:  # the kubelet writes what the Secret holds then
            self._write(r)

    # -- RotationIO --------------------------------------------------------------------------

    async def read_secret(self) -> SecretView:
        return SecretView(True, dict(self.secret), datetime(2026, 1, 1, tzinfo=UTC))

    async def write_secret(self, lines: Mapping[Track, tuple[str, ...]]) -> None:
        self.secret.update(lines)
        snapshot = dict(self.secret)
        for r in self.receivers:
            task = asyncio.create_task(self._kubelet(r, snapshot))
            self.syncs.add(task)
            task.add_done_callback(self.syncs.discard)

    async def push_remote(self, track: Track, primary: str, secondary: str | None) -> None:
        if track is SUB:
            request = SubscriptionRequest(
                events=tuple(EVENTS),
                destination=self.destination,
                primary_secret=primary,
                secondary_secret=secondary,
            )
            await self.api.update_subscription(self.subscriber_id, self.subscription_id, request)
        else:
            contact = Contact(EMAIL, ("webhook",), self.notification_url, primary)
            await self.api.update_subscriber(self.subscriber_id, contact=contact)

    async def receivers_view(self) -> list[ReceiverView]:
        out = []
        for r in self.receivers:
            try:
                kv = await r.nc.jetstream().key_value(r.config.names.guard_bucket)
                entry = await kv.get(report_key(r.config.pod))
            except NatsError:
                out.append(ReceiverView(r.config.pod, True))
                continue
            got = SecretReport.model_validate_json(entry.value or b"")
            out.append(ReceiverView(r.config.pod, True, got.event_platform, got.notification))
        return out


class IO:
    """``RotationIO`` over ``World`` (its ``receivers`` attribute is the list of Running)."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.read_secret = world.read_secret
        self.write_secret = world.write_secret
        self.push_remote = world.push_remote

    async def receivers(self) -> list[ReceiverView]:
        return await self.w.receivers_view()


async def _reported(r: Running, secrets: tuple[str, ...]) -> None:
    """Until the receiver reports exactly ``secrets`` as its Event Platform secrets."""
    want = tuple(fingerprint(s) for s in secrets)

    async def reported() -> bool:
        try:  # the bucket comes just after the stream the receiver's readiness waits for
            kv = await r.nc.jetstream().key_value(r.config.names.guard_bucket)
            entry = await kv.get(report_key(r.config.pod))
        except NatsError:
            return False
        return SecretReport.model_validate_json(entry.value or b"").event_platform == want

    await poll(reported, timeout=15, what=f"{r.config.pod} reports {want}")


@pytest.fixture
async def pim(ca: CertificateAuthority) -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=20, product_models=2) as sim:
        yield sim


async def test_a_rotation_under_continuous_delivery_gets_no_401(
    start_receiver: StartReceiver,
    pim: PimSimulator,
    ca: CertificateAuthority,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = await start_receiver(pod_name="rcv-a", secret_report_interval=60.0)
    second = await start_receiver(
        pod_name="rcv-b", names=first.config.names, secret_report_interval=60.0
    )
    front = Ingress(ca, [first.config.port, second.config.port])
    port = await front.start(first.files)
    base = f"https://localhost:{port}"
    old = {SUB: (generate_secret(),), NOTE: (generate_secret(),)}
    platform = pim.event_platform(
        PlatformSettings(activation_delay=0.0, max_rate=60.0), verify=ca.client_context()
    )
    await platform.start()
    rest = AkeneoRestClient(pim.url, pim.credentials, allow_private=True)
    api = EventPlatformApi(
        platform.url, pim_url=pim.url, client_id="sim-client",
        token=rest.access_token, renew_token=rest.access_token,
    )  # fmt: skip
    subscriber = platform.add_subscriber(
        client_id="sim-client",
        subject=pim.url,
        notification_url=base + NOTIFICATIONS_PATH,
        notification_secret=old[NOTE][0],
    )
    sub = platform.add_subscription(
        subscriber, url=base + EVENT_PLATFORM_PATH, primary=old[SUB][0], events=EVENTS
    )
    world = World(
        [first, second], api, subscriber.id, sub.id,
        base + EVENT_PLATFORM_PATH, base + NOTIFICATIONS_PATH, old,
    )  # fmt: skip
    io = IO(world)
    for r in (first, second):  # both accept the current secrets before anything is sent
        await _reported(r, old[SUB])
    world.released["rcv-b"].clear()  # at first its kubelet never updates its files

    stop = asyncio.Event()

    async def deliver() -> None:
        while not stop.is_set():
            platform.publish(pim.edit_product())
            await asyncio.sleep(0.02)

    async def notify() -> None:
        while not stop.is_set():
            platform._notify(sub, "subscription.resumed", None)  # a notification, signed
            await asyncio.sleep(0.3)

    senders = [asyncio.create_task(deliver()), asyncio.create_task(notify())]
    state = RotationState()
    reasons: list[str] = []
    steps: list[str] = []
    texts: list[str] = []
    try:
        await asyncio.sleep(1.0)  # deliveries flow before the rotation
        started = time.monotonic()
        while True:
            planned = await turn(
                io, state, now=datetime.now(UTC), annotation="rotate-1", period=None,
                horizon=HORIZON,
            )  # fmt: skip
            state = planned.state
            steps += [f"{s.track.value}:{s.action.value}" for s in planned.steps]
            texts += [json.dumps(state.to_status()), *(e[2] for e in planned.events)]
            if planned.condition is not None:
                reasons.append(planned.condition.reason)
                texts.append(planned.condition.message)
            elapsed = time.monotonic() - started
            if elapsed > 4 and not world.released["rcv-b"].is_set():
                # rcv-b never reloaded: still waiting, the subscription still signs with old
                assert state.track(SUB).phase.value == "WaitingForReceivers"
                assert planned.condition is not None and "rcv-b" in planned.condition.message
                assert sub.primary == old[SUB][0]
                assert platform.subscriber_of(sub).notification_webhook_secret == old[NOTE][0]
                world.released["rcv-b"].set()  # its kubelet catches up
            if state.idle and steps:
                break
            assert elapsed < 60, f"rotation stuck: {reasons[-1:]} {steps}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # deliveries keep flowing after it
    finally:
        stop.set()
        await asyncio.gather(*senders, return_exceptions=True)
        for released in world.released.values():
            released.set()
        await asyncio.gather(*world.syncs, return_exceptions=True)
    await platform.drain(timeout=30)
    note_secret = platform.subscriber_of(sub).notification_webhook_secret  # a PATCH replaces it
    assert note_secret is not None
    new = {SUB: sub.primary, NOTE: note_secret}

    # not one 401, of events or notifications; both receivers took deliveries
    statuses = Counter(sub.stats.statuses)
    assert set(statuses) == {200} and statuses[200] > 150, statuses
    notes = [o for rec in sub.stats.notifications for o in rec.attempts]
    assert len(notes) > 10 and set(notes) == {200}, Counter(notes)
    for r in (first, second):  # each receiver answered its share, never a 401
        answered = {st: n for (p, st), n in front.answers.items() if p == r.config.port}
        assert set(answered) == {200} and answered[200] > 50, (r.config.pod, answered)
    per_receiver = {
        r.config.pod: sum(n for (p, _), n in front.answers.items() if p == r.config.port)
        for r in (first, second)
    }
    print(f"rotation: events {dict(statuses)}, notifications {dict(Counter(notes))}, "
          f"answers per receiver {per_receiver}, steps {steps}")  # fmt: skip
    # the whole sequence, both tracks, and the wait for rcv-b in it
    assert "WaitingForReceivers" in reasons and reasons[-1] == "Idle"
    for track in ("eventPlatform", "notification"):
        assert [s.split(":")[1] for s in steps if s.startswith(track)][-2:] == [
            "Promote", "Retire"
        ]  # fmt: skip
    assert new[SUB] != old[SUB][0] and sub.secondary is None
    assert new[NOTE] not in (None, old[NOTE][0])
    assert world.secret == {SUB: (new[SUB],), NOTE: (new[NOTE],)}

    hits = [record.getMessage() for record in caplog.records if record.name == "akeneo_receiver"]
    assert hits  # the receivers logged (and never a secret, below)

    # each receiver refuses the old secrets now, and takes the new ones
    body = json.dumps(
        {"specversion": "1.0", "id": "x", "type": EVENTS[0], "source": "pim",
         "subject": sub.id, "time": "2026-12-04T12:00:00Z", "data": {}}
    ).encode()  # fmt: skip
    for r in (first, second):
        await _reported(r, (new[SUB],))  # reloaded: the old secret is gone from its files
        ep_old = event_platform_headers(old[SUB][0], body)
        assert (await r.post(body, ep_old, EVENT_PLATFORM_PATH))[0] == 401
        note_old = notification_headers(old[NOTE][0], body)
        assert (await r.post(body, note_old, NOTIFICATIONS_PATH))[0] == 401
        ep_new = event_platform_headers(new[SUB], body)
        assert (await r.post(body, ep_new, EVENT_PLATFORM_PATH))[0] != 401

    # no secret in any log line, status, event, condition or report
    kv = await first.nc.jetstream().key_value(first.config.names.guard_bucket)
    for r in (first, second):
        texts.append(((await kv.get(report_key(r.config.pod))).value or b"").decode())
    texts += [record.getMessage() + json.dumps(record.__dict__, default=str)
              for record in caplog.records]  # fmt: skip
    for secret in (old[SUB][0], old[NOTE][0], new[SUB], new[NOTE]):
        assert secret is not None
        assert not [t for t in texts if secret in t]

    await front.stop()
    await platform.stop()
    await api.aclose()
    await rest.aclose()
