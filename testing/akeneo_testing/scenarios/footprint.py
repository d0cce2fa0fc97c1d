"""Footprint per tenant: the idle memory of a receiver and a worker, next to a bare Python.

Both components run as real processes, planned from the pod specs the operator renders
(``akeneo_testing.podrunner``: the containers' exact command and env, their Secret volumes written
to files; only mount paths and ports are moved) against a real nats-server and the PIM
simulator (REST for hydration). The stream and the KV bucket exist first, as the operator
makes them. Before measuring, every path an idle pod has taken once is warmed: legacy batches and
Event Platform deliveries through the receiver over TLS, their hydration and the sqlite sink
in the worker (the default sink), probes and a metrics scrape on each. Then the pipeline
idles and each process's memory is read from ``/proc``: VmRSS, PSS and USS (private pages,
``smaps_rollup``), with a ``python -c 'import time; time.sleep(...)'`` started the same way
as the baseline (what any Python process costs), an interpreter importing only the libraries
every component runs on (``libraries-floor``: asyncio and ssl, aiohttp's server, nats-py,
prometheus-client), and interpreters importing each component's third-party libraries.
Targets: receiver at most 40 MB, worker at most 50 MB (checked against RSS and USS).
The components run with ``PYTHONPROFILEIMPORTTIME=1``: every module they import (or try to),
whenever, is in their log, and ``Line.modules`` (``tests/e2e/test_footprint.py`` checks it).

    .venv/bin/python -m bench.footprint [--write-docs] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import sqlite3
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from akeneo_connector.jetstream import ensure_all
from akeneo_connector.names import ConnectionNames
from akeneo_connector.spec import AkeneoConnectionSpec
from akeneo_operator.children import receiver_deployment, worker_deployment
from akeneo_operator.pods import BuildInput
from akeneo_operator.settings import OperatorSettings
from akeneo_pim.simulator import EventSender, PimSimulator
from akeneo_testing.ground.nats import NatsServer
from akeneo_testing.ground.processes import ServerProcess, free_port, wait_until
from akeneo_testing.ground.tls import CertificateAuthority
from akeneo_testing.podrunner import ContainerPlan, plan_container
from akeneo_worker.sinks.sqlite import DEFAULT_TABLE

RECEIVER_CEILING_MB = 40.0
WORKER_CEILING_MB = 50.0
LEGACY_SECRET = "footprint-legacy-secret"
PLATFORM_SECRET = "footprint-platform-secret"
VENV_BIN = Path(sys.executable).parent
NAMES = ConnectionNames("tenant-shop", "shop")
# Reference processes, started like the components: a bare interpreter (the baseline), and
# interpreters that only import the third-party libraries each component runs on: the floor
# that no trimming of the components' own imports can go below.
LIBRARIES_FLOOR = "import asyncio, ssl, aiohttp.web, nats.js, prometheus_client"
RECEIVER_LIBRARIES = (
    f"{LIBRARIES_FLOOR}; import argparse, uvloop, msgspec; from pydantic import BaseModel"
)
REFERENCES = {
    "bare": "pass",
    # what no component can go below: its HTTP server, NATS client, metrics and TLS
    "libraries-floor": LIBRARIES_FLOOR,
    "receiver-libraries": RECEIVER_LIBRARIES,
    "worker-libraries": f"{LIBRARIES_FLOOR}; import argparse, uvloop, msgspec, sqlite3",
}
IDLE_SECONDS = 5.0  # after the last event and scrape, before the first sample
SAMPLES = 3  # one a second; the median is reported


@dataclass(frozen=True)
class Memory:
    """One process's memory, in MB (2**20 bytes)."""

    rss: float
    pss: float
    uss: float


@dataclass(frozen=True)
class Line:
    component: str
    memory: Memory
    baseline: Memory
    # every module the process imported, up to the sample (receiver and worker only)
    modules: frozenset[str] = frozenset()

    @property
    def over_baseline(self) -> float:
        return self.memory.rss - self.baseline.rss

    def text(self) -> str:
        m = self.memory
        return (
            f"{self.component:<18} RSS {m.rss:5.1f} MB | PSS {m.pss:5.1f} MB | USS {m.uss:5.1f} MB"
            f" | minus baseline {self.over_baseline:5.1f} MB"
        )


