"""A change the worker applies to a sink: one resource, one version, upsert or delete."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from akeneo_connector.normalized import Action, NormalizedEvent, utc_version

Operation = Literal["upsert", "delete"]


def canonical_json(resource: dict[str, Any]) -> str:
    """Sorted keys, no spaces: equal content, equal text."""
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def resource_digest(resource: dict[str, Any] | None) -> str | None:
    """sha256 of the canonical JSON of a resource: equal content, equal digest."""
    if resource is None:
        return None
    return hashlib.sha256(canonical_json(resource).encode()).hexdigest()


def resource_updated(resource: dict[str, Any]) -> datetime | None:
    """The resource's own ``updated`` (ISO 8601 with offset), if it has a usable one."""
    value = resource.get("updated")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class Change:
    """What a sink receives (the webhook sends exactly these fields)."""

    connection: str
    # a ResourceKind value: "product", "product_model", "category", "family", "attribute",
    # "attribute_option"
    kind: str
    key: str  # product uuid; the code of the others; attribute options "<attribute>/<code>"
    operation: Operation
    version: datetime
    event_id: str
    resource: dict[str, Any] | None

    @cached_property
    def resource_json(self) -> str | None:
        """The resource's canonical JSON, computed once (digest and sinks share it)."""
        return canonical_json(self.resource) if self.resource is not None else None

    @cached_property
    def digest(self) -> str | None:
        text = self.resource_json
        return hashlib.sha256(text.encode()).hexdigest() if text is not None else None

    @cached_property
    def change_id(self) -> str:
        """The webhook's idempotency key: equal for every delivery of this change.

        A hash of what the change sets (connection, kind, key, operation, version, resource
        digest), not of the event: a re-delivery after a crash carries the same id, and so
        does a duplicate event with the same content; a tie (same version, other content)
        does not. A merchant applies each id at most once.
        """
        text = "\n".join((self.connection, self.kind, self.key, self.operation,
                          utc_version(self.version), self.digest or ""))  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def deleted(self) -> bool:
        return self.operation == "delete"

    @classmethod
    def from_event(
        cls,
        event: NormalizedEvent,
        *,
        resource: dict[str, Any] | None = None,
        version: datetime | None = None,
    ) -> Change:
        operation: Operation = "delete" if event.action is Action.DELETE else "upsert"
        return cls(
            connection=event.connection,
            kind=event.kind.value,
            key=event.key,
            operation=operation,
            version=version or event.version,
            event_id=event.event_id,
            resource=None if operation == "delete" else (resource or event.resource),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "kind": self.kind,
            "key": self.key,
            "operation": self.operation,
            "version": self.version.isoformat(),
            "event_id": self.event_id,
            "change_id": self.change_id,
            "resource": self.resource,
        }
