"""The Event Platform as Akeneo runs it, against the whole local pipeline.

The simulated Event Platform (``akeneo_pim.simulator.platform``: real envelope, one CloudEvent
per POST, 5 s deadline, retries, suspension on a 404/3xx or a success rate under 90 % over a
rolling hour — time-scaled here — and notification webhooks) delivers a stream of at least
10,000 mixed events of every type of Akeneo's reference, duplicated and reordered, to two
subscriptions of the same PIM:

- ours: `akeneo-connector local` (receiver over TLS on ``/event-platform``, worker hydrating
  from the simulator's REST API into sqlite);
- a negative control: a receiver that answers ``400`` to the types it does not handle, as this
  project's receiver did before (every product event 200, everything else 400).

The control gets suspended by the platform; ours stays active, and after the stream the sink
equals the PIM's catalog exactly — products, product models, categories, families,
attributes and attribute options — with no reconcile after the initial sync.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from akeneo_cli.local import LocalPipeline
from akeneo_connector import event_types
from akeneo_connector.event_types import attribute_option_key
from akeneo_connector.manifest import load_manifest
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.events import completeness_event, pim_events, reference_event
from akeneo_pim.simulator.platform import PlatformSettings
from akeneo_testing.ground.processes import free_port
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.e2e.local_harness import LocalMode, eventually, nats_url, pim_secret

PRIMARY, SECONDARY = "ep-e2e-primary-secret", "ep-e2e-secondary-secret"
NOTIFICATION_SECRET = "ep-e2e-notification-secret"
EVENTS = 10_000  # at least this many deliveries to our subscription
STRUCTURE = ["categories", "families", "attributes", "attribute_options"]
Rows = dict[tuple[str, str], dict[str, Any]]


def write_manifest(path: Path, sim: PimSimulator) -> None:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ep-events", "namespace": "ep"},
            "stringData": {
                "eventPlatformSecrets": f"{PRIMARY}\n{SECONDARY}\n",
                "eventPlatformNotificationSecret": NOTIFICATION_SECRET,
            },
        },
        pim_secret(sim, "ep-pim", "ep"),
        {
            "apiVersion": "akeneo.connectors.dev/v1alpha1",
            "kind": "AkeneoConnection",
            "metadata": {"name": "shop", "namespace": "ep"},
            "spec": {
                "pim": {
                    "url": sim.url,
                    "credentialsSecret": "ep-pim",
                    "allowPrivateAddresses": True,
                },
                "receiver": {"signatureSecret": "ep-events"},
                "worker": {"sink": {"sqlite": {"path": "catalog.db"}}},
                "reconciliation": {
                    # never due: the test runs the initial sync itself
                    "schedule": "0 0 1 1 *",
                    "fullScanSchedule": "0 0 1 1 *",
                    "resources": ["products", "product_models", *STRUCTURE],
                },
            },
        },
    ]
    path.write_text(yaml.safe_dump_all(docs))


def _bare(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "_links"}


def catalog(sim: PimSimulator) -> Rows:
    """What the PIM holds now, keyed as the sink keys it."""
    rows: Rows = {("product", k): _bare(v) for k, v in sim.catalog.products.items.items()}
    rows.update(
        {("product_model", k): _bare(v) for k, v in sim.catalog.product_models.items.items()}
    )
    structure = sim.catalog.structure
    for name, kind in (("categories", "category"), ("families", "family"),
                       ("attributes", "attribute")):  # fmt: skip
        rows.update({(kind, k): _bare(v) for k, v in structure.items[name].items()})  # type: ignore[index]
    for attribute, options in structure.options.items():
        for code, option in options.items():
            rows[("attribute_option", attribute_option_key(attribute, code))] = _bare(option)
    return rows


def sink(db: Path) -> Rows:
    if not db.exists():
        return {}
    try:
        return {key: _bare(resource) for key, (_v, resource) in SqliteSink(db).read_all().items()}
    except Exception:  # the worker has not created its table yet
        return {}


def differences(want: Rows, got: Rows) -> str:
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    stale = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
    return f"missing {missing}, extra {extra}, stale {stale}"


class ControlReceiver:
    """A receiver that refuses (400) the CloudEvent types it does not handle: the behaviour
    that gets a real subscription suspended."""

    HANDLED = ("com.akeneo.pim.v1.product.", "com.akeneo.pim.v1.product-model.")

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.statuses: dict[int, int] = {}
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/event-platform"

    async def handle(self, request: web.Request) -> web.Response:
        event = json.loads(await request.read())
        status = 200 if str(event.get("type", "")).startswith(self.HANDLED) else 400
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return web.json_response(
            {"error": "invalid_events"} if status == 400 else {}, status=status
        )

    async def __aenter__(self) -> ControlReceiver:
        app = web.Application()
        app.router.add_post("/event-platform", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.context).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=150, product_models=15, seed=23) as sim:
        yield sim


async def initial_sync(local: LocalMode, manifest: Path, data_dir: Path) -> None:
    """A full reconcile, as a new connection's first sync: the sink starts equal to the PIM."""
    pipeline = LocalPipeline(load_manifest(manifest), data_dir, local.port, None)
    env = {**os.environ, **pipeline.reconcile_env(), "AKENEO_NATS_URL": nats_url(local.output)}
    job = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akeneo_cli", "reconcile", "--full", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await job.communicate()
    assert job.returncode == 0, out.decode()


