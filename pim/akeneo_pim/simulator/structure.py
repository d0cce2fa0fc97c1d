"""The simulated PIM's catalog structure: categories, families and attributes, editable.

Shaped as Akeneo 7.0/SaaS serves them: categories carry ``updated`` (moved by every edit to a
time the catalog's clock hands out), families and attributes never do. Listing order is
Akeneo's: categories by tree (pre-order, as ``root, left`` sorts them), the others by code.
Edits announce nothing, as in the real PIM: only a REST scan can see them. Seeding draws no
random numbers, so a catalog's products are the same whatever its structure size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

StructureName = Literal["categories", "families", "attributes"]
_SINGULAR = {"categories": "category", "families": "family", "attributes": "attribute"}

LOCALES = ("en_US", "fr_FR", "de_DE")
CHANNELS = ("ecommerce", "mobile")
FAMILIES = ("clothing", "shoes", "accessories", "electronics", "furniture")
CATEGORIES = (
    "master",
    "summer_collection",
    "winter_collection",
    "men",
    "women",
    "kids",
    "sale",
    "new_arrivals",
    "outdoor",
    "home",
)
IDENTIFIER_ATTRIBUTE = "sku"
ATTRIBUTES: tuple[tuple[str, str, bool, bool], ...] = (
    # code, type, localizable, scopable
    ("sku", "pim_catalog_identifier", False, False),
    ("name", "pim_catalog_text", True, False),
    ("description", "pim_catalog_textarea", True, True),
    ("price", "pim_catalog_price_collection", False, False),
    ("weight", "pim_catalog_metric", False, False),
    ("color", "pim_catalog_simpleselect", False, False),
    ("size", "pim_catalog_simpleselect", False, False),
    ("ean", "pim_catalog_text", False, False),
)


def _labels(text: str) -> dict[str, str]:
    return {"en_US": text, "fr_FR": f"{text} (fr)", "de_DE": f"{text} (de)"}


def _attribute(
    code: str, kind: str, localizable: bool, scopable: bool, order: int
) -> dict[str, Any]:
    identifier = kind == "pim_catalog_identifier"
    numeric = kind in ("pim_catalog_metric", "pim_catalog_price_collection")
    return {
        "code": code,
        "type": kind,
        "group": "technical" if identifier else "marketing",
        "unique": identifier,
        "useable_as_grid_filter": True,
        "allowed_extensions": [],
        "metric_family": "Weight" if kind == "pim_catalog_metric" else None,
        "default_metric_unit": "GRAM" if kind == "pim_catalog_metric" else None,
        "reference_data_name": None,
        "available_locales": [],
        "max_characters": 255 if kind == "pim_catalog_text" else None,
        "validation_rule": None,
        "validation_regexp": None,
        "wysiwyg_enabled": True if kind == "pim_catalog_textarea" else None,
        "number_min": None,
        "number_max": None,
        "decimals_allowed": True if numeric else None,
        "negative_allowed": False if numeric else None,
        "date_min": None,
        "date_max": None,
        "max_file_size": None,
        "minimum_input_length": None,
        "sort_order": order,
        "localizable": localizable,
        "scopable": scopable,
        "labels": _labels(code.replace("_", " ").capitalize()),
    }


def _family(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "attributes": [a[0] for a in ATTRIBUTES],
        "attribute_as_label": "name",
        "attribute_as_image": None,
        "attribute_requirements": {ch: [IDENTIFIER_ATTRIBUTE, "name"] for ch in CHANNELS},
        "labels": _labels(code.replace("_", " ").capitalize()),
    }


class CatalogStructure:
    """The three structure listings; ``tick`` is the catalog's clock (strictly increasing)."""

    def __init__(
        self,
        *,
        categories: int,
        families: int,
        attributes: int,
        until: datetime,
        tick: Callable[[], datetime],
        stamp: Callable[[datetime], str],
    ) -> None:
        for name, wanted, base in (
            ("categories", categories, len(CATEGORIES)),
            ("families", families, len(FAMILIES)),
            ("attributes", attributes, len(ATTRIBUTES)),
        ):
            if wanted < base:
                raise ValueError(f"{name}: at least the {base} the seeded products refer to")
        self._tick, self._stamp = tick, stamp
        self._serial = 0
        self._category_order: list[str] | None = None
        self.items: dict[StructureName, dict[str, dict[str, Any]]] = {
            "categories": {},
            "families": {},
            "attributes": {},
        }
        codes = [*CATEGORIES, *(f"category_{i:05d}" for i in range(categories - len(CATEGORIES)))]
        for i, code in enumerate(codes):
            parent = None if i == 0 else "master" if i < len(CATEGORIES) else CATEGORIES[1 + i % 9]
            when = until - timedelta(days=400) + timedelta(seconds=i)
            self.items["categories"][code] = self._category(code, parent, when)
        for code in [*FAMILIES, *(f"family_{i:05d}" for i in range(families - len(FAMILIES)))]:
            self.items["families"][code] = _family(code)
        rows = [
            *ATTRIBUTES,
            *((f"attribute_{i:05d}", "pim_catalog_text", False, False)
              for i in range(attributes - len(ATTRIBUTES))),
        ]  # fmt: skip
        for order, (code, kind, localizable, scopable) in enumerate(rows, 1):
            self.items["attributes"][code] = _attribute(code, kind, localizable, scopable, order)

    def _category(self, code: str, parent: str | None, when: datetime) -> dict[str, Any]:
        label = _labels(code.replace("_", " ").capitalize())
        return {"code": code, "parent": parent, "updated": self._stamp(when), "labels": label}

    # -- reading ----------------------------------------------------------------------------

    def codes(self, name: StructureName) -> list[str]:
        """Codes in Akeneo's listing order."""
        if name != "categories":
            return sorted(self.items[name])
        if self._category_order is None:
            children: dict[str | None, list[str]] = {}
            for code, item in self.items["categories"].items():
                children.setdefault(item["parent"], []).append(code)
            order: list[str] = []
            stack = sorted(children.get(None, []), reverse=True)
            while stack:
                code = stack.pop()
                order.append(code)
                stack.extend(sorted(children.get(code, []), reverse=True))
            self._category_order = order
        return self._category_order

    # -- edits ------------------------------------------------------------------------------

    def _touch(self, name: StructureName, item: dict[str, Any]) -> None:
        if name == "categories":
            item["updated"] = self._stamp(self._tick())
            self._category_order = None

    def create(self, name: StructureName, *, parent: str | None = "master") -> dict[str, Any]:
        """A new item (categories under ``parent``); returns a snapshot of it."""
        self._serial += 1
        code = f"new_{_SINGULAR[name]}_{self._serial:04d}"
        if name == "categories":
            item = self._category(code, parent, self._tick())
            self._category_order = None
        elif name == "families":
            item = _family(code)
        else:
            item = _attribute(code, "pim_catalog_text", False, False, len(self.items[name]) + 1)
        self.items[name][code] = item
        return copy.deepcopy(item)

    def edit(self, name: StructureName, code: str, *, label: str) -> dict[str, Any]:
        """Set the en_US label (categories: ``updated`` moves); returns a snapshot."""
        item = self.items[name][code]
        item["labels"] = {**item["labels"], "en_US": label}
        self._touch(name, item)
        return copy.deepcopy(item)

    def delete(self, name: StructureName, code: str) -> list[str]:
        """Remove an item; a category takes its subtree along (products keep their codes)."""
        doomed = [code]
        if name == "categories":
            doomed = self._subtree(code)
            self._category_order = None
        for c in doomed:
            del self.items[name][c]
        return doomed

    def _subtree(self, code: str) -> list[str]:
        out, frontier = [code], [code]
        while frontier:
            parent = frontier.pop()
            kids = [c for c, i in self.items["categories"].items() if i["parent"] == parent]
            out += kids
            frontier += kids
        return out
