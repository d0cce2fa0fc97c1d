"""The simulator's CloudEvents against Akeneo's own samples, type by type and key by key.

The samples (``available_events.json``) are the "Example of payload" of every type of
https://api.akeneo.com/event-platform/available-events.html, verbatim. Where a sample carries
an id or a date, ours carries a fresh one of the same form; ``dataschema`` is
``https://event.prd.sdk.akeneo.cloud/spec/<type>.schema.json`` for every type (the reference's
attribute-option samples point at the reference-entity-record schema: a slip of that page).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from akeneo_connector.event_types import PREFIX, REFERENCE
from akeneo_pim.simulator.catalog import Catalog
from akeneo_pim.simulator.events import PimEvent, completeness_event, pim_events, reference_event

SAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "available_events.json").read_text()
)["samples"]
SUBSCRIPTION = "0190fe8a-6213-76ce-8a9f-ba36a5ef555a"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PRODUCT_TYPES = [t for t in REFERENCE if t.startswith(f"{PREFIX}product.")]


def _catalog_events() -> dict[str, PimEvent]:
    """One event per type the catalog models, from real edits."""
    catalog = Catalog(products=20, product_models=3, seed=5)
    changes = [
        catalog.create_product(),
        catalog.edit_product(),
        catalog.delete_product(),
        catalog.create_product_model(),
        catalog.edit_product_model(),
        catalog.delete_product_model("model_00001"),
    ]
    for name in ("categories", "families", "attributes"):
        created = catalog.create_structure_item(name)
        changes += [
            created,
            catalog.edit_structure_item(name, created.key),
            catalog.delete_structure_item(name, created.key),
        ]
    changes += [
        catalog.create_attribute_option("color", "purple"),
        catalog.edit_attribute_option("color", "purple", label="Violet"),
        catalog.delete_attribute_option("color", "purple"),
    ]
    events = {e.type: e for change in changes for e in pim_events(change)}
    now = datetime.now(UTC).replace(microsecond=0)
    uuid_ = catalog.products.keys[0]
    for complete in (True, False):
        event = completeness_event(
            uuid_, [("en_US", "ecommerce"), ("fr_FR", "mobile")], complete=complete,
            event_id=str(uuid.uuid4()), time=now, identifier="SKU-000001",
        )  # fmt: skip
        events[event.type] = event
    return events


CATALOG_EVENTS = _catalog_events()


def _same_shape(ours: Any, theirs: Any, where: str) -> None:
    """Same keys at every level of objects; lists compared by their first item."""
    if isinstance(theirs, dict) and where.endswith(".changes.values"):
        # keyed by attribute code: each change has the form of the sample's updated attribute
        assert isinstance(ours, dict) and ours, where
        for code, entries in ours.items():
            _same_shape(entries, theirs["an_updated_attribute"], f"{where}.{code}")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        if where.endswith(".changes"):  # delta: the changes an edit made, of the sample's kinds
            assert ours and set(ours) <= set(theirs), where
            keys = set(ours)
        else:
            assert set(ours) == set(theirs), f"{where}: {sorted(ours)} != {sorted(theirs)}"
            keys = set(theirs)
        for key in keys:
            _same_shape(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list) and theirs and isinstance(ours, list) and ours:
        _same_shape(ours[0], theirs[0], f"{where}[0]")
    elif ".changes.values." in where:  # a value's data has the form of its attribute type
        return
    else:
        assert type(ours) is type(theirs) or theirs is None or ours is None, where


def _check(event: dict[str, Any], sample: dict[str, Any]) -> None:
    assert list(event) == list(sample) or set(event) == set(sample)
    assert event["specversion"] == "1.0" and event["source"] == "pim"
    assert event["type"] == sample["type"]
    assert event["subject"] == SUBSCRIPTION
    assert uuid.UUID(event["id"])
    assert RFC3339_UTC.match(event["time"]) and RFC3339_UTC.match(sample["time"])
    assert event["datacontenttype"] == sample["datacontenttype"] == "application/json"
    assert event["dataschema"] == (
        f"https://event.prd.sdk.akeneo.cloud/spec/{event['type']}.schema.json"
    )
    _same_shape(event["data"], sample["data"], "data")
    author = event["data"].get("author")
    if "became-" in event["type"]:
        assert author is None  # the reference's samples carry none
    else:
        assert author["type"] in ("user", "api", "job", "system")


def test_the_samples_cover_the_reference() -> None:
    assert set(SAMPLES) == set(REFERENCE)


@pytest.mark.parametrize("event_type", sorted(CATALOG_EVENTS))
def test_catalog_edits_match_the_reference(event_type: str) -> None:
    _check(CATALOG_EVENTS[event_type].cloud_event(SUBSCRIPTION), SAMPLES[event_type])


@pytest.mark.parametrize("event_type", REFERENCE)
def test_every_reference_type_can_be_emitted(event_type: str) -> None:
    event = reference_event(event_type, random.Random(1), author=("system", "system"))
    _check(event.cloud_event(SUBSCRIPTION), SAMPLES[event_type])


def test_the_catalog_models_every_handled_type() -> None:
    from akeneo_connector.event_types import HANDLED

    assert set(HANDLED) <= set(CATALOG_EVENTS)


@pytest.mark.parametrize("event_type", PRODUCT_TYPES)
def test_send_product_identifier_adds_the_identifier_to_product_events_only(
    event_type: str,
) -> None:
    """concepts.html: "The `identifier` field in product events is only included when the
    subscription has `send_product_identifier` set to `true`"."""
    event = CATALOG_EVENTS[event_type]
    plain = event.cloud_event(SUBSCRIPTION)
    assert "identifier" not in plain["data"]["product"]
    with_identifier = event.cloud_event(SUBSCRIPTION, send_product_identifier=True)
    assert with_identifier["data"]["product"]["identifier"].startswith("SKU-")
    assert {k: v for k, v in with_identifier["data"]["product"].items() if k != "identifier"} == (
        plain["data"]["product"]
    )
    model = CATALOG_EVENTS[f"{PREFIX}product-model.updated"]
    assert model.cloud_event(SUBSCRIPTION, send_product_identifier=True) == model.cloud_event(
        SUBSCRIPTION
    )


