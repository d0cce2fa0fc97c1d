"""Hydration of ids-only events and re-reading ties, against the PIM simulator's REST API."""

from __future__ import annotations

import uuid
from pathlib import Path

from nats.js import JetStreamContext

from akeneo_connector.changes import resource_updated
from akeneo_connector.names import ConnectionNames
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.simulator import PimSimulator
from akeneo_resync.reconcile_events import structure_upsert
from akeneo_worker.hydration import RestHydrator
from akeneo_worker.sinks.sqlite import SqliteSink
from tests.integration.worker.support import T0, eventually, publish, running, sqlite_state


def ids_only(names: ConnectionNames, kind: ResourceKind, key: str, when: object) -> NormalizedEvent:
    return NormalizedEvent.model_validate(
        {
            "connection": names.ref,
            "source": SourceFormat.EVENT_PLATFORM,
            "event_id": str(uuid.uuid4()),
            "action": Action.UPSERT,
            "kind": kind,
            "key": key,
            "version": when,
        }
    )


async def test_ids_only_events_are_hydrated_from_the_rest_api(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    async with PimSimulator(products=5, product_models=2) as sim:
        edit = sim.catalog.edit_product()
        model = sim.catalog.edit_product_model()
        await publish(
            js, names, ids_only(names, ResourceKind.PRODUCT, edit.key, edit.event_datetime)
        )
        await publish(
            js, names, ids_only(names, ResourceKind.PRODUCT_MODEL, model.key, model.event_datetime)
        )
        missing = str(uuid.uuid4())
        await publish(
            js, names, ids_only(names, ResourceKind.PRODUCT, missing, edit.event_datetime)
        )
        async with (
            AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client,
            running(js, names, SqliteSink(db), hydrator=RestHydrator(client)) as worker,
        ):
            await eventually(lambda: worker.metrics.counts["applied"] == 2, what="hydrated")
            await eventually(
                lambda: worker.metrics.skipped.labels("not_found")._value.get() == 1,
                what="unknown uuid skipped",
            )
        state = sqlite_state(db)
        product = sim.catalog.products.items[edit.key]
        assert state[edit.key]["values"] == product["values"]
        assert state[edit.key]["updated"] == product["updated"]
        assert state[model.key]["code"] == model.key
        assert missing not in state


async def test_a_tie_is_resolved_by_re_reading_the_resource(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    async with PimSimulator(products=3, product_models=1) as sim:
        edit = sim.catalog.edit_product()
        truth = sim.catalog.products.items[edit.key]
        when = resource_updated(truth)
        assert when is not None

        def same_version(content: str) -> NormalizedEvent:
            return NormalizedEvent(
                connection=names.ref,
                source=SourceFormat.EVENTS_API,
                event_id=str(uuid.uuid4()),
                action=Action.UPSERT,
                kind=ResourceKind.PRODUCT,
                key=edit.key,
                version=when,
                resource={"uuid": edit.key, "updated": truth["updated"], "content": content},
            )

        async with (
            AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client,
            running(js, names, SqliteSink(db), hydrator=RestHydrator(client)) as worker,
        ):
            await publish(js, names, same_version("first"))
            await eventually(lambda: edit.key in sqlite_state(db), what="first applied")
            await publish(js, names, same_version("second"))
            await eventually(
                lambda: worker.metrics.ties.labels("reread")._value.get() == 1, what="tie re-read"
            )
        assert sqlite_state(db)[edit.key]["values"] == truth["values"]


async def test_without_a_pim_api_a_tie_is_applied_and_counted(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    from tests.integration.worker.support import event

    db = tmp_path / "catalog.db"
    first = event(names, "p", 1, resource={"content": "first"})
    second = event(names, "p", 1, resource={"content": "second"})
    async with running(js, names, SqliteSink(db)) as worker:
        await publish(js, names, first)
        await eventually(lambda: "p" in sqlite_state(db), what="first applied")
        await publish(js, names, second)
        await eventually(lambda: sqlite_state(db)["p"]["content"] == "second", what="tie applied")
        assert worker.metrics.ties.labels("applied")._value.get() == 1
        # and an ids-only event cannot be applied without the API: dead-lettered, visible
        await publish(
            js,
            names,
            ids_only(
                names, ResourceKind.PRODUCT, str(uuid.uuid4()), first.version.replace(year=2027)
            ),
        )
        await eventually(lambda: worker.metrics.counts["dead_lettered"] == 1, what="dead letter")


async def test_a_structure_tie_is_resolved_by_re_reading_it_by_code(
    js: JetStreamContext, names: ConnectionNames, tmp_path: Path
) -> None:
    """Two full scans read a category with one ``updated`` and two contents (the second scan
    with a guard snapshot taken before the first scan's event was applied)."""
    db = tmp_path / "catalog.db"
    async with PimSimulator(products=1, product_models=0) as sim:
        item = sim.catalog.structure.items["categories"]["kids"]
        before = structure_upsert(names.ref, ResourceKind.CATEGORY, dict(item), None, T0)
        item["labels"] = {**item["labels"], "en_US": "Children"}  # `updated` left as it was
        after = structure_upsert(names.ref, ResourceKind.CATEGORY, dict(item), None, T0)
        assert before.version == after.version and before.event_id != after.event_id
        async with (
            AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client,
            running(js, names, SqliteSink(db), hydrator=RestHydrator(client)) as worker,
        ):
            await publish(js, names, before)
            await eventually(lambda: "kids" in sqlite_state(db), what="first applied")
            await publish(js, names, after)
            await eventually(
                lambda: worker.metrics.ties.labels("reread")._value.get() == 1, what="re-read"
            )
            await eventually(
                lambda: sqlite_state(db)["kids"]["labels"]["en_US"] == "Children", what="applied"
            )
            replayed = before.model_copy(update={"event_id": str(uuid.uuid4())})
            await publish(js, names, replayed)  # the older content, once more, at that version
            await eventually(
                lambda: worker.metrics.counts["duplicate"] >= 1, what="re-read: a duplicate"
            )
        assert sqlite_state(db)["kids"] == item
