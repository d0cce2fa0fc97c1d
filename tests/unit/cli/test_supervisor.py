"""Local mode's children: restarted with backoff when they die, one run per data dir."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import pytest

from akeneo_cli import supervisor
from akeneo_cli.supervisor import Child, DataDirBusy, RunLock

# -c ignores the arguments after the code: the last one makes the command line look like
# one of local mode's components, which is what RunLock checks before stopping a leftover
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "akeneo_cli"]


async def test_a_child_that_dies_is_restarted_with_backoff_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START", 0.1)
    caplog.set_level(logging.WARNING, logger="akeneo_cli.local")
    child = Child("worker", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "w.log")
    task = asyncio.create_task(child.supervise())
    deadline = asyncio.get_running_loop().time() + 30
    while child.restarts < 4:
        assert asyncio.get_running_loop().time() < deadline, caplog.text
        await asyncio.sleep(0.05)
    await child.stop()
    await asyncio.wait_for(task, 10)
    delays = [float(d) for d in re.findall(r"worker exited with code 3; restarting in ([\d.]+)s",
                                           caplog.text)]  # fmt: skip
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]


async def test_one_local_mode_per_data_dir(tmp_path: Path) -> None:
    first = RunLock(tmp_path)
    assert first.acquire() == 0
    with pytest.raises(DataDirBusy, match=r"in use by another akeneo-connector local \(pid \d+"):
        RunLock(tmp_path).acquire()
    first.release()
    second = RunLock(tmp_path)
    assert second.acquire() == 0
    second.release()


async def test_leftovers_of_a_run_killed_alone_are_stopped_before_the_next(tmp_path: Path) -> None:
    dead_run = RunLock(tmp_path)
    dead_run.acquire()
    ours = Child("worker", SLEEPER, {}, tmp_path / "w.log")
    stranger = Child("other", SLEEPER[:-1], {}, tmp_path / "o.log")  # not one of our commands
    await ours.start()
    await stranger.start()
    try:
        dead_run.record([ours, stranger])
        dead_run.release()  # as if local mode died without stopping its children

        next_run = RunLock(tmp_path)
        assert next_run.acquire() == 1
        assert ours.process is not None
        assert await asyncio.wait_for(ours.process.wait(), 15) < 0  # stopped by a signal
        assert stranger.running  # a process that is not ours is never touched
        next_run.release()
    finally:
        await stranger.stop()
        await ours.stop()
