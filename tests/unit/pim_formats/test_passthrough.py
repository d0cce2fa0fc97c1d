"""The passthrough declines a legacy body, or gives exactly the messages of the full path.

"Exactly": the same kind, message id and, once read back as the worker reads it, the same
event (compared in its JSON form, so a version's offset counts too).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from akeneo_connector.normalized import NormalizedEvent
from akeneo_pim.formats import PayloadError
from akeneo_pim.normalize import encode_events_api, normalize_events_api
from akeneo_pim.passthrough import legacy_messages
from akeneo_testing.payloads import legacy_batch, legacy_body, legacy_event

CONN = "tenant-acme/acme"
RECEIVED = datetime(2026, 11, 27, 10, 0, 9, 250000, tzinfo=UTC)
Published = list[tuple[str, str, dict[str, Any]]]


def _read(kind: str, event_id: str, data: bytes) -> tuple[str, str, dict[str, Any]]:
    return kind, event_id, NormalizedEvent.from_message(data).model_dump(mode="json")


def full_path(body: bytes) -> tuple[Published, bool]:
    """What the full path publishes, and whether it took every event of the body."""
    try:
        delivery = normalize_events_api(body, CONN, RECEIVED)
    except PayloadError:
        return [], False
    published = [_read(e.kind, e.event_id, e.to_message()) for e in delivery.events]
    return published, not delivery.rejected


def agrees(body: bytes) -> bool:
    """Assert the passthrough declines or matches the full path; True if it took the body."""
    fast = legacy_messages(body, CONN, RECEIVED)
    published, all_valid = full_path(body)
    if fast is None:
        return False
    assert all_valid, "the passthrough took a body the full path rejects (in part)"
    assert [_read(m.kind, m.event_id, m.data) for m in fast] == published
    return True


def test_a_realistic_batch_is_passed_through() -> None:
    body = legacy_batch(10)
    assert agrees(body)
    messages = legacy_messages(body, CONN, RECEIVED)
    assert messages is not None and len(messages) == 10
    # the resource is the PIM's bytes (PHP escapes and all), not a re-serialisation
    resource = json.loads(body)["events"][0]["data"]["resource"]
    assert b'"family":"tshirts"' in messages[0].data and b"\\/" in messages[0].data
    assert NormalizedEvent.from_message(messages[0].data).resource == resource


def test_the_receiver_entry_point_uses_either_path() -> None:
    bad = legacy_event("x", event_id="bad-1")
    bad["action"] = "category.updated"
    mixed = encode_events_api(legacy_body([legacy_event("ok"), bad]), CONN, RECEIVED)
    assert [r.event_id for r in mixed.rejected] == ["bad-1"] and len(mixed.messages) == 1
    assert encode_events_api(b"", CONN).messages == []
    with pytest.raises(PayloadError):
        encode_events_api(b"{oops", CONN)


def _quirks() -> list[dict[str, Any]]:
    old_spelling = legacy_event("tshirt-3")
    old_spelling["event_date"] = old_spelling.pop("event_datetime")
    old_spelling["pim_source"] = "acme.cloud.akeneo.com"
    old_spelling["data"]["resource"]["quantified_associations"] = []
    old_spelling["data"]["resource"].pop("updated")
    naive = legacy_event("tshirt-4", event_datetime="2020-10-20 09:13:59", updated="2020-10-20")
    offset = legacy_event("tshirt-5", updated="2026-11-27T12:00:00.123456+02:00")
    removed = legacy_event("tshirt-9", action="product.removed")
    removed["data"]["resource"] = {"identifier": "tshirt-9"}
    unicode = legacy_event("caf\u00e9-\U0001f600/\u2028")
    unicode["author"] = None
    return [
        old_spelling,
        naive,
        offset,
        removed,
        unicode,
        legacy_event("model-1", action="product_model.created"),
        legacy_event("model-2", action="product_model.removed"),
    ]


@pytest.mark.parametrize("ascii_only", [True, False])
def test_documented_quirks_are_passed_through(ascii_only: bool) -> None:
    events = _quirks()
    body = (
        legacy_body(events)
        if ascii_only
        else json.dumps({"events": events}, ensure_ascii=False).encode()
    )
    assert agrees(body)


def test_event_datetime_wins_over_event_date_as_in_the_full_path() -> None:
    both = legacy_event("tshirt-1", action="product.removed")
    both["event_date"] = "2020-01-01T00:00:00Z"
    null_first = legacy_event("tshirt-2", action="product.removed")
    null_first["event_datetime"], null_first["event_date"] = None, "2020-01-01T00:00:00Z"
    assert agrees(legacy_body([both]))
    assert not agrees(legacy_body([null_first]))


def _with(field: str, value: Any, *, action: str = "product.updated") -> bytes:
    event = legacy_event("tshirt-1", action=action)
    target = event
    *path, last = field.split(".")
    for part in path:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return legacy_body([legacy_event("tshirt-0"), event])


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "category.updated"),
        ("event_id", ""),
        ("event_id", "x" * 201),
        ("event_id", "a\nb"),
        ("event_id", "tab\there"),
        ("event_id", 42),
        ("event_datetime", _DELETE),
        ("event_datetime", None),
        ("event_datetime", "yesterday"),
        ("event_datetime", 1600000000),  # the full path reads it; this one leaves it to it
        ("author", 7),
        ("author_type", ["ui"]),
        ("pim_source", {"host": "x"}),
        ("data", None),
        ("data.resource", "tshirt-1"),
        ("data.resource", _DELETE),
        ("data.resource.uuid", 12),
        ("data.resource.updated", "not a date"),
        ("data.resource.quantified_associations", "none"),
    ],
)
def test_an_event_the_full_path_refuses_or_reads_otherwise_is_declined(
    field: str, value: Any
) -> None:
    body = _with(field, value)
    assert not agrees(body)
    assert legacy_messages(body, CONN) is None


def test_no_key_is_declined() -> None:
    body = _with("data.resource", {"values": {}})
    assert not agrees(body)
    model = _with("data.resource", {"code": ""}, action="product_model.updated")
    assert not agrees(model)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{oops",
        b"[1]",
        b'{"event": []}',
        b'{"events": [NaN]}',
        legacy_batch(2).replace(b'"enabled":true', b'"enabled":NaN'),
        legacy_batch(2).replace(b"T-shirt", b"T-shirt \xff"),  # not UTF-8
        legacy_batch(2).replace(b"T-shirt", b"T-shirt \xed\xa0\x80"),  # UTF-8 of a surrogate
        b'{"events":[' * 3000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
    ],
)
def test_bodies_the_worker_could_not_read_are_declined(body: bytes) -> None:
    assert not agrees(body)


def test_resources_past_the_worker_parser_limits_are_declined() -> None:
    deep = legacy_event("deep")
    deep["data"]["resource"]["nested"] = json.loads("[" * 210 + "]" * 210)
    assert not agrees(legacy_body([deep]))
    huge = legacy_body([legacy_event("huge")]).replace(b'"amount":180', b'"amount":' + b"9" * 5000)
    assert not agrees(huge)


@pytest.mark.parametrize(
    "extra",
    [
        b"[" * 210 + b"]" * 210,  # the full path refuses the body (too deep)
        b"9" * 4400,  # the full path refuses the body (number out of range)
        b'"harmless"',  # the full path takes it
    ],
)
def test_unknown_envelope_fields_are_left_to_the_full_path(extra: bytes) -> None:
    for where in ("event", "data", "body"):
        event = legacy_event("tshirt-1")
        doc: dict[str, Any] = {"events": [event]}
        {"event": event, "data": event["data"], "body": doc}[where]["extra"] = "EXTRA"
        body = json.dumps(doc).encode().replace(b'"EXTRA"', extra)
        assert legacy_messages(body, CONN) is None
        agrees(body)


def test_large_but_readable_resources_are_passed_through() -> None:
    large = legacy_event("large")
    large["data"]["resource"]["values"]["notes"] = [
        {"locale": None, "scope": None, "data": [[i] for i in range(150)]}
    ]
    large["data"]["resource"]["values"]["long"] = [{"data": "x" * 5000, "n": 9 * 10**4000}]
    assert agrees(legacy_body([large, legacy_event("small")]))


def test_duplicate_keys_read_as_the_full_path_reads_them() -> None:
    body = legacy_batch(1)
    assert agrees(body.replace(b'"author":"julia"', b'"author":"julia","author":"bob"', 1))
    agrees(body.replace(b'"author":"julia"', b'"author":5,"author":"bob"', 1))
    other = b'{"uuid":"other","identifier":"other","updated":"2020-01-01T00:00:00Z"}'
    assert agrees(body.replace(b'"resource":', b'"resource":' + other + b',"resource":', 1))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["", "2026-11-27T10:00:00Z", "2020-10-20 09:13:59", "1600000000"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    "action",
    "event_id",
    "event_datetime",
    "event_date",
    "author",
    "author_type",
    "pim_source",
    "data",
    "data.resource",
    "data.resource.uuid",
    "data.resource.identifier",
    "data.resource.code",
    "data.resource.updated",
    "data.resource.quantified_associations",
    "data.resource.values",
    "extra",
]
ACTIONS = ["product.created", "product.removed", "product_model.updated", "product_model.removed"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=st.sampled_from(ACTIONS),
    changes=st.lists(
        st.tuples(st.sampled_from(FIELDS), st.one_of(json_values, st.just(_DELETE))),
        max_size=3,
    ),
    ascii_only=st.booleans(),
)
def test_any_variation_of_an_event_declines_or_matches(
    action: str, changes: list[tuple[str, Any]], ascii_only: bool
) -> None:
    varied = legacy_event("tshirt-1", action=action)
    for field, value in changes:
        target = varied
        *path, last = field.split(".")
        for part in path:
            if not isinstance(target.get(part), dict):
                break
            target = target[part]
        else:
            if value is _DELETE:
                target.pop(last, None)
            else:
                target[last] = copy.deepcopy(value)
    events = [legacy_event("tshirt-0"), varied]
    body = (
        legacy_body(events)
        if ascii_only
        else json.dumps({"events": events}, ensure_ascii=False).encode()
    )
    event("passed through" if agrees(body) else "declined")
