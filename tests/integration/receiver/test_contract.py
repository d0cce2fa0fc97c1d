"""Every row of the receiver's contract, over real TLS against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from akeneo_connector.normalized import Action, ResourceKind, SourceFormat
from akeneo_pim.signatures import (
    EVENTS_API_SIGNATURE_HEADER,
    event_platform_headers,
    events_api_headers,
)
from akeneo_testing.payloads import cloud_event, legacy_batch, legacy_body, legacy_event
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    Running,
    StartReceiver,
)


async def test_valid_legacy_batch_is_stored_then_200(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    events = [legacy_event(f"p-{i}") for i in range(9)]
    events.append(legacy_event("m-1", action="product_model.updated"))
    body = legacy_body(events)
    status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
    assert (status, answer["accepted"]) == (200, 10)
    stored = await r.stored()
    assert [msg_id for _, msg_id, _ in stored] == [e["event_id"] for e in events]
    assert all(ev.event_id == msg_id for _, msg_id, ev in stored)
    subjects = {subject for subject, _, _ in stored}
    assert subjects == {
        r.config.names.event_subject("product"),
        r.config.names.event_subject("product_model"),
    }
    first = stored[0][2]
    assert first.connection == r.config.connection and first.source is SourceFormat.EVENTS_API
    assert first.resource is not None and first.received_at is not None


async def test_signer_drives_receiver_in_both_formats(start_receiver: StartReceiver) -> None:
    """The signer the simulator uses, for both delivery formats and both EP secrets."""
    r = await start_receiver()
    legacy = legacy_batch(3)
    status, _ = await r.post(legacy, events_api_headers(EVENTS_API_SECRET, legacy))
    assert status == 200
    single = json.dumps(cloud_event("uuid-1")).encode()
    primary, secondary = EVENT_PLATFORM_SECRETS
    status, answer = await r.post(single, event_platform_headers(primary, single))
    assert (status, answer["accepted"]) == (200, 1)
    array = json.dumps(
        [
            cloud_event("uuid-2"),
            cloud_event("code-1", type_="com.akeneo.pim.v1.product-model.deleted"),
        ]
    ).encode()
    # rotation: the PIM signs with a secret only our secondary knows, in its secondary header
    headers = event_platform_headers("retired", array, secondary=secondary)
    status, answer = await r.post(array, headers)
    assert (status, answer["accepted"]) == (200, 2)
    stored = [ev for _, _, ev in await r.stored()]
    assert [ev.source for ev in stored] == [SourceFormat.EVENTS_API] * 3 + [
        SourceFormat.EVENT_PLATFORM
    ] * 3
    last = stored[-1]
    assert (last.kind, last.action, last.key) == (
        ResourceKind.PRODUCT_MODEL,
        Action.DELETE,
        "code-1",
    )


async def test_test_button_empty_body_is_200_and_enqueues_nothing(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver()
    status, answer = await r.post(b"", events_api_headers(EVENTS_API_SECRET, b""))
    assert (status, answer["accepted"]) == (200, 0)
    assert await r.stored() == []


async def test_bad_signatures_are_401_and_enqueue_nothing(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    body = legacy_batch(2)
    now = int(time.time())  # the exact edge is in test_signatures; here 30 s clear of it
    ep_body = json.dumps(cloud_event("u")).encode()
    cases = {
        "missing_signature": (body, {"Content-Type": "application/json"}),
        "bad_signature": (body, events_api_headers("wrong-secret", body)),
        "timestamp_out_of_tolerance": (
            body,
            events_api_headers(EVENTS_API_SECRET, body, now - 330),
        ),
        "timestamp_out_of_tolerance_future": (
            body,
            events_api_headers(EVENTS_API_SECRET, body, now + 330),
        ),
        "ep_bad_signature": (ep_body, event_platform_headers("wrong", ep_body)),
        "tampered_body": (body + b" ", events_api_headers(EVENTS_API_SECRET, body)),
    }
    for name, (payload, headers) in cases.items():
        status, answer = await r.post(payload, headers)
        assert status == 401, name
        assert answer["error"] == name.removesuffix("_future").removeprefix("ep_").replace(
            "tampered_body", "bad_signature"
        ), name
    assert await r.stored() == []


async def test_bad_bodies_are_400_with_reason(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    for body, reason in (
        (b"{not json", "invalid_json"),
        (b'{"evts": []}', "invalid_shape"),
        (b"[]", "invalid_shape"),
    ):
        status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
        assert (status, answer["error"]) == (400, reason)
    ep = b"12"
    status, answer = await r.post(ep, event_platform_headers(EVENT_PLATFORM_SECRETS[0], ep))
    assert (status, answer["error"]) == (400, "invalid_shape")
    assert await r.stored() == []


async def _rejections(r: Running) -> dict[str, float]:
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "akeneo_receiver_rejected_requests_total":
                counts[sample.labels["reason"]] = sample.value
    return counts


async def test_each_rejection_is_counted_by_reason_and_logged_once(
    start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    r = await start_receiver()
    caplog.set_level(logging.WARNING, logger="akeneo_receiver")
    before = await _rejections(r)
    good = legacy_batch(1)
    huge = b'{"events": [' + b" " * (64 * 1024) + b"]}"
    sent = [
        (b"{not json", events_api_headers(EVENTS_API_SECRET, b"{not json"), 400),
        (b"{not json", events_api_headers(EVENTS_API_SECRET, b"{not json"), 400),
        (b"[]", events_api_headers(EVENTS_API_SECRET, b"[]"), 400),
        (good, events_api_headers("not-the-secret", good), 401),
        (huge, events_api_headers(EVENTS_API_SECRET, huge), 413),
    ]
    for body, headers, want in sent:
        status, _ = await r.post(body, headers)
        assert status == want
    after = await _rejections(r)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta == {
        "invalid_json": 2,
        "invalid_shape": 1,
        "bad_signature": 1,
        "body_too_large": 1,
    }
    logged = [rec for rec in caplog.records if rec.getMessage() == "request rejected"]
    assert sorted(getattr(rec, "reason", "") for rec in logged) == sorted(
        ["invalid_json", "invalid_json", "invalid_shape", "bad_signature", "body_too_large"]
    )
    assert EVENTS_API_SECRET not in caplog.text


async def test_partial_batch_enqueues_valid_and_names_rejected(
    start_receiver: StartReceiver,
) -> None:
    r = await start_receiver()
    good = [legacy_event("g-1"), legacy_event("g-2")]
    bad = legacy_event("b-1", event_id="rejected-one")
    bad["data"]["resource"] = {"values": {}}
    body = legacy_body([good[0], bad, good[1]])
    status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
    assert status == 400
    assert answer["error"] == "invalid_events" and answer["accepted"] == 2
    assert [x["event_id"] for x in answer["rejected"]] == ["rejected-one"]
    assert answer["rejected"][0]["index"] == 1
    assert [m for _, m, _ in await r.stored()] == [e["event_id"] for e in good]


async def test_duplicate_delivery_is_200_and_stored_once(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    body = legacy_batch(5)
    for attempt in range(2):
        headers = events_api_headers(EVENTS_API_SECRET, body)
        status, answer = await r.post(body, headers)
        assert status == 200
        assert answer["accepted"] == 5 and answer["duplicates"] == (5 if attempt else 0)
    ep = json.dumps(cloud_event("u-dup", event_id="ep-dup")).encode()
    for _ in range(2):
        status, _ = await r.post(ep, event_platform_headers(EVENT_PLATFORM_SECRETS[0], ep))
        assert status == 200
    assert len(await r.stored()) == 6


async def _raw_request(r, head: bytes, body_part: bytes, ca_ctx: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", r.config.port, ssl=ca_ctx, server_hostname="localhost"
    )
    try:
        writer.write(head + body_part)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()


async def test_body_over_limit_is_413_without_reading_it_all(
    start_receiver: StartReceiver, ca
) -> None:
    r = await start_receiver()
    limit = r.config.max_body_bytes
    declared = limit * 100
    head = (
        f"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n{EVENTS_API_SIGNATURE_HEADER}: 00\r\n\r\n"
    ).encode()
    # only a sliver of the declared body is ever sent, yet the answer comes
    answer = await _raw_request(r, head, b'{"events": [', ca.client_context())
    assert answer.startswith(b"HTTP/1.1 413")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    status, payload = await r.post(chunks(), events_api_headers(EVENTS_API_SECRET, b""))
    assert (status, payload["error"]) == (413, "body_too_large")
    assert await r.stored() == []


async def test_other_paths_and_methods_never_redirect(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    for method, path, code in (
        ("GET", "/events", 405),
        ("PUT", "/events", 405),
        ("POST", "/events/x", 404),
        ("POST", "/event-platform/x", 404),
        ("GET", "/event-platform", 405),
        ("GET", "/event-platform/notifications/", 405),
        ("POST", "/", 404),
        ("GET", "/admin", 404),
        ("GET", "/healthz", 404),  # probes and metrics live on the admin port
        ("GET", "/readyz", 404),
        ("GET", "/metrics", 404),
    ):
        async with r.http.request(method, r.url + path, allow_redirects=False) as resp:
            assert resp.status == code, (method, path)


async def test_probes_and_metrics(start_receiver: StartReceiver) -> None:
    r = await start_receiver()
    body = legacy_batch(1)
    await r.post(body, events_api_headers("nope", body))
    async with r.http.get(r.admin_url + "/healthz") as resp:
        assert resp.status == 200
    async with r.http.get(r.admin_url + "/metrics") as resp:
        text = await resp.text()
    assert 'akeneo_receiver_rejected_requests_total{reason="bad_signature"}' in text
    assert EVENTS_API_SECRET not in text
    # a receiver whose stream does not exist is alive but not ready
    r2 = await start_receiver(ensure_stream=False, wait_ready=False)
    async with r2.http.get(r2.admin_url + "/healthz") as resp:
        assert resp.status == 200
    async with r2.http.get(r2.admin_url + "/readyz") as resp:
        assert resp.status == 503
    status, answer = await r2.post(body, events_api_headers(EVENTS_API_SECRET, body))
    assert (status, answer["error"]) == (503, "no_responders")


async def test_ack_error_from_jetstream_is_503(start_receiver: StartReceiver) -> None:
    """Our subjects captured by another stream: JetStream refuses (expected stream), never 200."""
    prefix = f"captured-{time.time_ns()}"
    r = await start_receiver(subject_prefix=prefix)
    js = r.nc.jetstream()
    other = f"OTHER_{time.time_ns()}"
    await js.add_stream(name=other, subjects=[f"{prefix}.>"])
    try:
        body = legacy_batch(3)
        status, answer = await r.post(body, events_api_headers(EVENTS_API_SECRET, body))
        assert (status, answer["error"]) == (503, "stream_error")
        assert await r.stored() == []
    finally:
        await js.delete_stream(other)
