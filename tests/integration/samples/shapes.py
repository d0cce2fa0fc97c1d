"""JSON shapes: the keys and value types of a document, to hold the simulator to Akeneo's."""

from __future__ import annotations

from typing import Any

# Objects keyed by data, not by field name: attribute codes (values), association types,
# locales (labels), channels (attribute_requirements). Only entries both sides have are
# compared: a catalog has other attributes than Akeneo's example.
OPEN_MAPS = frozenset(
    {
        "values",
        "associations",
        "quantified_associations",
        "labels",
        "group_labels",
        "attribute_requirements",
        "linked_data",
    }
)


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def differences(ours: Any, theirs: Any, path: str = "") -> set[str]:
    """Where ``ours`` (the simulator's) has another shape than ``theirs`` (Akeneo's sample):
    ``"<path>: only ours"``, ``"<path>: only theirs"``, ``"<path>: <our type> vs <theirs>"``.
    ``null`` matches any type (Akeneo's nullable fields); lists compare their first items."""
    a, b = kind_of(ours), kind_of(theirs)
    if "null" in (a, b):
        return set()
    if a != b:
        return {f"{path}: {a} vs {b}"}
    if a == "array":
        return differences(ours[0], theirs[0], f"{path}[]") if ours and theirs else set()
    if a != "object":
        return set()
    out: set[str] = set()
    open_map = path.rsplit(".", 1)[-1] in OPEN_MAPS
    for key in sorted(set(ours) | set(theirs)):
        where = f"{path}.{key}"
        if key not in theirs:
            if not open_map:
                out.add(f"{where}: only ours")
        elif key not in ours:
            if not open_map:
                out.add(f"{where}: only theirs")
        else:
            out |= differences(ours[key], theirs[key], where)
    return out
