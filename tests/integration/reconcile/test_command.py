"""`akeneo-connector reconcile` as a CronJob runs it: a process, env, mounted files, exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.js.errors import KeyNotFoundError

from akeneo_connector.guard_state import (
    LAST_RUN_KEY,
    LOCK_KEY,
    LastRun,
    ReconcileLock,
    Watermark,
    never_synced,
    watermark_key,
)
from akeneo_connector.names import ConnectionNames
from akeneo_pim.simulator import PimSimulator
from tests.integration.reconcile.streams import Connection, provisioned, stream_count, stream_events


def _credentials_dir(tmp: Path, sim: PimSimulator, *, password: str | None = None) -> Path:
    directory = tmp / "pim"
    directory.mkdir(exist_ok=True)
    c = sim.credentials
    (directory / "clientId").write_text(c.client_id.get_secret_value())
    (directory / "clientSecret").write_text(c.client_secret.get_secret_value())
    (directory / "username").write_text(c.username.get_secret_value())
    (directory / "password").write_text(password or c.password.get_secret_value())
    return directory


def _env(nats_url: str, names: ConnectionNames, sim: PimSimulator, creds: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AKENEO_CONNECTION": names.ref,
        "AKENEO_NATS_URL": nats_url,
        "AKENEO_PIM_URL": sim.url,
        "AKENEO_PIM_CREDENTIALS_DIR": str(creds),
        "AKENEO_PIM_ALLOW_PRIVATE": "true",  # the test ground's simulator on 127.0.0.1
    }


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "akeneo_cli", "reconcile", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await _start(env, *args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _has_watermark(conn: Connection) -> bool:
    try:
        await conn.kv.get(watermark_key("product"))
    except KeyNotFoundError:
        return False
    return True


async def test_success_prints_a_summary(nats: str, tmp_path: Path) -> None:
    async with PimSimulator(products=150, product_models=8) as sim, provisioned(nats) as conn:
        env = _env(nats, conn.names, sim, _credentials_dir(tmp_path, sim))
        code, out, err = await _run(env)
        assert code == 0, err
        assert "seen=158 published=158 removals=0" in out
        assert "throttled_429=0" in out and "pages=" in out
        assert await stream_count(conn) == 158
        code, out, _ = await _run(env, "--full")
        assert code == 0
        # no worker applied anything: the guard is empty, so nothing can have been removed
        # and the identifier scan is skipped (a first sync with --full pays no second read)
        assert "(full)" in out and "scanned=0" in out


async def test_structure_is_read_by_periodic_runs_and_full_scans(nats: str, tmp_path: Path) -> None:
    async with PimSimulator(products=12, product_models=1) as sim, provisioned(nats) as conn:
        env = _env(nats, conn.names, sim, _credentials_dir(tmp_path, sim))
        env["AKENEO_RECONCILE_RESOURCES"] = "products,categories,families,attributes"
        code, out, err = await _run(env)
        assert code == 0, err
        assert "seen=35 " in out and "full-scan-only" not in out  # 12 + 10 + 5 + 8
        assert (
            "[categories: seen=10 published=10 duplicates=0 unchanged=0 removals=0 calls=1]" in out
        )
        assert "[families: seen=5 " in out and "[attributes: seen=8 " in out
        assert await stream_count(conn) == 12 + 10 + 5 + 8
        sim.edit_structure_item("families", "shoes", label="Sneakers")
        code, out, err = await _run(env)  # from the watermark: what changed only
        assert code == 0, err
        assert "[families: seen=1 published=1 " in out and "[categories: seen=0 " in out
        code, out, err = await _run(env, "--full")
        assert code == 0, err
        assert "[categories: seen=10 published=0 duplicates=10 " in out  # same `updated`
        assert "[families: seen=5 " in out and "removals=0 calls=1]" in out
        code, _, err = await _run(env, "--resources", "products,channels")
        assert code == 2 and "unknown resources channels" in err


async def test_wrong_credentials_exit_non_zero_with_a_clear_message(
    nats: str, tmp_path: Path
) -> None:
    async with PimSimulator(products=5) as sim, provisioned(nats) as conn:
        creds = _credentials_dir(tmp_path, sim, password="hunter2-wrong")
        code, out, err = await _run(_env(nats, conn.names, sim, creds))
        assert code == 1
        assert "the PIM refused the credentials" in err
        assert "401" in err
        assert "hunter2" not in out + err
        assert not await _has_watermark(conn)


async def test_an_unreadable_item_is_a_one_line_failure(nats: str, tmp_path: Path) -> None:
    """Whatever breaks mid-run, the Job's log says it in one line and nothing is committed."""
    async with PimSimulator(products=5) as sim, provisioned(nats) as conn:
        broken = next(iter(sim.catalog.products.items.values()))
        del broken["updated"]
        code, out, err = await _run(_env(nats, conn.names, sim, _credentials_dir(tmp_path, sim)))
        assert code == 1, out + err
        assert "failed: ValueError: item without an 'updated' date" in err
        assert "Traceback" not in err
        assert not await _has_watermark(conn)


