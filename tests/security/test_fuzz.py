"""Hypothesis against a live receiver subprocess over real TLS and a real nats-server.

Every input gets a 4xx (a 200 only for a validly signed, well-formed delivery), never a 5xx
or a crash; nothing reaches the stream without a valid signature; RSS stays bounded.
``FUZZ_EXAMPLES`` (default 800 per test) scales the run; totals are printed at module end:
distinct generated inputs (hypothesis may draw the same one twice: counted once), apart from
the memory test's replays of four fixed bodies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import http_exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akeneo_pim.signatures import (
    EVENT_PLATFORM_ALGORITHM_HEADER,
    EVENT_PLATFORM_PRIMARY_HEADER,
    EVENT_PLATFORM_SECONDARY_HEADER,
    EVENTS_API_SIGNATURE_HEADER,
    EVENTS_API_TIMESTAMP_HEADER,
    event_platform_headers,
    events_api_headers,
    sign_event_platform,
    sign_events_api,
)
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.payloads import cloud_event, legacy_body, legacy_event
from tests.integration.receiver.conftest import EVENT_PLATFORM_SECRETS, EVENTS_API_SECRET
from tests.security.conftest import MAX_BODY, ReceiverProcess, stream_messages

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "800"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
PAYLOAD_REASONS = ("invalid_json", "invalid_shape", "invalid_events", "empty_body")
TALLY: Counter[str] = Counter()  # requests sent per kind, answers by code, RSS
DISTINCT: dict[str, set[bytes]] = {}  # per kind, a digest of each distinct generated input
MEMORY_SAMPLES = 4  # fixed bodies the memory test replays
# aiohttp logs malformed HTTP (answered 400) as errors too; anything else there is a crash
HTTP_PARSE_ERRORS = {name for name, obj in vars(http_exceptions).items() if isinstance(obj, type)}
CLIENT_GONE = {"ConnectionResetError", "BrokenPipeError", "ClientConnectionResetError"}


def crashes(output: str) -> list[str]:
    found = []
    for line in output.splitlines():
        if "Traceback" in line:
            found.append(line)
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            entry.get("severity") in ("error", "fatal")
            and entry.get("exception") not in HTTP_PARSE_ERRORS | CLIENT_GONE
        ):
            found.append(line)
    return found


@pytest.fixture(scope="module")
def http(fuzz_receiver: ReceiverProcess) -> Iterator[httpx.Client]:
    with fuzz_receiver.client(timeout=10) as client:
        yield client


def totals() -> list[str]:
    """The run's fuzzing figures (printed in pytest's closing summary by the conftest)."""
    if not TALLY:
        return []
    distinct = sum(len(d) for d in DISTINCT.values())
    generated = sum(v for k, v in TALLY.items() if k.startswith("sent:"))
    replays = TALLY["replayed:memory"]
    head = (f"fuzz totals: {distinct} distinct generated inputs ({generated} sent), "
            f"{replays} replays of {MEMORY_SAMPLES} fixed bodies")  # fmt: skip
    kinds = {f"distinct:{k}": len(d) for k, d in DISTINCT.items()}
    lines = sorted((TALLY | kinds).items())
    return [head] + [f"  {k}: {v}" for k, v in lines]


def _record(kind: str, status: int, *sent: bytes) -> None:
    """One generated input ``sent`` (its parts: body, headers...) and the answer's code."""
    TALLY[f"sent:{kind}"] += 1
    TALLY[f"code:{status}"] += 1
    digest = hashlib.sha256()
    for part in sent:
        digest.update(len(part).to_bytes(8, "big") + part)
    DISTINCT.setdefault(kind, set()).add(digest.digest())
    assert status < 500, f"{kind}: answered {status}"


def _headers_bytes(headers: dict[str, str] | dict[bytes, bytes]) -> bytes:
    return repr(sorted(headers.items())).encode()


# --- strategies -----------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, JSON_VALUES)


ACTIONS = st.sampled_from(
    [
        "product.created",
        "product.updated",
        "product.removed",
        "product_model.created",
        "product_model.updated",
        "product_model.removed",
        "product.exploded",
    ]
)
DATETIMES = st.datetimes().map(lambda d: d.isoformat()) | st.just("2026-11-27T10:00:01+00:00")


