"""Fetching full resources for events that carry ids only (Event Platform) and for ties.

The worker depends on the small ``Hydrator`` protocol; ``RestHydrator`` adapts the shared
Akeneo REST client (concurrency, the connection's call budget and 429s handled by the
client): products by ``uuid IN`` and product models by ``identifier IN`` (batches of 100),
categories, families and attributes by ``code IN`` (batches of 100), attribute options one
``GET /attributes/{attribute}/options/{code}`` each (their listing takes no filter at all).
A resource the PIM no longer has is simply absent from the answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from akeneo_connector.normalized import ResourceKind
from akeneo_pim.structure import STRUCTURE_BY_KIND, split_option_key

BATCH = 100  # Akeneo's page limit, so one `uuid IN [...]` call per batch


class Hydrator(Protocol):
    async def fetch(self, kind: ResourceKind, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``key -> resource`` for the keys that exist; missing keys are simply absent."""
        ...


class CatalogReader(Protocol):
    async def get_products_by_uuid(self, uuids: Sequence[str]) -> list[dict[str, Any]]: ...

    async def get_product_models_by_code(self, codes: Sequence[str]) -> list[dict[str, Any]]: ...

    async def get_by_codes(self, path: str, codes: Sequence[str]) -> list[dict[str, Any]]: ...

    async def get_attribute_option(self, attribute: str, code: str) -> dict[str, Any] | None: ...


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class RestHydrator:
    """Hydrates through ``AkeneoRestClient`` (``akeneo_pim.rest``)."""

    def __init__(self, client: CatalogReader) -> None:
        self._client = client

    async def fetch(self, kind: ResourceKind, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        unique = list(dict.fromkeys(keys))
        if kind is ResourceKind.ATTRIBUTE_OPTION:
            return await self._options(unique)
        if kind is ResourceKind.PRODUCT:
            # Products are keyed by uuid; a bare identifier (PIM 5/6) cannot be searched by uuid.
            wanted = [k for k in unique if _is_uuid(k)]
            batches = [wanted[i : i + BATCH] for i in range(0, len(wanted), BATCH)]
            pages = await asyncio.gather(*(self._client.get_products_by_uuid(b) for b in batches))
            field = "uuid"
        elif kind is ResourceKind.PRODUCT_MODEL:
            batches = [unique[i : i + BATCH] for i in range(0, len(unique), BATCH)]
            pages = await asyncio.gather(
                *(self._client.get_product_models_by_code(b) for b in batches)
            )
            field = "code"
        else:  # categories, families, attributes (the client batches by 100)
            path = STRUCTURE_BY_KIND[kind].path
            pages = [await self._client.get_by_codes(path, unique)]
            field = "code"
        found: dict[str, dict[str, Any]] = {}
        for page in pages:
            for item in page:
                key = item.get(field)
                if isinstance(key, str):
                    found[key] = {k: v for k, v in item.items() if k != "_links"}
        return found

    async def _options(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """One GET per option, side by side (the client keeps within the call budget)."""
        parts = {key: split_option_key(key) for key in keys}
        wanted = [(key, pair) for key, pair in parts.items() if pair is not None]
        items = await asyncio.gather(
            *(self._client.get_attribute_option(attribute, code) for _, (attribute, code) in wanted)
        )
        return {key: item for (key, _), item in zip(wanted, items, strict=True) if item is not None}
