"""Start, wait for and stop server processes on free loopback ports."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies, even by crash."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, proc: ServerProcess | None = None
) -> None:
    """Poll ``check`` until it is true; fail with the process's log tail if it died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            raise RuntimeError(f"{what}: process exited ({proc.returncode})\n{proc.log_tail()}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s\n{tail}")


class ServerProcess:
    """One child process whose output goes to a log file in its data dir."""

    def __init__(self, name: str, argv: Sequence[str | os.PathLike[str]], log_dir: Path):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> ServerProcess:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)

    def stop(self, timeout: float = 10, sig: signal.Signals = signal.SIGTERM) -> None:
        if self._proc is None or not self.alive:
            return
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