async def test_missing_stream_and_missing_files_are_clear_failures(
    nats: str, tmp_path: Path
) -> None:
    async with PimSimulator(products=5) as sim:
        creds = _credentials_dir(tmp_path, sim)
        ghost = ConnectionNames("tenant-test", "never-provisioned")
        code, _, err = await _run(_env(nats, ghost, sim, creds))
        assert code == 1
        assert "does not exist" in err
        (creds / "clientSecret").unlink()
        code, _, err = await _run(_env(nats, ghost, sim, creds))
        assert code == 1 and "lacks clientSecret" in err


async def test_busy_lock_exits_75(nats: str, tmp_path: Path) -> None:
    async with PimSimulator(products=5) as sim, provisioned(nats) as conn:
        held = ReconcileLock(holder="other-pod", expires_at=datetime.now(UTC).replace(year=2100))
        await conn.kv.put(LOCK_KEY, held.to_bytes())
        code, _, err = await _run(_env(nats, conn.names, sim, _credentials_dir(tmp_path, sim)))
        assert code == 75
        assert "other-pod" in err
        assert not await _has_watermark(conn)


async def test_killed_run_commits_nothing_and_the_rerun_misses_nothing(
    nats: str, tmp_path: Path
) -> None:
    async with (
        PimSimulator(products=4_000, product_models=40, latency=0.03) as sim,
        provisioned(nats) as conn,
    ):
        env = _env(nats, conn.names, sim, _credentials_dir(tmp_path, sim))
        proc = await _start(env, "--lock-ttl", "1s")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while await stream_count(conn) < 300:
            assert proc.returncode is None, "the run ended before it could be killed"
            assert loop.time() < deadline
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        published = await stream_count(conn)
        assert 300 <= published < 4_040
        assert not await _has_watermark(conn)

        # the PIM keeps changing while nobody reconciles
        for _ in range(20):
            sim.edit_product()
        sim.create_product()
        sim.edit_product_model()

        # the dead run's lock expires (1 s lease, no renewal any more)
        while True:
            code, _, err = await _run(env, "--lock-ttl", "1s")
            if code != 75:
                break
            assert loop.time() < deadline
            await asyncio.sleep(0.2)
        assert code == 0, err
        assert await _has_watermark(conn)

        latest: dict[tuple[str, str], datetime] = {}
        for event in await stream_events(conn):
            key = (event.kind.value, event.key)
            latest[key] = max(latest.get(key, event.version), event.version)
        expected = {("product", k): v["updated"] for k, v in sim.catalog.products.items.items()}
        expected.update(
            {
                ("product_model", k): v["updated"]
                for k, v in sim.catalog.product_models.items.items()
            }
        )
        assert {k: v.isoformat() for k, v in latest.items()} == expected


async def test_since_reads_back_past_the_watermark_and_records_the_run(
    nats: str, tmp_path: Path
) -> None:
    """A catch-up (``--since``) reads the window a scheduled run would skip, and the run
    is recorded (``reconcile.last_run``), which is what tells a connection synced."""
    async with PimSimulator(products=30, product_models=3) as sim, provisioned(nats) as conn:
        env = _env(nats, conn.names, sim, _credentials_dir(tmp_path, sim))
        assert await never_synced(conn.kv, ["product", "product_model"])
        now = datetime.now(UTC)
        for kind in ("product", "product_model"):  # a run just finished: the catalog (seeded
            mark = Watermark(updated_since=now, run_finished_at=now)  # an hour ago) is older
            await conn.kv.put(watermark_key(kind), mark.to_bytes())
        code, out, err = await _run(env)
        assert code == 0, err
        assert "seen=0 " in out  # updated > watermark - 5m: nothing
        since = (now - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")  # seeded: < 1 y
        code, out, err = await _run(env, "--since", since)
        assert code == 0, err
        assert "seen=33 published=33" in out
        last = LastRun.model_validate_json((await conn.kv.get(LAST_RUN_KEY)).value or b"")
        assert last.since == datetime.fromisoformat(since.replace("Z", "+00:00"))
        assert not await never_synced(conn.kv, [])
        code, _, err = await _run(env, "--since", "yesterday")
        assert code == 2 and "RFC 3339" in err


async def test_lock_wait_waits_for_the_holder_instead_of_giving_up(
    nats: str, tmp_path: Path
) -> None:
    """A one-off run (initial sync, sync-now, catch-up) finding a scheduled run's lock waits
    for it: its window is repaired after that run, never dropped."""
    async with PimSimulator(products=5) as sim, provisioned(nats) as conn:
        env = _env(nats, conn.names, sim, _credentials_dir(tmp_path, sim))
        until = datetime.now(UTC) + timedelta(seconds=3)
        held = ReconcileLock(holder="scheduled-run", expires_at=until)
        await conn.kv.put(LOCK_KEY, held.to_bytes())
        code, _, err = await _run(env)
        assert code == 75 and "scheduled-run" in err
        code, out, err = await _run(env, "--lock-wait", "60s")
        assert code == 0, err
        assert datetime.now(UTC) >= until  # it ran once the holder's lease was over
        assert "seen=5 " in out
