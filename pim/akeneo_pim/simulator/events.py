"""Deliveries of catalog changes, as the PIM sends them: legacy Events API or Event Platform.

Legacy: ``{"events": [...]}`` batches of up to 10, signed over ``"<ts>." + body``, plus the
connection page's Test request (empty body); products and product models only.
Event Platform: one CloudEvent per request with ids only in ``data``, signed over the body
with the primary (and secondary) secret. The envelope is the one of Akeneo's available-events
reference (https://api.akeneo.com/event-platform/available-events.html): ``source`` "pim",
``subject`` the subscription's uuid, ``time`` RFC 3339 UTC, ``dataschema``
``https://event.prd.sdk.akeneo.cloud/spec/<type>.schema.json``, ``data.author.type`` one of
user/api/job/system (none on became-complete/incomplete). ``PimEvent`` is an event before it
is addressed to a subscription; ``pim_events``, ``completeness_event`` and ``reference_event``
build them for every type of ``event_types.REFERENCE``.

``EventSender`` posts once, without retries: an answer later than the deadline is lost (0.5 s
legacy, 5 s Event Platform). ``akeneo_pim.simulator.platform`` is the Event Platform's delivery
engine (retries, suspension, notifications, management API).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from akeneo_connector.event_types import PREFIX
from akeneo_pim.signatures import event_platform_headers, events_api_headers
from akeneo_pim.simulator.catalog import Change, akeneo_datetime

DeliveryFormat = Literal["events_api", "event_platform"]
PIM_TIMEOUT = 0.5  # the legacy Events API's deadline for the whole request
EVENT_PLATFORM_TIMEOUT = 5.0  # the Event Platform's
# Each type of https://api.akeneo.com/event-platform/available-events.html lists "Content
# type: application/json"; Akeneo documents no other Content-Type for deliveries.
EVENT_CONTENT_TYPE = "application/json"
SOURCE = "pim"
DATASCHEMA = "https://event.prd.sdk.akeneo.cloud/spec/{type}.schema.json"
LEGACY_KINDS = ("product", "product_model")  # all the legacy Events API ever announced
_CE_KIND = {
    "product": "product",
    "product_model": "product-model",
    "category": "category",
    "family": "family",
    "attribute": "attribute",
    "attribute_option": "attribute-option",
}
_CE_ACTION = {"created": "created", "updated": "updated", "removed": "deleted"}
_EP_AUTHOR_TYPE = {"ui": "user"}  # api, job and system keep their names


def legacy_event(change: Change, pim_source: str) -> dict[str, Any]:
    return {
        "action": f"{change.kind}.{change.action}",
        "event_id": change.event_id,
        "event_datetime": akeneo_datetime(change.event_datetime),
        "author": change.author,
        # the legacy Events API knows ui and api only (jobs and the system act as ui)
        "author_type": "api" if change.author_type == "api" else "ui",
        "pim_source": pim_source,
        "data": {"resource": change.resource},
    }


def legacy_body(changes: Sequence[Change], pim_source: str) -> bytes:
    return json.dumps({"events": [legacy_event(c, pim_source) for c in changes]}).encode()


# -- Event Platform ----------------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def rfc3339(value: datetime) -> str:
    """The envelope's ``time``: RFC 3339, UTC, whole seconds, ``Z`` (as Akeneo's samples)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataschema(event_type: str) -> str:
    return DATASCHEMA.format(type=event_type)


@dataclass(frozen=True)
class PimEvent:
    """One event as the PIM emits it, before the platform addresses it to a subscription.

    ``data`` holds the ids (and author) of Akeneo's reference for ``type``; the product
    identifier is added to ``data.product`` only for subscriptions that set
    ``send_product_identifier``.
    """

    type: str
    id: str
    time: datetime
    data: dict[str, Any]
    product_identifier: str | None = None

    def cloud_event(
        self, subscription: str, *, send_product_identifier: bool = False
    ) -> dict[str, Any]:
        """The CloudEvent delivered to ``subscription`` (its uuid is the ``subject``)."""
        data = self.data
        if send_product_identifier and self.product_identifier is not None and "product" in data:
            data = {**data, "product": {**data["product"], "identifier": self.product_identifier}}
        return {
            "specversion": "1.0",
            "id": self.id,
            "type": self.type,
            "source": SOURCE,
            "subject": subscription,
            "time": rfc3339(self.time),
            "datacontenttype": "application/json",
            "dataschema": dataschema(self.type),
            "data": data,
        }


def _author(identifier: str, author_type: str) -> dict[str, str]:
    return {"identifier": identifier, "type": _EP_AUTHOR_TYPE.get(author_type, author_type)}


def _ids(change: Change) -> dict[str, Any]:
    if change.kind == "product":
        return {"uuid": change.key}
    if change.kind == "attribute_option":
        return {"code": change.code, "attribute": {"code": change.resource["attribute"]}}
    return {"code": change.code}