@st.composite
def legacy_events(draw: st.DrawFn) -> dict[str, Any]:
    event = legacy_event(draw(st.text(min_size=1, max_size=20)), action=draw(ACTIONS))
    event["event_id"] = draw(_maybe(st.uuids().map(str)))
    for key in ("action", "event_datetime", "author", "author_type", "pim_source"):
        if draw(st.integers(0, 3)) == 0:
            event[key] = draw(JSON_VALUES)
    if draw(st.booleans()):
        event["data"]["resource"] = draw(_maybe(st.just(event["data"]["resource"])))
        for key in list(
            event["data"]["resource"] if isinstance(event["data"]["resource"], dict) else ()
        ):
            if draw(st.integers(0, 4)) == 0:
                event["data"]["resource"][key] = draw(JSON_VALUES)
    if draw(st.integers(0, 5)) == 0:
        del event[draw(st.sampled_from(sorted(event)))]
    return event


CE_TYPES = st.sampled_from(
    [
        "com.akeneo.pim.v1.product.updated",
        "com.akeneo.pim.v1.product.created",
        "com.akeneo.pim.v1.product.deleted",
        "com.akeneo.pim.v1.product-model.updated",
        "com.akeneo.pim.v1.product-model.deleted",
        "com.akeneo.pim.v1.unknown.thing",
    ]
)


@st.composite
def cloud_events(draw: st.DrawFn) -> dict[str, Any]:
    event = cloud_event(draw(st.text(min_size=1, max_size=20)), type_=draw(CE_TYPES))
    event["id"] = draw(_maybe(st.uuids().map(str)))
    for key in ("specversion", "source", "type", "time", "data", "subject"):
        if draw(st.integers(0, 3)) == 0:
            event[key] = draw(JSON_VALUES)
    if draw(st.integers(0, 5)) == 0:
        del event[draw(st.sampled_from(sorted(event)))]
    return event


def _legacy_body(events: list[dict[str, Any]]) -> bytes:
    try:
        return legacy_body(events)
    except ValueError:  # out-of-range floats etc.: send Python's non-standard JSON anyway
        return json.dumps({"events": events}, allow_nan=True).encode()


def _nest(depth: int, opener: bytes, closer: bytes, closed: bool) -> bytes:
    return opener * depth + (closer * depth if closed else b"")


