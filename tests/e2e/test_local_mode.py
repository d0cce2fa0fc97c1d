"""Local mode end to end: one manifest, the whole pipeline, a lossy PIM, a kill -9, exact state.

`akeneo-connector local -f` runs as a real process tree (nats-server, receiver over HTTPS,
worker with the sqlite sink). The simulator delivers a few hundred catalog changes in both
formats, reordered, duplicated and partly dropped; the whole tree is killed with SIGKILL in
the middle of a stream of deliveries and started again. Every change the receiver answered
200 must reach the sink; after a reconcile the sink equals the simulator's catalog exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import ssl
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from akeneo_connector.local import LocalPipeline
from akeneo_connector.manifest import load_manifest
from akeneo_pim.simulator import Change, EventSender, PimSimulator
from tests.ground.processes import free_port

# A correctness test, not a timing one: on a loaded 2-core CI machine an answer may take
# longer than the PIM's 0.5 s, which the simulator would count as lost. The 0.5 s budget is
# measured by bench/receiver.py (p99) and bench/faults.py, so here the sender waits longer.
ANSWER_BUDGET = 5.0
LEGACY_SECRET = "e2e-legacy-secret"
PLATFORM_PRIMARY, PLATFORM_SECONDARY = "e2e-platform-primary", "e2e-platform-secondary"
Rows = dict[tuple[str, str], str]


def write_manifest(path: Path, sim: PimSimulator) -> None:
    creds = sim.credentials
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "e2e-events", "namespace": "e2e"},
            "stringData": {
                "eventsApiSecret": LEGACY_SECRET,
                "eventPlatformSecrets": f"{PLATFORM_PRIMARY}\n{PLATFORM_SECONDARY}\n",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "e2e-pim", "namespace": "e2e"},
            "stringData": {
                "clientId": creds.client_id.get_secret_value(),
                "clientSecret": creds.client_secret.get_secret_value(),
                "username": creds.username.get_secret_value(),
                "password": creds.password.get_secret_value(),
            },
        },
        {
            "apiVersion": "akeneo.connectors.dev/v1alpha1",
            "kind": "AkeneoConnection",
            "metadata": {"name": "shop", "namespace": "e2e"},
            "spec": {
                "pim": {"url": sim.url, "credentialsSecret": "e2e-pim"},
                "receiver": {"signatureSecret": "e2e-events"},
                "worker": {"maxDeliver": 5, "sink": {"sqlite": {"path": "catalog.db"}}},
                # never due during the test: the test runs the reconcile itself
                "reconciliation": {"schedule": "0 0 1 1 *", "fullScanSchedule": None},
            },
        },
    ]
    path.write_text(yaml.safe_dump_all(docs))


class LocalMode:
    """`akeneo-connector local` as a process group that can be SIGKILLed as a whole."""

    def __init__(self, manifest: Path, data_dir: Path) -> None:
        self.manifest, self.data_dir = manifest, data_dir
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
                sys.executable, "-m", "akeneo_connector.cli", "local",
                "-f", str(self.manifest), "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--admin-port", str(self.admin_port),
                "--status-interval", "0.5",
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        await self.wait_ready()

    async def wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            assert self.proc is not None and self.proc.returncode is None, self.output.read_text()
            with contextlib.suppress(httpx.HTTPError, ssl.SSLError, FileNotFoundError):
                async with httpx.AsyncClient(timeout=1) as http:
                    ready = await http.get(f"http://127.0.0.1:{self.admin_port}/readyz")
                    if ready.status_code == 200:
                        return
            assert asyncio.get_running_loop().time() < deadline, self.output.read_text()
            await asyncio.sleep(0.2)

    def kill_all(self) -> None:
        """SIGKILL local mode and every child (they share its process group's session)."""
        assert self.proc is not None
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
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


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                children.append(int(entry.name))
    return [d for c in children for d in [c, *_descendants(c)]]


def sink_rows(db: Path) -> Rows:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            rows = conn.execute("SELECT kind, key, resource FROM akeneo_resources").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {(kind, key): json.loads(resource)["updated"] for kind, key, resource in rows}


def catalog_rows(sim: PimSimulator) -> Rows:
    rows = {("product", k): v["updated"] for k, v in sim.catalog.products.items.items()}
    rows.update(
        {("product_model", k): v["updated"] for k, v in sim.catalog.product_models.items.items()}
    )
    return rows


async def eventually(check: Any, what: str, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.2)


def acknowledged_hold(rows: Rows, accepted: list[Change]) -> bool:
    """Every change answered 200 is reflected: its version or a newer one, or its removal."""
    newest: dict[tuple[str, str], Change] = {}
    for change in accepted:
        key: tuple[str, str] = (change.kind, change.key)
        if key not in newest or change.updated >= newest[key].updated:
            newest[key] = change
    for key, change in newest.items():
        if change.action == "removed":
            if key in rows:
                return False
        elif key not in rows or datetime.fromisoformat(rows[key]) < change.updated:
            return False
    return True


@pytest.fixture
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=120, product_models=12, seed=7) as sim:
        yield sim


