"""The kopf handlers called directly, as kopf calls them (a body and a memo holding the
operator's ``Runtime``), on the in-process API and the session's nats-server; and what
``build_registry`` tells kopf to watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import kopf
import pytest
from nats.js.errors import NotFoundError

from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION
from akeneo_operator import handlers
from akeneo_operator.handlers import RETRIES, WATCHED_CHILDREN, Runtime, build_registry, memo_of
from akeneo_operator.maintenance import MaintenanceLoop, Schedule
from akeneo_operator.meta import L_MANAGED_BY, Manifest
from akeneo_operator.settings import MANAGED_BY, OperatorSettings
from tests.unit.operator.reconciler_support import NAME, World, condition, make_world, spec_of


@pytest.fixture
async def world(nats: str) -> AsyncIterator[World]:
    w = make_world(nats)
    yield w
    await w.rec.nats.close()


def as_body(manifest: Manifest) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, manifest))


def deleted(manifest: Manifest) -> kopf.RawEvent:
    return kopf.RawEvent(type="DELETED", object=cast(kopf.RawBody, manifest))


def where(handler: Any) -> tuple[str | None, str | None, str | None]:
    """(group, version, plural) a handler is registered for."""
    selector = handler.selector
    assert selector is not None
    return selector.group, selector.version, selector.any_name


def runtime_of(world: World) -> Runtime:
    return Runtime(world.rec.settings, reconciler=world.rec)


def samples(rt: Runtime, result: str) -> float:
    """``akeneo_operator_reconciles_total{result=...}`` as /metrics shows it."""
    value = rt.metrics.registry.get_sample_value(
        "akeneo_operator_reconciles_total", {"result": result}
    )
    assert value is not None
    return value


async def test_the_reconcile_handler_reconciles_and_counts(world: World) -> None:
    rt = runtime_of(world)
    world.connection(spec_of())
    body = as_body(world.body())
    await handlers.reconcile(body=body, memo=memo_of(rt))
    assert condition(world.body(), "TLSReady")["status"] == "True"
    assert samples(rt, "ok") == 1 and samples(rt, "error") == 0


async def test_the_reconcile_handler_hands_the_reconciler_no_kopf_bookkeeping(
    world: World,
) -> None:
    """kopf's own annotations (a JSON copy of the last handled spec) and managedFields are
    left out of what the reconciler keeps."""
    rt = runtime_of(world)
    raw = world.connection(spec_of())
    raw["metadata"]["annotations"] = {"kopf.zalando.org/last-handled-configuration": "{}"}
    await handlers.reconcile(body=as_body(raw), memo=memo_of(rt))
    kept = world.rec.states[(world.namespace, NAME)].body
    assert "annotations" not in kept["metadata"]
    assert "managedFields" not in kept["metadata"]


async def test_an_api_failure_is_counted_and_raised_for_kopf_to_retry(world: World) -> None:
    rt = runtime_of(world)
    world.connection(spec_of())
    world.kube.not_installed = frozenset({"Deployment"})  # every read of one fails
    with pytest.raises(Exception, match="404"):
        await handlers.reconcile(body=as_body(world.body()), memo=memo_of(rt))
    assert samples(rt, "error") == 1
    assert condition(world.body(), "Ready")["reason"] == "KubernetesApiError"


async def test_a_handler_before_startup_asks_kopf_to_retry_soon(nats: str) -> None:
    rt = Runtime(make_world(nats).rec.settings)  # startup has not run: no reconciler
    body = as_body({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "x"}})
    with pytest.raises(kopf.TemporaryError, match="starting"):
        await handlers.reconcile(body=body, memo=memo_of(rt))
    # child events before startup are dropped: the first reconcile reads every child anyway
    await handlers.child_event(event=deleted({"metadata": {}}), memo=memo_of(rt))


async def test_a_memo_without_the_runtime_is_a_permanent_error() -> None:
    with pytest.raises(kopf.PermanentError, match="memo"):
        await handlers.reconcile(body=as_body({}), memo=kopf.Memo())


async def test_the_delete_handler_removes_the_stream_and_forgets_the_connection(
    world: World,
) -> None:
    rt = runtime_of(world)
    world.connection(spec_of())
    await world.reconcile()
    await handlers.delete(body=as_body(world.body()), retry=0, memo=memo_of(rt))
    js = await world.rec.nats.js()
    with pytest.raises(NotFoundError):
        await js.stream_info(ConnectionNames(world.namespace, NAME).stream)
    assert world.rec.states == {}


async def test_the_child_event_handler_repairs_a_deleted_child(world: World) -> None:
    rt = runtime_of(world)
    world.connection(spec_of())
    await world.reconcile()
    service = world.kube.find("Service", world.namespace, "acme-receiver")
    assert service is not None
    world.kube.remove("Service", world.namespace, "acme-receiver")
    await handlers.child_event(event=deleted(service), memo=memo_of(rt))
    await world.settle()
    assert world.kube.find("Service", world.namespace, "acme-receiver") is not None


async def test_the_maintenance_loop_ticks_what_kopf_reports_until_deleted(world: World) -> None:
    """``track`` puts each connection kopf reports on the one maintenance loop; a deletion
    (marked or done) takes it off, as kopf stopped a connection's daemon then."""
    rt = runtime_of(world)
    ticks: list[tuple[str, str]] = []

    async def tick(namespace: str, name: str) -> None:
        ticks.append((namespace, name))

    async def active() -> bool:
        return True

    now = [0.0]
    rt.maintenance = MaintenanceLoop(Schedule(10.0), tick, active, clock=lambda: now[0])

    def seen(event_type: str | None, name: str, **meta: str) -> kopf.RawEvent:
        body = {"kind": KIND, "metadata": {"namespace": "t", "name": name, **meta}}
        return cast(kopf.RawEvent, {"type": event_type, "object": body})

    body: Manifest = seen(None, NAME)["object"]  # type: ignore[assignment]
    await handlers.track(event=seen(None, NAME), memo=memo_of(rt))  # listed at start
    await handlers.track(event=seen("ADDED", "other"), memo=memo_of(rt))
    marked = seen("MODIFIED", "other", deletionTimestamp="2026-12-05T00:00:00Z")
    await handlers.track(event=marked, memo=memo_of(rt))
    now[0] = 10.0  # every first tick is due within one interval
    slots = asyncio.Semaphore(4)
    assert await rt.maintenance.round(slots) == 1
    await asyncio.gather(*rt.maintenance.running.values())
    assert ticks == [("t", NAME)]
    await handlers.track(event=deleted(body), memo=memo_of(rt))
    now[0] = 100.0
    assert await rt.maintenance.round(slots) == 0
    assert ticks == [("t", NAME)]


