"""Verbatim Akeneo deliveries all the way to a sink: receiver (real TLS) -> nats-server ->
worker hydrating from the PIM simulator (real TLS) -> SQLite sink; and the webhook sink's
``change_id`` of a legacy sample, pinned to a value computed without the project's code.

The simulator's catalog is seeded with the ids Akeneo's samples name (a product
``6a9f8486-…``, a product model ``a-product-model-code``, a category ``category-1``, ...), last
updated before the samples' ``time``, as a PIM that sent those events would hold them.
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import BucketNotFoundError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import utc_version
from akeneo_connector.spec import WebhookSignature
from akeneo_pim.paths import EVENT_PLATFORM_PATH, EVENTS_API_PATH
from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.simulator import PimSimulator
from akeneo_pim.simulator.structure import CatalogStructure, StructureName
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.hydration import RestHydrator
from akeneo_worker.sinks.sqlite import DEFAULT_TABLE, SqliteSink
from akeneo_worker.sinks.tombstones import tombstone_table
from akeneo_worker.sinks.webhook import Signer, WebhookSink
from tests.integration.receiver.conftest import Running, StartReceiver
from tests.integration.samples.test_replay import ep_headers, legacy_headers
from tests.integration.worker.support import WebhookReceiver, eventually, running
from tests.samples import Sample, pinned, sample

# Akeneo's samples are dated 2024-02-22 and later: the seeded catalog is older.
SEEDED_AT = "2024-01-01T00:00:00+00:00"
KINDS = ("product", "product_model", "category", "family", "attribute", "attribute_option")
TYPE_OF = {
    "product": "product",
    "product_model": "product-model",
    "category": "category",
    "family": "family",
    "attribute": "attribute",
    "attribute_option": "attribute-option",
}


STRUCTURE_NAMES: dict[str, StructureName] = {
    "category": "categories",
    "family": "families",
    "attribute": "attributes",
}


def ep_sample(kind: str, verb: str) -> Sample:
    return sample(f"event-platform/com.akeneo.pim.v1.{TYPE_OF[kind]}.{verb}")


def _structure_item(structure: CatalogStructure, name: StructureName, code: str, **kw: Any) -> None:
    """An item of ``name`` with Akeneo's sample code, last updated at ``SEEDED_AT``."""
    created, _ = structure.create(name, **kw)  # leaves the listing order to be recomputed
    generated = created["code"]
    item = structure.items[name].pop(generated)
    item["code"] = code
    structure.items[name][code] = item
    if name == "categories":
        item["updated"] = SEEDED_AT
    else:  # families' and attributes' dates are not part of their representation
        del structure.updated[name][generated]
        structure.updated[name][code] = SEEDED_AT
    if generated in structure.options:
        structure.options[code] = structure.options.pop(generated)


