"""How local mode lays out its data dir, so other commands can find a running local mode.

``akeneo-connector reconcile -f connection.yaml`` reads the same manifest, finds the data
dir local mode uses for it (``--data-dir`` or the default below), the NATS URL local mode
wrote there (``local.json``; the embedded nats-server listens on a free port) and the
Secret files it wrote (``secrets/<secret>/<key>``, as a kubelet mounts them), and runs with
exactly the env local mode gives its own reconcile child.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akeneo_connector import component_env
from akeneo_connector.component_env import Destination, Volume
from akeneo_connector.manifest import Connection
from akeneo_connector.names import ConnectionNames

LOCK_FILE = "local.lock"  # flock'ed by the running local mode (``supervisor.RunLock``)
RUNTIME_FILE = "local.json"
SECRETS_DIR = "secrets"


def default_data_dir(names: ConnectionNames) -> Path:
    return Path(".akeneo-local") / f"{names.namespace}-{names.name}"


@dataclass(frozen=True)
class Runtime:
    """What a running local mode publishes about itself (no secret in it)."""

    nats_url: str
    pid: int


def write_runtime(data_dir: Path, nats_url: str) -> None:
    path = data_dir / RUNTIME_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a URL may hold a user
    with os.fdopen(fd, "w") as fh:
        json.dump({"natsUrl": nats_url, "pid": os.getpid()}, fh)
    tmp.replace(path)


def clear_runtime(data_dir: Path) -> None:
    (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def read_runtime(data_dir: Path) -> Runtime | None:
    try:
        raw = json.loads((data_dir / RUNTIME_FILE).read_text())
        return Runtime(str(raw["natsUrl"]), int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def local_running(data_dir: Path) -> bool:
    """A local mode holds the data dir's lock right now."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LocalPlacement:
    """Where things are for local mode's children (``component_env.Placement``): Secret keys
    as files under ``secrets/``, a certificate in ``tls/``, loopback ports."""

    root: Path
    nats_url: str
    receiver_port: int = 8443
    admin_port: int = 0
    worker: int = 0

    def common(self) -> dict[str, Any]:
        return {}

    def secret_dir(self, volume: Volume, secret: str) -> str:
        return str(self.root / SECRETS_DIR / secret)

    def allows(self, destination: Destination) -> bool:
        return True  # asked in the manifest: local mode's platform is you

    def tls_files(self) -> tuple[str, str] | None:
        return str(self.root / "tls" / "tls.crt"), str(self.root / "tls" / "tls.key")

    def receiver_listen(self) -> dict[str, Any]:
        return {"port": self.receiver_port, "admin_port": self.admin_port, "host": "127.0.0.1"}

    def worker_port(self) -> int:
        return self.worker

    def gap_spool_file(self) -> str:
        return str(self.root / "receiver-gaps.json")

    def notification_spool_file(self) -> str:
        return str(self.root / "receiver-notifications.json")

    def event_spool_file(self) -> str:
        return str(self.root / "receiver-events.spool")

    def data_dir(self) -> str:
        return str(self.root)


def reconcile_env(connection: Connection, data_dir: Path, nats_url: str) -> dict[str, str]:
    """The env of local mode's reconcile runs (the reconcile pods' env, with local paths)."""
    place = LocalPlacement(data_dir, nats_url)
    return dict(component_env.reconcile(connection.names, connection.spec, place).env)
