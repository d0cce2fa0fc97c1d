"""Amplification: a signed request or a PIM answer must not cost the connector more than a
small, fixed multiple of what it carries.

- The receiver caps events per request (Akeneo sends at most 10 legacy events per request and
  one CloudEvent per request in structured mode), names at most 20 rejected events in its
  answer (plus a count), bounds every log line, and answers the worst body at the largest
  size within the PIM's 0.5 s budget (https://api.akeneo.com/events-documentation/overview.html:
  the PIM waits 0.5 s for the whole request).
- The REST client's ``items_count``-driven paging asks a bounded number of pages ahead and
  stops at the real end, whatever count a PIM announces.

Server-side time is read from the receiver's own latency histogram
(``akeneo_receiver_request_seconds``): the bucket an answer lands in, not the client's wall
clock, so TLS and the upload of a 1 MiB body on a loaded machine do not blur it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.rest_app import Handler
from akeneo_pim.structure import FAMILIES_PATH
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.payloads import cloud_event, legacy_event
from tests.integration.receiver.conftest import EVENT_PLATFORM_SECRETS, EVENTS_API_SECRET
from tests.security.conftest import ReceiverProcess, unique_names

MAX_BODY = 1_048_576  # the spec's default receiver.maxBodyBytes
BUDGET = 0.5  # the legacy PIM's deadline for the whole request
ANSWER_MAX = 16 * 1024
LOG_LINE_MAX = 16 * 1024
LATENCY = "akeneo_receiver_request_seconds"


@pytest.fixture(scope="module")
def receiver(
    nats_server: NatsServer,
    security_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ReceiverProcess]:
    proc = ReceiverProcess(
        unique_names(),
        security_ca,
        Path(tmp_path_factory.mktemp("amplification")),
        nats_server.url,
        extra_args=("--ensure-stream", "--max-body-bytes", str(MAX_BODY)),
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def _fill(head: bytes, item: bytes, tail: bytes, sep: bytes = b",") -> bytes:
    """``head item,item,...,item tail``, as long as fits in MAX_BODY."""
    count = (MAX_BODY - len(head) - len(tail) + len(sep)) // (len(item) + len(sep))
    body = head + sep.join([item] * count) + tail
    assert len(body) <= MAX_BODY
    return body


def _nested(head: bytes, tail: bytes) -> bytes:
    depth = (MAX_BODY - len(head) - len(tail)) // 2
    return head + b"[" * depth + b"]" * depth + tail


def _legacy_removed() -> bytes:
    """The smallest valid legacy event (a removal names an identifier only)."""
    event = legacy_event("x", action="product.removed", event_id=str(uuid.uuid4()))
    return json.dumps(event, separators=(",", ":")).encode()


LEGACY_WORST = {
    "empty_objects": _fill(b'{"events":[', b"{}", b"]}"),
    "nested_arrays": _nested(b'{"events":[', b"]}"),
    "many_tiny_valid": _fill(b'{"events":[', _legacy_removed(), b"]}"),
    "many_invalid_events": _fill(
        b'{"events":[', b'{"action":"x","event_id":"%b"}' % (b"e" * 150), b"]}"
    ),
}
EP_WORST = {
    "empty_objects": _fill(b"[", b"{}", b"]"),
    "nested_arrays": _nested(b"", b""),
    "nested_objects": (b'{"a":' * 174_000) + b"1" + (b"}" * 174_000),
    "many_tiny_valid": _fill(
        b"[", json.dumps(cloud_event("u"), separators=(",", ":")).encode(), b"]"
    ),
}


def _histogram(receiver: ReceiverProcess, fmt: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{receiver.admin_port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{LATENCY}_bucket") and f'format="{fmt}"' in line:
            le = re.search(r'le="([^"]+)"', line)
            assert le is not None
            out[le.group(1)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{LATENCY}_sum") and f'format="{fmt}"' in line:
            out["sum"] = float(line.rsplit(" ", 1)[1])
    return out


def _post_measured(
    receiver: ReceiverProcess, fmt: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, float, bool]:
    """(status, answer, server-side seconds, whether the answer landed within BUDGET)."""
    before = _histogram(receiver, fmt)
    with receiver.client(timeout=60) as http:
        response = http.post("/events", content=body, headers=headers)
    after = _histogram(receiver, fmt)
    within = after.get(str(BUDGET), 0) - before.get(str(BUDGET), 0)
    count = after.get("+Inf", 0) - before.get("+Inf", 0)
    assert count == 1, "exactly one observation of this request"
    return response.status_code, response.content, after["sum"] - before.get("sum", 0), within == 1


def _report(what: str, body: bytes, status: int, answer: bytes, seconds: float) -> None:
    kib = len(body) // 1024
    print(f"\n{what}: {kib} KiB -> {status}, {len(answer)} bytes, {seconds * 1000:.1f} ms")


def _legacy_post(receiver: ReceiverProcess, body: bytes) -> httpx.Response:
    with receiver.client(timeout=60) as http:
        return http.post(
            "/events", content=body, headers=events_api_headers(EVENTS_API_SECRET, body)
        )


@pytest.mark.parametrize("name", sorted(LEGACY_WORST))
def test_worst_legacy_bodies_are_answered_small_and_in_time(
    receiver: ReceiverProcess, name: str
) -> None:
    body = LEGACY_WORST[name]
    status, answer, seconds, within = _post_measured(
        receiver, "events_api", body, events_api_headers(EVENTS_API_SECRET, body)
    )
    _report(f"legacy {name}", body, status, answer, seconds)
    assert status == 400, answer[:300]
    assert len(answer) < ANSWER_MAX, f"{len(answer)} bytes of answer"
    assert within, f"{seconds:.3f} s server-side"


@pytest.mark.parametrize("name", sorted(EP_WORST))
def test_worst_event_platform_bodies_are_answered_small_and_in_time(
    receiver: ReceiverProcess, name: str
) -> None:
    body = EP_WORST[name]
    status, answer, seconds, within = _post_measured(
        receiver, "event_platform", body, event_platform_headers(EVENT_PLATFORM_SECRETS[0], body)
    )
    _report(f"event platform {name}", body, status, answer, seconds)
    assert status == 400, answer[:300]
    assert len(answer) < ANSWER_MAX, f"{len(answer)} bytes of answer"
    assert within, f"{seconds:.3f} s server-side"


def test_events_per_request_are_capped_with_a_clear_reason(receiver: ReceiverProcess) -> None:
    events = [legacy_event(f"p{i}", action="product.removed") for i in range(101)]
    response = _legacy_post(receiver, json.dumps({"events": events}).encode())
    assert response.status_code == 400
    assert response.json()["error"] == "too_many_events"
    ok = _legacy_post(receiver, json.dumps({"events": events[:100]}).encode())
    assert ok.status_code == 200, ok.text
    assert ok.json()["accepted"] == 100


def test_rejected_events_are_named_twenty_at_most_plus_a_count(receiver: ReceiverProcess) -> None:
    events = [{"action": "product.updated", "event_id": f"bad-{i}"} for i in range(60)]
    response = _legacy_post(receiver, json.dumps({"events": events}).encode())
    answer = response.json()
    assert response.status_code == 400 and answer["error"] == "invalid_events"
    assert [r["event_id"] for r in answer["rejected"]] == [f"bad-{i}" for i in range(20)]
    assert answer["rejected_count"] == 60
    assert answer["accepted"] == 0


def test_every_log_line_is_bounded(receiver: ReceiverProcess) -> None:
    """After the worst bodies above (module order) and one more here, no line is long."""
    _legacy_post(receiver, LEGACY_WORST["many_invalid_events"])
    lines = receiver.output().splitlines()
    longest = max(len(line) for line in lines)
    assert longest < LOG_LINE_MAX, f"a log line of {longest} characters"
    assert any('"reason": "' in line for line in lines)  # the rejections were logged


# --- the REST client against a PIM announcing a huge items_count ---------------------------

LIED_COUNT = 10**7  # 100,000 pages announced; the PIM has 250 families (3 pages)


@web.middleware
async def _huge_count(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path == FAMILIES_PATH and isinstance(response, web.Response) and response.body:
        raw = bytes(response.body)  # type: ignore[arg-type]
        gzipped = response.headers.get("Content-Encoding") == "gzip"
        body = json.loads(gzip.decompress(raw) if gzipped else raw)
        if "items_count" in body:
            body["items_count"] = LIED_COUNT
        return web.json_response(body)
    return response


async def test_a_lying_items_count_does_not_create_unbounded_page_requests() -> None:
    before = sum(not t.done() for t in asyncio.all_tasks())
    sim = PimSimulator(products=0, product_models=0, families=250)
    sim.api.app.middlewares.append(_huge_count)
    async with sim:
        client = AkeneoRestClient(sim.url, sim.credentials, backoff_base=0.005, allow_private=True)
        async with client:
            started = time.monotonic()
            items: list[str] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    async for page in client.iter_offset_pages(FAMILIES_PATH):
                        items.extend(i["code"] for i in page)
            elapsed = time.monotonic() - started
            # with the client still open (what it started is still there), the simulator's
            # own tasks may take a moment to finish on a loaded machine: what must not stay is
            # a task per page the lying count asked for (hundreds)
            settle = time.monotonic() + 5
            while (pending := sum(not t.done() for t in asyncio.all_tasks()) - before) >= 8:
                if time.monotonic() > settle:
                    break
                await asyncio.sleep(0.05)
    calls = len([e for e in sim.stats.log if e[1] == FAMILIES_PATH])
    print(
        f"\nlying items_count: {calls} calls, {len(items)} items, {elapsed:.2f} s, {pending} tasks"
    )
    assert items == sim.catalog.structure.codes("families")
    assert calls <= 3 + 8, f"{calls} page requests for 3 real pages"
    assert pending < 8, f"{pending} tasks left behind"
