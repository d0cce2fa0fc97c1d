"""Event Platform events of the catalog structure, hydrated by code and applied in order.

The Event Platform announces categories, families, attributes and attribute options with
their codes only (https://api.akeneo.com/event-platform/available-events.html): the worker
reads each from the PIM simulator's REST API over HTTP (an attribute option at
``/attributes/{attribute}/options/{code}``, keyed ``<attribute>/<code>``), applies it through
the ordering guard, and keeps removals as tombstones, on real NATS, into every sink kind.
Families, attributes and options show no ``updated`` (https://api.akeneo.com/api-reference.html):
their version is the event's time; a category's is its own ``updated``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nats.js import JetStreamContext

from akeneo_connector.changes import resource_updated
from akeneo_connector.event_types import PREFIX, attribute_option_key, handled
from akeneo_connector.guard_state import GuardEntry, guard_key
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, SourceFormat
from akeneo_connector.spec import WebhookSignature
from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.simulator import Change, PimSimulator
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_worker.hydration import RestHydrator
from akeneo_worker.sinks.base import Sink
from akeneo_worker.sinks.postgres import PostgresSink
from akeneo_worker.sinks.sqlite import SqliteSink
from akeneo_worker.sinks.webhook import Signer, WebhookSink
from akeneo_worker.worker import Worker
from tests.integration.worker.support import WebhookReceiver, eventually, publish, running

_VERB = {"created": "created", "updated": "updated", "removed": "deleted"}
_RESOURCE = {
    "product": "product", "product_model": "product-model", "category": "category",
    "family": "family", "attribute": "attribute", "attribute_option": "attribute-option",
}  # fmt: skip


def platform_event(
    names: ConnectionNames, change: Change, *, verb: str | None = None, when: datetime | None = None
) -> NormalizedEvent:
    """What the receiver publishes for the CloudEvent announcing ``change``: ids only, the
    kind and action of ``event_types.HANDLED``, the event's ``time`` as version."""
    event_type = f"{PREFIX}{_RESOURCE[change.kind]}.{verb or _VERB[change.action]}"
    meaning = handled(event_type)
    assert meaning is not None, event_type
    return NormalizedEvent(
        connection=names.ref,
        source=SourceFormat.EVENT_PLATFORM,
        event_id=str(uuid.uuid4()),
        action=meaning.action,
        kind=meaning.kind,
        key=change.key,
        version=when or change.event_datetime,
        author="admin",
    )


Rows = dict[tuple[str, str], tuple[datetime, dict[str, Any] | None]]


@asynccontextmanager
async def sink_of(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, names: ConnectionNames
) -> AsyncIterator[tuple[Sink, Callable[[], Rows]]]:
    """A sink and a reader of what it holds: (kind, key) -> (version, resource)."""
    if kind == "sqlite":
        db = tmp_path / "catalog.db"

        def sqlite_rows() -> Rows:
            if not db.exists():
                return {}
            try:
                found = SqliteSink(db).read_all()
            except Exception:  # the table is not there yet
                return {}
            return {k: (datetime.fromisoformat(v), r) for k, (v, r) in found.items()}

        yield SqliteSink(db), sqlite_rows
    elif kind == "postgres":
        dsn = request.getfixturevalue("postgres")
        table = f"structure_events_{names.name}"

        def postgres_rows() -> Rows:
            with psycopg.connect(dsn) as conn:
                try:
                    found = conn.execute(f"SELECT kind, key, version, resource FROM {table}")
                except psycopg.errors.UndefinedTable:
                    return {}
                return {(k, key): (v, r) for k, key, v, r in found.fetchall()}

        yield PostgresSink(dsn, table=table, allow_private=True), postgres_rows
    else:
        hook = await WebhookReceiver(CertificateAuthority()).start(tmp_path)
        try:
            sink = WebhookSink(
                hook.url,
                signer=Signer.from_text(hook.signing_secret, WebhookSignature(hook.signature)),
                allow_private=True,
                ssl_context=hook.ca.client_context(),
            )

            def webhook_rows() -> Rows:
                newest: Rows = {}
                for change in hook.received:
                    key = (change["kind"], change["key"])
                    version = datetime.fromisoformat(change["version"])
                    if key not in newest or newest[key][0] <= version:
                        newest[key] = (version, change["resource"])
                return {k: v for k, v in newest.items() if v[1] is not None}

            yield sink, webhook_rows
        finally:
            await hook.stop()