async def test_our_subscription_stays_active_and_the_sink_exact_over_10000_mixed_events(
    simulator: PimSimulator, tmp_path: Path
) -> None:
    sim = simulator
    manifest, data_dir = tmp_path / "connection.yaml", tmp_path / "data"
    write_manifest(manifest, sim)
    local = LocalMode(manifest, data_dir)
    db = data_dir / "catalog.db"
    await local.start()
    try:
        await initial_sync(local, manifest, data_dir)
        await eventually(lambda: sink(db) == catalog(sim), "initial sync", timeout=120)

        trust = ssl.create_default_context(cafile=str(local.ca))
        tls = data_dir / "tls"
        # minutes become seconds: retries after 5/10/20 s, the success rate over 60 s
        settings = PlatformSettings(time_scale=60, activation_delay=0, max_rate=3000, concurrency=8)
        platform = sim.event_platform(settings, verify=trust)
        base = local.url.removesuffix("/events")
        async with ControlReceiver(tls / "tls.crt", tls / "tls.key") as control, platform:
            ours_subscriber = platform.add_subscriber(
                client_id="connector", subject=sim.url,
                notification_url=f"{base}/event-platform/notifications",
                notification_secret=NOTIFICATION_SECRET,
            )  # fmt: skip
            ours = platform.add_subscription(
                ours_subscriber, url=f"{base}/event-platform", primary=PRIMARY, secondary=SECONDARY
            )
            control_subscriber = platform.add_subscriber(client_id="control", subject=sim.url)
            theirs = platform.add_subscription(control_subscriber, url=control.url, primary=PRIMARY)

            # a catalog in motion: every kind edited, created and removed, plus the types no
            # catalog models (assets, jobs, workflows...), completeness changes, duplicates,
            # and deliveries reordered in windows of 50
            rng = random.Random(5)
            ignored = list(event_types.IGNORED)
            window: list[Any] = []
            stats = platform.stats(ours.id)
            while stats.published < EVENTS:
                change = sim.catalog.random_change(structure=0.35)
                batch = pim_events(change)
                if rng.random() < 0.15:
                    batch.append(reference_event(rng.choice(ignored), rng))
                if change.kind == "product" and change.action != "removed" and rng.random() < 0.2:
                    batch.append(
                        completeness_event(
                            change.key, [("en_US", "ecommerce")], complete=rng.random() < 0.5,
                            event_id=str(rng.getrandbits(128)), time=change.event_datetime,
                        )
                    )  # fmt: skip
                for event in batch:
                    window.append(event)
                    if rng.random() < 0.1:
                        window.append(event)  # at-least-once: the same event twice
                if len(window) >= 50:
                    rng.shuffle(window)
                    for event in window:
                        platform.publish_event(event)
                    window.clear()
                    await asyncio.sleep(0)  # let deliveries run while the catalog moves
            for event in window:
                platform.publish_event(event)
            await platform.drain(timeout=600)
            report = platform.report()

        ours_report, control_report = report[ours.id], report[theirs.id]
        print(  # the figures of this run (pytest -s)
            f"event platform e2e: ours {ours_report['published']} published, "
            f"{ours_report['delivered']} delivered, statuses {ours_report['statuses']}; "
            f"control {control_report['statuses']}, {control_report['status']} at "
            f"{control_report['suspended_at']}, dropped {control_report['dropped']}"
        )
        # the negative control is suspended by the success rate; nothing it answered 404/3xx
        assert control_report["status"] == "suspended", control_report
        assert control_report["suspended_at"][0][1] == "system", control_report
        assert control.statuses.get(400, 0) > 0
        # ours: every delivery answered 200, never suspended, nothing dropped
        assert ours_report["status"] == "active", ours_report
        assert ours_report["published"] >= EVENTS
        assert ours_report["suspended_at"] == []
        assert set(ours_report["statuses"]) == {"200"}, ours_report["statuses"]
        assert ours_report["dropped"] == {}, ours_report["dropped"]
        assert ours_report["delivered"] == ours_report["published"]

        # every event type of Akeneo's reference was sent; the ignored ones were counted
        async with httpx.AsyncClient(timeout=5) as http:  # the receiver's admin port
            metrics = (await http.get(f"http://127.0.0.1:{local.admin_port}/metrics")).text
        assert "akeneo_receiver_ignored_events_total" in metrics

        # the sink equals the catalog, with no reconcile after the initial sync
        try:
            await eventually(lambda: sink(db) == catalog(sim), "sink equals catalog", timeout=240)
        except AssertionError:
            raise AssertionError(differences(catalog(sim), sink(db))) from None
        kinds = {kind for kind, _ in sink(db)}
        assert kinds == {"product", "product_model", "category", "family", "attribute",
                         "attribute_option"}  # fmt: skip
    finally:
        await local.stop()
    output = local.output.read_text()
    assert "Traceback" not in output
    for secret in (PRIMARY, SECONDARY, NOTIFICATION_SECRET):
        assert secret not in output
