"""A real PostgreSQL (Debian's binaries) on a free loopback port with a throw-away cluster.

PostgreSQL refuses to run as root: when the tests run as root, the cluster directory is
given to the ``postgres`` OS user and the server runs as that user (``setpriv`` execs in
place, so signals reach the postmaster directly). Trust authentication on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from akeneo_testing.ground.binaries import MissingBinary
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until

_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")


def pg_binary(name: str) -> Path:
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for directory in _BIN_DIRS:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinary(f"{name} is missing: install Debian's postgresql package")


class PostgresServer:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        # A directory of its own under /tmp: the postgres user cannot enter root's pytest dirs.
        self.data_dir = Path(tempfile.mkdtemp(prefix="akeneo-pg-"))
        self.process: ServerProcess | None = None

    def _prefix(self) -> list[str]:
        if not self._as_root:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ready(self) -> bool:
        with psycopg.connect(self.dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def start(self) -> PostgresServer:
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        cluster = self.data_dir / "cluster"
        subprocess.run(
            [*self._prefix(), str(pg_binary("initdb")), "-D", str(cluster), "-U", "postgres",
             "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        argv: list[str | Path] = [
            *self._prefix(), pg_binary("postgres"), "-D", cluster, "-p", str(self.port),
            "-k", self.data_dir, "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        self.process = ServerProcess("postgres", argv, self.log_dir).start()
        wait_until(self._ready, timeout=60, what="postgres", proc=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()  # SIGTERM: smart shutdown
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def pause(self) -> None:
        """Fast shutdown (SIGINT): sessions are cut, the cluster is kept for ``resume``."""
        assert self.process is not None
        self.process.stop(sig=signal.SIGINT)

    def resume(self) -> None:
        assert self.process is not None
        self.process.start()
        wait_until(self._ready, timeout=60, what="postgres", proc=self.process)

    def restart(self) -> None:
        assert self.process is not None
        self.process.stop()
        self.process.start()
        wait_until(self._ready, timeout=60, what="postgres", proc=self.process)