@asynccontextmanager
async def hydrating(
    js: JetStreamContext, names: ConnectionNames, sim: PimSimulator, sink: Sink
) -> AsyncIterator[Worker]:
    async with (
        AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client,
        running(js, names, sink, hydrator=RestHydrator(client)) as worker,
    ):
        yield worker


def _gets(sim: PimSimulator, path: str) -> int:
    return sum(1 for _, p, _ in sim.stats.log if p == path)


@pytest.mark.parametrize("sink_kind", ["sqlite", "postgres", "webhook"])
async def test_each_structure_kind_is_read_by_code_and_applied(
    js: JetStreamContext,
    names: ConnectionNames,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    sink_kind: str,
) -> None:
    async with PimSimulator(products=2, product_models=0) as sim:
        changes = [
            sim.edit_structure_item("categories", "kids", label="Children"),
            sim.edit_structure_item("families", "shoes", label="Sneakers"),
            sim.edit_structure_item("attributes", "name", label="Title"),
            sim.create_structure_item("families"),
            sim.edit_attribute_option("color", "red", label="Crimson"),
            sim.create_attribute_option("size", "xxl"),
        ]
        for change in changes:  # one batch for the worker
            await publish(js, names, platform_event(names, change))
        async with (
            sink_of(sink_kind, tmp_path, request, names) as (sink, rows),
            hydrating(js, names, sim, sink) as worker,
        ):
            await eventually(lambda: worker.metrics.counts["applied"] == 6, what="applied")
            held = rows()
        structure = sim.catalog.structure
        for change in changes:
            version, resource = held[(change.kind, change.key)]
            assert resource is not None
            if change.kind == "category":  # its own `updated`, as the REST API shows it
                assert resource == structure.items["categories"][change.key]
                assert version == resource_updated(resource)
            else:  # no `updated` in the representation: the event's time
                assert "updated" not in resource
                assert version == change.event_datetime
        assert held[("family", "shoes")][1]["labels"]["en_US"] == "Sneakers"  # type: ignore[index]
        # an option: keyed <attribute>/<code>, read at /attributes/{attribute}/options/{code}
        option = held[("attribute_option", "color/red")][1]
        assert option == structure.options["color"]["red"]
        assert option is not None and option["labels"]["en_US"] == "Crimson"
        assert held[("attribute_option", "size/xxl")][1] == structure.options["size"]["xxl"]
        assert _gets(sim, "/api/rest/v1/attributes/color/options/red") == 1
        assert _gets(sim, "/api/rest/v1/families") == 1  # both families: one `code IN` call


