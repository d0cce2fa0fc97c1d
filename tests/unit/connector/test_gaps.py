"""Gap windows: merging, the catch-up plan, suspension pairing, the record's identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from akeneo_connector.gaps import (
    GapRecord,
    GapSource,
    Window,
    merge_windows,
    parse_since,
    plan_catch_up,
    suspension_windows,
)
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import Role, operator_permissions, permissions

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def w(start: float, end: float, source: str = "a") -> Window:
    return Window(at(start), at(end), frozenset({source}))


def record(start: float, end: float, source: GapSource = GapSource.RECEIVER_503) -> GapRecord:
    return GapRecord(source=source, start=at(start), end=at(end))


def test_overlapping_windows_merge_and_disjoint_ones_stay_apart() -> None:
    merged = merge_windows([w(30, 40, "b"), w(0, 10, "a"), w(5, 20, "c"), w(50, 55, "d")])
    assert merged == [
        Window(at(0), at(20), frozenset({"a", "c"})),
        Window(at(30), at(40), frozenset({"b"})),
        Window(at(50), at(55), frozenset({"d"})),
    ]
    # a window inside another one changes nothing but the sources
    assert merge_windows([w(0, 60, "a"), w(10, 20, "b")]) == [
        Window(at(0), at(60), frozenset({"a", "b"}))
    ]


def test_windows_closer_than_the_slack_merge() -> None:
    """Two windows whose catch-ups would read the same margin are one repair."""
    windows = [w(0, 10), w(14, 20)]
    assert len(merge_windows(windows)) == 2
    assert merge_windows(windows, timedelta(minutes=5)) == [Window(at(0), at(20), frozenset("a"))]


def test_the_plan_covers_every_record_after_the_cursor_from_the_earliest_start() -> None:
    records = [(3, record(0, 5)), (7, record(30, 31)), (9, record(-20, 2, GapSource.SUBSCRIPTION))]
    plan = plan_catch_up(records, after=3, margin=timedelta(minutes=5))
    assert plan is not None
    # record 3 is repaired already; the subscription window (recorded later) reaches back
    assert plan.since == at(-25)
    assert plan.through == 9
    assert [(x.start, x.end) for x in plan.windows] == [(at(-20), at(2)), (at(30), at(31))]
    assert "receiver-503" in plan.text() and "subscription" in plan.text()
    assert plan_catch_up(records, after=9, margin=timedelta(minutes=5)) is None
    assert plan_catch_up([], after=0, margin=timedelta(0)) is None


def test_the_plan_text_is_bounded() -> None:
    records = [(i, record(i * 20, i * 20 + 1)) for i in range(1, 40)]
    plan = plan_catch_up(records, after=0, margin=timedelta(0))
    assert plan is not None and len(plan.windows) == 39
    assert plan.text().endswith("and 34 more")


def test_suspensions_pair_with_the_next_resume() -> None:
    states = [
        (1, at(0), True),  # resumed while active: nothing
        (2, at(10), False),  # suspended by the system
        (3, at(12), False),  # revoked meanwhile: same window
        (4, at(30), True),  # resumed: window 10..30, closed by 4
        (6, at(40), False),  # suspended again, still open
    ]
    assert suspension_windows(states) == [(Window(at(10), at(30), frozenset({"subscription"})), 4)]


def test_a_resume_stamped_before_its_suspension_makes_an_empty_window() -> None:
    assert suspension_windows([(1, at(10), False), (2, at(9), True)]) == [
        (Window(at(10), at(10), frozenset({"subscription"})), 2)
    ]


def test_a_record_has_one_message_id_per_window() -> None:
    a, b = record(0, 5), record(0, 5)
    assert a.msg_id == b.msg_id  # published twice (retry, replicas): stored once
    assert record(0, 6).msg_id != a.msg_id
    assert GapRecord.model_validate_json(a.to_bytes()) == a
    # a window whose end precedes its start (clock skew) still reads forward
    assert record(5, 4).window() == Window(at(5), at(5), frozenset({"receiver-503"}))


def test_since_takes_rfc3339() -> None:
    assert parse_since("2026-12-04T10:00:00Z") == T0
    assert parse_since("2026-12-04T11:00:00+01:00") == T0
    assert parse_since("2026-12-04T10:00:00") == T0  # naive: UTC
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_only_the_receiver_and_the_operator_may_record_gaps() -> None:
    names = ConnectionNames("tenant-a", "acme")
    receiver = permissions(names, Role.RECEIVER).publish
    assert names.gap_subject(GapSource.RECEIVER_503.value) in receiver
    assert not any(".gaps" in s for s in permissions(names, Role.WORKER).publish)
    assert not any(".gaps" in s for s in permissions(names, Role.RECONCILE).publish)
    # the operator records the windows it observes, on every connection's stream
    assert "akeneo.*.gaps.>" in operator_permissions().publish
    assert names.gap_subject("x").split(".")[0:3] == ["akeneo", names.subject_prefix[7:], "gaps"]
