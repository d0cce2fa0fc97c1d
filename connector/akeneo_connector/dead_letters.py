"""Dead letters: a failed message copied to ``<prefix>.dead`` with why and where it came from.

The payload is the original message's bytes, untouched (even when malformed); everything
else travels in headers so ``replay`` can filter and re-publish without parsing payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

REASON = "Akeneo-Dead-Reason"
CAUSE = "Akeneo-Dead-Cause"
SUBJECT = "Akeneo-Original-Subject"
SEQUENCE = "Akeneo-Original-Sequence"
DELIVERIES = "Akeneo-Deliveries"
RESOURCE = "Akeneo-Resource"
DEAD_AT = "Akeneo-Dead-At"
MSG_ID = "Nats-Msg-Id"

CAUSE_MALFORMED = "malformed"  # not a NormalizedEvent
CAUSE_REJECTED = "rejected"  # the sink refused it for good (e.g. webhook 4xx)
CAUSE_EXHAUSTED = "max_deliver"  # retryable failures until maxDeliver
CAUSE_NO_HYDRATOR = "no_hydrator"  # ids-only event, but no PIM credentials configured

_MAX_REASON = 500


def _header_safe(text: str) -> str:
    return " ".join(text.split())[:_MAX_REASON]


def resource_ref(kind: str, key: str) -> str:
    """``kind/key`` with the key percent-encoded (headers are one ASCII line)."""
    return f"{kind}/{quote(key, safe='')}"


def dead_letter_headers(
    *,
    reason: str,
    cause: str,
    subject: str,
    sequence: int,
    deliveries: int,
    resource: tuple[str, str] | None,
    now: datetime | None = None,
) -> dict[str, str]:
    headers = {
        REASON: _header_safe(reason) or cause,
        CAUSE: cause,
        SUBJECT: subject,
        SEQUENCE: str(sequence),
        DELIVERIES: str(deliveries),
        DEAD_AT: (now or datetime.now(UTC)).isoformat(),
        # One dead letter per original message, even if two replicas race on it.
        MSG_ID: f"dead.{sequence}",
    }
    if resource is not None:
        headers[RESOURCE] = resource_ref(*resource)
    return headers


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter read back from the stream."""

    sequence: int  # of the dead letter itself
    data: bytes
    reason: str
    cause: str
    subject: str | None
    original_sequence: int | None
    kind: str | None
    key: str | None
    dead_at: datetime | None

    @classmethod
    def from_parts(cls, sequence: int, data: bytes, headers: dict[str, Any] | None) -> DeadLetter:
        h = headers or {}
        kind: str | None = None
        key: str | None = None
        ref = h.get(RESOURCE)
        if isinstance(ref, str) and "/" in ref:
            kind, _, encoded = ref.partition("/")
            key = unquote(encoded)
        seq = h.get(SEQUENCE)
        at = h.get(DEAD_AT)
        return cls(
            sequence=sequence,
            data=data,
            reason=str(h.get(REASON, "")),
            cause=str(h.get(CAUSE, "")),
            subject=h.get(SUBJECT),
            original_sequence=int(seq) if isinstance(seq, str) and seq.isdigit() else None,
            kind=kind,
            key=key,
            dead_at=datetime.fromisoformat(at) if isinstance(at, str) else None,
        )
