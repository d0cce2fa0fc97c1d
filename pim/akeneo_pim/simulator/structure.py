"""The simulated PIM's catalog structure: categories, families, attributes and their options.

Shaped as Akeneo 7.0/SaaS serves them: categories carry ``updated`` in their representation,
families and attributes do not (https://api.akeneo.com/api-reference.html) but still have an
update date their ``updated >`` filter reads (https://api.akeneo.com/rest-api/filter.html), kept
here beside the items. Every edit moves that date to a time the catalog's clock hands out.
"For Simple select and Multiple select attribute, an option update isn't considered as an
attribute update" (same page): option edits leave the attribute's date alone.

Select attributes (``pim_catalog_simpleselect`` / ``multiselect``) have options, shaped as
Akeneo's reference shows them: ``{"code", "attribute", "sort_order", "labels"}``. Listing
order is Akeneo's: categories by tree (pre-order, as ``root, left`` sorts them), the others
(options too) by code. Seeding draws no random numbers, so a catalog's products are the same
whatever its structure size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

StructureName = Literal["categories", "families", "attributes"]
_SINGULAR = {"categories": "category", "families": "family", "attributes": "attribute"}
SELECT_TYPES = ("pim_catalog_simpleselect", "pim_catalog_multiselect")

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
COLORS = ("black", "white", "red", "blue", "green", "grey", "yellow")
SIZES = ("xs", "s", "m", "l", "xl")
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
# the seeded products' select values are these options' codes
SEEDED_OPTIONS: dict[str, tuple[str, ...]] = {"color": COLORS, "size": SIZES}


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


def _option(attribute: str, code: str, order: int) -> dict[str, Any]:
    return {
        "code": code,
        "attribute": attribute,
        "sort_order": order,
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
    """The structure listings and attribute options; ``tick`` is the catalog's clock.

    Edits return snapshots (removals: the removed items); turning them into the ``Change``
    the Event Platform announces is the catalog's job.
    """

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
        self._option_order: dict[str, list[str]] = {}
        self.items: dict[StructureName, dict[str, dict[str, Any]]] = {
            "categories": {},
            "families": {},
            "attributes": {},
        }
        # families' and attributes' update dates (not part of their representation)
        self.updated: dict[StructureName, dict[str, str]] = {"families": {}, "attributes": {}}
        self.options: dict[str, dict[str, dict[str, Any]]] = {}
        seeded = until - timedelta(days=400)
        codes = [*CATEGORIES, *(f"category_{i:05d}" for i in range(categories - len(CATEGORIES)))]
        for i, code in enumerate(codes):
            parent = None if i == 0 else "master" if i < len(CATEGORIES) else CATEGORIES[1 + i % 9]
            when = seeded + timedelta(seconds=i)
            self.items["categories"][code] = self._category(code, parent, when)
        family_codes = [*FAMILIES, *(f"family_{i:05d}" for i in range(families - len(FAMILIES)))]
        for i, code in enumerate(family_codes):
            self.items["families"][code] = _family(code)
            self.updated["families"][code] = stamp(seeded + timedelta(seconds=i))
        rows = [
            *ATTRIBUTES,
            *((f"attribute_{i:05d}", "pim_catalog_text", False, False)
              for i in range(attributes - len(ATTRIBUTES))),
        ]  # fmt: skip
        for order, (code, kind, localizable, scopable) in enumerate(rows, 1):
            self.items["attributes"][code] = _attribute(code, kind, localizable, scopable, order)
            self.updated["attributes"][code] = stamp(seeded + timedelta(seconds=order))
            if kind in SELECT_TYPES:
                self.options[code] = {
                    c: _option(code, c, n) for n, c in enumerate(SEEDED_OPTIONS.get(code, ()), 1)
                }

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

    def updated_at(self, name: StructureName, code: str) -> str:
        """An item's update date (Akeneo's format), whether or not its representation shows it."""
        if name == "categories":
            return str(self.items["categories"][code]["updated"])
        return self.updated[name][code]

    def option_codes(self, attribute: str) -> list[str]:
        """An attribute's option codes, sorted by code (Akeneo's listing order)."""
        order = self._option_order.get(attribute)
        if order is None:
            order = self._option_order[attribute] = sorted(self.options.get(attribute, {}))
        return order

    # -- edits ------------------------------------------------------------------------------

    def _touch(self, name: StructureName, code: str) -> datetime:
        when = self._tick()
        if name == "categories":
            self.items["categories"][code]["updated"] = self._stamp(when)
            self._category_order = None
        else:
            self.updated[name][code] = self._stamp(when)
        return when

    def create(
        self,
        name: StructureName,
        *,
        parent: str | None = "master",
        attribute_type: str = "pim_catalog_text",
    ) -> tuple[dict[str, Any], datetime]:
        """A new item (categories under ``parent``; attributes of ``attribute_type``)."""
        self._serial += 1
        code = f"new_{_SINGULAR[name]}_{self._serial:04d}"
        when = self._tick()
        if name == "categories":
            if parent is not None and parent not in self.items["categories"]:
                raise KeyError(parent)
            item = self._category(code, parent, when)
            self._category_order = None
        else:
            if name == "families":
                item = _family(code)
            else:
                order = len(self.items[name]) + 1
                item = _attribute(code, attribute_type, False, False, order)
                if attribute_type in SELECT_TYPES:
                    self.options[code] = {}
            self.updated[name][code] = self._stamp(when)
        self.items[name][code] = item
        return copy.deepcopy(item), when

    def edit(
        self, name: StructureName, code: str, *, label: str
    ) -> tuple[dict[str, Any], datetime]:
        """Set the en_US label; the item's update date moves."""
        item = self.items[name][code]
        item["labels"] = {**item["labels"], "en_US": label}
        when = self._touch(name, code)
        return copy.deepcopy(item), when

    def delete(self, name: StructureName, code: str) -> list[dict[str, Any]]:
        """Remove an item; a category takes its subtree along (products keep their codes).

        Returns the removed items, the given one first.
        """
        doomed = [code]
        if name == "categories":
            doomed = self._subtree(code)
            self._category_order = None
        removed = [self.items[name].pop(c) for c in doomed]
        for c in doomed:
            if name != "categories":
                del self.updated[name][c]
            if name == "attributes":
                self.options.pop(c, None)
                self._option_order.pop(c, None)
        return removed

    def _subtree(self, code: str) -> list[str]:
        out, frontier = [code], [code]
        while frontier:
            parent = frontier.pop()
            kids = [c for c, i in self.items["categories"].items() if i["parent"] == parent]
            out += kids
            frontier += kids
        return out

    # -- attribute options ------------------------------------------------------------------

    def _options_of(self, attribute: str) -> dict[str, dict[str, Any]]:
        item = self.items["attributes"].get(attribute)
        if item is None or item["type"] not in SELECT_TYPES:
            raise KeyError(attribute)
        return self.options.setdefault(attribute, {})

    def create_option(self, attribute: str, code: str | None = None) -> dict[str, Any]:
        """A new option of a select attribute, last in sort order; returns a snapshot."""
        options = self._options_of(attribute)
        if code is None:
            self._serial += 1
            code = f"new_option_{self._serial:04d}"
        if code in options:
            raise ValueError(f"option {attribute}/{code} exists")
        order = max((o["sort_order"] for o in options.values()), default=0) + 1
        options[code] = _option(attribute, code, order)
        self._option_order.pop(attribute, None)
        return copy.deepcopy(options[code])

    def edit_option(self, attribute: str, code: str, *, label: str) -> dict[str, Any]:
        option = self._options_of(attribute)[code]
        option["labels"] = {**option["labels"], "en_US": label}
        return copy.deepcopy(option)

    def delete_option(self, attribute: str, code: str) -> dict[str, Any]:
        option = self._options_of(attribute).pop(code)
        self._option_order.pop(attribute, None)
        return option
