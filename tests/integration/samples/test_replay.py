"""Every verbatim Akeneo delivery replayed through the real receiver over real TLS, signed as
Akeneo's senders sign, against a real nats-server: stored, ignored or refused as issue 13 says.

Akeneo's samples reuse three ids over 37 event types (and one over all legacy samples), and
the receiver de-duplicates on the id (JetStream ``Nats-Msg-Id``). So each sample is replayed to
a receiver with a fresh stream of its own, and asserted alone; one more test replays them all
into one stream and checks that a reused id is answered as a duplicate and stored once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from akeneo_connector.normalized import SourceFormat
from akeneo_pim.paths import EVENT_PLATFORM_PATH, EVENTS_API_PATH, NOTIFICATIONS_PATH
from tests.integration.receiver.conftest import Running, StartReceiver
from tests.samples import Sample, pinned, samples

EP = samples("event_platform")
LEGACY = samples("events_api")
(NOTIFICATION,) = samples("notification")
# sha256 of the notification sample's bytes (``openssl dgst -sha256``): the receiver's message
# id for a notification, so Akeneo's retries of one notification are stored once.
NOTIFICATION_MSG_ID = "d4dda2a2f3060441773eab3782311a6ae9b3617affdd95006c5fb441e4a6efa7"


def _id(s: Sample) -> str:
    return s.name


def ep_headers(s: Sample) -> dict[str, str]:
    """What the Event Platform sends: hex HMAC-SHA256 of the raw body (pinned by OpenSSL)."""
    assert s.file is not None
    return {
        "X-AKENEO-SIGNATURE-PRIMARY": pinned.event_platform_signature(s.file),
        "X-AKENEO-SIGNATURE-ALGORITHM": "HmacSHA256",
        "Content-Type": "application/cloudevents+json",
    }


def legacy_headers(body: bytes) -> dict[str, str]:
    """What the PIM sends: hex HMAC-SHA256 of "<timestamp>." + body, signed now by OpenSSL."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is missing: install it with `make sysdeps`"
    timestamp = int(time.time())
    out = subprocess.run(
        [openssl, "dgst", "-sha256", "-hmac", pinned.LEGACY_SECRET],
        input=f"{timestamp}.".encode() + body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {
        "X-Akeneo-Request-Signature": out.strip().rsplit("= ", 1)[1],
        "X-Akeneo-Request-Timestamp": str(timestamp),
        "Content-Type": "application/json",
    }


async def counter(r: Running, name: str, label: str, **where: str) -> dict[str, float]:
    """``name``'s samples (with labels ``where``) by the value of ``label``, from /metrics."""
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in where.items())
    }


def grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


IGNORED = "akeneo_receiver_ignored_events_total"


@pytest.mark.parametrize("s", EP, ids=_id)
async def test_event_platform_sample_on_its_url(start_receiver: StartReceiver, s: Sample) -> None:
    want = s.expect
    r = await start_receiver()
    before = await counter(r, IGNORED, "type", reason="unhandled_type")
    status, answer = await r.post(s.body, ep_headers(s), path=EVENT_PLATFORM_PATH)
    after = await counter(r, IGNORED, "type", reason="unhandled_type")
    assert status == want["status"], answer
    if want["outcome"] == "rejected":  # Akeneo's page prints invalid JSON
        assert answer["error"] == want["reason"]
        assert await r.messages() == []
        return
    if want["outcome"] == "ignored":
        assert answer == {"status": "ok", "accepted": 0, "duplicates": 0, "ignored": 1}
        assert grew(before, after) == {want["type"]: 1}
        assert await r.messages() == []
        return
    assert answer == {"status": "ok", "accepted": 1, "duplicates": 0, "ignored": 0}
    assert grew(before, after) == {}
    ((subject, msg_id, event),) = await r.stored()
    assert subject == r.config.event_subject(want["kind"])
    assert msg_id == event.event_id == want["event_id"]
    assert (event.kind.value, event.action.value, event.key) == (
        want["kind"],
        want["action"],
        want["key"],
    )
    assert event.version == datetime.fromisoformat(want["version"])
    assert event.source is SourceFormat.EVENT_PLATFORM
    assert event.resource is None  # ids only: the worker reads the resource