def _updated_at(change: Change) -> dict[str, str]:
    """``updated_at`` of delta events, PHP's DateTime as JSON (Akeneo's sample verbatim form:
    ``{"date": "2024-10-14 13:01:21.000000", "timezone": "UTC"}``)."""
    when = change.updated.astimezone(UTC)
    return {"date": when.strftime("%Y-%m-%d %H:%M:%S.000000"), "timezone": "UTC"}


def pim_events(change: Change) -> list[PimEvent]:
    """The Event Platform events one catalog edit produces: one per type, and for product and
    product model updates both ``updated`` and ``updated.delta`` (each subscription gets the
    ones it subscribed to). The first keeps ``change.event_id``."""
    resource = _CE_KIND[change.kind]
    base = f"{PREFIX}{resource}.{_CE_ACTION[change.action]}"
    key = "product_model" if change.kind == "product_model" else change.kind
    identifier = change.resource.get("identifier") if change.kind == "product" else None
    author = _author(change.author, change.author_type)
    events = [
        PimEvent(base, change.event_id, change.event_datetime,
                 {key: _ids(change), "author": author}, identifier)
    ]  # fmt: skip
    if change.action == "updated" and change.kind in ("product", "product_model"):
        delta_type = f"{base}.delta"
        ids = {**_ids(change), "updated_at": _updated_at(change), "changes": change.changes or {}}
        delta_id = str(uuidlib.uuid5(uuidlib.UUID(change.event_id), delta_type))
        events.append(
            PimEvent(delta_type, delta_id, change.event_datetime,
                     {key: ids, "author": author}, identifier)
        )  # fmt: skip
    return events


def completeness_event(
    uuid: str,
    combinations: Sequence[tuple[str, str]],
    *,
    complete: bool,
    event_id: str,
    time: datetime,
    identifier: str | None = None,
) -> PimEvent:
    """``product.became-complete`` / ``became-incomplete``: the (locale, scope) combinations
    under ``complete_on`` / ``incomplete_on`` (Akeneo's reference), and no author."""
    field_name = "complete_on" if complete else "incomplete_on"
    verb = "became-complete" if complete else "became-incomplete"
    combos = [{"locale": locale, "scope": scope} for locale, scope in combinations]
    return PimEvent(
        f"{PREFIX}product.{verb}",
        event_id,
        time,
        {"product": {"uuid": uuid, field_name: combos}},
        identifier,
    )


def reference_event(
    event_type: str,
    rng: random.Random,
    *,
    time: datetime | None = None,
    author: tuple[str, str] = ("julia", "user"),
) -> PimEvent:
    """An event of any type of Akeneo's reference (``event_types.REFERENCE``), with data shaped
    as the reference's sample for that type and fresh ids: what the simulator sends for types
    its catalog does not model (assets, jobs, workflows...). Unknown types get
    ``{"author"}`` only (Akeneo adds types over time)."""
    when = time or datetime.now(UTC).replace(microsecond=0)
    n = rng.randrange(1, 100_000)
    who = _author(*author)
    rest = event_type.removeprefix(PREFIX)
    resource, _, verb = rest.partition(".")
    data: dict[str, Any]
    identifier = None
    if resource == "product" and verb.startswith("became-"):
        combos = [("en_US", "ecommerce"), ("fr_FR", "mobile")][: 1 + n % 2]
        return completeness_event(
            _uuid(rng), combos, complete=verb == "became-complete", event_id=_uuid(rng),
            time=when, identifier=f"SKU-{n:06d}",
        )  # fmt: skip
    if resource == "product":
        ids: dict[str, Any] = {"uuid": _uuid(rng)}
        identifier = f"SKU-{n:06d}"
        data = {"product": ids}
    elif resource == "product-model":
        data = {"product_model": {"code": f"model_{n:05d}"}}
    elif resource == "attribute-option":
        data = {"attribute_option": {"code": f"option_{n}", "attribute": {"code": "color"}}}
    elif resource in ("category", "family", "attribute", "attribute-group"):
        data = {resource.replace("-", "_"): {"code": f"{resource.replace('-', '_')}_{n}"}}
    elif resource == "asset":
        data = {"asset": {"asset_family": {"code": "packshots"}, "code": f"asset_{n}"}}
    elif resource == "reference-entity-record":
        data = {
            "reference_entity_record": {
                "code": f"brand_{n}",
                "reference_entity": {"code": "brands"},
            }
        }
    elif resource in ("app", "connection"):
        data = {resource: {"client_id": f"{n}_{_uuid(rng)[:12]}"}}
    elif resource == "job":
        data = {"job": _job(verb.partition(".")[0], n, when)}
    elif rest == "workflow.task.created":
        data = {
            "task": {"uuid": _uuid(rng), "rejected": False},
            "workflow": {"uuid": _uuid(rng)},
            "step": {"uuid": _uuid(rng)},
            "product": {"uuid": _uuid(rng)},
        }
    else:
        data = {}
    if resource in ("product", "product-model") and verb.endswith(".delta"):
        key = "product" if resource == "product" else "product_model"
        stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
        data[key] = {
            **data[key],
            "updated_at": {"date": stamp, "timezone": "UTC"},
            "changes": {"enabled": {"previous": True, "new": False}}
            if key == "product"  # product models have no ``enabled``
            else {"categories": {"added": ["sale"], "removed": []}},
        }
    data["author"] = who
    return PimEvent(event_type, _uuid(rng), when, data, identifier)