HOSTILE_BODIES = st.one_of(
    st.binary(max_size=2048),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.builds(
        _nest,
        st.integers(1, MAX_BODY // 4),
        st.sampled_from([b"[", b'{"a":', b'{"events":[']),
        st.sampled_from([b"]", b"}", b"]}"]),
        st.booleans(),
    ),
    st.integers(1, MAX_BODY - 64).map(lambda n: b'{"events":["' + b"x" * n + b'"]}'),
    st.integers(1, MAX_BODY - 64).map(
        lambda n: b'{"specversion":"' + b"\\u0000" * (n // 6) + b'"}'
    ),
    st.just(b'{"events": [], "events": [{"event_id": "a", "event_id": "b"}]}'),
    st.builds(
        lambda body, pos, junk: body[:pos] + junk + body[pos:],
        st.sampled_from([legacy_body([legacy_event("x")]), json.dumps(cloud_event("y")).encode()]),
        st.integers(0, 400),
        st.sampled_from(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xef\xbb\xbf"]
        ),
    ),
    st.lists(legacy_events(), max_size=4).map(_legacy_body),
    cloud_events().map(lambda e: json.dumps(e).encode()),
    st.lists(cloud_events(), max_size=4).map(lambda e: json.dumps(e).encode()),
)


# --- validly signed: parsing must hold -------------------------------------------------------


@FUZZ
@given(body=HOSTILE_BODIES, scheme=st.sampled_from(["events_api", "event_platform"]))
def test_signed_hostile_bodies_get_4xx_or_200(
    http: httpx.Client,
    fuzz_receiver: ReceiverProcess,
    nats_server: NatsServer,
    body: bytes,
    scheme: str,
) -> None:
    before = stream_messages(nats_server, fuzz_receiver.names.stream)
    if scheme == "events_api":
        headers = events_api_headers(EVENTS_API_SECRET, body)
    else:
        headers = event_platform_headers(EVENT_PLATFORM_SECRETS[0], body)
    resp = http.post("/events", content=body, headers=headers)
    _record(f"signed:{scheme}", resp.status_code, body)
    answer = resp.json()
    assert resp.status_code in (200, 400, 413), answer
    if resp.status_code == 413:
        assert len(body) > MAX_BODY
    elif resp.status_code == 400:
        assert answer["error"] in PAYLOAD_REASONS, answer
    after = stream_messages(nats_server, fuzz_receiver.names.stream)
    assert after - before <= answer.get("accepted", 0)


# --- not validly signed: always 401, never enqueued ------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
).map(lambda t: t.strip(" \t\xa0"))  # h11 refuses surrounding whitespace; raw tests send it
HEX = st.text(alphabet="0123456789abcdef", min_size=0, max_size=80)


@st.composite
def forged_headers(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    now = int(time.time())
    case = draw(st.sampled_from(["legacy", "replay", "wrong_secret", "tampered", "ep", "none"]))
    if case == "legacy":
        return {
            EVENTS_API_SIGNATURE_HEADER: draw(HEX | HEADER_TEXT),
            EVENTS_API_TIMESTAMP_HEADER: draw(st.integers(-(2**63), 2**63).map(str) | HEADER_TEXT),
        }
    if case == "replay":  # a genuine signature, but outside the 300 s tolerance either way
        # 30 s clear of the edge: on a loaded machine the request may leave seconds after
        # ``now`` was read, and a timestamp 301 s ahead is then back inside the tolerance.
        skew = draw(st.integers(330, 10**9)) * draw(st.sampled_from([-1, 1]))
        ts = now + skew
        return {
            EVENTS_API_SIGNATURE_HEADER: sign_events_api(EVENTS_API_SECRET, ts, body),
            EVENTS_API_TIMESTAMP_HEADER: str(ts),
        }
    if case == "wrong_secret":
        secret = draw(
            st.text(min_size=1, max_size=30).filter(
                lambda s: s.strip() not in (EVENTS_API_SECRET, *EVENT_PLATFORM_SECRETS)
            )
        )
        if draw(st.booleans()):
            return events_api_headers(secret, body)
        return event_platform_headers(secret, body, secondary=draw(st.none() | st.just(secret)))
    if case == "tampered":  # signed over other bytes
        other = body + draw(st.binary(min_size=1, max_size=8))
        if draw(st.booleans()):
            return events_api_headers(EVENTS_API_SECRET, other)
        return {
            EVENT_PLATFORM_PRIMARY_HEADER: sign_event_platform(EVENT_PLATFORM_SECRETS[0], other)
        }
    if case == "ep":
        headers = {EVENT_PLATFORM_PRIMARY_HEADER: draw(HEX | HEADER_TEXT)}
        if draw(st.booleans()):
            headers[EVENT_PLATFORM_SECONDARY_HEADER] = draw(HEX | HEADER_TEXT)
        if draw(st.booleans()):
            headers[EVENT_PLATFORM_ALGORITHM_HEADER] = draw(HEADER_TEXT)
        return headers
    return draw(
        st.dictionaries(
            st.sampled_from(["X-Akeneo-Foo", "Authorization", "Content-Type"]),
            HEADER_TEXT,
            max_size=3,
        )
    )


@st.composite
def unsigned_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    body = draw(
        st.sampled_from(
            [legacy_body([legacy_event("forged")]), json.dumps(cloud_event("forged")).encode()]
        )
        | HOSTILE_BODIES
    )
    return body, draw(forged_headers(body))


@FUZZ
@given(request=unsigned_requests())
def test_unsigned_requests_are_401_and_never_enqueued(
    http: httpx.Client,
    fuzz_receiver: ReceiverProcess,
    nats_server: NatsServer,
    request: tuple[bytes, dict[str, str]],
) -> None:
    body, headers = request
    before = stream_messages(nats_server, fuzz_receiver.names.stream)
    raw = {k.encode(): v.encode("latin-1") for k, v in headers.items()}  # non-ASCII as sent
    resp = http.post("/events", content=body, headers=raw)
    _record("unsigned", resp.status_code, body, _headers_bytes(raw))
    assert resp.status_code == (413 if len(body) > MAX_BODY else 401), resp.text
    assert stream_messages(nats_server, fuzz_receiver.names.stream) == before


# --- raw HTTP: header injection, smuggling, malformed framing ---------------------------------

TOKENS = st.sampled_from(
    [
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999",
        b"Content-Length: 5, 6",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: identity",
        b"X-Akeneo-Request-Signature: 00\r\nX-Akeneo-Request-Signature: 11",
        b"X-Akeneo-Request-Timestamp: 1\x00",
        b"X-AKENEO-SIGNATURE-PRIMARY: \xff\xfe",
        b"X-Folded: a\r\n b",
        b"Bad Header: x",
        b": empty-name",
        b"X-Long: " + b"a" * 9000,
        b"Host: localhost\r\nHost: evil",
        b"Expect: 100-continue",
        b"Connection: upgrade\r\nUpgrade: websocket",
        b"Content-Type: application/json; charset=\x00",
    ]
)
REQUEST_LINES = st.sampled_from(
    [
        b"POST /events HTTP/1.1",
        b"POST /events HTTP/1.0",
        b"POST /events HTTP/2.0",
        b"POST /events?x=\r\n HTTP/1.1",
        b"POST /../events HTTP/1.1",
        b"POST http://evil/events HTTP/1.1",
        b"POST /events\x00 HTTP/1.1",
        b"PO\xffST /events HTTP/1.1",
        b"POST /events HTTP/1.1 extra",
        b"POST " + b"/a" * 5000 + b" HTTP/1.1",
    ]
)


def _status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else None


def raw_exchange(port: int, ctx: ssl.SSLContext, data: bytes, timeout: float = 1.0) -> bytes:
    """Send ``data`` over TLS; return what came back until the answer's head, EOF or timeout."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        with contextlib.suppress(OSError):
            tls.sendall(data)
        received = b""
        with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
            while b"\r\n\r\n" not in received and (chunk := tls.recv(65536)):
                received += chunk
        return received


@FUZZ
@given(
    line=REQUEST_LINES,
    headers=st.lists(
        TOKENS | HEADER_TEXT.map(lambda t: b"X-Fuzz: " + t.encode("latin-1")), max_size=6
    ),
    body=st.binary(max_size=256),
)
def test_raw_http_framing_never_5xx(
    fuzz_receiver: ReceiverProcess,
    nats_server: NatsServer,
    line: bytes,
    headers: list[bytes],
    body: bytes,
) -> None:
    before = stream_messages(nats_server, fuzz_receiver.names.stream)
    request = (
        line + b"\r\nHost: localhost\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
    )
    answer = raw_exchange(fuzz_receiver.port, fuzz_receiver.ca.client_context(), request)
    status = _status_of(answer)
    _record("raw_http", status or 499, request)  # 499: closed without an answer
    assert status is None or status < 500, answer[:200]
    if status == 200:  # only a probe could answer 200 here, never /events
        assert b'"accepted"' not in answer
    assert stream_messages(nats_server, fuzz_receiver.names.stream) == before


# --- after all of it ---------------------------------------------------------------------------


def test_memory_bounded_and_no_crash(http: httpx.Client, fuzz_receiver: ReceiverProcess) -> None:
    """RSS after a warm-up, then after N more mixed hostile requests: growth is bounded."""
    rounds = max(200, EXAMPLES * 4)
    big = b'{"events":["' + b"x" * (MAX_BODY - 100) + b'"]}'
    deep = b"[" * (MAX_BODY // 2)
    samples = [big, deep, b"\xff" * 1000, legacy_body([legacy_event("m")])]
    assert len(samples) == MEMORY_SAMPLES

    def burst(n: int) -> None:
        for i in range(n):
            body = samples[i % len(samples)]
            headers = (
                events_api_headers(EVENTS_API_SECRET, body)
                if i % 3
                else event_platform_headers("not-the-secret", body)
            )
            status = http.post("/events", content=body, headers=headers).status_code
            TALLY["replayed:memory"] += 1  # the same few bodies again: not generated inputs
            TALLY[f"code:{status}"] += 1
            assert status < 500, f"memory: answered {status}"

    burst(100)
    baseline = fuzz_receiver.rss_kib()
    burst(rounds)
    grown = fuzz_receiver.rss_kib() - baseline
    TALLY["rss_baseline_kib"] = baseline
    TALLY["rss_growth_kib"] = grown
    assert grown < 32 * 1024, f"RSS grew by {grown} KiB over {rounds} requests"
    assert fuzz_receiver.process is not None and fuzz_receiver.process.alive
    output = fuzz_receiver.output()
    assert crashes(output) == []
    with fuzz_receiver.admin_client() as admin:
        metrics = admin.get("/metrics").text
    codes = re.findall(r'akeneo_receiver_requests_total\{[^}]*code="(\d+)"', metrics)
    assert codes and not [c for c in codes if c.startswith("5")], codes
