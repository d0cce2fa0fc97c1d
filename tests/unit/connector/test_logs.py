from __future__ import annotations

import json
import logging

from akeneo_connector.logs import JsonFormatter


def test_json_line_with_extra_fields() -> None:
    record = logging.LogRecord(
        "akeneo_receiver", logging.WARNING, "f", 1, "request rejected", None, None
    )
    record.reason = "bad_signature"
    record.status = 401
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request rejected" and line["severity"] == "warn"
    assert set(line) >= {"timestamp", "logger"}
    assert (line["reason"], line["status"]) == ("bad_signature", 401)


def test_every_field_and_line_is_bounded() -> None:
    from akeneo_connector.logs import FIELD_MAX, LINE_MAX

    record = logging.LogRecord("akeneo_receiver", logging.WARNING, "f", 1, "x" * 10_000, None, None)
    record.detail = "d" * 100_000
    record.items = [{"reason": "r" * 50}] * 1000
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert len(entry["detail"]) < FIELD_MAX + 10 and len(entry["items"]) < FIELD_MAX + 10
    assert len(line) <= LINE_MAX
    for i in range(20):
        setattr(record, f"f{i}", "v" * 2000)
    crowded = JsonFormatter().format(record)
    assert len(crowded) <= LINE_MAX and "cut" in json.loads(crowded)


def test_an_exception_is_named_never_quoted() -> None:
    """Its text may hold a DSN or a tenant's payload: only the class name is logged."""
    try:
        raise ValueError("postgresql://user:s3cret@db/x")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "akeneo_worker", logging.ERROR, "f", 1, "sink failed", None, sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert json.loads(line)["exception"] == "ValueError" and "s3cret" not in line


def test_the_schema_is_kopfs() -> None:
    """The operator logs through kopf's JSON formatter: the same keys, the same words."""
    from kopf._core.actions.loggers import ObjectJsonFormatter

    record = logging.LogRecord("akeneo_operator", logging.WARNING, "f", 1, "m", None, None)
    theirs = json.loads(ObjectJsonFormatter().format(record))
    ours = json.loads(JsonFormatter().format(record))
    assert (ours["severity"], ours["message"]) == (theirs["severity"], theirs["message"])
    assert {"timestamp", "severity", "message"} <= set(ours) & set(theirs)
