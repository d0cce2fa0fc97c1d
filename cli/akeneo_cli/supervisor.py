"""Supervised child processes for local mode: restart with backoff, report, stop cleanly.

Children run in sessions of their own (Ctrl-C reaches local mode only, which stops them in
order). A local mode killed alone (SIGKILL, OOM killer) cannot stop them itself: on Linux
each child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and
stops cleanly within 2 s. Elsewhere, and for anything that outlived that, ``RunLock`` lets
one local mode use a data dir at a time and stops an earlier run's leftovers before a new
one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from akeneo_connector.local_layout import LOCK_FILE

log = logging.getLogger("akeneo_cli.local")

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # a child that ran this long restarts with the initial backoff again


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DEATH_SIGNAL = signal.SIGTERM  # a clean stop: nats-server closes its store properly


def _prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _prctl()  # looked up once, in the parent: the child only calls it


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child signalled when this process dies (Linux).

    The kernel sends the signal when the *thread* that forked the child ends, not the
    process: children must be started from the thread that lives as long as local mode,
    which is the event loop's (asyncio forks there; local mode runs it in the main thread).
    """
    prctl, parent = _PRCTL, os.getpid()
    if prctl is None:
        return None

    def arm() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL)
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), PARENT_DEATH_SIGNAL)

    return arm


@dataclass
class Child:
    """One long-running component (nats-server, receiver, worker) kept alive by ``supervise``."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    on_start: Callable[[], None] | None = field(default=None, repr=False)
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
                preexec_fn=die_with_parent(),  # SIGKILLed local mode: they stop too
            )
        if self.on_start is not None:
            self.on_start()

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


class DataDirBusy(RuntimeError):
    """Another local mode runs on this data dir."""


# what local mode starts: its own components and the embedded nats-server
_OUR_COMMANDS = (b"akeneo_cli", b"nats-server")


class RunLock:
    """An exclusive lock on a data dir, and the process ids of the children started in it."""

    def __init__(self, folder: Path) -> None:
        self.lock_path = folder / LOCK_FILE
        self.pids_path = folder / "children.pids"
        self._fd: int | None = None

    def acquire(self) -> int:
        """Take the lock (``DataDirBusy`` if held); stop leftovers; return how many there were."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(
                f"{self.lock_path.parent} is in use by another akeneo-connector local "
                f"(pid {holder}); stop it or give --data-dir another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self._stop_leftovers()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def clear(self) -> None:
        """All children stopped: nothing for a later run to clean up."""
        self.pids_path.unlink(missing_ok=True)

    def record(self, children: Iterable[Child]) -> None:
        """Remember the running children (a later run stops them if this one dies alone)."""
        pids = [str(c.process.pid) for c in children if c.running and c.process is not None]
        tmp = self.pids_path.with_suffix(".tmp")
        tmp.write_text("\n".join(pids) + "\n")
        tmp.replace(self.pids_path)

    def _stop_leftovers(self, timeout: float = 10.0) -> int:
        try:
            listed = self.pids_path.read_text().split()
        except FileNotFoundError:
            return 0
        groups = [int(p) for p in listed if p.isdigit() and _is_our_child(int(p))]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
            deadline = time.monotonic() + timeout
            while any(_alive(p) for p in groups) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pids_path.unlink(missing_ok=True)
        for pgid in groups:
            log.warning("stopped process %s left running by an earlier local mode", pgid)
        return len(groups)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_child(pid: int) -> bool:
    """Still the session leader we started (ids get reused), running one of our commands."""
    try:
        if os.getsid(pid) != pid:
            return False
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True  # no /proc (macOS): the session check has to do
    except OSError:
        return False
    return any(command in cmdline for command in _OUR_COMMANDS)
