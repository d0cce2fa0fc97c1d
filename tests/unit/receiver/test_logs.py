from __future__ import annotations

import json
import logging

from akeneo_receiver.logs import JsonFormatter


def test_json_line_with_extra_fields() -> None:
    record = logging.LogRecord(
        "akeneo_receiver", logging.WARNING, "f", 1, "request rejected", None, None
    )
    record.reason = "bad_signature"
    record.status = 401
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request rejected" and line["level"] == "warning"
    assert (line["reason"], line["status"]) == ("bad_signature", 401)


def test_every_field_and_line_is_bounded() -> None:
    from akeneo_receiver.logs import FIELD_MAX, LINE_MAX

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
