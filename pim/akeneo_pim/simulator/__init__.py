"""A simulated Akeneo PIM for tests, demos and deployment checks.

``PimSimulator`` serves the REST API (OAuth, products, product models, categories, families,
attributes, attribute options) on a free loopback port over a seeded ``Catalog``, within
Akeneo's concurrency limits (4 calls per client id, 10 per instance), for one or more API
clients. Its edit methods return the ``Change`` the PIM would announce, which ``EventSender``
delivers to a receiver in either event format: products and product models in both, the
structure (categories, families, attributes, attribute options) through the Event Platform.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any

from aiohttp import web

from akeneo_pim.rest import PimCredentials
from akeneo_pim.simulator.catalog import Catalog, Change
from akeneo_pim.simulator.events import EventSender, PimEvent, SendReport
from akeneo_pim.simulator.platform import EventPlatform, PlatformSettings
from akeneo_pim.simulator.rest_app import (
    CONCURRENT_PER_CLIENT,
    CONCURRENT_PER_INSTANCE,
    ApiSettings,
    RestApi,
    ServerStats,
)
from akeneo_pim.simulator.structure import ATTRIBUTES, CATEGORIES, FAMILIES, StructureName

__all__ = [
    "ApiSettings",
    "Catalog",
    "Change",
    "EventPlatform",
    "EventSender",
    "PimEvent",
    "PimSimulator",
    "PlatformSettings",
    "SendReport",
    "ServerStats",
]


class PimSimulator:
    """The REST side of a PIM on ``127.0.0.1:<free port>``; use ``async with``."""

    def __init__(
        self,
        *,
        products: int = 100,
        product_models: int = 10,
        categories: int = len(CATEGORIES),
        families: int = len(FAMILIES),
        attributes: int = len(ATTRIBUTES),
        seed: int = 0,
        latency: float = 0.0,
        rate_429: float = 0.0,
        retry_after: float = 1.0,
        token_ttl: float = 3600,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        username: str = "sim-user",
        password: str = "sim-password",
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        limit_concurrency: bool = True,
        per_client_limit: int = CONCURRENT_PER_CLIENT,
        per_instance_limit: int = CONCURRENT_PER_INSTANCE,
    ) -> None:
        self.catalog = Catalog(
            products=products,
            product_models=product_models,
            seed=seed,
            categories=categories,
            families=families,
            attributes=attributes,
        )
        self.api = RestApi(
            self.catalog,
            ApiSettings(
                client_id=client_id,
                client_secret=client_secret,
                username=username,
                password=password,
                latency=latency,
                rate_429=rate_429,
                retry_after=retry_after,
                token_ttl=token_ttl,
                seed=seed,
                limit_concurrency=limit_concurrency,
                per_client_limit=per_client_limit,
                per_instance_limit=per_instance_limit,
            ),
        )
        self.catalog.api_authors.add(client_id)
        self.credentials = PimCredentials.model_validate(
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "username": username,
                "password": password,
            }
        )
        self._host, self._port, self._ssl = host, port, ssl_context
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def settings(self) -> ApiSettings:
        """Live knobs: ``latency``, ``rate_429``, ``retry_after``, ``token_ttl`` and the
        concurrency limits may be changed."""
        return self.api.settings

    @property
    def stats(self) -> ServerStats:
        return self.api.stats

    async def start(self) -> PimSimulator:
        runner = web.AppRunner(self.api.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        scheme = "https" if self._ssl is not None else "http"
        self.url = f"{scheme}://{self._host}:{address[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> PimSimulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def event_platform(
        self,
        settings: PlatformSettings | None = None,
        *,
        verify: bool | str | ssl.SSLContext = True,
        ssl_context: ssl.SSLContext | None = None,
        pim_url: str | None = None,
    ) -> EventPlatform:
        """The Event Platform of this PIM (start the PIM first): its management API accepts
        this PIM's tokens and URL (and ``pim_url``, the public URL a connector configures)."""
        if not self.url:
            raise RuntimeError("start the PimSimulator before its Event Platform")
        urls = [self.url] + ([pim_url] if pim_url else [])
        return EventPlatform(
            token_client=self.token_client,
            pim_urls=urls,
            settings=settings,
            verify=verify,
            ssl_context=ssl_context,
        )

    # -- knobs ----------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        username: str = "sim-user",
        password: str = "sim-password",
    ) -> PimCredentials:
        """Register another API connection (a client id has its own 4-call budget); returns
        the credentials a connector would use for it."""
        self.api.add_client(client_id, client_secret, username, password)
        self.catalog.api_authors.add(client_id)
        return PimCredentials.model_validate(
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "username": username,
                "password": password,
            }
        )

    def token_client(self, token: str) -> str | None:
        """The client id a valid access token was issued to (None: unknown or expired)."""
        return self.api.token_client(token)

    def expire_tokens(self) -> None:
        self.api.expire_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.api.revoke_refresh_tokens()

    def fail_next(self, status: int, count: int = 1) -> None:
        self.api.fail_next(status, count)

    def clear_failures(self) -> None:
        self.api.clear_failures()

    # -- catalog edits (each returns the Change the PIM would announce) -------------------

    def create_product(self, *, author: str = "admin") -> Change:
        return self.catalog.create_product(author=author)

    def edit_product(
        self, uuid: str | None = None, *, name: str | None = None, author: str = "admin"
    ) -> Change:
        return self.catalog.edit_product(uuid, name=name, author=author)

    def delete_product(self, uuid: str | None = None, *, author: str = "admin") -> Change:
        return self.catalog.delete_product(uuid, author=author)

    def create_product_model(self, *, author: str = "admin") -> Change:
        return self.catalog.create_product_model(author=author)

    def edit_product_model(
        self, code: str | None = None, *, name: str | None = None, author: str = "admin"
    ) -> Change:
        return self.catalog.edit_product_model(code, name=name, author=author)

    def delete_product_model(self, code: str | None = None, *, author: str = "admin") -> Change:
        return self.catalog.delete_product_model(code, author=author)

    # -- structure edits (each returns the Change the Event Platform announces) ------------

    def create_structure_item(
        self,
        name: StructureName,
        *,
        parent: str | None = "master",
        attribute_type: str = "pim_catalog_text",
        author: str = "admin",
    ) -> Change:
        """A new category (under ``parent``), family or attribute (of ``attribute_type``)."""
        return self.catalog.create_structure_item(
            name, parent=parent, attribute_type=attribute_type, author=author
        )

    def edit_structure_item(
        self,
        name: StructureName,
        code: str | None = None,
        *,
        label: str | None = None,
        author: str = "admin",
    ) -> Change:
        return self.catalog.edit_structure_item(name, code, label=label, author=author)

    def delete_structure_item(
        self, name: StructureName, code: str, *, author: str = "admin"
    ) -> Change:
        """Remove an item; a category's descendants go too (each with its recorded Change)."""
        return self.catalog.delete_structure_item(name, code, author=author)

    def create_attribute_option(
        self, attribute: str, code: str | None = None, *, author: str = "admin"
    ) -> Change:
        return self.catalog.create_attribute_option(attribute, code, author=author)

    def edit_attribute_option(
        self,
        attribute: str,
        code: str | None = None,
        *,
        label: str | None = None,
        author: str = "admin",
    ) -> Change:
        return self.catalog.edit_attribute_option(attribute, code, label=label, author=author)

    def delete_attribute_option(
        self, attribute: str, code: str, *, author: str = "admin"
    ) -> Change:
        return self.catalog.delete_attribute_option(attribute, code, author=author)

    # older shapes of the same edits (they record their Changes in ``catalog.changes`` too)

    def create_structure(self, name: StructureName, *, parent: str | None = "master") -> str:
        """A new category (under ``parent``), family or attribute; returns its code."""
        return self.create_structure_item(name, parent=parent).key

    def edit_structure(self, name: StructureName, code: str, *, label: str) -> dict[str, Any]:
        """Change an item's en_US label; returns the item as the API now serves it."""
        return self.edit_structure_item(name, code, label=label).resource

    def delete_structure(self, name: StructureName, code: str) -> list[str]:
        """Remove an item (a category with its subtree); returns the removed codes."""
        before = len(self.catalog.changes)
        self.delete_structure_item(name, code)
        return [c.key for c in self.catalog.changes[before:]]
