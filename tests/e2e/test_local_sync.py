"""Local mode syncs without being asked, reconciles on request, and repairs gap windows.

`akeneo-connector local -f` runs as a real process tree against the PIM simulator. A new
connection's sink holds the catalog without anyone running a reconcile; edits whose events
never came are fetched by `akeneo-connector reconcile -f <the same manifest>` (no other
flag: data dir, NATS URL and credentials are found as local mode laid them out); and a
subscription suspended then resumed (notifications through the receiver, as the Event
Platform sends them) makes local mode run a catch-up that brings the suspended window's
edits.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from akeneo_pim.signatures import notification_headers
from akeneo_pim.simulator import PimSimulator
from tests.e2e.local_harness import LocalMode, eventually
from tests.e2e.test_local_mode import catalog_rows, sink_rows

NOTIFICATION_SECRET = "local-sync-notification-secret"


def write_manifest(path: Path, sim: PimSimulator) -> None:
    creds = sim.credentials
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sync-events", "namespace": "local"},
            "stringData": {
                "eventsApiSecret": "local-sync-legacy",
                "eventPlatformNotificationSecret": NOTIFICATION_SECRET,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sync-pim", "namespace": "local"},
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
            "metadata": {"name": "shop", "namespace": "local"},
            "spec": {
                "pim": {
                    "url": sim.url,
                    "credentialsSecret": "sync-pim",
                    "allowPrivateAddresses": True,  # the simulator on 127.0.0.1
                },
                "receiver": {"signatureSecret": "sync-events"},
                "worker": {"sink": {"sqlite": {"path": "catalog.db"}}},
                # never due during the test: every run comes from what is tested
                "reconciliation": {"schedule": "0 0 1 1 *", "fullScanSchedule": None},
            },
        },
    ]
    path.write_text(yaml.safe_dump_all(docs))


async def reconcile_f(manifest: Path, data_dir: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akeneo_cli", "reconcile",
        "-f", str(manifest), "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.fixture
async def simulator() -> AsyncIterator[PimSimulator]:
    async with PimSimulator(products=30, product_models=4, seed=31) as sim:
        yield sim


async def test_local_mode_syncs_at_once_on_request_and_after_a_suspension(
    simulator: PimSimulator, tmp_path: Path
) -> None:
    sim = simulator
    manifest, data_dir = tmp_path / "connection.yaml", tmp_path / "data"
    write_manifest(manifest, sim)
    local = LocalMode(
        manifest, data_dir, "--catch-up-interval", "1"
    )  # windows looked for each second
    db = data_dir / "catalog.db"
    await local.start()
    try:
        # 1. nobody runs a reconcile: the first start does
        await eventually(lambda: sink_rows(db) == catalog_rows(sim), "first sync", timeout=120)
        assert "never synced: reconciling now" in local.output.read_text()

        # 2. edits whose events never came: one command with the manifest fetches them
        for _ in range(3):
            sim.catalog.edit_product()
        sim.catalog.create_product_model()
        assert sink_rows(db) != catalog_rows(sim)
        code, out = await reconcile_f(manifest, data_dir)
        assert code == 0, out
        assert "reconcile local/shop: seen=4 published=4" in out  # what the events missed
        await eventually(lambda: sink_rows(db) == catalog_rows(sim), "sink after reconcile -f")

        # 3. the subscription is suspended, its events lost, then resumed: local mode
        # records the window from the stored notifications and catches up by itself
        suspended_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        for _ in range(2):
            sim.catalog.edit_product()
        context = ssl.create_default_context(cafile=str(local.ca))
        url = f"https://localhost:{local.port}/event-platform/notifications"
        async with httpx.AsyncClient(verify=context, timeout=5) as http:
            for kind, at in (
                ("subscription.suspended.system", suspended_at),
                ("subscription.resumed", datetime.now(UTC).replace(microsecond=0)),
            ):
                body = json.dumps(
                    {
                        "notification_type": kind,
                        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "subscription_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a6",
                        "subscriber_id": "018e1ec5-29da-78ad-aae6-92065b9ca2a5",
                    }
                ).encode()
                answer = await http.post(
                    url, content=body, headers=notification_headers(NOTIFICATION_SECRET, body)
                )
                assert answer.status_code == 200, answer.text
        await eventually(lambda: sink_rows(db) == catalog_rows(sim), "sink after the catch-up")
        since = (suspended_at - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        output = local.output.read_text()
        assert f"catch-up reconcile --since {since}" in output
        await eventually(
            lambda: (
                f"catch-up --since {since} finished with exit code 0" in local.output.read_text()
            ),
            "catch-up finished",
        )
        # repaired once: the window is not caught up again
        await asyncio.sleep(3)
        assert local.output.read_text().count(f"catch-up reconcile --since {since}") == 1
    finally:
        await local.stop()
    output = local.output.read_text()
    assert "Traceback" not in output
    # without a running local mode, -f says so in one line
    code, out = await reconcile_f(manifest, data_dir)
    assert code == 1 and "no local mode of local/shop is running" in out
    assert "Traceback" not in out
