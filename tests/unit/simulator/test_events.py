"""EventSender: the PIM's deliveries, signed, to a real HTTP receiver that verifies them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from akeneo_pim.simulator import EventSender
from akeneo_pim.simulator.catalog import Catalog, Change
from tests.unit.simulator.receiver import Recorder, start

SECRET = "events-secret"
# Formats, signatures and knobs are under test, not speed: a loaded machine must not turn a
# slow answer into a PIM timeout (only the last test is about late answers).
PATIENT = 5.0


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder(events_api_secrets=[SECRET], event_platform_secrets=["new", "old"])
    runner, url = await start(recorder)
    try:
        yield recorder, url
    finally:
        await runner.cleanup()


def _changes(n: int) -> list[Change]:
    catalog = Catalog(products=50, product_models=5, seed=1)
    return [catalog.random_change() for _ in range(n)]


async def test_legacy_batches_of_ten_signed_with_test_request(
    receiver: tuple[Recorder, str],
) -> None:
    recorder, url = receiver
    changes = _changes(25)
    async with EventSender(url, events_api_secret=SECRET, timeout=PATIENT) as sender:
        assert await sender.send_test_request() == 200
        report = await sender.send(changes)
    assert recorder.test_requests == 1
    assert report.deliveries == 3 and report.accepted == 3 and report.events == 25
    assert sorted(len(b["events"]) for b in recorder.bodies) == [5, 10, 10]
    events: list[dict[str, Any]] = [e for b in recorder.bodies for e in b["events"]]
    assert {e["event_id"] for e in events} == {c.event_id for c in changes}
    event = events[0]
    assert set(event) == {
        "action", "event_id", "event_datetime", "author", "author_type", "pim_source", "data",
    }  # fmt: skip
    assert event["action"].split(".")[0] in ("product", "product_model")
    assert event["event_datetime"].endswith("+00:00")
    removed = [e for e in events if e["action"] == "product.removed"]
    for e in removed:
        assert set(e["data"]["resource"]) == {"uuid", "identifier"}
    updated = [e for e in events if e["action"] == "product.updated"]
    assert updated and "values" in updated[0]["data"]["resource"]


async def test_wrong_secret_is_rejected(receiver: tuple[Recorder, str]) -> None:
    recorder, url = receiver
    async with EventSender(url, events_api_secret="not-it", timeout=PATIENT) as sender:
        assert await sender.send_test_request() == 401
        report = await sender.send(_changes(3))
    assert report.rejected == 1 and report.accepted == 0
    assert report.statuses[401] == 1
    assert recorder.bodies == []


async def test_event_platform_cloudevents_carry_ids_only(receiver: tuple[Recorder, str]) -> None:
    recorder, url = receiver
    changes = _changes(8)
    # secondary signed with a secret the receiver knows, primary with a retired one
    async with EventSender(
        url, format="event_platform", event_platform_secrets=("retired", "old"), timeout=PATIENT
    ) as sender:
        report = await sender.send(changes)
    assert report.deliveries == 8 and report.accepted == 8
    by_id = {b["id"]: b for b in recorder.bodies}
    for change in changes:
        event = by_id[change.event_id]
        assert event["specversion"] == "1.0"
        kind = "product" if change.kind == "product" else "product-model"
        action = "deleted" if change.action == "removed" else change.action
        assert event["type"] == f"com.akeneo.pim.v1.{kind}.{action}"
        ids = event["data"][change.kind]
        assert ids == ({"uuid": change.key} if change.kind == "product" else {"code": change.key})
        assert event["data"]["author"]["identifier"] == change.author
        assert event["time"].endswith("Z")


async def test_drop_and_duplicate_knobs(receiver: tuple[Recorder, str]) -> None:
    recorder, url = receiver
    async with EventSender(
        url,
        events_api_secret=SECRET,
        batch_size=1,
        drop=0.3,
        duplicate=0.3,
        reorder=0.5,
        seed=4,
        timeout=PATIENT,
    ) as sender:
        report = await sender.send(_changes(60))
    assert report.dropped > 0 and report.duplicated > 0
    assert report.deliveries == 60 - report.dropped + report.duplicated
    assert len(recorder.bodies) == report.deliveries == report.accepted
    ids = [b["events"][0]["event_id"] for b in recorder.bodies]
    assert len(set(ids)) == 60 - report.dropped


async def test_reorder_knob_changes_the_arrival_order(receiver: tuple[Recorder, str]) -> None:
    """One delivery at a time: edit order unless the knob shuffles it, all still delivered."""
    recorder, url = receiver
    changes = _changes(30)
    arrivals = []
    for reorder in (0.0, 0.5):
        recorder.bodies.clear()
        async with EventSender(
            url, events_api_secret=SECRET, batch_size=1, concurrency=1, reorder=reorder,
            seed=5, timeout=PATIENT,
        ) as sender:  # fmt: skip
            await sender.send(changes)
        arrivals.append([_identity(b["events"][0]) for b in recorder.bodies])
    in_order, shuffled = arrivals
    assert len(in_order) == len(shuffled) == 30
    assert [when for when, _ in in_order] == sorted(when for when, _ in in_order)  # edit order
    assert shuffled != in_order and sorted(shuffled) == sorted(in_order)


def _identity(event: dict[str, Any]) -> tuple[str, str]:
    resource = event["data"]["resource"]
    return event["event_datetime"], str(resource.get("uuid") or resource.get("code"))


async def test_late_answers_count_as_lost(receiver: tuple[Recorder, str]) -> None:
    recorder, url = receiver
    recorder.delay = 0.3
    async with EventSender(url, events_api_secret=SECRET, timeout=0.1) as sender:
        report = await sender.send(_changes(20))
    assert report.deliveries == 2
    assert report.timed_out == 2 and report.accepted == 0


def test_sender_refuses_more_than_ten_per_batch() -> None:
    with pytest.raises(ValueError, match=r"1\.\.10"):
        EventSender("http://127.0.0.1:9/", events_api_secret=SECRET, batch_size=11)


async def test_event_platform_sends_every_reference_type_one_per_request(
    receiver: tuple[Recorder, str],
) -> None:
    import random

    from akeneo_connector.event_types import REFERENCE
    from akeneo_pim.simulator.events import reference_event

    recorder, url = receiver
    rng = random.Random(2)
    events = [reference_event(t, rng) for t in REFERENCE]
    async with EventSender(
        url, format="event_platform", event_platform_secrets=("new", None),
        event_types=REFERENCE, timeout=PATIENT,
    ) as sender:  # fmt: skip
        report = await sender.send_events(events)
    assert report.accepted == report.deliveries == len(REFERENCE)
    assert sorted(b["type"] for b in recorder.bodies) == sorted(REFERENCE)
    assert {b["subject"] for b in recorder.bodies} == {sender.subscription}


async def test_legacy_format_never_announces_the_structure(
    receiver: tuple[Recorder, str],
) -> None:
    recorder, url = receiver
    catalog = Catalog(products=10, product_models=2, seed=3)
    changes = [catalog.edit_structure_item("families", "shoes"), catalog.edit_product()]
    async with EventSender(url, events_api_secret=SECRET, timeout=PATIENT) as sender:
        report = await sender.send(changes)
    assert report.events == 1
    [body] = recorder.bodies
    assert [e["action"] for e in body["events"]] == ["product.updated"]