def _job(kind: str, n: int, when: datetime) -> dict[str, Any]:
    """A job's status change, with the counters the reference shows for that job kind."""
    job: dict[str, Any] = {
        "execution_id": n,
        "code": f"{kind.replace('-', '_')}_job",
        "name": f"{kind}_job",
        "label": f"Nightly {kind}",
    }
    if kind == "mass-edit":
        job["read"] = 10
    else:
        job["total_rows"] = 10
    if kind == "import":
        job.update(total_rows_processed=10, total_rows_skipped=0, total_warnings=0)
    job.update(start_time=when.strftime("%Y-%m-%dT%H:%M:%S+00:00"), end_time=None,
               status="starting")  # fmt: skip
    return job


def cloud_event(
    change: Change, subscription: str, *, send_product_identifier: bool = False
) -> dict[str, Any]:
    """The first CloudEvent of ``change`` (``created``/``updated``/``deleted``) for a
    subscription: envelope and data as Akeneo's available-events reference shows them."""
    return pim_events(change)[0].cloud_event(
        subscription, send_product_identifier=send_product_identifier
    )


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


# what a subscription to the plain types gets: one event per edit
PLAIN_TYPES: frozenset[str] = frozenset(
    f"{PREFIX}{kind}.{verb}"
    for kind in set(_CE_KIND.values())
    for verb in ("created", "updated", "deleted")
)


class EventSender:
    """Sends changes to one receiver URL, the way the PIM would, once (no retries).

    Event Platform: ``event_types`` are the subscription's types (default: the plain
    created/updated/deleted ones, so one delivery per edit); ``subscription`` its uuid.
    """

    def __init__(
        self,
        target: str,
        *,
        format: DeliveryFormat = "events_api",
        events_api_secret: str | None = None,
        event_platform_secrets: tuple[str, str | None] | None = None,
        pim_source: str = "https://simulated-pim.example.com",
        subscription: str | None = None,
        event_types: Collection[str] | None = None,
        send_product_identifier: bool = False,
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
        self._rng = random.Random(seed)
        self.subscription = subscription or _uuid(random.Random(seed + 7))
        self.event_types = frozenset(event_types) if event_types is not None else PLAIN_TYPES
        self.send_product_identifier = send_product_identifier
        self.batch_size = batch_size
        if timeout is None:
            timeout = PIM_TIMEOUT if format == "events_api" else EVENT_PLATFORM_TIMEOUT
        self.timeout = timeout
        self.reorder, self.duplicate, self.drop = reorder, duplicate, drop
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
            legacy = [c for c in changes if c.kind in LEGACY_KINDS]
            return [
                _Delivery(
                    legacy_body(legacy[i : i + self.batch_size], self.pim_source),
                    len(legacy[i : i + self.batch_size]),
                    "application/json",
                )
                for i in range(0, len(legacy), self.batch_size)
            ]
        return self._event_deliveries([e for c in changes for e in pim_events(c)])

    def _event_deliveries(self, events: Sequence[PimEvent]) -> list[_Delivery]:
        return [
            _Delivery(
                json.dumps(
                    e.cloud_event(
                        self.subscription, send_product_identifier=self.send_product_identifier
                    )
                ).encode(),
                1,
                EVENT_CONTENT_TYPE,
            )
            for e in events
            if e.type in self.event_types
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
        """Deliver ``changes`` (legacy: the product and product model ones, in batches)."""
        return await self._send(self._deliveries(changes))

    async def send_events(self, events: Sequence[PimEvent]) -> SendReport:
        """Event Platform: deliver prebuilt events (every reference type), one per request."""
        if self.format != "event_platform":
            raise ValueError("send_events is an Event Platform feature")
        return await self._send(self._event_deliveries(events))

    async def _send(self, deliveries: list[_Delivery]) -> SendReport:
        report = SendReport()
        planned = self._plan(deliveries, report)

        async def one(delivery: _Delivery) -> None:
            report.events += delivery.events
            await self._post(
                delivery.body, self._headers(delivery.body, delivery.content_type), report
            )

        await asyncio.gather(*(one(d) for d in planned))
        return report
