"""A real nats-server with JetStream (file store) on free loopback ports."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from akeneo_testing.ground.binaries import nats_server
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until

# JetStream reserves every stream's max_bytes (the connections' quotas) in the store, whose
# default size is 75 % of the free disk: a session creating hundreds of streams would be
# refused on a small disk. The store only reserves, it does not allocate; a config with its
# own ``jetstream`` block keeps it.
TEST_STORE = "jetstream { max_file_store: 100TB }\n"


class NatsServer:
    """nats-server -js with a file store that survives ``restart()`` and ``kill()``."""

    def __init__(self, data_dir: Path, *, config: str | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.monitor_port = free_port()
        self.config_file = data_dir / "nats.conf"
        config = config or ""
        if "jetstream" not in config:
            config += TEST_STORE
        self.config_file.write_text(config)
        argv: list[str | Path] = [
            nats_server(),
            "-js",
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-sd", data_dir / "jetstream",
            "-c", self.config_file,
        ]  # fmt: skip
        self.process = ServerProcess("nats-server", argv, data_dir)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    def start(self) -> NatsServer:
        self.process.start()
        wait_until(self._healthy, timeout=30, what="nats-server", proc=self.process)
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        self.process.stop()
        self.start()