async def test_all_event_platform_samples_into_one_stream(start_receiver: StartReceiver) -> None:
    """Replayed in the reference's order to one receiver: every one answered 2xx or (for the
    two invalid pages) 400; a reused id is a duplicate, stored once, never an error."""
    r = await start_receiver()
    seen: set[str] = set()
    for s in EP:
        status, answer = await r.post(s.body, ep_headers(s), path=EVENT_PLATFORM_PATH)
        assert status == s.expect["status"], (s.name, answer)
        if s.expect["outcome"] != "stored":
            continue
        event_id = s.expect["event_id"]
        duplicate = event_id in seen
        seen.add(event_id)
        assert (answer["accepted"], answer["duplicates"]) == (1, int(duplicate)), s.name
    stored = await r.stored()
    assert sorted(msg_id for _, msg_id, _ in stored) == sorted(seen)


async def test_the_documented_notification_is_stored_on_the_notifications_subject(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver()
    headers = {
        "X-AKENEO-SIGNATURE-PRIMARY": pinned.NOTIFICATION,
        "X-AKENEO-SIGNATURE-ALGORITHM": "HmacSHA256",
        "Content-Type": "application/json",
        "User-Agent": "akeneo/event-platform",
    }
    before = await counter(r, "akeneo_receiver_notifications_total", "type")
    status, answer = await r.post(NOTIFICATION.body, headers, path=NOTIFICATIONS_PATH)
    assert (status, answer) == (200, {"status": "ok", "accepted": 1, "duplicates": 0})
    after = await counter(r, "akeneo_receiver_notifications_total", "type")
    assert grew(before, after) == {NOTIFICATION.expect["notification_type"]: 1}
    ((subject, msg_id, body),) = await r.notifications()
    assert subject == r.config.names.notifications_subject
    assert (msg_id, body) == (NOTIFICATION_MSG_ID, NOTIFICATION.body)  # raw, untouched
    assert await r.stored() == []  # nothing for the worker
    # signed with an Event Platform secret instead: refused (one secret, its own)
    wrong = {**headers, "X-AKENEO-SIGNATURE-PRIMARY": pinned.event_platform_signature(
        "event-platform/com.akeneo.pim.v1.product.created.json")}  # fmt: skip
    status, answer = await r.post(NOTIFICATION.body, wrong, path=NOTIFICATIONS_PATH)
    assert (status, answer["error"]) == (401, "bad_signature")


@pytest.mark.parametrize("s", LEGACY, ids=_id)
async def test_events_api_sample_on_its_url(start_receiver: StartReceiver, s: Sample) -> None:
    r = await start_receiver()
    status, answer = await r.post(s.body, legacy_headers(s.body), path=EVENTS_API_PATH)
    assert (status, answer) == (200, {"status": "ok", "accepted": 1, "duplicates": 0})
    (want,) = s.expect["events"]
    ((subject, msg_id, event),) = await r.stored()
    assert subject == r.config.event_subject(want["kind"])
    assert msg_id == event.event_id == want["event_id"]
    assert (event.kind.value, event.action.value, event.key) == (
        want["kind"],
        want["action"],
        want["key"],
    )
    assert event.version == datetime.fromisoformat(want["version"])
    assert event.source is SourceFormat.EVENTS_API
    resource: dict[str, Any] = json.loads(s.body)["events"][0]["data"]["resource"]
    assert event.resource == (None if want["action"] == "delete" else resource)


async def test_a_legacy_sample_signed_for_another_body_is_401(
    start_receiver: StartReceiver,
) -> None:
    """The signature covers the raw bytes: the same event re-serialized does not verify."""
    s = LEGACY[0]
    r = await start_receiver()
    compact = json.dumps(json.loads(s.body), separators=(",", ":")).encode()
    status, answer = await r.post(compact, legacy_headers(s.body), path=EVENTS_API_PATH)
    assert (status, answer["error"]) == (401, "bad_signature")
    assert await r.messages() == []
