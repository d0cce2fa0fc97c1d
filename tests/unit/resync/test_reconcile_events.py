"""The structure's version and message-id scheme, judged by the worker's own guard rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from akeneo_connector.changes import Change, resource_digest
from akeneo_connector.guard_state import NEVER_APPLIED, GuardEntry
from akeneo_connector.normalized import NormalizedEvent, ResourceKind
from akeneo_resync.reconcile_events import (
    structure_event_id,
    structure_upsert,
    structure_version,
)
from akeneo_worker.guard import Verdict, decide_change, entry_for

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
RUN1, RUN2 = T, T + timedelta(days=7)


def applied(version: datetime, digest: str | None = "d1", *, deleted: bool = False) -> GuardEntry:
    return GuardEntry(version=version, deleted=deleted, digest=None if deleted else digest)


@pytest.mark.parametrize(
    ("updated", "digest", "stored", "want"),
    [
        (None, "d1", None, RUN2),  # never applied, no updated: the run's start
        (T, "d1", None, T),  # never applied: the item's updated
        (None, "d1", GuardEntry(version=NEVER_APPLIED), RUN2),  # a claim only: never applied
        (None, "d1", applied(RUN1), RUN1),  # unchanged: the applied version (a duplicate)
        (T, "d1", applied(RUN1), RUN1),  # unchanged, whatever its updated says
        (None, "d2", applied(RUN1), RUN2),  # changed: the run's start
        (None, "d2", applied(RUN2 + timedelta(hours=1)), RUN2 + timedelta(hours=1) + TICK),
        (RUN2, "d2", applied(RUN1), RUN2),  # changed with a newer updated: that
        (RUN1, "d2", applied(RUN1), RUN2),  # changed, same updated: past the applied one
        (T - timedelta(days=1), "d2", applied(RUN1), RUN2),  # updated older than applied
        (None, "d1", applied(RUN1, deleted=True), RUN2),  # re-created: past the tombstone
        (
            T,
            "d1",
            applied(RUN2 + timedelta(hours=1), deleted=True),
            RUN2 + timedelta(hours=1) + TICK,
        ),
    ],
)
def test_structure_version(
    updated: datetime | None, digest: str, stored: GuardEntry | None, want: datetime
) -> None:
    assert structure_version(updated, digest, stored, RUN2) == want


def test_message_ids_follow_kind_code_version_and_content() -> None:
    base = structure_event_id(ResourceKind.FAMILY, "shoes", T, "d1")
    assert base == structure_event_id(ResourceKind.FAMILY, "shoes", T, "d1")
    others = {
        structure_event_id(ResourceKind.FAMILY, "shoes", T, "d2"),
        structure_event_id(ResourceKind.FAMILY, "shoes", T + TICK, "d1"),
        structure_event_id(ResourceKind.FAMILY, "boots", T, "d1"),
        structure_event_id(ResourceKind.CATEGORY, "shoes", T, "d1"),
    }
    assert base not in others and len(others) == 4
    assert base.startswith("reconcile-up-family-") and len(base) <= 200


def _worker_applies(event: NormalizedEvent, guard: GuardEntry | None) -> tuple[Verdict, GuardEntry]:
    """What the worker does with it: the guard's verdict, and the entry it then holds."""
    change = Change.from_event(NormalizedEvent.from_message(event.to_message()))  # the wire
    verdict = decide_change(guard, change)
    if verdict in (Verdict.APPLY, Verdict.TIE):
        return verdict, entry_for(change)
    assert guard is not None
    return verdict, guard


FAMILY: dict[str, Any] = {
    "_links": {"self": {"href": "https://pim.example/api/rest/v1/families/shoes"}},
    "code": "shoes",
    "attributes": ["sku", "name"],
    "attribute_as_label": "name",
    "labels": {"en_US": "Shoes"},
}


def test_a_rescan_is_a_duplicate_and_a_change_is_applied_once() -> None:
    first = structure_upsert("ns/c", ResourceKind.FAMILY, FAMILY, None, RUN1)
    assert first.key == "shoes" and first.version == RUN1
    assert first.resource is not None and "_links" not in first.resource
    verdict, guard = _worker_applies(first, None)
    assert verdict is Verdict.APPLY and guard.digest == resource_digest(first.resource)

    again = structure_upsert("ns/c", ResourceKind.FAMILY, FAMILY, guard, RUN2)
    assert again.event_id == first.event_id  # JetStream drops it inside the window ...
    assert _worker_applies(again, guard)[0] is Verdict.DUPLICATE  # ... the guard after it

    renamed = {**FAMILY, "labels": {"en_US": "Sneakers"}}
    changed = structure_upsert("ns/c", ResourceKind.FAMILY, renamed, guard, RUN2)
    assert changed.version == RUN2 and changed.event_id != first.event_id
    verdict, guard = _worker_applies(changed, guard)
    assert verdict is Verdict.APPLY
    late = structure_upsert("ns/c", ResourceKind.FAMILY, FAMILY, None, RUN1)  # a stale copy
    assert _worker_applies(late, guard)[0] is Verdict.OUTDATED


def test_a_category_keeps_its_own_updated() -> None:
    category = {"code": "kids", "parent": "master", "updated": "2026-02-01T10:00:00+01:00"}
    event = structure_upsert("ns/c", ResourceKind.CATEGORY, category, None, RUN1)
    assert event.version == datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


@given(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=12), st.booleans())
def test_every_content_change_is_applied_exactly_once(contents: list[str], dated: bool) -> None:
    """Full scans a week apart; the worker applies each scan's events before the next scan."""
    guard: GuardEntry | None = None
    applied_contents: list[str] = []
    for week, label in enumerate(contents):
        started = RUN1 + timedelta(days=7 * week)
        item: dict[str, Any] = {"code": "shoes", "labels": {"en_US": label}}
        if dated:  # a category's updated moves with each of its edits
            changes = sum(a != b for a, b in itertools.pairwise(contents[: week + 1]))
            item["updated"] = (T - timedelta(days=30) + timedelta(hours=changes)).isoformat()
        event = structure_upsert("ns/c", ResourceKind.CATEGORY, item, guard, started)
        verdict, guard = _worker_applies(event, guard)
        if verdict is Verdict.APPLY:
            applied_contents.append(label)
        else:
            assert verdict is Verdict.DUPLICATE
    deduplicated = [c for i, c in enumerate(contents) if i == 0 or contents[i - 1] != c]
    assert applied_contents == deduplicated
