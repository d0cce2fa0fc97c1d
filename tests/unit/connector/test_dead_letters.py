"""Dead-letter headers and the replay filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from akeneo_connector import dead_letters as dl
from akeneo_resync.replay import DeadLetterFilter

AT = datetime(2026, 5, 1, tzinfo=UTC)


def letter(key: str = "a/b c", cause: str = dl.CAUSE_EXHAUSTED) -> dl.DeadLetter:
    headers = dl.dead_letter_headers(
        reason="webhook answered 503\nsecond line",
        cause=cause,
        subject="akeneo.ns__c.events.product",
        sequence=42,
        deliveries=10,
        resource=("product", key),
        now=AT,
    )
    return dl.DeadLetter.from_parts(7, b"{}", headers)


def test_headers_round_trip_with_any_key() -> None:
    got = letter()
    assert got.key == "a/b c" and got.kind == "product"
    assert got.reason == "webhook answered 503 second line"  # one header line
    assert got.original_sequence == 42 and got.subject == "akeneo.ns__c.events.product"
    assert got.dead_at == AT


def test_filter() -> None:
    assert DeadLetterFilter().matches(letter())
    assert DeadLetterFilter(key="a/b c", kind="product").matches(letter())
    assert not DeadLetterFilter(key="other").matches(letter())
    assert not DeadLetterFilter(kind="product_model").matches(letter())
    assert DeadLetterFilter(since=AT, until=AT + timedelta(seconds=1)).matches(letter())
    assert not DeadLetterFilter(since=AT + timedelta(seconds=1)).matches(letter())
    assert not DeadLetterFilter(until=AT).matches(letter())
    malformed = letter(cause=dl.CAUSE_MALFORMED)
    assert not DeadLetterFilter().matches(malformed)
    assert DeadLetterFilter(include_malformed=True).matches(malformed)
