"""Deliveries of catalog changes, as the PIM sends them: legacy Events API or Event Platform.

Legacy: ``{"events": [...]}`` batches of up to 10, signed over ``"<ts>." + body``, plus the
connection page's Test request (empty body). Event Platform: one CloudEvent per change with
ids only in ``data``, signed over the body with the primary (and secondary) secret.
Like the PIM, nothing is retried, and an answer later than the sender's deadline is lost:
0.5 s for the legacy Events API, 5 s for the Event Platform (it retries minutes later; not
simulated).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_pim.simulator.catalog import Change, akeneo_datetime

DeliveryFormat = Literal["events_api", "event_platform"]
PIM_TIMEOUT = 0.5  # the legacy Events API's deadline for the whole request
EVENT_PLATFORM_TIMEOUT = 5.0  # the Event Platform's
_CE_KIND = {"product": "product", "product_model": "product-model"}
_CE_ACTION = {"created": "created", "updated": "updated", "removed": "deleted"}


def legacy_event(change: Change, pim_source: str) -> dict[str, Any]:
    return {
        "action": f"{change.kind}.{change.action}",
        "event_id": change.event_id,
        "event_datetime": akeneo_datetime(change.event_datetime),
        "author": change.author,
        "author_type": change.author_type,
        "pim_source": pim_source,
        "data": {"resource": change.resource},
    }


def legacy_body(changes: Sequence[Change], pim_source: str) -> bytes:
    return json.dumps({"events": [legacy_event(c, pim_source) for c in changes]}).encode()


def cloud_event(change: Change, source: str, subscription: str) -> dict[str, Any]:
    kind = _CE_KIND[change.kind]
    ids = {"uuid": change.key} if change.kind == "product" else {"code": change.key}
    return {
        "specversion": "1.0",
        "id": change.event_id,
        "source": source,
        "type": f"com.akeneo.pim.v1.{kind}.{_CE_ACTION[change.action]}",
        "subject": subscription,
        "time": change.event_datetime.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschema": f"https://event.prd.sdk.akeneo.cloud/spec/{kind}/v1",
        "data": {
            change.kind: ids,
            "author": {"identifier": change.author, "type": change.author_type},
        },
    }


@dataclass
class SendReport:
    """What happened to the deliveries (a delivery is one POST)."""

    deliveries: int = 0
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    timed_out: int = 0
    failed: int = 0  # connection refused, TLS errors...
    dropped: int = 0  # lost on purpose by the ``drop`` knob, never sent
    duplicated: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def merge(self, other: SendReport) -> None:
        for name in ("deliveries", "events", "accepted", "rejected", "timed_out", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dropped += other.dropped
        self.duplicated += other.duplicated
        self.statuses.update(other.statuses)
        self.latencies.extend(other.latencies)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "events": self.events,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "failed": self.failed,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


@dataclass(frozen=True)
class _Delivery:
    body: bytes
    events: int
    content_type: str


class EventSender:
    """Sends changes to one receiver URL, the way the PIM would (no retries, 0.5 s budget)."""

    def __init__(
        self,
        target: str,
        *,
        format: DeliveryFormat = "events_api",
        events_api_secret: str | None = None,
        event_platform_secrets: tuple[str, str | None] | None = None,
        pim_source: str = "https://simulated-pim.example.com",
        subscription: str = "simulated-subscription",
        batch_size: int = 10,
        concurrency: int = 5,
        timeout: float | None = None,  # None: the format's own deadline
        reorder: float = 0.0,
        duplicate: float = 0.0,
        drop: float = 0.0,
        seed: int = 0,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        if format == "events_api" and not events_api_secret:
            raise ValueError("the legacy Events API format needs events_api_secret")
        if format == "event_platform" and not event_platform_secrets:
            raise ValueError("the Event Platform format needs event_platform_secrets")
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be within 1..10 (the PIM sends at most 10)")
        self.target = target
        self.format = format
        self._events_api_secret = events_api_secret
        self._ep_secrets = event_platform_secrets
        self.pim_source = pim_source
        self.subscription = subscription
        self.batch_size = batch_size
        if timeout is None:
            timeout = PIM_TIMEOUT if format == "events_api" else EVENT_PLATFORM_TIMEOUT
        self.timeout = timeout
        self.reorder, self.duplicate, self.drop = reorder, duplicate, drop
        self._rng = random.Random(seed)
        self._slots = asyncio.Semaphore(concurrency)
        if isinstance(verify, str):  # a CA bundle path
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.AsyncClient(
            verify=verify,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout * 4),
            limits=httpx.Limits(max_connections=concurrency),
        )

    async def __aenter__(self) -> EventSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _deliveries(self, changes: Sequence[Change]) -> list[_Delivery]:
        if self.format == "events_api":
            return [
                _Delivery(
                    legacy_body(changes[i : i + self.batch_size], self.pim_source),
                    len(changes[i : i + self.batch_size]),
                    "application/json",
                )
                for i in range(0, len(changes), self.batch_size)
            ]
        return [
            _Delivery(
                json.dumps(cloud_event(c, self.pim_source, self.subscription)).encode(),
                1,
                "application/cloudevents+json",
            )
            for c in changes
        ]

    def _headers(self, body: bytes, content_type: str) -> dict[str, str]:
        if self.format == "events_api":
            assert self._events_api_secret is not None
            headers = events_api_headers(self._events_api_secret, body)
        else:
            assert self._ep_secrets is not None
            primary, secondary = self._ep_secrets
            headers = event_platform_headers(primary, body, secondary)
        headers["Content-Type"] = content_type
        return headers

    def _plan(self, deliveries: list[_Delivery], report: SendReport) -> list[_Delivery]:
        """Apply the drop / duplicate / reorder knobs, as a lossy network and sender would."""
        rng = self._rng
        planned: list[_Delivery] = []
        for delivery in deliveries:
            if self.drop and rng.random() < self.drop:
                report.dropped += 1
                continue
            planned.append(delivery)
            if self.duplicate and rng.random() < self.duplicate:
                planned.append(delivery)
                report.duplicated += 1
        if self.reorder:
            for i in range(len(planned) - 1):
                if rng.random() < self.reorder:
                    j = rng.randrange(i + 1, len(planned))
                    planned[i], planned[j] = planned[j], planned[i]
        return planned

    async def _post(self, body: bytes, headers: dict[str, str], report: SendReport) -> int | None:
        async with self._slots:
            started = time.monotonic()
            report.deliveries += 1
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._http.post(self.target, content=body, headers=headers)
            except TimeoutError:
                report.timed_out += 1
                return None
            except httpx.HTTPError:
                report.failed += 1
                return None
            elapsed = time.monotonic() - started
        report.latencies.append(elapsed)
        report.statuses[response.status_code] += 1
        if elapsed > self.timeout:
            report.timed_out += 1  # a late answer is lost, as in the PIM
        elif 200 <= response.status_code < 300:
            report.accepted += 1
        else:
            report.rejected += 1
        return response.status_code

    async def send_test_request(self) -> int | None:
        """The connection page's Test button: empty body, signed over ``"<ts>."``."""
        if self._events_api_secret is None:
            raise ValueError("the Test request is a legacy Events API feature")
        report = SendReport()
        return await self._post(b"", self._headers(b"", "application/json"), report)

    async def send(self, changes: Sequence[Change]) -> SendReport:
        report = SendReport()
        planned = self._plan(self._deliveries(changes), report)

        async def one(delivery: _Delivery) -> None:
            report.events += delivery.events
            await self._post(
                delivery.body, self._headers(delivery.body, delivery.content_type), report
            )

        await asyncio.gather(*(one(d) for d in planned))
        return report
