"""schemathesis against a live receiver: every answer conforms to ``docs/openapi/receiver.yaml``.

Two requests in three to the delivery paths are validly signed (``/events`` with the scheme
of their media type, ``/event-platform`` as the Event Platform signs, the notifications path
with the notification secret), so the parsing paths are reached; the rest keep the (random)
signatures schemathesis generated. The acceptance checks are left out: a schema-valid event
may still be refused (``400 invalid_events``, e.g. a resource without an identifier), and the
receiver is lenient with what it does not read (extra fields), while re-signing turns a
generated "negative" case into a valid one. What is checked: no 5xx, documented status
codes, content types, headers and bodies.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from akeneo_pim.paths import EVENT_PLATFORM_PATH, EVENTS_API_PATH, NOTIFICATIONS_PATH
from akeneo_pim.signatures import (
    event_platform_headers,
    events_api_headers,
    notification_headers,
)
from akeneo_testing.ground.binaries import REPO
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.tls import CertificateAuthority
from tests.integration.receiver.conftest import (
    EVENT_PLATFORM_SECRETS,
    EVENTS_API_SECRET,
    NOTIFICATION_SECRET,
)
from tests.security.conftest import ReceiverProcess, unique_names

OPENAPI = REPO / "docs" / "openapi" / "receiver.yaml"
EXAMPLES = int(os.environ.get("OPENAPI_EXAMPLES", "60"))
schema = schemathesis.openapi.from_path(OPENAPI)
EXCLUDED = [checks.positive_data_acceptance, checks.negative_data_rejection]
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def live(
    nats_server: NatsServer,
    security_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ReceiverProcess, httpx.Client]]:
    files = Path(tmp_path_factory.mktemp("openapi"))
    secret = files / "eventPlatformNotificationSecret"
    secret.write_text(NOTIFICATION_SECRET + "\n")
    receiver = ReceiverProcess(
        unique_names(),
        security_ca,
        files,
        nats_server.url,
        extra_args=("--ensure-stream",),
        env={"AKENEO_EVENT_PLATFORM_NOTIFICATION_SECRET_FILE": str(secret)},
    ).start()
    try:
        with receiver.client(timeout=10) as http:
            yield receiver, http
    finally:
        receiver.stop()
        print(f"\nschemathesis: {dict(sorted(TALLY.items()))}")


def _body(kwargs: dict[str, Any]) -> bytes:
    if "json" in kwargs:
        return json.dumps(kwargs.pop("json")).encode()
    data = kwargs.pop("data", None) or kwargs.pop("content", None) or b""
    return data.encode() if isinstance(data, str) else bytes(data)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_receiver_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], live: tuple[ReceiverProcess, httpx.Client]
) -> None:
    receiver, http = live
    kwargs = case.as_transport_kwargs(base_url=receiver.url)
    body = _body(kwargs)
    headers = dict(kwargs["headers"])
    delivery = case.path in (EVENTS_API_PATH, EVENT_PLATFORM_PATH, NOTIFICATIONS_PATH)
    if case.method == "POST" and delivery and zlib.crc32(body + case.id.encode()) % 3:
        for name in list(headers):
            if name.lower().startswith("x-akeneo"):
                del headers[name]
        if case.path == NOTIFICATIONS_PATH:
            headers.update(notification_headers(NOTIFICATION_SECRET, body))
        elif case.path == EVENTS_API_PATH and (case.media_type or "").startswith(
            "application/json"
        ):
            headers.update(events_api_headers(EVENTS_API_SECRET, body))
        else:
            headers.update(event_platform_headers(EVENT_PLATFORM_SECRETS[0], body))
        headers["Content-Type"] = case.media_type or "application/json"
        TALLY[f"signed {case.path} {case.media_type}"] += 1
    response = http.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, content=body
    )
    TALLY[f"{case.method} {case.path} {response.status_code}"] += 1
    case.validate_response(response, excluded_checks=EXCLUDED)
