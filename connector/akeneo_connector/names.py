"""Names derived from a connection's namespace and name: stable for its whole lifetime.

JetStream names allow ``[A-Za-z0-9_-]``; Kubernetes names are DNS labels, so ``.`` never
occurs in a namespace and ``-`` is kept. A namespace/name pair maps to exactly one stream.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX = 200  # stream names are file names on the server


def _token(text: str) -> str:
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class ConnectionNames:
    """All names of one connection, inside and outside Kubernetes."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, ref: str) -> ConnectionNames:
        """``namespace/name`` as given on the command line or in env."""
        namespace, sep, name = ref.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"connection must be 'namespace/name', got {ref!r}")
        return cls(namespace, name)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def _base(self) -> str:
        base = f"{_token(self.namespace)}__{_token(self.name)}"
        if len(base) > _MAX:
            digest = hashlib.sha256(self.ref.encode()).hexdigest()[:12]
            base = f"{base[: _MAX - 13]}_{digest}"
        return base

    @property
    def stream(self) -> str:
        """JetStream stream holding the connection's events (and dead letters)."""
        return f"AKENEO_{self._base}"

    @property
    def subject_prefix(self) -> str:
        """All subjects of the stream start with this (``<prefix>.>``)."""
        return f"akeneo.{self._base}"

    @property
    def events_subject(self) -> str:
        """Events from the receiver and the reconcile job: ``<prefix>.events.<kind>``."""
        return f"{self.subject_prefix}.events"

    def event_subject(self, kind: str) -> str:
        return f"{self.events_subject}.{kind}"

    @property
    def notifications_subject(self) -> str:
        """Event Platform subscription notifications (suspended, revoked, resumed), verified
        and stored by the receiver; the operator reads the last one into status."""
        return f"{self.subject_prefix}.notifications"

    @property
    def gaps_subject(self) -> str:
        """Windows in which events may have been lost (``akeneo_connector.gaps``), one
        subject per source: ``<prefix>.gaps.<source>``; never read by the worker."""
        return f"{self.subject_prefix}.gaps"

    def gap_subject(self, source: str) -> str:
        return f"{self.gaps_subject}.{source}"

    @property
    def dead_letter_subject(self) -> str:
        return f"{self.subject_prefix}.dead"

    @property
    def guard_bucket(self) -> str:
        """KV bucket: ordering guard (last applied version per resource), watermark, locks."""
        return f"AKENEO_{self._base}"

    @property
    def consumer(self) -> str:
        """Durable consumer name of the worker."""
        return "worker"
