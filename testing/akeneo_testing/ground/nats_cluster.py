"""Three real nats-servers as one JetStream cluster (routes on loopback, file storage).

Each node keeps its ports and store dir across ``kill()`` and ``start()``, as a pod with a
persistent volume would: a restarted node rejoins and catches up from its own store.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from akeneo_testing.ground.binaries import nats_server
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until

CLUSTER_NAME = "akeneo-ground"


class ClusterNode:
    """One member: client, route and monitoring ports fixed for its whole life."""

    def __init__(self, name: str, data_dir: Path) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = free_port()
        self.route_port = free_port()
        self.monitor_port = free_port()
        self.config_file = data_dir / "nats.conf"
        self.process = ServerProcess("nats-server", [nats_server(), "-c", self.config_file],
                                     data_dir)  # fmt: skip

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self, peers: list[ClusterNode]) -> None:
        routes = ", ".join(f'"nats://127.0.0.1:{p.route_port}"' for p in peers if p is not self)
        self.config_file.write_text(
            f'server_name: "{self.name}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'jetstream {{ store_dir: "{self.data_dir / "jetstream"}" }}\n'
            f'cluster {{ name: "{CLUSTER_NAME}", listen: 127.0.0.1:{self.route_port}, '
            f"routes: [{routes}] }}\n"
        )

    def jsz(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.monitor_port}/jsz"
        with urllib.request.urlopen(url, timeout=1) as resp:
            found: dict[str, Any] = json.load(resp)
            return found

    @property
    def alive(self) -> bool:
        return self.process.alive

    def start(self) -> None:
        self.process.start()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the peers, no leadership handed over."""
        self.process.kill()


class NatsCluster:
    """``servers`` (every client URL) and ``url`` (the same, comma-separated) to connect."""

    def __init__(self, data_dir: Path, size: int = 3) -> None:
        self.nodes = [ClusterNode(f"n{i + 1}", _mkdir(data_dir / f"n{i + 1}")) for i in range(size)]
        for node in self.nodes:
            node.write_config(self.nodes)

    @property
    def servers(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        return ",".join(self.servers)

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def _ready(self) -> bool:
        """A meta leader every live node agrees on, and every peer current on the leader."""
        live = [n for n in self.nodes if n.alive]
        metas = [n.jsz().get("meta_cluster") or {} for n in live]
        leaders = {m.get("leader") for m in metas}
        if len(leaders) != 1 or not next(iter(leaders)):
            return False
        leader = self.node(str(next(iter(leaders))))
        replicas = (leader.jsz().get("meta_cluster") or {}).get("replicas") or []
        current = {r["name"] for r in replicas if r.get("current") and not r.get("offline")}
        return current >= {n.name for n in live if n is not leader}

    def wait_ready(self, timeout: float = 60) -> None:
        """Ready once the live nodes agree (a node killed on purpose may stay dead)."""
        try:
            wait_until(self._ready, timeout=timeout, what="nats cluster")
        except TimeoutError as exc:
            tails = "\n".join(f"--- {n.name}\n{n.process.log_tail(10)}" for n in self.nodes)
            raise TimeoutError(f"{exc}\n{tails}") from None

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        self.wait_ready()
        return self

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again (same ports, same store) and wait until it is current."""
        node.kill()
        node.start()
        self.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.process.stop()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def stream_leader(js: JetStreamContext, stream: str) -> str:
    """The server name leading ``stream`` now (STREAM.INFO cluster.leader)."""
    info = await js.stream_info(stream)
    leader = info.cluster.leader if info.cluster is not None else None
    if not leader:
        raise LookupError(f"stream {stream} has no leader")
    return leader
