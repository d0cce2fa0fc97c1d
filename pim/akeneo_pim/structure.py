"""The catalog structure a connector needs beside products: categories, families, attributes
and attribute options.

What Akeneo's REST API reference says of these listings, and the client relies on: ``page``
pagination only (``pagination_type=search_after`` answers 422 "Pagination type is not
supported."), ``limit`` up to 100, a ``next`` link after every full page, ``with_count`` on
request, no 10,000-item cap (they are not served from the search index). Categories,
families and attributes take a ``code IN [...]`` filter (4.0+) and an ``updated >`` filter
with an ISO 8601 value (families and attributes 4.0+, categories 6.0+;
https://api.akeneo.com/rest-api/filter.html), so the periodic reconcile reads them
incrementally. Families and attributes are sorted by code, categories by tree (root, left).
Only categories show ``updated`` in their representation
(https://api.akeneo.com/api-reference.html); families, attributes and options do not.

Attribute options (https://api.akeneo.com/api-reference.html#Attributeoption) are read per
attribute: ``/attributes/{attribute}/options`` (paged, sorted by code, no ``search`` at all)
and ``/attributes/{attribute}/options/{code}``. Option codes are unique per attribute only,
so their key is ``<attribute>/<code>`` (``event_types.attribute_option_key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from akeneo_connector.normalized import ResourceKind

CATEGORIES_PATH = "/api/rest/v1/categories"
FAMILIES_PATH = "/api/rest/v1/families"
ATTRIBUTES_PATH = "/api/rest/v1/attributes"
SELECT_TYPES = ("pim_catalog_simpleselect", "pim_catalog_multiselect")
"""The attribute types that have options (https://api.akeneo.com/concepts/catalog-structure.html)."""


@dataclass(frozen=True)
class StructureResource:
    """One structure listing: its name in ``spec.reconciliation.resources``, kind and path."""

    resource: str
    kind: ResourceKind
    path: str


STRUCTURE: dict[str, StructureResource] = {
    r.resource: r
    for r in (
        StructureResource("categories", ResourceKind.CATEGORY, CATEGORIES_PATH),
        StructureResource("families", ResourceKind.FAMILY, FAMILIES_PATH),
        StructureResource("attributes", ResourceKind.ATTRIBUTE, ATTRIBUTES_PATH),
    )
}
STRUCTURE_BY_KIND: dict[ResourceKind, StructureResource] = {r.kind: r for r in STRUCTURE.values()}
ATTRIBUTE_OPTIONS = "attribute_options"
"""Their name in ``spec.reconciliation.resources``: read by the full scan only, one listing per
select attribute, as no filter of theirs tells what changed."""


def iso_filter_date(value: datetime) -> str:
    """The ``updated >`` value of the structure listings: ISO 8601 in UTC, whole seconds
    (``2021-05-17T15:19:32Z``, as Akeneo's filter page writes it)."""
    if value.tzinfo is None:
        raise ValueError("iso_filter_date needs an aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def updated_after(since: datetime) -> dict[str, list[dict[str, str]]]:
    """``search`` of a structure listing: the items updated after ``since``."""
    return {"updated": [{"operator": ">", "value": iso_filter_date(since)}]}


def attribute_options_path(attribute: str) -> str:
    return f"{ATTRIBUTES_PATH}/{quote(attribute, safe='')}/options"


def attribute_option_path(attribute: str, code: str) -> str:
    return f"{attribute_options_path(attribute)}/{quote(code, safe='')}"


def split_option_key(key: str) -> tuple[str, str] | None:
    """``(attribute, code)`` of an attribute option's key, or None when it is not one."""
    attribute, sep, code = key.partition("/")
    return (attribute, code) if sep and attribute and code else None
