"""Local mode as a process tree for end-to-end tests: start, wait ready, stop, SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from akeneo_pim.simulator import PimSimulator
from akeneo_testing.ground.processes import free_port


def pim_secret(sim: PimSimulator, name: str, namespace: str) -> dict[str, Any]:
    """A Secret holding the simulator's REST API credentials, as a manifest document."""
    creds = sim.credentials
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "clientId": creds.client_id.get_secret_value(),
            "clientSecret": creds.client_secret.get_secret_value(),
            "username": creds.username.get_secret_value(),
            "password": creds.password.get_secret_value(),
        },
    }


class LocalMode:
    """`akeneo-connector local` as a process group that can be SIGKILLed as a whole."""

    def __init__(self, manifest: Path, data_dir: Path, *extra: str) -> None:
        self.manifest, self.data_dir, self.extra = manifest, data_dir, extra
        self.port = free_port()
        self.admin_port = free_port()  # the receiver's probes and metrics (plain HTTP)
        self.proc: asyncio.subprocess.Process | None = None
        self.output = data_dir.parent / "local-mode.out"

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/events"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    async def start(self) -> None:
        with self.output.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "akeneo_cli", "local",
                "-f", str(self.manifest), "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--admin-port", str(self.admin_port),
                "--status-interval", "0.5", *self.extra,
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        await self.wait_ready()

    async def wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            assert self.proc is not None and self.proc.returncode is None, self.output.read_text()
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=1) as http:
                    ready = await http.get(f"http://127.0.0.1:{self.admin_port}/readyz")
                    if ready.status_code == 200:
                        return
            assert asyncio.get_running_loop().time() < deadline, self.output.read_text()
            await asyncio.sleep(0.2)

    def kill_all(self) -> None:
        """SIGKILL local mode and every child (they share its process group's session)."""
        assert self.proc is not None
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.kill_all()
                await self.proc.wait()


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                children.append(int(entry.name))
    return [d for c in children for d in [c, *descendants(c)]]


async def eventually(check: Any, what: str, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.2)


def nats_url(output: Path) -> str:
    """The embedded nats-server's URL, from local mode's banner (the last start's)."""
    lines = [ln for ln in output.read_text().splitlines() if ln.strip().startswith("nats ")]
    return lines[-1].split()[1]
