"""Supervised child processes for local mode: restart with backoff, report, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("akeneo_connector.local")

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # a child that ran this long restarts with the initial backoff again


@dataclass
class Child:
    """One long-running component (nats-server, receiver, worker) kept alive by ``supervise``."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    _stopping: bool = field(default=False, repr=False)

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env={**os.environ, **self.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def supervise(self) -> None:
        """Run forever: when the child dies unexpectedly, report and restart it with backoff."""
        backoff = BACKOFF_START
        while not self._stopping:
            started = time.monotonic()
            await self.start()
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = BACKOFF_START
            self.restarts += 1
            log.warning(
                "%s exited with code %s; restarting in %.1fs (log: %s)",
                self.name,
                code,
                backoff,
                self.log_path,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
