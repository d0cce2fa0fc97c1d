"""The receiver's public URLs, as the operator and local mode show them."""

from __future__ import annotations

import subprocess
import sys

from akeneo_pim.paths import PATHS, Endpoints


def test_three_distinct_paths_and_their_urls() -> None:
    assert PATHS == ("/events", "/event-platform", "/event-platform/notifications")
    for base in ("https://acme.hooks.example.com", "https://acme.hooks.example.com/"):
        assert Endpoints.of(base) == Endpoints(
            "https://acme.hooks.example.com/events",
            "https://acme.hooks.example.com/event-platform",
            "https://acme.hooks.example.com/event-platform/notifications",
        )


def test_importable_without_the_web_stack() -> None:
    """The operator cannot import the receiver: the paths must come without aiohttp."""
    code = "import sys, akeneo_pim.paths; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