async def test_option_codes_are_told_apart_by_their_attribute(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    async with PimSimulator(products=1, product_models=0) as sim:
        shared = [sim.create_attribute_option("color", "m"), sim.edit_attribute_option("size", "m")]
        assert [c.key for c in shared] == ["color/m", "size/m"] == [
            attribute_option_key("color", "m"), attribute_option_key("size", "m")
        ]  # fmt: skip
        db = tmp_path / "catalog.db"
        async with hydrating(js, names, sim, SqliteSink(db)) as worker:
            for change in shared:
                await publish(js, names, platform_event(names, change))
            await eventually(lambda: worker.metrics.counts["applied"] == 2, what="applied")
        held = SqliteSink(db).read_all()
        assert held[("attribute_option", "color/m")][1] == {
            "code": "m", "attribute": "color", "sort_order": 8,
            "labels": {"en_US": "M", "fr_FR": "M (fr)", "de_DE": "M (de)"},
        }  # fmt: skip
        assert held[("attribute_option", "size/m")][1]["attribute"] == "size"


async def test_removals_leave_tombstones_an_older_upsert_never_resurrects(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    """The option is removed, then created again under the same code: the REST API serves it
    once more, so only the guard can tell that an upsert announced before the removal is
    outdated. It is skipped without a call; the re-creation, announced later, applies."""
    db = tmp_path / "catalog.db"
    async with PimSimulator(products=1, product_models=0) as sim:
        family = sim.create_structure_item("families")
        edited = sim.edit_attribute_option("color", "red", label="Crimson")
        async with hydrating(js, names, sim, SqliteSink(db)) as worker:
            for change in (family, edited):
                await publish(js, names, platform_event(names, change))
            await eventually(lambda: worker.metrics.counts["applied"] == 2, what="applied")

            gone = [
                sim.delete_structure_item("families", family.key),
                sim.delete_attribute_option("color", "red"),
            ]
            for change in gone:
                await publish(js, names, platform_event(names, change))
            await eventually(lambda: worker.metrics.counts["applied"] == 4, what="removed")
            again = sim.create_attribute_option("color", "red")  # the same key, alive again
            calls = _gets(sim, "/api/rest/v1/attributes/color/options/red")

            # late deliveries of upserts announced before the removals
            for change in (family, edited):
                late = platform_event(names, change, verb="updated")
                await publish(js, names, late)
            await eventually(lambda: worker.metrics.counts["outdated"] == 2, what="outdated")
            assert _gets(sim, "/api/rest/v1/attributes/color/options/red") == calls  # no read
            rows = SqliteSink(db).read_all()
            assert ("family", family.key) not in rows
            assert ("attribute_option", "color/red") not in rows
            tombstones = SqliteSink(db).read_tombstones()
            assert set(tombstones) == {("family", family.key), ("attribute_option", "color/red")}
            for kind, key in tombstones:
                entry = await (await js.key_value(names.guard_bucket)).get(guard_key(kind, key))
                assert GuardEntry.model_validate_json(entry.value or b"").deleted

            # the re-creation, announced after the removal, is read and applied
            await publish(js, names, platform_event(names, again))
            await eventually(lambda: worker.metrics.counts["applied"] == 5, what="re-created")
            # an upsert of something the PIM no longer has is skipped, as for products
            await publish(
                js, names,
                platform_event(names, family, verb="updated",
                               when=gone[0].event_datetime + timedelta(seconds=5)),
            )  # fmt: skip
            await eventually(
                lambda: worker.metrics.skipped.labels("not_found")._value.get() == 1,
                what="not found",
            )
        rows = SqliteSink(db).read_all()
        assert rows[("attribute_option", "color/red")][1] == again.resource
        assert ("family", family.key) not in rows
        assert set(SqliteSink(db).read_tombstones()) == {("family", family.key)}


@pytest.mark.parametrize("verb", ["became-complete", "became-incomplete"])
async def test_a_product_whose_completeness_changed_is_read_again(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path, verb: str
) -> None:
    """``product.became-complete`` / ``-incomplete`` carry the product's uuid and
    ``complete_on`` only: an upsert the worker hydrates like any product event."""
    db = tmp_path / "catalog.db"
    async with PimSimulator(products=3, product_models=0) as sim:
        edit = sim.edit_product()
        event = platform_event(names, edit, verb=verb)
        assert (event.kind.value, event.action) == ("product", Action.UPSERT)
        assert event.resource is None
        async with hydrating(js, names, sim, SqliteSink(db)) as worker:
            await publish(js, names, event)
            await eventually(lambda: worker.metrics.counts["applied"] == 1, what="applied")
        version, resource = SqliteSink(db).read_all()[("product", edit.key)]
        assert resource == {k: v for k, v in sim.catalog.products.items[edit.key].items()}
        assert datetime.fromisoformat(version) == resource_updated(resource)
