"""The event loop the long-running components (receiver, worker) run on.

uvloop where it is installed (a dependency on every platform it supports): the receiver and
the worker spend most of their CPU in the loop itself (sockets, callbacks, futures for
every JetStream ack), and there uvloop is faster than asyncio's pure-Python loop.
``AKENEO_EVENT_LOOP=asyncio`` falls back to the standard loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "AKENEO_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's (asked for, or uvloop missing)."""
    if os.environ.get(ENV, "uvloop").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def name() -> str:
    """Which loop ``run`` uses: ``uvloop`` or ``asyncio``."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