def memory(pid: int) -> Memory:
    """VmRSS from ``status``; PSS and USS (private clean + dirty) from ``smaps_rollup``."""
    kb: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                kb[key] = int(rest.split()[0])
    uss = kb["Private_Clean"] + kb["Private_Dirty"]
    return Memory(kb["VmRSS"] / 1024, kb["Pss"] / 1024, uss / 1024)


def median(samples: list[Memory]) -> Memory:
    return Memory(
        statistics.median(s.rss for s in samples),
        statistics.median(s.pss for s in samples),
        statistics.median(s.uss for s in samples),
    )


def secret(data: dict[str, str | bytes]) -> dict[str, Any]:
    raw = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
    return {"data": {k: base64.b64encode(v).decode() for k, v in raw.items()}}


def build_input(pim_url: str) -> BuildInput:
    """A tenant with the defaults (sqlite sink, one worker) and PIM credentials."""
    spec = AkeneoConnectionSpec.model_validate(
        {
            "pim": {"url": pim_url, "credentialsSecret": "shop-pim", "allowPrivateAddresses": True},
            "receiver": {"signatureSecret": "shop-events"},
        }
    )
    settings = OperatorSettings(
        nats_url="nats://nats.nats:4222", priority=1, allow_private_pim=True
    )
    return BuildInput(names=NAMES, spec=spec, settings=settings, tls_secret="shop-tls")


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def plan(
    deployment: dict[str, Any],
    container: str,
    root: Path,
    secrets: dict[str, dict[str, Any]],
    overrides: dict[str, str],
) -> ContainerPlan:
    """The container's command and env as the pod spec says; only paths and ports moved."""
    spec = pod_spec(deployment)
    result = plan_container(
        spec, container, root=root / f"{container}-pod", secrets=secrets, config_maps={},
        overrides=overrides,
    )  # fmt: skip
    # nothing of this process's own settings may leak into the component
    declared = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    result.env = {
        k: v
        for k, v in result.env.items()
        if not k.startswith(("AKENEO_", "MALLOC_", "PYTHON")) or k in declared or k in overrides
    }
    result.write_files()
    return result


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:
        return bool(resp.status == 200)


