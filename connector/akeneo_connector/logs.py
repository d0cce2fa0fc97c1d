"""The one log schema of every component: JSON lines on stderr with kopf's field names.

``timestamp``, ``severity`` (kopf's words: debug, info, warn, error, fatal) and ``message``,
as the operator's kopf logs have them, plus ``logger`` and, for an exception, ``exception``:
its class name only, never its text or traceback (either may hold a tenant's data or a
secret). ``extra={...}`` fields become top-level keys.

Every line is bounded: what a log field holds may come from a tenant (a reason, an id, an
error text), so each field is cut at ``FIELD_MAX`` characters and a field that is not a
plain scalar at ``FIELD_MAX`` characters of its JSON; a line never exceeds ``LINE_MAX``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
FIELD_MAX = 1024
LINE_MAX = 8192
_CUT = "…[cut]"


def _bounded(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > FIELD_MAX:
        return text[:FIELD_MAX] + _CUT
    return value if isinstance(value, str) else text


def severity(levelno: int) -> str:
    """kopf's severity words (``kopf._core.actions.loggers.ObjectJsonFormatter``)."""
    if levelno <= logging.DEBUG:
        return "debug"
    if levelno <= logging.INFO:
        return "info"
    if levelno <= logging.WARNING:
        return "warn"
    return "error" if levelno <= logging.ERROR else "fatal"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "severity": severity(record.levelno),
            "logger": record.name,
            "message": _bounded(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key[:100]] = _bounded(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        line = json.dumps(entry, default=str)
        if len(line) > LINE_MAX:  # many fields, each within bounds: keep the head only
            head = {k: entry[k] for k in ("timestamp", "severity", "logger", "message")}
            line = json.dumps({**head, "cut": f"{len(line)} characters"})
        return line


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
