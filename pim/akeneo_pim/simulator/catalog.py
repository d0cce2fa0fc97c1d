"""The simulated PIM's catalog: seeded, realistic products and product models, and their edits.

Items are kept in the REST API representation of Akeneo 7.0/SaaS (products by ``uuid``).
Keys are kept sorted so ``search_after`` paging is a bisect, and every edit moves ``updated``
to a time strictly newer than any time the catalog handed out before (second precision, as
Akeneo formats it), so a version comparison can always tell two edits apart.

Every edit returns (and records in ``changes``) the ``Change`` the PIM announces: products and
product models through both event formats; categories, families, attributes and attribute
options through the Event Platform only (the legacy Events API never announced them).
"""

from __future__ import annotations

import bisect
import copy
import gc
import random
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from akeneo_connector.event_types import attribute_option_key
from akeneo_pim.simulator.structure import (
    ATTRIBUTES,
    CATEGORIES,
    CHANNELS,
    COLORS,
    FAMILIES,
    LOCALES,
    SIZES,
    CatalogStructure,
    StructureName,
)

Kind = Literal["product", "product_model", "category", "family", "attribute", "attribute_option"]
ChangeAction = Literal["created", "updated", "removed"]
# legacy Events API ``author_type`` (ui | api); the Event Platform's ``author.type`` adds job
# and system (``ui`` is its ``user``)
AuthorType = Literal["ui", "api", "job", "system"]
STRUCTURE_KINDS: dict[StructureName, Kind] = {
    "categories": "category",
    "families": "family",
    "attributes": "attribute",
}

__all__ = ["COLORS", "SIZES", "Catalog", "Change", "Kind", "akeneo_datetime"]

ASSOCIATION_TYPES = ("X_SELL", "UPSELL", "SUBSTITUTION", "PACK")


def akeneo_datetime(value: datetime) -> str:
    """Akeneo's item date format: ISO 8601, seconds, with offset (``+00:00``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _empty_associations() -> dict[str, Any]:
    return {t: {"products": [], "product_models": [], "groups": []} for t in ASSOCIATION_TYPES}


@dataclass(frozen=True)
class Change:
    """One catalog edit, as the PIM would announce it through its events."""

    action: ChangeAction
    kind: Kind
    # product uuid, else the code; attribute options: ``attribute_option_key(attribute, code)``
    key: str
    # the REST representation; identifiers only when removed (attribute options:
    # ``{"code", "attribute"}``)
    resource: dict[str, Any]
    event_id: str
    event_datetime: datetime
    author: str = "admin"
    author_type: AuthorType = "ui"
    # product and product model updates: what changed, shaped as the ``changes`` object of
    # Akeneo's ``*.updated.delta`` events
    changes: dict[str, Any] | None = None

    @property
    def code(self) -> str:
        """The code in the resource (products: the uuid)."""
        return str(self.resource.get("code") or self.key)

    @property
    def updated(self) -> datetime:
        """The resource's version: ``updated`` when present, else the event time (families,
        attributes and options do not show their date; the event time is that date)."""
        raw = self.resource.get("updated")
        return datetime.fromisoformat(raw) if isinstance(raw, str) else self.event_datetime


@dataclass
class _Table:
    """Items by key, with the keys kept sorted (the ``search_after`` order)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def put(self, key: str, item: dict[str, Any]) -> bool:
        created = key not in self.items
        self.items[key] = item
        if created:
            bisect.insort(self.keys, key)
        return created

    def remove(self, key: str) -> dict[str, Any]:
        item = self.items.pop(key)
        del self.keys[bisect.bisect_left(self.keys, key)]
        return item


