"""Follow a mounted NATS creds file: reconnect when its content changes.

nats-server cuts a connection when the user JWT it authenticated with expires, and nats-py
does not come back from that ("User Authentication Expired" closes the client for good).
The operator renews each creds file long before expiry and Kubernetes swaps the mounted
file in place; a client that reconnects when the file changes presents the new JWT (nats-py
re-reads the file on every connect) and so is never cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

log = logging.getLogger("akeneo_connector.creds_watch")

DEFAULT_INTERVAL = 30.0
_tasks: set[asyncio.Task[None]] = set()


class Reconnectable(Protocol):
    @property
    def is_closed(self) -> bool: ...

    async def force_reconnect(self) -> None: ...


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None  # mid-swap or gone: keep the current connection


def interval_from_env() -> float:
    raw = os.environ.get("AKENEO_NATS_CREDS_CHECK_INTERVAL", "")
    with contextlib.suppress(ValueError):
        return max(0.1, float(raw))
    return DEFAULT_INTERVAL


async def follow(nc: Reconnectable, path: Path, interval: float, last: bytes | None) -> None:
    """Until ``nc`` closes: reconnect whenever ``path`` holds content other than ``last``."""
    while not nc.is_closed:
        await asyncio.sleep(interval)
        current = _digest(path)
        if current is not None and current != last:
            last = current
            log.info("NATS creds file changed: reconnecting with the new credentials")
            await nc.force_reconnect()


def start(nc: Reconnectable, path: Path | str, interval: float | None = None) -> asyncio.Task[None]:
    """``follow`` in the background (the task ends by itself once ``nc`` is closed).

    The content is taken now, as the client just connected with it, not when the task runs.
    """
    path = Path(path)
    every = interval if interval is not None else interval_from_env()
    task = asyncio.get_running_loop().create_task(follow(nc, path, every, _digest(path)))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
