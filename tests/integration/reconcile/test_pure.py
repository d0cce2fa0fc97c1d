"""Pure parts of the reconcile job: message ids, events, and the updated-range slices."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from akeneo_connector.guard_state import GuardEntry
from akeneo_connector.normalized import Action, ResourceKind
from akeneo_pim.simulator.catalog import akeneo_datetime
from akeneo_pim.simulator.rest_app import _product_filters
from akeneo_resync.reconcile import KINDS, slice_bounds, slice_params, upsert_event
from akeneo_resync.reconcile_events import event_id, removal_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_event_ids_are_deterministic_and_distinct() -> None:
    v = T0 + timedelta(seconds=5)
    assert event_id(ResourceKind.PRODUCT, "u1", v) == event_id(ResourceKind.PRODUCT, "u1", v)
    others = {
        event_id(ResourceKind.PRODUCT, "u1", v + timedelta(seconds=1)),
        event_id(ResourceKind.PRODUCT, "u2", v),
        event_id(ResourceKind.PRODUCT_MODEL, "u1", v),
        event_id(ResourceKind.PRODUCT, "u1", v, removed=True),
    }
    assert event_id(ResourceKind.PRODUCT, "u1", v) not in others and len(others) == 4
    # the same instant written with another offset is the same version
    paris = v.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert event_id(ResourceKind.PRODUCT, "u1", paris) == event_id(ResourceKind.PRODUCT, "u1", v)


def test_upsert_and_removal_events() -> None:
    item = {"_links": {"self": {"href": "x"}}, "uuid": "u1", "updated": "2026-01-01T00:00:05+00:00"}
    event = upsert_event("ns/name", KINDS["products"], item, T0)
    assert event.action is Action.UPSERT and event.key == "u1"
    assert event.version == T0 + timedelta(seconds=5)
    assert event.resource == {"uuid": "u1", "updated": "2026-01-01T00:00:05+00:00"}
    entry = GuardEntry(version=T0 + timedelta(days=1))  # guard ahead of our clock
    removal = removal_event("ns/name", ResourceKind.PRODUCT, "u1", entry, T0)
    assert removal.action is Action.DELETE and removal.resource is None
    assert removal.version > entry.version


def _matches(params: dict[str, str], updated: datetime) -> bool:
    search = json.loads(params["search"]) if params else {}
    return _product_filters(search)({"updated": akeneo_datetime(updated)})


@given(
    st.lists(st.integers(0, 5_000), min_size=6, max_size=300),
    st.integers(2, 4),
    st.one_of(st.none(), st.integers(0, 2_000)),
    st.lists(st.integers(-10, 6_000), min_size=1, max_size=50),
)
def test_slices_cover_everything_after_since(
    sample: list[int], parts: int, since_s: int | None, probes: list[int]
) -> None:
    since = None if since_s is None else T0 + timedelta(seconds=since_s, microseconds=250)
    bounds = slice_bounds([T0 + timedelta(seconds=s) for s in sample], parts)
    assert bounds == sorted(set(bounds))
    slices = slice_params(since, bounds)
    assert 1 <= len(slices) <= len(bounds) + 1
    for probe in probes:
        updated = T0 + timedelta(seconds=probe)
        hits = sum(_matches(p, updated) for p in slices)
        if since is None or updated > since.replace(microsecond=0):
            assert hits == 1  # whole seconds: exactly one slice
        else:
            assert hits == 0


def test_bounds_split_a_sample_evenly() -> None:
    sample = [T0 + timedelta(seconds=s) for s in range(100)]
    assert slice_bounds(sample, 3) == [T0 + timedelta(seconds=33), T0 + timedelta(seconds=66)]
    assert slice_bounds(sample[:5], 3) == []  # too small a sample to cut
    assert slice_bounds([T0] * 50, 3) == [T0]  # one distinct value: two slices at most