def seed(sim: PimSimulator, *kinds: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Put the resources of ``kinds`` the samples name into the simulator's catalog; return
    them by (kind, key) as the PIM serves them."""
    catalog = sim.catalog
    structure = catalog.structure
    keys = {
        (s.expect["kind"], s.expect["key"])
        for kind in kinds
        for verb in ("created", "updated", "updated.delta")
        for s in [_maybe(kind, verb)]
        if s is not None
    }
    for kind, key in sorted(keys):
        if kind == "product":
            item = copy.deepcopy(catalog.products.items[catalog.products.keys[0]])
            item.update(uuid=key, identifier=f"sample-{key[:8]}", updated=SEEDED_AT)
            catalog.products.put(key, item)
        elif kind == "product_model":
            item = copy.deepcopy(catalog.product_models.items[catalog.product_models.keys[0]])
            item.update(code=key, updated=SEEDED_AT)
            catalog.product_models.put(key, item)
        elif kind == "attribute_option":
            attribute, _, code = key.partition("/")
            _structure_item(
                structure, "attributes", attribute, attribute_type="pim_catalog_simpleselect"
            )
            structure.create_option(attribute, code)
        else:
            _structure_item(structure, STRUCTURE_NAMES[kind], key)
    served: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, key in keys:
        if kind == "product":
            served[(kind, key)] = catalog.products.items[key]
        elif kind == "product_model":
            served[(kind, key)] = catalog.product_models.items[key]
        elif kind == "attribute_option":
            attribute, _, code = key.partition("/")
            served[(kind, key)] = structure.options[attribute][code]
        else:
            served[(kind, key)] = structure.items[STRUCTURE_NAMES[kind]][key]
    return served


def _maybe(kind: str, verb: str) -> Sample | None:
    try:
        return ep_sample(kind, verb)
    except KeyError:
        return None


@pytest.fixture
async def pim(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[PimSimulator]:
    pair = ca.issue("127.0.0.1")
    pair.write(tmp_path / "pim.crt", tmp_path / "pim.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "pim.crt", tmp_path / "pim.key")
    async with PimSimulator(products=10, product_models=2, ssl_context=context) as sim:
        yield sim


def rows(path: Path) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    if not path.exists():
        return {}
    try:
        return SqliteSink(path).read_all()
    except sqlite3.OperationalError:  # the worker has not created its table yet
        return {}


def tombstones(path: Path) -> dict[tuple[str, str], str]:
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            found = db.execute(f"SELECT kind, key, version FROM {tombstone_table(DEFAULT_TABLE)}")
        except sqlite3.OperationalError:
            return {}
        return {(kind, key): version for kind, key, version in found}


async def bucket_ready(r: Running) -> None:
    """The receiver is ready once its stream exists; its guard bucket comes a moment later."""

    async def exists() -> bool:
        try:
            await r.nc.jetstream().key_value(r.config.names.guard_bucket)
        except BucketNotFoundError:
            return False
        return True

    await eventually(exists, timeout=15, what="guard bucket")


@contextlib.asynccontextmanager
async def pipeline(
    r: Running, sim: PimSimulator, ca: CertificateAuthority, db: Path
) -> AsyncIterator[None]:
    """A worker on ``r``'s stream, hydrating from the simulator, writing to ``db``."""
    await bucket_ready(r)
    async with (
        AkeneoRestClient(
            sim.url, sim.credentials, verify=ca.client_context(), allow_private=True
        ) as client,
        running(r.nc.jetstream(), r.config.names, SqliteSink(db), hydrator=RestHydrator(client)),
    ):
        yield


@pytest.mark.parametrize("kind", KINDS)
async def test_one_sample_per_handled_kind_reaches_the_sqlite_sink(
    start_receiver: StartReceiver,
    pim: PimSimulator,
    ca: CertificateAuthority,
    tmp_path: Path,
    kind: str,
) -> None:
    """``<kind>.created`` lands as the PIM's resource; then ``<kind>.deleted`` (the same id in
    Akeneo's samples, so sent on a stream of its own) removes it and leaves a tombstone."""
    seeded = seed(pim, kind)
    db = tmp_path / "catalog.db"
    created, deleted = ep_sample(kind, "created"), ep_sample(kind, "deleted")
    key = created.expect["key"]
    assert deleted.expect["key"] == key
    r = await start_receiver()
    async with pipeline(r, pim, ca, db):
        status, answer = await r.post(created.body, ep_headers(created), path=EVENT_PLATFORM_PATH)
        assert (status, answer["accepted"]) == (200, 1), answer
        await eventually(lambda: (kind, key) in rows(db), timeout=30, what=f"{kind} in sink")
    version, resource = rows(db)[(kind, key)]
    served = seeded[(kind, key)]
    assert resource == served
    # the resource's own ``updated`` when it shows one, else the event's time
    applied_at = served.get("updated") or created.expect["version"]
    assert version == utc_version(datetime.fromisoformat(applied_at).astimezone(UTC))

    again = await start_receiver()  # a fresh stream: JetStream would drop the reused id
    async with pipeline(again, pim, ca, db):
        status, answer = await again.post(
            deleted.body, ep_headers(deleted), path=EVENT_PLATFORM_PATH
        )
        assert (status, answer["accepted"]) == (200, 1), answer
        await eventually(lambda: (kind, key) not in rows(db), timeout=30, what=f"{kind} removed")
    removed_at = datetime.fromisoformat(deleted.expect["version"]).astimezone(UTC)
    assert tombstones(db)[(kind, key)] == utc_version(removed_at)


@pytest.mark.parametrize(
    ("name", "operation", "change_id"),
    [
        ("events-api/serenity/product-created", "upsert", pinned.CHANGE_ID_PRODUCT_CREATED),
        ("events-api/serenity/product-removed", "delete", pinned.CHANGE_ID_PRODUCT_REMOVED),
    ],
)
async def test_a_legacy_sample_reaches_the_webhook_with_the_pinned_change_id(
    start_receiver: StartReceiver,
    ca: CertificateAuthority,
    tmp_path: Path,
    name: str,
    operation: str,
    change_id: str,
) -> None:
    """``change_id`` computed by OpenSSL and jq from the documented rule (tests/samples/pinned.py)
    is what the merchant's endpoint receives. (Both samples carry the same event id: each is
    sent on a stream of its own.)"""
    hook = await WebhookReceiver(ca).start(tmp_path)
    namespace, connection = pinned.CONNECTION.split("/")
    r = await start_receiver(names=ConnectionNames(namespace, connection))
    sink = WebhookSink(
        hook.url,
        signer=Signer.from_text(hook.signing_secret, WebhookSignature(hook.signature)),
        allow_private=True,  # the test endpoint is on 127.0.0.1
        ssl_context=ca.client_context(),
        timeout=5,
    )
    s = sample(name)
    await bucket_ready(r)
    try:
        async with running(r.nc.jetstream(), r.config.names, sink):
            status, answer = await r.post(s.body, legacy_headers(s.body), path=EVENTS_API_PATH)
            assert (status, answer["accepted"]) == (200, 1)
            await eventually(lambda: len(hook.received) == 1, timeout=30, what="the change")
    finally:
        await hook.stop()
    (change,) = hook.received
    (want,) = s.expect["events"]
    assert (change["connection"], change["kind"], change["key"], change["operation"]) == (
        pinned.CONNECTION,
        want["kind"],
        want["key"],
        operation,
    )
    assert change["change_id"] == change_id
    resource = s.json()["events"][0]["data"]["resource"]
    assert change["resource"] == (resource if operation == "upsert" else None)
