"""The catalog structure a connector needs beside products: categories, families, attributes.

What Akeneo's REST API reference says of these three listings, and the client relies on:
``page`` pagination only (``pagination_type=search_after`` answers 422 "Pagination type is not
supported."), ``limit`` up to 100, a ``next`` link after every full page, ``with_count`` on
request, no 10,000-item cap (they are not served from the search index), and a
``code IN [...]`` filter (4.0+). Families and attributes are sorted by code, categories by
tree (root, left). Only categories carry ``updated`` (6.0 and SaaS); no event announces a
change of any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from akeneo_pim.normalized import ResourceKind

CATEGORIES_PATH = "/api/rest/v1/categories"
FAMILIES_PATH = "/api/rest/v1/families"
ATTRIBUTES_PATH = "/api/rest/v1/attributes"


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