def test_the_registry_watches_connections_and_the_managed_children() -> None:
    registry, rt = build_registry(OperatorSettings(priority=1))
    assert rt.reconciler is None, "built at startup, once kopf has logged in"
    changing = list(registry._changing.get_all_handlers())
    assert {(h.id, h.reason) for h in changing} == {
        ("reconcile", kopf.Reason.CREATE),
        ("reconcile", kopf.Reason.UPDATE),
        ("reconcile", None),  # resume
        ("finalize", kopf.Reason.DELETE),
    }
    assert all((h.retries, h.backoff) == (RETRIES["retries"], RETRIES["backoff"])
               for h in changing if h.id == "reconcile")  # fmt: skip
    # no daemon nor timer: kopf would keep every connection's whole body for it
    assert list(registry._spawning.get_all_handlers()) == []
    tracking, *watching = list(registry._watching.get_all_handlers())
    assert tracking.id == "maintenance" and tracking.fn is handlers.track
    assert [h.id for h in watching] == [f"child-{plural}" for _, plural in WATCHED_CHILDREN]
    assert all(dict(h.labels or {}).get(L_MANAGED_BY) == MANAGED_BY for h in watching)
    activities = {str(h.activity) for h in registry._activities.get_all_handlers()}
    assert activities == {"authentication", "startup", "cleanup"}
    connections = [*changing, tracking]
    assert {where(h) for h in connections} == {(GROUP, VERSION, PLURAL)}
    children = {where(h) for h in watching}
    assert children == {(*a.rpartition("/")[::2], plural) for a, plural in WATCHED_CHILDREN}
