"""The Event Platform's event types: which ones the connector handles, and how.

Source: Akeneo's available-events reference
(https://api.akeneo.com/event-platform/available-events.html; the last copy kept in
``akeneo/pim-api-docs`` is ``content/event-platform/available-events.md`` before commit
684c2a4d). Every type is ``com.akeneo.pim.v1.<resource>.<verb>``; ``data`` carries ids only,
under a key named for the resource (``product``, ``product_model``, ``category``, ``family``,
``attribute``, ``attribute_option``), plus ``author``.

A type not in ``HANDLED`` is acknowledged and ignored by the receiver, never refused: a 4xx
counts against the subscription's success rate, and Akeneo adds types over time.

Kept in the shared kernel: the CRD's spec models validate ``spec.eventPlatform.events``
against it, and the receiver, the PIM formats and the simulator read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from akeneo_connector.normalized import Action, ResourceKind

PREFIX = "com.akeneo.pim.v1."


@dataclass(frozen=True)
class HandledType:
    """What an event type means for the pipeline: the kind, upsert or delete, and its id."""

    kind: ResourceKind
    action: Action
    data_key: str  # the object in ``data`` holding the ids

    @property
    def id_field(self) -> str:
        """The id inside ``data.<data_key>``: ``uuid`` for products, ``code`` for the rest."""
        return "uuid" if self.kind is ResourceKind.PRODUCT else "code"


def _types(
    resource: str, kind: ResourceKind, data_key: str, upserts: tuple[str, ...]
) -> dict[str, HandledType]:
    handled = {
        f"{PREFIX}{resource}.{verb}": HandledType(kind, Action.UPSERT, data_key) for verb in upserts
    }
    handled[f"{PREFIX}{resource}.deleted"] = HandledType(kind, Action.DELETE, data_key)
    return handled


_PLAIN = ("created", "updated")
HANDLED: dict[str, HandledType] = {
    # became-complete / became-incomplete: the completeness changed, so the product is re-read
    **_types(
        "product",
        ResourceKind.PRODUCT,
        "product",
        (*_PLAIN, "updated.delta", "became-complete", "became-incomplete"),
    ),
    **_types(
        "product-model", ResourceKind.PRODUCT_MODEL, "product_model", (*_PLAIN, "updated.delta")
    ),
    **_types("category", ResourceKind.CATEGORY, "category", _PLAIN),
    **_types("family", ResourceKind.FAMILY, "family", _PLAIN),
    **_types("attribute", ResourceKind.ATTRIBUTE, "attribute", _PLAIN),
    **_types("attribute-option", ResourceKind.ATTRIBUTE_OPTION, "attribute_option", _PLAIN),
}

# Every type of Akeneo's reference (2025), handled or not: what the simulator emits and the
# README lists. Types outside this list are answered like the ignored ones.
REFERENCE: tuple[str, ...] = (
    *(f"{PREFIX}app.deleted", f"{PREFIX}connection.deleted"),
    *(f"{PREFIX}asset.{v}" for v in ("created", "updated", "deleted")),
    *(f"{PREFIX}attribute-group.{v}" for v in ("created", "updated", "deleted")),
    *(f"{PREFIX}reference-entity-record.{v}" for v in ("created", "updated", "deleted")),
    *(f"{PREFIX}job.{j}.status-changed" for j in ("export", "mass-edit", "import")),
    f"{PREFIX}workflow.task.created",
    *HANDLED,
)
IGNORED: tuple[str, ...] = tuple(t for t in REFERENCE if t not in HANDLED)


def handled(event_type: str) -> HandledType | None:
    """The meaning of ``event_type``, or None when the connector acknowledges and ignores it."""
    return HANDLED.get(event_type)


def attribute_option_key(attribute: str, code: str) -> str:
    """Guard key of an attribute option: option codes are unique per attribute only."""
    return f"{attribute}/{code}"
