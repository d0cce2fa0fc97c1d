"""Stopping within a bound, whatever state the NATS server is in (up, gone, or silent).

A SIGTERM must end the receiver and the worker within 2 s. The slow parts of a stop are the
ones waiting on a peer: nats-py's ``drain`` waits for a flush (10 s by default) and swallows
the cancellation meant to cut it short, and a silent server never answers. So no step of a
stop waits without a bound, and the NATS connection is flushed (acks already sent reach the
server when it answers) and closed rather than drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import Any

from nats.aio.client import Client

log = logging.getLogger("akeneo_connector.stopping")

FLUSH_TIMEOUT = 0.25
CLOSE_TIMEOUT = 0.25


async def bounded(step: Awaitable[Any], seconds: float, what: str) -> None:
    """Run one step of a stop for at most ``seconds``; its failure does not stop the stop.

    The step runs as a task that is not awaited past the bound: a step that ignores its
    cancellation cannot hold the stop (the event loop's own shutdown cancels it again).
    """
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.warning("%s: not done within %.2gs, left behind", what, seconds)
        return
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s failed: %s", what, type(task.exception()).__name__)


async def close_nats(nc: Client | None) -> None:
    """Flush (if the server answers quickly), then close; never ``drain``."""
    if nc is None or nc.is_closed:
        return
    if nc.is_connected:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.flush(), FLUSH_TIMEOUT)
    await bounded(nc.close(), CLOSE_TIMEOUT, "NATS close")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM (the kubelet's stop, local mode's) or SIGINT (a terminal's):
    the one way a component learns it must stop. Call it from the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
