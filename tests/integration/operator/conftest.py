"""Fixtures of the operator tests; the CRDs, the chart's identity and the operator process
are in tests/conftest.py (the security and e2e tests use them too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from akeneo_testing.ground.nats import NatsServer


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of the test module's own, for tests that take it down."""
    server = NatsServer(tmp_path_factory.mktemp("own-nats")).start()
    try:
        yield server
    finally:
        server.stop()
