"""The simulated catalog: realistic, deterministic, and edits with strictly newer versions."""

from __future__ import annotations

from datetime import datetime

import pytest

from akeneo_pim.simulator.catalog import Catalog


def test_seeded_products_look_like_akeneo_ones() -> None:
    catalog = Catalog(products=50, product_models=5, seed=3)
    product = catalog.products.items[catalog.products.keys[0]]
    assert set(product) >= {
        "uuid", "identifier", "enabled", "family", "categories", "groups", "parent", "values",
        "created", "updated", "associations", "quantified_associations", "metadata",
    }  # fmt: skip
    assert product["values"]["sku"] == [
        {"locale": None, "scope": None, "data": product["identifier"]}
    ]
    names = product["values"]["name"]
    assert {v["locale"] for v in names} == {"en_US", "fr_FR", "de_DE"}
    assert all(v["scope"] is None for v in names)
    assert {v["scope"] for v in product["values"]["description"]} == {"ecommerce", "mobile"}
    assert "master" in product["categories"]
    assert set(product["associations"]) == {"X_SELL", "UPSELL", "SUBSTITUTION", "PACK"}
    updated = datetime.fromisoformat(product["updated"])
    assert updated.utcoffset() is not None
    assert datetime.fromisoformat(product["created"]) <= updated
    assert product["updated"].endswith("+00:00")

    model = catalog.product_models.items["model_00001"]
    assert model["family_variant"] == f"{model['family']}_by_size"
    assert set(model) >= {"code", "family", "values", "categories", "created", "updated"}
    parents = {p["parent"] for p in catalog.products.items.values()} - {None}
    assert parents and parents <= set(catalog.product_models.items)


def test_same_seed_same_catalog() -> None:
    a, b = Catalog(products=30, seed=7), Catalog(products=30, seed=7)
    assert a.products.keys == b.products.keys
    assert Catalog(products=30, seed=8).products.keys != a.products.keys
    assert a.products.keys == sorted(a.products.keys)


def test_edits_always_move_to_a_strictly_newer_version() -> None:
    catalog = Catalog(products=20, product_models=3)
    newest = max(datetime.fromisoformat(p["updated"]) for p in catalog.products.items.values())
    versions = []
    for _ in range(5):
        change = catalog.edit_product(catalog.products.keys[0])
        versions.append(change.updated)
    assert versions == sorted(versions) and len(set(versions)) == 5
    assert versions[0] > newest
    assert change.action == "updated" and change.kind == "product"
    assert change.resource == catalog.products.items[change.key]
    assert change.resource is not catalog.products.items[change.key]  # a snapshot


def test_creations_and_removals_keep_keys_sorted_and_are_recorded() -> None:
    catalog = Catalog(products=10, product_models=4)
    created = catalog.create_product()
    assert created.key in catalog.products.items
    assert catalog.products.keys == sorted(catalog.products.items)
    removed = catalog.delete_product(created.key)
    assert removed.resource == {"uuid": created.key, "identifier": created.resource["identifier"]}
    assert created.key not in catalog.products.keys
    gone = catalog.delete_product_model("model_00002")
    assert gone.resource == {"code": "model_00002"}
    assert "model_00002" in catalog.removed_product_models
    assert [c.action for c in catalog.drain_changes()] == ["created", "removed", "removed"]
    assert catalog.changes == []


def test_random_changes_mix_all_kinds() -> None:
    catalog = Catalog(products=200, product_models=20)
    changes = [catalog.random_change() for _ in range(400)]
    assert {(c.kind, c.action) for c in changes} >= {
        ("product", "updated"),
        ("product", "created"),
        ("product", "removed"),
        ("product_model", "updated"),
    }


def test_structure_size_leaves_the_products_alone() -> None:
    small, large = Catalog(products=20, seed=4), Catalog(products=20, seed=4, families=300)
    assert small.products.items == large.products.items
    assert len(large.structure.codes("families")) == 300
    assert {p["family"] for p in large.products.items.values()} <= set(
        small.structure.items["families"]
    )
    with pytest.raises(ValueError, match="at least"):
        Catalog(products=1, categories=3)
