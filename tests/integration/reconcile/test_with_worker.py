"""Events were lost; reconcile runs; the real worker brings its sqlite sink back to the catalog."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

from akeneo_pim.rest import AkeneoRestClient
from akeneo_pim.simulator import EventSender, PimSimulator
from akeneo_resync.reconcile import Resync, ResyncSettings
from akeneo_testing.ground.processes import free_port
from tests.integration.reconcile.streams import Connection, provisioned
from tests.unit.simulator.receiver import Recorder, start


def _sink_rows(db: Path) -> dict[tuple[str, str], str]:
    """(kind, key) -> the stored resource's ``updated``."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT kind, key, resource FROM akeneo_resources").fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return {}
    return {(kind, key): json.loads(resource)["updated"] for kind, key, resource in rows}


def _catalog(sim: PimSimulator) -> dict[tuple[str, str], str]:
    rows = {("product", k): v["updated"] for k, v in sim.catalog.products.items.items()}
    rows.update(
        {("product_model", k): v["updated"] for k, v in sim.catalog.product_models.items.items()}
    )
    return rows


async def _converge(db: Path, want: dict[tuple[str, str], str], worker: object) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while _sink_rows(db) != want:
        assert getattr(worker, "returncode", None) is None, "the worker exited"
        assert loop.time() < deadline, "the sink did not converge to the PIM's catalog"
        await asyncio.sleep(0.1)


async def _reconcile(sim: PimSimulator, conn: Connection, *, full: bool) -> None:
    async with AkeneoRestClient(sim.url, sim.credentials, allow_private=True) as client:
        settings = ResyncSettings(names=conn.names, full=full)
        await Resync(settings, client, conn.js, conn.kv).run()


async def test_reconcile_after_dropped_events_repairs_the_sink(nats: str, tmp_path: Path) -> None:
    async with PimSimulator(products=200, product_models=10) as sim, provisioned(nats) as conn:
        db = tmp_path / "catalog.db"
        creds = tmp_path / "pim"
        creds.mkdir()
        for name, value in (
            ("clientId", sim.credentials.client_id),
            ("clientSecret", sim.credentials.client_secret),
            ("username", sim.credentials.username),
            ("password", sim.credentials.password),
        ):
            (creds / name).write_text(value.get_secret_value())
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "akeneo_cli", "worker",
            "--connection", conn.names.ref, "--nats-url", nats, "--sink", "sqlite",
            "--sqlite-path", str(db), "--port", str(free_port()),
            "--pim-url", sim.url, "--pim-credentials-dir", str(creds), "--pim-allow-private",
            env={**os.environ, "AKENEO_LOG_LEVEL": "warning"},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _reconcile(sim, conn, full=False)
            await _converge(db, _catalog(sim), worker)

            # the PIM changes, and every delivery is lost on the way
            recorder = Recorder(events_api_secrets=["s"])
            runner, url = await start(recorder)
            changes = [sim.edit_product() for _ in range(10)]
            changes += [sim.delete_product() for _ in range(3)]
            changes += [sim.create_product(), sim.edit_product_model(), sim.delete_product_model()]
            async with EventSender(url, events_api_secret="s", drop=1.0) as sender:
                report = await sender.send(changes)
            await runner.cleanup()
            assert report.deliveries == 0 and report.dropped > 0
            assert recorder.bodies == []
            assert _sink_rows(db) != _catalog(sim)

            await _reconcile(sim, conn, full=True)
            await _converge(db, _catalog(sim), worker)
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
                await asyncio.wait_for(worker.wait(), timeout=30)
