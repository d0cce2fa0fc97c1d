"""`akeneo-connector worker` and `replay` as processes: flags/env, health, metrics, rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from nats.js import JetStreamContext

from akeneo_connector.names import ConnectionNames
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from tests.integration.worker.support import event, eventually, publish, sqlite_state


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def _worker(names: ConnectionNames, nats: str, db: Path, port: int, log_dir: Path) -> ServerProcess:
    argv = [sys.executable, "-m", "akeneo_cli", "worker", "--port", str(port)]
    proc = ServerProcess(f"worker-{port}", argv, log_dir)
    env = dict(
        os.environ,
        AKENEO_CONNECTION=names.ref,
        AKENEO_NATS_URL=nats,
        AKENEO_SINK="sqlite",
        AKENEO_SQLITE_PATH=str(db),
        AKENEO_REPLICA="cli",
    )
    return proc.start(env=env)


def _replay(names: ConnectionNames, nats: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "akeneo_cli", "replay", "--connection", names.ref,
         "--nats-url", nats, *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


async def test_worker_process_serves_health_and_metrics_and_replay_rebuilds_a_sink(
    js: JetStreamContext, names: ConnectionNames, nats: str, tmp_path: Path
) -> None:
    port = free_port()
    db = tmp_path / "catalog.db"
    for n in (1, 2):
        await publish(js, names, event(names, "p1", n))
    await publish(js, names, event(names, "p2", 1))
    proc = _worker(names, nats, db, port, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, timeout=30, what="readyz", proc=proc)
        assert _get(f"{base}/healthz") == (200, "ok\n")
        await eventually(lambda: set(sqlite_state(db)) == {"p1", "p2"}, what="applied")

        def metric(line: str) -> bool:
            return line in _get(f"{base}/metrics")[1]

        await eventually(
            lambda: metric('akeneo_worker_applied_total{kind="product",operation="upsert"} 2.0'),
            what="applied metric",
        )
        assert metric('akeneo_worker_skipped_total{reason="outdated"} 1.0')
        assert "akeneo_worker_consumer_lag 0.0" in _get(f"{base}/metrics")[1]

        # Rebuild the sink from scratch: a new, empty database plus a re-delivery of the
        # stream with the guard reset (otherwise everything would be skipped as applied).
        proc.stop()
        db = tmp_path / "rebuilt.db"
        out = _replay(names, nats, "--all-events", "--reset-guard")
        assert '"published": 3' in out
        proc = _worker(names, nats, db, port, tmp_path)
        await eventually(lambda: set(sqlite_state(db)) == {"p1", "p2"}, what="rebuilt")
        assert sqlite_state(db)["p1"]["n"] == 2
    finally:
        proc.stop()
    assert proc.returncode == 0, proc.log_tail()
