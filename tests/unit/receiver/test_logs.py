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
