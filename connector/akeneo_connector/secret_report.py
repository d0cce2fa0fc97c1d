"""What each receiver pod reports of the signature secrets it has loaded: fingerprints only.

The operator rotates the Event Platform secrets without a 401 (``akeneo_operator.rotation``):
it may promote a new secret only once every ready receiver accepts it, and Kubernetes updates
a mounted Secret with a delay, so acceptance is observed, not assumed. Each receiver writes
``receiver.secrets.<b64 pod name>`` in the connection's KV bucket (next to the workers'
``stats.worker.*``) whenever what it loaded changes, and every ``REPORT_EVERY`` seconds.

A fingerprint is the first 12 hex digits of the SHA-256 of the secret, never the secret:
``printf %s "$secret" | sha256sum | cut -c1-12`` gives the same. Only the Event Platform
files are reported (those the operator rotates).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import msgspec

from akeneo_connector.records import AwareDatetime, Record

REPORT_PREFIX = "receiver.secrets"
REPORT_EVERY = 30.0  # seconds; also at once on every change
FINGERPRINT_HEX = 12
MAX_FINGERPRINTS = 8  # per file: rotation needs two; a hostile file must stay small here


Fingerprints = Annotated[tuple[str, ...], msgspec.Meta(max_length=MAX_FINGERPRINTS)]


def fingerprint(secret: str) -> str:
    """First 12 hex digits of SHA-256 of the secret (as one line of its file holds it)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:FINGERPRINT_HEX]


def fingerprints(secrets: Iterable[str]) -> tuple[str, ...]:
    return tuple(fingerprint(s) for s in secrets)


def report_key(pod: str) -> str:
    """KV key of a pod's report (pod names may hold dots: encoded, as worker stats are)."""
    encoded = base64.urlsafe_b64encode(pod.encode()).decode().rstrip("=")
    return f"{REPORT_PREFIX}.{encoded}"


class SecretReport(Record, frozen=True, kw_only=True):
    """One receiver pod's loaded secrets, by fingerprint (``eventPlatform`` = the
    ``eventPlatformSecrets`` file, ``notification`` = ``eventPlatformNotificationSecret``)."""

    pod: Annotated[str, msgspec.Meta(max_length=253)]
    at: AwareDatetime
    event_platform: Fingerprints = msgspec.field(default=(), name="eventPlatform")
    notification: Fingerprints = ()


def report(
    pod: str, at: datetime, event_platform: Iterable[str], notification: Iterable[str]
) -> SecretReport:
    """The report of a pod that loaded these secrets (values in, fingerprints out)."""
    return SecretReport(
        pod=pod,
        at=at,
        event_platform=fingerprints(event_platform)[:MAX_FINGERPRINTS],
        notification=fingerprints(notification)[:MAX_FINGERPRINTS],
    )