async def test_local_mode_survives_a_lossy_pim_and_kill_9(
    simulator: PimSimulator, tmp_path: Path
) -> None:
    sim = simulator
    manifest, data_dir = tmp_path / "connection.yaml", tmp_path / "data"
    write_manifest(manifest, sim)
    local = LocalMode(manifest, data_dir)
    db = data_dir / "catalog.db"
    await local.start()
    try:
        verify = str(local.ca)
        legacy = EventSender(
            local.url, events_api_secret=LEGACY_SECRET, verify=verify, timeout=ANSWER_BUDGET,
            reorder=0.3, duplicate=0.2, drop=0.1, seed=1,
        )  # fmt: skip
        platform = EventSender(
            local.url, format="event_platform", verify=verify, timeout=ANSWER_BUDGET,
            event_platform_secrets=(PLATFORM_PRIMARY, PLATFORM_SECONDARY),
            reorder=0.3, duplicate=0.2, drop=0.1, seed=2,
        )  # fmt: skip
        async with legacy, platform:
            assert await legacy.send_test_request() == 200

            # 1. a few hundred changes in both formats, reordered, duplicated, some dropped
            changes = [sim.catalog.random_change() for _ in range(300)]
            report_a = await legacy.send(changes[::2])
            report_b = await platform.send(changes[1::2])
            for report in (report_a, report_b):
                assert report.dropped > 0 and report.duplicated > 0
                assert report.rejected == 0 and report.timed_out == 0, report.as_dict()

            # 2. a stream of single-change deliveries; local mode is killed -9 in the middle
            one_by_one = EventSender(local.url, events_api_secret=LEGACY_SECRET, verify=verify)
            accepted: list[Change] = []
            sent, restarted_at = 0, -1

            async def stream() -> None:  # bounded: stops 40 accepted after the restart
                nonlocal sent
                while sent < 2000 and not (0 <= restarted_at <= len(accepted) - 40):
                    change = sim.catalog.random_change()
                    if (await one_by_one.send([change])).accepted == 1:
                        accepted.append(change)
                    sent += 1
                    await asyncio.sleep(0.02)  # a steady trickle, as a busy PIM sends

            async with one_by_one:
                sender = asyncio.create_task(stream())
                await eventually(lambda: sent >= 60, "first deliveries")
                local.kill_all()  # while deliveries keep coming
                assert local.proc is not None
                await local.proc.wait()
                await local.start()
                restarted_at = len(accepted)
                await sender
        assert restarted_at >= 60
        assert len(accepted) - restarted_at >= 40, "200s again after the restart"

        # nothing acknowledged was lost across the kill -9
        await eventually(lambda: acknowledged_hold(sink_rows(db), accepted), "acked changes")

        # a second local mode on the same data dir is refused with one line
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "akeneo_connector.cli", "local", "-f", str(manifest),
            "--data-dir", str(data_dir), "--port", str(free_port()),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        said, _ = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1 and b"in use by another akeneo-connector local" in said
        assert b"Traceback" not in said

        # a component that dies is reported and restarted (the reconcile below needs it)
        os.kill(_component_pid(local, "worker"), signal.SIGKILL)
        await eventually(
            lambda: "worker exited with code -9; restarting" in local.output.read_text(),
            "worker restart reported",
        )

        # 3. a reconcile (as local mode's schedule runs it) repairs what the PIM's drops lost
        pipeline = LocalPipeline(load_manifest(manifest), data_dir, local.port, None)
        nats_url = _nats_url(local.output)
        env = {**os.environ, **pipeline.reconcile_env(), "AKENEO_NATS_URL": nats_url}
        for full in (False, True):
            argv = [sys.executable, "-m", "akeneo_connector.cli", "reconcile"]
            job = await asyncio.create_subprocess_exec(
                *argv, *(["--full"] if full else []), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await job.communicate()
            assert job.returncode == 0, out.decode()

        want = catalog_rows(sim)
        await eventually(lambda: sink_rows(db) == want, "sink equals the PIM's catalog")
        # the live status line follows it: everything applied, nothing left to deliver
        await eventually(lambda: _caught_up(local.output), "status line shows lag 0")
        children = [int(p) for p in (data_dir / "children.pids").read_text().split()]
    finally:
        await local.stop()
    output = local.output.read_text()
    assert "Traceback" not in output
    assert f"events         {local.url}" in output and "sink           sqlite: " in output
    assert f"event platform {local.url.removesuffix('/events')}/event-platform\n" in output
    # Ctrl-C: a clean exit, every child stopped
    assert local.proc is not None and local.proc.returncode == 0, output[-2000:]
    assert len(children) >= 3 and not any(_alive(pid) for pid in children)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _caught_up(output: Path) -> bool:
    status = [ln for ln in output.read_text().splitlines() if ln.startswith("received ")]
    if not status:
        return False
    applied = re.search(r"applied (\d+) .* lag (\S+)$", status[-1])
    return applied is not None and int(applied.group(1)) > 0 and applied.group(2) == "0"


def _component_pid(local: LocalMode, component: str) -> int:
    """The pid of one of local mode's children, by its subcommand."""
    assert local.proc is not None
    for pid in _descendants(local.proc.pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"akeneo_connector.cli" in argv and component.encode() in argv:
                return pid
    raise AssertionError(f"no {component} process under local mode")


def _nats_url(output: Path) -> str:
    """The embedded nats-server's URL, from local mode's banner (the last start's)."""
    lines = [ln for ln in output.read_text().splitlines() if ln.strip().startswith("nats ")]
    return lines[-1].split()[1]