class Catalog:
    """Products by uuid, product models by code, and the structure (``CatalogStructure``)."""

    def __init__(
        self,
        *,
        products: int = 100,
        product_models: int = 10,
        seed: int = 0,
        seeded_until: datetime | None = None,
        categories: int = len(CATEGORIES),
        families: int = len(FAMILIES),
        attributes: int = len(ATTRIBUTES),
    ) -> None:
        self._rng = random.Random(seed)
        self.products = _Table()
        self.product_models = _Table()
        self.removed_products: dict[str, dict[str, Any]] = {}
        self.removed_product_models: dict[str, dict[str, Any]] = {}
        self.changes: list[Change] = []
        # authors whose edits are API calls (the PIM's client ids): author.type "api"
        self.api_authors: set[str] = set()
        until = seeded_until or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self._last_time = until
        self._serial = 0
        self._edits = 0
        self._seed(products, product_models, until)
        self.structure = CatalogStructure(
            categories=categories,
            families=families,
            attributes=attributes,
            until=until,
            tick=self.tick,
            stamp=akeneo_datetime,
        )

    # -- time -----------------------------------------------------------------------------

    def tick(self) -> datetime:
        """A time strictly after every time handed out before (whole seconds)."""
        now = datetime.now(UTC).replace(microsecond=0)
        self._last_time = max(now, self._last_time + timedelta(seconds=1))
        return self._last_time

    # -- seeding --------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuidlib.UUID(int=self._rng.getrandbits(128), version=4))

    def _values(self, label: str, n: int, *, variant: bool) -> dict[str, Any]:
        rng = self._rng
        values: dict[str, Any] = {
            "name": [
                {"locale": loc, "scope": None, "data": f"{label} {loc[:2]}"} for loc in LOCALES
            ],
            "description": [
                {"locale": "en_US", "scope": ch, "data": f"<p>{label} for {ch}.</p>"}
                for ch in CHANNELS
            ],
            "price": [
                {
                    "locale": None,
                    "scope": None,
                    "data": [
                        {"amount": f"{10 + n % 490}.{n % 100:02d}", "currency": "EUR"},
                        {"amount": f"{12 + n % 490}.{n % 100:02d}", "currency": "USD"},
                    ],
                }
            ],
            "color": [{"locale": None, "scope": None, "data": COLORS[int(rng.random() * 7)]}],
        }
        if variant:
            values["size"] = [{"locale": None, "scope": None, "data": SIZES[n % len(SIZES)]}]
            values["weight"] = [
                {
                    "locale": None,
                    "scope": None,
                    "data": {"amount": str(100 + n % 900), "unit": "GRAM"},
                }
            ]
        return values

    def _categories(self) -> list[str]:
        rng = self._rng
        first, second = CATEGORIES[int(rng.random() * 10)], CATEGORIES[int(rng.random() * 10)]
        return sorted({"master", first, second})

    def _timestamps(self, until: datetime) -> tuple[str, str]:
        rng = self._rng
        updated = until - timedelta(seconds=int(rng.random() * 365 * 86400))
        created = updated - timedelta(seconds=int(rng.random() * 365 * 86400))
        return akeneo_datetime(created), akeneo_datetime(updated)

    def _new_model(self, i: int, until: datetime) -> dict[str, Any]:
        family = FAMILIES[i % len(FAMILIES)]
        created, updated = self._timestamps(until)
        return {
            "code": f"model_{i:05d}",
            "family": family,
            "family_variant": f"{family}_by_size",
            "parent": None,
            "categories": self._categories(),
            "values": self._values(f"Model {i}", i, variant=False),
            "created": created,
            "updated": updated,
            "associations": _empty_associations(),
            "quantified_associations": {},
            "metadata": {"workflow_status": "working_copy"},
        }

    def _new_product(
        self, i: int, until: datetime, models: list[str], previous: list[str]
    ) -> dict[str, Any]:
        rng = self._rng
        parent = models[rng.randrange(len(models))] if models and rng.random() < 0.3 else None
        identifier = f"SKU-{i:06d}"
        created, updated = self._timestamps(until)
        values = self._values(f"Product {i}", i, variant=parent is not None)
        values["sku"] = [{"locale": None, "scope": None, "data": identifier}]
        values["ean"] = [{"locale": None, "scope": None, "data": f"40{i:011d}"}]
        associations = _empty_associations()
        quantified: dict[str, Any] = {}
        if previous and rng.random() < 0.5:
            associations["X_SELL"]["products"] = [previous[rng.randrange(len(previous))]]
            quantified = {
                "PRODUCT_SET": {
                    "products": [{"uuid": previous[-1], "quantity": 1 + i % 3}],
                    "product_models": [],
                }
            }
        return {
            "uuid": self._uuid(),
            "identifier": identifier,
            "enabled": rng.random() < 0.9,
            "family": FAMILIES[i % len(FAMILIES)],
            "categories": self._categories(),
            "groups": [],
            "parent": parent,
            "values": values,
            "created": created,
            "updated": updated,
            "associations": associations,
            "quantified_associations": quantified,
            "metadata": {"workflow_status": "working_copy"},
        }

    def _seed(self, products: int, product_models: int, until: datetime) -> None:
        # Tens of thousands of small dicts: the cyclic GC would rescan them over and over.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._seed_items(products, product_models, until)
        finally:
            if enabled:
                gc.enable()

    def _seed_items(self, products: int, product_models: int, until: datetime) -> None:
        models = [self._new_model(i, until) for i in range(1, product_models + 1)]
        for model in models:
            self.product_models.items[model["code"]] = model
        codes = [m["code"] for m in models]
        recent: list[str] = []
        for i in range(1, products + 1):
            product = self._new_product(i, until, codes, recent)
            self.products.items[product["uuid"]] = product
            recent = [*recent[-4:], product["uuid"]]
        self.products.keys = sorted(self.products.items)
        self.product_models.keys = sorted(self.product_models.items)
        self._serial = max(products, product_models)

    # -- edits ----------------------------------------------------------------------------

    def author_type(self, author: str) -> AuthorType:
        """``api`` for a registered client id (or a name starting with "api"), ``job`` for
        "job..." names, ``system`` for "system", else a UI user."""
        if author in self.api_authors or author.startswith("api"):
            return "api"
        if author.startswith("job"):
            return "job"
        return "system" if author == "system" else "ui"

    def _record(
        self,
        action: ChangeAction,
        kind: Kind,
        key: str,
        resource: dict[str, Any],
        when: datetime,
        author: str,
        previous: dict[str, Any] | None = None,
    ) -> Change:
        change = Change(
            action=action,
            kind=kind,
            key=key,
            resource=copy.deepcopy(resource),
            event_id=str(uuidlib.UUID(int=self._rng.getrandbits(128), version=4)),
            event_datetime=when,
            author=author,
            author_type=self.author_type(author),
            changes=None if previous is None else self._delta(previous, resource),
        )
        self.changes.append(change)
        return change

    def _delta(self, previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        """The ``changes`` object of an ``updated.delta`` event: properties, categories and
        values that differ (each value change with its attribute type, locale and scope)."""
        out: dict[str, Any] = {}
        for prop in ("enabled", "family", "parent"):
            if prop in current and previous.get(prop) != current.get(prop):
                out[prop] = {"previous": previous.get(prop), "new": current.get(prop)}
        for prop in ("categories", "groups"):
            before, after = set(previous.get(prop) or ()), set(current.get(prop) or ())
            if before != after:
                out[prop] = {"added": sorted(after - before), "removed": sorted(before - after)}
        attributes = self.structure.items["attributes"]
        values: dict[str, list[dict[str, Any]]] = {}
        old_values, new_values = previous.get("values", {}), current.get("values", {})
        for code in sorted(set(old_values) | set(new_values)):
            old = {(v["locale"], v["scope"]): v["data"] for v in old_values.get(code, [])}
            new = {(v["locale"], v["scope"]): v["data"] for v in new_values.get(code, [])}
            kind = attributes[code]["type"] if code in attributes else "pim_catalog_text"
            entries = [
                {
                    "previous": old.get(where),
                    "new": new.get(where),
                    "type": kind,
                    "locale": where[0],
                    "scope": where[1],
                }
                for where in sorted(set(old) | set(new), key=lambda w: (w[0] or "", w[1] or ""))
                if old.get(where) != new.get(where)
            ]
            if entries:
                values[code] = entries
        if values:
            out["values"] = values
        return out

    def random_product_uuid(self) -> str:
        return self.products.keys[self._rng.randrange(len(self.products.keys))]

    def random_product_model_code(self) -> str:
        keys = self.product_models.keys
        return keys[self._rng.randrange(len(keys))]

    def create_product(self, *, author: str = "admin") -> Change:
        self._serial += 1
        when = self.tick()
        models = self.product_models.keys
        product = self._new_product(self._serial, when, list(models), [])
        product["created"] = product["updated"] = akeneo_datetime(when)
        self.products.put(product["uuid"], product)
        return self._record("created", "product", product["uuid"], product, when, author)

    def edit_product(
        self, uuid: str | None = None, *, name: str | None = None, author: str = "admin"
    ) -> Change:
        key = uuid or self.random_product_uuid()
        product = self.products.items[key]
        previous = copy.deepcopy(product)
        when = self.tick()
        label = name or f"{product['identifier']} edited {akeneo_datetime(when)}"
        product["values"]["name"] = [
            {"locale": "en_US", "scope": None, "data": label},
            *[v for v in product["values"]["name"] if v["locale"] != "en_US"],
        ]
        product["updated"] = akeneo_datetime(when)
        return self._record("updated", "product", key, product, when, author, previous)

    def delete_product(self, uuid: str | None = None, *, author: str = "admin") -> Change:
        key = uuid or self.random_product_uuid()
        product = self.products.remove(key)
        when = self.tick()
        self.removed_products[key] = product
        resource = {"uuid": key, "identifier": product["identifier"]}
        return self._record("removed", "product", key, resource, when, author)

    def create_product_model(self, *, author: str = "admin") -> Change:
        self._serial += 1
        when = self.tick()
        model = self._new_model(self._serial, when)
        model["created"] = model["updated"] = akeneo_datetime(when)
        self.product_models.put(model["code"], model)
        return self._record("created", "product_model", model["code"], model, when, author)

    def edit_product_model(
        self, code: str | None = None, *, name: str | None = None, author: str = "admin"
    ) -> Change:
        key = code or self.random_product_model_code()
        model = self.product_models.items[key]
        previous = copy.deepcopy(model)
        when = self.tick()
        label = name or f"{key} edited {akeneo_datetime(when)}"
        model["values"]["name"] = [
            {"locale": "en_US", "scope": None, "data": label},
            *[v for v in model["values"]["name"] if v["locale"] != "en_US"],
        ]
        model["updated"] = akeneo_datetime(when)
        return self._record("updated", "product_model", key, model, when, author, previous)

    def delete_product_model(self, code: str | None = None, *, author: str = "admin") -> Change:
        key = code or self.random_product_model_code()
        model = self.product_models.remove(key)
        when = self.tick()
        self.removed_product_models[key] = model
        return self._record("removed", "product_model", key, {"code": key}, when, author)

    # -- structure edits (announced by the Event Platform) -------------------------------

    def create_structure_item(
        self,
        name: StructureName,
        *,
        parent: str | None = "master",
        attribute_type: str = "pim_catalog_text",
        author: str = "admin",
    ) -> Change:
        """A new category (under ``parent``), family or attribute (of ``attribute_type``)."""
        item, when = self.structure.create(name, parent=parent, attribute_type=attribute_type)
        kind = STRUCTURE_KINDS[name]
        return self._record("created", kind, item["code"], item, when, author)

    def edit_structure_item(
        self,
        name: StructureName,
        code: str | None = None,
        *,
        label: str | None = None,
        author: str = "admin",
    ) -> Change:
        """Change an item's en_US label (``code`` None: a random item); its date moves."""
        if code is None:
            codes = self.structure.codes(name)
            code = codes[self._rng.randrange(len(codes))]
        self._edits += 1
        text = label or f"{code} edit {self._edits}"
        item, when = self.structure.edit(name, code, label=text)
        return self._record("updated", STRUCTURE_KINDS[name], code, item, when, author)

    def delete_structure_item(
        self, name: StructureName, code: str, *, author: str = "admin"
    ) -> Change:
        """Remove an item and return its ``Change``. A category takes its subtree along: each
        removed descendant gets its own recorded ``Change`` after this one (inferred: Akeneo's
        reference does not say whether the platform announces the descendants)."""
        removed = self.structure.delete(name, code)
        kind = STRUCTURE_KINDS[name]
        changes = [
            self._record("removed", kind, item["code"], {"code": item["code"]}, self.tick(), author)
            for item in removed
        ]
        return changes[0]

    def create_attribute_option(
        self, attribute: str, code: str | None = None, *, author: str = "admin"
    ) -> Change:
        """A new option of a select attribute (the attribute's own date does not move)."""
        option = self.structure.create_option(attribute, code)
        key = attribute_option_key(attribute, option["code"])
        return self._record("created", "attribute_option", key, option, self.tick(), author)

    def edit_attribute_option(
        self,
        attribute: str,
        code: str | None = None,
        *,
        label: str | None = None,
        author: str = "admin",
    ) -> Change:
        """Change an option's en_US label (``code`` None: a random option of ``attribute``)."""
        if code is None:
            codes = self.structure.option_codes(attribute)
            code = codes[self._rng.randrange(len(codes))]
        self._edits += 1
        text = label or f"{code} edit {self._edits}"
        option = self.structure.edit_option(attribute, code, label=text)
        key = attribute_option_key(attribute, code)
        return self._record("updated", "attribute_option", key, option, self.tick(), author)

    def delete_attribute_option(
        self, attribute: str, code: str, *, author: str = "admin"
    ) -> Change:
        self.structure.delete_option(attribute, code)
        key = attribute_option_key(attribute, code)
        ids = {"code": code, "attribute": attribute}
        return self._record("removed", "attribute_option", key, ids, self.tick(), author)

    def random_structure_change(self) -> Change:
        """A structure edit mix: mostly label edits, some creations, few removals of new items."""
        rng = self._rng
        roll = rng.random()
        name: StructureName = ("categories", "families", "attributes")[rng.randrange(3)]
        selects = sorted(self.structure.options)
        if roll < 0.25 and selects:
            attribute = selects[rng.randrange(len(selects))]
            fresh = [c for c in self.structure.option_codes(attribute) if c.startswith("new_")]
            if roll < 0.05 and fresh:
                return self.delete_attribute_option(attribute, fresh[0])
            if roll < 0.12 or not self.structure.options[attribute]:
                return self.create_attribute_option(attribute)
            return self.edit_attribute_option(attribute)
        fresh = [c for c in self.structure.items[name] if c.startswith("new_")]
        if roll < 0.3 and fresh:  # only items no seeded product refers to
            return self.delete_structure_item(name, fresh[0])
        if roll < 0.45:
            return self.create_structure_item(name)
        return self.edit_structure_item(name)

    def random_change(self, *, structure: float = 0.0) -> Change:
        """An edit mix like a busy PIM: mostly updates, some creations, a few removals;
        ``structure``: the share of structure edits (``random_structure_change``)."""
        if structure and self._rng.random() < structure:
            return self.random_structure_change()
        roll = self._rng.random()
        models = len(self.product_models.keys) > 1
        if roll < 0.55 or not models:
            if roll < 0.03 and len(self.products.keys) > 1:
                return self.delete_product()
            if roll < 0.13:
                return self.create_product()
            return self.edit_product()
        if roll < 0.85:
            return self.edit_product_model()
        if roll < 0.95:
            return self.create_product_model()
        return self.delete_product_model()

    def drain_changes(self) -> list[Change]:
        changes, self.changes = self.changes, []
        return changes
