"""The records (msgspec): what they refuse, and the JSON they write (pydantic's, so entries
written by either era read in the other)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import AwareDatetime, BaseModel

from akeneo_connector.gaps import GapRecord, GapSource
from akeneo_connector.guard_state import GuardEntry, WorkerStats
from akeneo_connector.normalized import Action, NormalizedEvent, ResourceKind, SourceFormat
from akeneo_connector.records import RecordError, SecretStr
from akeneo_connector.secret_report import SecretReport
from akeneo_pim.rest import PimCredentials

AT = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def event(**change: object) -> NormalizedEvent:
    fields: dict[str, object] = {
        "connection": "shop/main",
        "source": SourceFormat.EVENTS_API,
        "event_id": "e1",
        "action": Action.UPSERT,
        "kind": ResourceKind.PRODUCT,
        "key": "p1",
        "version": AT,
        "resource": {"uuid": "p1", "values": {"name": ["é"]}},
    }
    fields.update(change)
    return NormalizedEvent.model_validate(fields)


def test_a_message_round_trips_and_is_written_as_pydantic_wrote_it() -> None:
    e = event()
    data = e.to_message()
    assert NormalizedEvent.from_message(data) == e

    class Before(BaseModel):  # the model this replaced, for the one field whose text varies
        version: AwareDatetime

    assert b'"version":"2026-01-02T03:04:05.600000Z"' in data
    assert Before(version=AT).model_dump_json() == '{"version":"2026-01-02T03:04:05.600000Z"}'
    assert "é".encode() in data  # UTF-8, not \u escapes
    assert b"author" not in data  # None fields are left out
    offset = AT.astimezone(timezone(timedelta(hours=2)))
    assert b'"version":"2026-01-02T05:04:05.600000+02:00"' in event(version=offset).to_message()


def test_the_json_of_a_message_and_a_guard_entry_is_pinned() -> None:
    """Byte for byte what the dataclass and pydantic records wrote: messages on a stream
    and entries in a bucket outlive a release, read by workers of the one before or after."""
    message = (
        b'{"connection":"shop/main","source":"events_api","event_id":"e1","action":"upsert",'
        b'"kind":"product","key":"p1","version":"2026-01-02T03:04:05.600000Z",'
        b'"resource":{"uuid":"p1","values":{"name":["\xc3\xa9"]}},'
        b'"received_at":"2026-01-01T21:34:05-05:30"}'
    )
    received = datetime(2026, 1, 1, 21, 34, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30)))
    assert event(received_at=received).to_message() == message
    assert NormalizedEvent.from_message(message) == event(received_at=received)
    entry = GuardEntry(version=AT, digest="ab", claimed_until=AT.replace(microsecond=0))
    pinned = (
        b'{"version":"2026-01-02T03:04:05.600000Z","deleted":false,"digest":"ab",'
        b'"event_id":null,"claimed_by":null,"claimed_until":"2026-01-02T03:04:05Z"}'
    )
    assert entry.to_bytes() == pinned
    assert GuardEntry.model_validate_json(pinned) == entry
    # written by pydantic: fewer fraction digits, an offset for UTC
    old = b'{"version":"2026-01-02T05:04:05.6+02:00","deleted":true}'
    assert GuardEntry.model_validate_json(old) == GuardEntry(version=AT, deleted=True)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"connection":"a"}', "missing required field `source`"),
        (b"not json", "JSON is malformed"),
        (b"[1]", "Expected `object`, got `array`"),
    ],
)
def test_unreadable_messages_are_refused_saying_where(data: bytes, where: str) -> None:
    with pytest.raises(RecordError, match=where):
        NormalizedEvent.from_message(data)


def test_a_message_breaking_a_rule_is_refused() -> None:
    good = event().model_dump(mode="json")
    changes: list[tuple[dict[str, object], str]] = [
        ({"key": ""}, "length >= 1 - at `$.key`"),
        ({"event_id": "x" * 201}, "length <= 200 - at `$.event_id`"),
        ({"version": "2026-01-02T03:04:05"}, "timezone component - at `$.version`"),
        ({"version": "yesterday"}, "Invalid RFC3339 encoded datetime - at `$.version`"),
        ({"kind": "planet"}, "Invalid enum value - at `$.kind`"),  # not the value
        ({"resource": [1]}, "Expected `object | null`, got `array` - at `$.resource`"),
        ({"author": 7}, "Expected `str | null`, got `int` - at `$.author`"),
        ({"extra": 1}, "unknown field `extra`"),
    ]
    for change, why in changes:
        with pytest.raises(RecordError, match=re.escape(why)):
            NormalizedEvent.model_validate({**good, **change})
    with pytest.raises(RecordError) as caught:
        NormalizedEvent.model_validate({**good, "kind": "planet"})
    assert "planet" not in str(caught.value)
    with pytest.raises(RecordError, match="timezone component"):
        event(version=datetime(2026, 1, 1))  # the values of a wire event, checked
    with pytest.raises(RecordError, match="length >= 1"):
        event().model_copy(update={"key": ""})


def test_state_entries_ignore_unknown_fields_and_keep_defaults() -> None:
    entry = GuardEntry.model_validate_json(b'{"version":"2026-01-02T03:04:05Z","newer":1}')
    assert entry == GuardEntry(version=AT.replace(microsecond=0))
    assert not entry.deleted and entry.claimed_by is None
    stats = WorkerStats(applied=3, updated_at=AT)
    assert WorkerStats.model_validate_json(stats.to_bytes()) == stats
    with pytest.raises(RecordError, match="Expected `int`, got `bool`"):
        WorkerStats.model_validate_json(b'{"applied":true,"updated_at":"2026-01-02T03:04:05Z"}')


def test_aliases_lengths_and_enums_of_reports_and_gaps() -> None:
    report = SecretReport(pod="r-0", at=AT, event_platform=("abc",))
    data = report.to_bytes()
    assert b'"eventPlatform":["abc"]' in data
    assert SecretReport.model_validate_json(data) == report
    with pytest.raises(RecordError, match="length <= 8"):
        SecretReport.model_validate({"pod": "r-0", "at": AT, "eventPlatform": ["a"] * 9})
    gap = GapRecord(source=GapSource.RECEIVER_503, start=AT, end=AT, detail="503")
    assert GapRecord.model_validate_json(gap.to_bytes()) == gap
    assert b"cursor" not in gap.to_bytes()  # exclude_defaults, as before
    with pytest.raises(RecordError, match="source"):
        GapRecord.model_validate({"source": "elsewhere", "start": AT, "end": AT})


def test_credentials_never_show_their_values() -> None:
    creds = PimCredentials(client_id="id", client_secret="s3cr3t", username="u", password="pw")
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(creds.client_secret)
    assert creds.client_secret.get_secret_value() == "s3cr3t"
    assert creds == PimCredentials.model_validate(dict(creds))
    assert creds.password == SecretStr("pw")
    with pytest.raises(AttributeError):
        creds.username = SecretStr("other")
    with pytest.raises(ValueError, match="lack password"):
        PimCredentials.model_validate({"client_id": "a", "client_secret": "b", "username": "c"})


def test_an_input_key_named_in_an_error_stays_short_and_on_one_line() -> None:
    good = event().model_dump(mode="json")
    with pytest.raises(RecordError) as caught:
        NormalizedEvent.model_validate({**good, "x\r\nNats-Msg-Id: forged" + "y" * 500: 1})
    message = str(caught.value)
    assert "\r" not in message and "\n" not in message
    assert len(message) <= 150
