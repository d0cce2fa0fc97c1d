"""The PIM simulator (its signer, bodies and sender) drives the receiver in both formats."""

from __future__ import annotations

from akeneo_connector.normalized import SourceFormat
from akeneo_pim.simulator.catalog import Catalog
from akeneo_pim.simulator.events import EventSender
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    StartReceiver,
)

# Formats and signatures are under test here, not speed (bench/receiver.py measures that):
# a slow answer on a loaded machine must not count as a PIM timeout.
BUDGET = 5.0


async def test_simulated_pim_both_formats(
    start_receiver: StartReceiver, ca: CertificateAuthority
) -> None:
    r = await start_receiver()
    catalog = Catalog(products=20, product_models=4, seed=7)
    legacy_changes = [catalog.random_change() for _ in range(25)]
    ep_changes = [catalog.random_change() for _ in range(6)]
    target = r.url + "/events"
    async with EventSender(
        target, events_api_secret=EVENTS_API_SECRET, verify=ca.client_context(), timeout=BUDGET
    ) as legacy:
        assert await legacy.send_test_request() == 200
        report = await legacy.send(legacy_changes)
    assert report.statuses == {200: 3} and report.accepted == 3
    async with EventSender(
        target,
        format="event_platform",
        event_platform_secrets=("not-ours-anymore", EVENT_PLATFORM_SECRETS[1]),
        verify=ca.client_context(),
        timeout=BUDGET,
    ) as platform:
        report = await platform.send(ep_changes)
    assert report.statuses == {200: 6}
    stored = {ev.event_id: ev for _, _, ev in await r.stored()}
    assert set(stored) == {c.event_id for c in legacy_changes + ep_changes}
    for change in legacy_changes:
        event = stored[change.event_id]
        assert event.source is SourceFormat.EVENTS_API
        assert (event.kind.value, event.key) == (change.kind, change.key)
    for change in ep_changes:
        event = stored[change.event_id]
        assert event.source is SourceFormat.EVENT_PLATFORM and event.resource is None
        assert (event.kind.value, event.key) == (change.kind, change.key)
