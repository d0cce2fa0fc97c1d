"""`akeneo-connector simulate` as a user runs it against a deployment (a TLS receiver here)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from akeneo_pim.rest import PRODUCTS_UUID_PATH, AkeneoRestClient, PimCredentials
from tests.unit.pim_rest.certs import make_pki
from tests.unit.simulator.receiver import Recorder, start


async def _simulate(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akeneo_cli", "simulate", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _report(out: str) -> dict[str, object]:
    line = next(ln for ln in out.splitlines() if ln.startswith("{"))
    report: dict[str, object] = json.loads(line)
    return report


async def test_legacy_traffic_over_tls_is_accepted(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    recorder = Recorder(events_api_secrets=["s3cret"])
    runner, url = await start(recorder, pki.server_context())
    secret = tmp_path / "eventsApiSecret"
    secret.write_text("s3cret\n")
    try:
        code, out, err = await _simulate(
            "--target", url, "--secret-file", str(secret), "--ca-file", str(pki.ca_file),
            "--rate", "40", "--duration", "2",
            # what is checked is that TLS legacy traffic is accepted; the PIM's 0.5 s deadline
            # (the default) is a benchmark's figure, which a stall of the loaded CI can miss
            "--timeout", "2",
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, (out, err)
    assert "test request: 200" in out
    report = _report(out)
    assert report["events"] == 80
    assert report["accepted"] == report["deliveries"] == len(recorder.bodies)
    assert recorder.test_requests == 1
    assert all(1 <= len(b["events"]) <= 10 for b in recorder.bodies)


async def test_wrong_secret_and_event_platform_report_rejections(tmp_path: Path) -> None:
    recorder = Recorder(event_platform_secrets=["primary-ok"])
    runner, url = await start(recorder)
    secrets = tmp_path / "eventPlatformSecrets"
    secrets.write_text("primary-wrong\nsecondary-wrong\n")
    try:
        code, out, _ = await _simulate(
            "--target", url, "--format", "event_platform", "--secret-file", str(secrets),
            "--rate", "5", "--duration", "1",
        )  # fmt: skip
        assert code == 1
        report = _report(out)
        assert report["rejected"] == 5 and report["accepted"] == 0
        assert report["statuses"] == {"401": 5}
        secrets.write_text("primary-wrong\nprimary-ok\n")  # rotation: the secondary matches
        code, out, _ = await _simulate(
            "--target", url, "--format", "event_platform", "--secret-file", str(secrets),
            "--rate", "5", "--duration", "1",
        )  # fmt: skip
        assert code == 0
        assert _report(out)["accepted"] == 5
    finally:
        await runner.cleanup()


async def test_serve_rest_writes_credentials_for_the_connector(tmp_path: Path) -> None:
    creds_dir = tmp_path / "pim"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akeneo_cli", "simulate", "--serve-rest",
        "--products", "42", "--write-credentials", str(creds_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
            assert line, "simulate exited before serving"
            if line.startswith("PIM REST API: "):
                url = line.split()[3]
        while b"serving" not in await asyncio.wait_for(proc.stdout.readline(), timeout=60):
            pass
        credentials = PimCredentials.from_dir(creds_dir)
        async with AkeneoRestClient(url, credentials, allow_private=True) as client:
            items = []
            async for page in client.iter_pages(PRODUCTS_UUID_PATH, {}):
                items += page
        assert len(items) == 42
    finally:
        proc.terminate()
        await proc.wait()


async def test_nothing_to_do_is_a_usage_error() -> None:
    code, _, err = await _simulate()
    assert code == 2
    assert "--target" in err


async def test_event_platform_mix_sends_every_kind_of_type(tmp_path: Path) -> None:
    recorder = Recorder(event_platform_secrets=["primary-ok"])
    runner, url = await start(recorder)
    secrets = tmp_path / "eventPlatformSecrets"
    secrets.write_text("primary-ok\n")
    try:
        code, out, err = await _simulate(
            "--target", url, "--format", "event_platform", "--secret-file", str(secrets),
            "--mix", "all", "--send-product-identifier", "--rate", "60", "--duration", "2",
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert code == 0, err
    assert _report(out)["accepted"] == len(recorder.bodies) == 120
    types = {b["type"].removeprefix("com.akeneo.pim.v1.").split(".")[0] for b in recorder.bodies}
    assert {"product", "category", "family", "attribute", "attribute-option"} <= types
    assert types - {"product", "product-model", "category", "family", "attribute",
                    "attribute-option"}  # and types the connector ignores  # fmt: skip
    assert {b["source"] for b in recorder.bodies} == {"pim"}
    assert len({b["subject"] for b in recorder.bodies}) == 1
    products = [b["data"]["product"] for b in recorder.bodies if "product" in b["data"]]
    assert products and all("identifier" in p for p in products)
