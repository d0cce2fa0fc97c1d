"""Realistic Akeneo deliveries for tests and benchmarks (shapes from the public API docs)."""

from __future__ import annotations

import json
import uuid
from typing import Any


def product(identifier: str, *, updated: str = "2026-11-27T10:00:00+00:00") -> dict[str, Any]:
    """A full REST representation of a product, about 1.1 KB of JSON."""
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, identifier)),
        "identifier": identifier,
        "enabled": True,
        "family": "tshirts",
        "categories": ["summer_collection", "men"],
        "groups": [],
        "parent": None,
        "values": {
            "name": [{"locale": "en_US", "scope": None, "data": f"T-shirt {identifier}"}],
            "description": [
                {
                    "locale": "en_US",
                    "scope": "ecommerce",
                    "data": "Soft cotton t-shirt with a crew neck, printed in Lyon/France.",
                }
            ],
            "price": [
                {
                    "locale": None,
                    "scope": None,
                    "data": [{"amount": "19.99", "currency": "EUR"}],
                }
            ],
            "weight": [{"locale": None, "scope": None, "data": {"amount": 180, "unit": "GRAM"}}],
            "color": [{"locale": None, "scope": None, "data": "blue"}],
            "size": [{"locale": None, "scope": None, "data": "m"}],
            "ean": [{"locale": None, "scope": None, "data": "1234567890123"}],
        },
        "created": "2026-01-05T08:00:00+00:00",
        "updated": updated,
        "associations": {
            "PACK": {"products": [], "product_models": [], "groups": []},
            "UPSELL": {"products": ["tshirt-xl"], "product_models": [], "groups": []},
        },
        "quantified_associations": {},
        "metadata": {"workflow_status": "working_copy"},
    }


def legacy_event(
    identifier: str,
    *,
    action: str = "product.updated",
    event_id: str | None = None,
    event_datetime: str = "2026-11-27T10:00:01+00:00",
    updated: str = "2026-11-27T10:00:00+00:00",
) -> dict[str, Any]:
    resource: dict[str, Any]
    if action.endswith(".removed"):
        resource = (
            {"code": identifier}
            if action.startswith("product_model")
            else {"identifier": identifier, "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, identifier))}
        )
    elif action.startswith("product_model"):
        resource = {"code": identifier, "family_variant": "tshirts_size", "updated": updated}
    else:
        resource = product(identifier, updated=updated)
    return {
        "action": action,
        "event_id": event_id or str(uuid.uuid4()),
        "event_datetime": event_datetime,
        "author": "julia",
        "author_type": "ui",
        "pim_source": "https://acme.cloud.akeneo.com",
        "data": {"resource": resource},
    }


def legacy_body(events: list[dict[str, Any]]) -> bytes:
    """JSON escaped the PHP way (``\\/`` and ``\\uXXXX``), as the PIM sends it."""
    text = json.dumps({"events": events}, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode()


def legacy_batch(count: int = 10, prefix: str = "tshirt") -> bytes:
    return legacy_body([legacy_event(f"{prefix}-{i}") for i in range(count)])


def cloud_event(
    key: str,
    *,
    type_: str = "com.akeneo.pim.v1.product.updated",
    event_id: str | None = None,
    time: str = "2026-11-27T10:00:01.123Z",
) -> dict[str, Any]:
    ref = {"code": key} if ".product-model." in type_ else {"uuid": key}
    name = "product_model" if ".product-model." in type_ else "product"
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "pim",
        "type": type_,
        "subject": "subscription-1",
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": "https://event-platform.akeneo.com/schemas/product-updated.json",
        "data": {name: ref, "author": {"identifier": "julia", "type": "ui"}},
    }