def test_delta_events_say_what_changed() -> None:
    catalog = Catalog(products=5, product_models=1, seed=2)
    uuid_ = catalog.products.keys[0]
    before = catalog.products.items[uuid_]["values"]["name"]
    old = next(v["data"] for v in before if v["locale"] == "en_US")
    change = catalog.edit_product(uuid_, name="Blue shoe", author="sim-client")
    updated, delta = pim_events(change)
    assert updated.id == change.event_id and delta.id != change.event_id
    product = delta.cloud_event(SUBSCRIPTION)["data"]["product"]
    assert product["uuid"] == uuid_
    assert product["changes"] == {
        "values": {
            "name": [
                {"previous": old, "new": "Blue shoe", "type": "pim_catalog_text",
                 "locale": "en_US", "scope": None}
            ]
        }
    }  # fmt: skip
    when = change.updated.strftime("%Y-%m-%d %H:%M:%S")
    assert product["updated_at"] == {"date": f"{when}.000000", "timezone": "UTC"}
    assert updated.data["author"] == {"identifier": "sim-client", "type": "user"}
    catalog.api_authors.add("sim-client")  # a registered API client
    api_edit = pim_events(catalog.edit_product(uuid_, author="sim-client"))[0]
    assert api_edit.data["author"] == {"identifier": "sim-client", "type": "api"}


def test_attribute_option_ids_and_removals() -> None:
    deleted = CATALOG_EVENTS[f"{PREFIX}attribute-option.deleted"].cloud_event(SUBSCRIPTION)
    assert deleted["data"]["attribute_option"] == {"code": "purple", "attribute": {"code": "color"}}
    family = CATALOG_EVENTS[f"{PREFIX}family.deleted"].cloud_event(SUBSCRIPTION)
    assert set(family["data"]) == {"family", "author"} and set(family["data"]["family"]) == {"code"}
