"""Fetching full resources for events that carry ids only (Event Platform) and for ties.

The worker depends on the small ``Hydrator`` protocol; ``RestHydrator`` adapts the shared
Akeneo REST client (batches of up to 100 ids, concurrency and 429s handled by the client):
products by ``uuid IN``, product models, categories, families and attributes by code.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from akeneo_pim.normalized import ResourceKind
from akeneo_pim.structure import STRUCTURE_BY_KIND

BATCH = 100  # Akeneo's page limit, so one `uuid IN [...]` call per batch


class Hydrator(Protocol):
    async def fetch(self, kind: ResourceKind, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``key -> resource`` for the keys that exist; missing keys are simply absent."""
        ...


class CatalogReader(Protocol):
    async def get_products_by_uuid(self, uuids: Sequence[str]) -> list[dict[str, Any]]: ...

    async def get_product_models_by_code(self, codes: Sequence[str]) -> list[dict[str, Any]]: ...

    async def get_by_codes(self, path: str, codes: Sequence[str]) -> list[dict[str, Any]]: ...


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
        else:  # the catalog structure (a tie between two full scans' reads)
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
