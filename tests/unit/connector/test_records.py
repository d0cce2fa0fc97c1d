"""The pydantic-free records: what they refuse, and the JSON they write (pydantic's, so
entries written before the change still read, and the other way round)."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"connection":"a"}', "source: Field required"),
        (b"not json", "invalid JSON"),
        (b"[1]", "expected an object"),
    ],
)
def test_unreadable_messages_are_refused_saying_where(data: bytes, where: str) -> None:
    with pytest.raises(RecordError, match=where):
        NormalizedEvent.from_message(data)


def test_a_message_breaking_a_rule_is_refused() -> None:
    good = event().model_dump(mode="json")
    changes: list[tuple[dict[str, object], str]] = [
        ({"key": ""}, "key: at least 1"),
        ({"event_id": "x" * 201}, "event_id: at most 200"),
        ({"version": "2026-01-02T03:04:05"}, "version: timezone required"),
        ({"version": "yesterday"}, "version: invalid datetime"),
        ({"kind": "planet"}, "kind: expected ResourceKind"),
        ({"resource": [1]}, "resource: expected dict"),
        ({"author": 7}, "author: expected str"),
        ({"extra": 1}, "extra: extra field not allowed"),
    ]
    for change, why in changes:
        with pytest.raises(RecordError, match=why):
            NormalizedEvent.model_validate({**good, **change})
    with pytest.raises(RecordError, match="version: timezone required"):
        event(version=datetime(2026, 1, 1))  # built in code: checked all the same
    with pytest.raises(RecordError, match="key: at least 1"):
        event().model_copy(update={"key": ""})


def test_state_entries_ignore_unknown_fields_and_keep_defaults() -> None:
    entry = GuardEntry.model_validate_json(b'{"version":"2026-01-02T03:04:05Z","newer":1}')
    assert entry == GuardEntry(version=AT.replace(microsecond=0))
    assert not entry.deleted and entry.claimed_by is None
    stats = WorkerStats(applied=3, updated_at=AT)
    assert WorkerStats.model_validate_json(stats.to_bytes()) == stats
    with pytest.raises(RecordError, match="applied: expected int"):
        WorkerStats.model_validate_json(b'{"applied":true,"updated_at":"2026-01-02T03:04:05Z"}')


def test_aliases_lengths_and_enums_of_reports_and_gaps() -> None:
    report = SecretReport(pod="r-0", at=AT, event_platform=("abc",))
    data = report.to_bytes()
    assert b'"eventPlatform":["abc"]' in data
    assert SecretReport.model_validate_json(data) == report
    with pytest.raises(RecordError, match="event_platform: at most 8"):
        SecretReport(pod="r-0", at=AT, event_platform=("a",) * 9)
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
    assert len(message) < 150
