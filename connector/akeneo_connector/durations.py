"""Go-style durations (``300s``, ``2h``, ``1h30m``) as used in the AkeneoConnection spec.

Plain functions: the components parse their duration flags with them and must not import
pydantic for it (the CRD's ``Duration`` field type is ``akeneo_connector.spec.Duration``)."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m`` into a timedelta; raise ``ValueError`` naming the bad text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 300s, 15m, 2h, 7d or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
    return timedelta(seconds=seconds)