async def consumer_lag(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(NAMES.stream, NAMES.consumer)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def drained(nats_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await consumer_lag(nats_url):
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not drain the stream")
        await asyncio.sleep(0.2)


async def measure(
    root: Path, *, rounds: int = 3, extra_env: dict[str, str] | None = None
) -> list[Line]:
    """Start everything under ``root``, warm, idle, sample: one line per process.

    ``extra_env`` (``--env``) is added to every process's env: to try a runtime knob before
    putting it in the pod spec."""
    (root / "nats").mkdir()
    nats_server = NatsServer(root / "nats").start()
    processes: list[ServerProcess] = []
    try:
        async with PimSimulator(products=50, product_models=5) as sim:
            return await _measure(root, nats_server, sim, processes, rounds, extra_env or {})
    finally:
        for proc in reversed(processes):
            proc.stop(timeout=15)
        nats_server.stop()


async def _measure(
    root: Path,
    nats_server: NatsServer,
    sim: PimSimulator,
    processes: list[ServerProcess],
    rounds: int,
    extra_env: dict[str, str],
) -> list[Line]:
    inp = build_input(sim.url)
    nc = await nats.connect(nats_server.url)
    await ensure_all(nc.jetstream(timeout=10), NAMES, inp.spec.stream)
    await nc.close()
    ca = CertificateAuthority("footprint CA")
    pair = ca.issue("localhost")
    creds = sim.credentials
    secrets = {
        "shop-tls": secret({"tls.crt": pair.cert_pem, "tls.key": pair.key_pem}),
        "shop-events": secret(
            {"eventsApiSecret": LEGACY_SECRET, "eventPlatformSecrets": PLATFORM_SECRET}
        ),
        "shop-pim": secret(
            {
                "clientId": creds.client_id.get_secret_value(),
                "clientSecret": creds.client_secret.get_secret_value(),
                "username": creds.username.get_secret_value(),
                "password": creds.password.get_secret_value(),
            }
        ),
    }
    port, admin_port, worker_port = free_port(), free_port(), free_port()
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # the image's akeneo-connector
    common = {"PATH": path, "AKENEO_NATS_URL": nats_server.url}
    plans = {
        "receiver": plan(
            receiver_deployment(inp), "receiver", root, secrets,
            {**common, "AKENEO_HOST": "127.0.0.1", "AKENEO_PORT": str(port),
             "AKENEO_ADMIN_PORT": str(admin_port)},
        ),
        "worker": plan(
            worker_deployment(inp), "worker", root, secrets,
            {**common, "AKENEO_PORT": str(worker_port)},
        ),
    }  # fmt: skip
    for name, code in REFERENCES.items():  # same env as the worker's: only the code differs
        argv = [sys.executable, "-c", f"{code}; import time; time.sleep(3600)"]
        env = {**plans["worker"].env, **extra_env}
        processes.append(ServerProcess(name, argv, root).start(env=env))
    for name, planned in plans.items():
        # every import, whenever it happens, is written to the process's log: what it loaded
        # at run time, not what a static reading of its modules suggests
        env = {**planned.env, **extra_env, "PYTHONPROFILEIMPORTTIME": "1"}
        processes.append(ServerProcess(name, planned.argv, root).start(env=env))
    receiver, worker = processes[-2], processes[-1]
    admin = f"http://127.0.0.1:{admin_port}"
    health = f"http://127.0.0.1:{worker_port}"
    for proc, probe in ((receiver, f"{admin}/readyz"), (worker, f"{health}/readyz")):
        check = functools.partial(ready, probe)
        await asyncio.to_thread(wait_until, check, timeout=60, what=proc.name, proc=proc)
    url = f"https://localhost:{port}/events"
    context = ca.client_context()
    legacy = EventSender(url, events_api_secret=LEGACY_SECRET, verify=context)
    platform_sender = EventSender(
        url, format="event_platform", verify=context,
        event_platform_secrets=(PLATFORM_SECRET, None),
    )  # fmt: skip
    async with legacy, platform_sender:
        for _ in range(rounds):
            batch = [sim.catalog.random_change() for _ in range(10)]
            singles = [sim.catalog.random_change() for _ in range(5)]
            sent = await legacy.send(batch)
            assert sent.accepted == sent.deliveries, sent
            sent = await platform_sender.send(singles)
            assert sent.accepted == sent.deliveries, sent
    await drained(nats_server.url)
    sink = Path(plans["worker"].env["AKENEO_SQLITE_PATH"])
    with contextlib.closing(sqlite3.connect(sink)) as db:
        [(rows,)] = db.execute(f"SELECT count(*) FROM {DEFAULT_TABLE}")
    assert rows, "nothing reached the sqlite sink"
    for server in (admin, health):  # what the kubelet and Prometheus do to an idle pod
        for endpoint in ("healthz", "readyz", "metrics"):
            get(f"{server}/{endpoint}")
    for proc in processes:
        assert proc.alive, f"{proc.name} exited:\n{proc.log_tail()}"
    await asyncio.sleep(IDLE_SECONDS)
    samples: dict[str, list[Memory]] = {p.name: [] for p in processes}
    for i in range(SAMPLES):
        if i:
            await asyncio.sleep(1.0)
        for proc in processes:
            samples[proc.name].append(memory(proc.pid))
    base = median(samples["bare"])
    return [
        Line(p.name, median(samples[p.name]), base, imported(p) if p.name in plans else frozenset())
        for p in processes
    ]


def imported(proc: ServerProcess) -> frozenset[str]:
    """The modules ``PYTHONPROFILEIMPORTTIME`` reported in the process's log so far."""
    names = set()
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                names.add(name)
    return frozenset(names)


def verdict(lines: list[Line]) -> str:
    """The issue's ceilings against RSS, and against USS (what one more tenant adds to a
    node: the shared libraries' pages are the image's, shared by every pod using them)."""
    by = {line.component: line for line in lines}
    parts = []
    for component, ceiling in (("receiver", RECEIVER_CEILING_MB), ("worker", WORKER_CEILING_MB)):
        m = by[component].memory
        for label, value in (("RSS", m.rss), ("USS", m.uss)):
            state = "ok" if value <= ceiling else "MISSED"
            parts.append(f"{component} {label} {value:.1f} <= {ceiling:.0f} MB: {state}")
    return "targets: " + "; ".join(parts)
