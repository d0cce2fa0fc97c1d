"""Footprint per tenant: an idle receiver and worker, run from the pod specs the operator
renders, measured next to a bare Python in the same run (``python -m bench.footprint``).

The issue's ceilings (receiver 40 MB, worker 50 MB) hold for USS, the private memory one more
tenant adds to a node, and the worker's also for RSS. RSS also counts the pages of the shared
libraries (libpython, OpenSSL, uvloop, ...), which every pod of the image shares; what every
component runs on (asyncio, ssl, aiohttp, nats-py, prometheus-client: the ``libraries-floor``
line) is already 39.4 MB, so the receiver's RSS (which still validates deliveries with
pydantic) is held to a regression ceiling a little above today's figure instead.
"""

from __future__ import annotations

from pathlib import Path

from akeneo_testing.scenarios.footprint import RECEIVER_CEILING_MB, WORKER_CEILING_MB, Line, measure

# Measured on the 2-core test machine (2026-12-05): receiver RSS 54.4-54.5 MB, USS 35.0 MB;
# worker (sqlite sink, PIM hydration) RSS 48.1 MB, USS 31.2 MB, of which msgspec (its
# records) 0.8 MB RSS, 0.3 MB USS. pydantic or httpx in the worker again (+7, +6 MB), or
# psycopg for a sqlite sink (+9 MB), would cross these.
RECEIVER_RSS_MB = 58.0
# Modules an idle pod must not have imported (PYTHONPROFILEIMPORTTIME, read from each
# process's log): each is megabytes for nothing, loaded by a shared module importing more
# than the component uses. None of the operator's stack (kopf, the Kubernetes client, YAML),
# no CRD models (the operator makes the stream), no other component, no unused sink driver.
ANY_COMPONENT = (
    "kopf", "kubernetes_asyncio", "yaml", "cryptography", "psycopg",
    "akeneo_operator", "akeneo_resync", "akeneo_connector.spec", "akeneo_connector.jetstream",
    "akeneo_connector.quotas", "akeneo_cli.local", "akeneo_cli.supervisor", "akeneo_pim.simulator",
    "akeneo_testing",
)  # fmt: skip
NOT_IMPORTED = {
    # its HTTP client is aiohttp's; hydration and sinks are the worker's
    "receiver": (*ANY_COMPONENT, "httpx", "httpcore", "sqlite3", "akeneo_worker"),
    # it reads the stream's messages, never a PIM delivery (the sink here: sqlite); its
    # records are msgspec Structs (akeneo_connector.records), its PIM client runs on aiohttp
    "worker": (
        *ANY_COMPONENT, "pydantic", "pydantic_core", "httpx", "httpcore",
        "akeneo_receiver", "akeneo_pim.formats", "akeneo_pim.normalize",
        "akeneo_pim.passthrough", "akeneo_pim.notifications",
    ),
}  # fmt: skip


async def test_idle_receiver_and_worker_stay_within_their_ceilings(tmp_path: Path) -> None:
    lines = {line.component: line for line in await measure(tmp_path)}
    for line in lines.values():
        print(line.text())
    receiver, worker, bare = lines["receiver"], lines["worker"], lines["bare"]
    # the baseline is a real interpreter: the figures are of processes, not of a misread file
    assert 5 < bare.memory.rss < receiver.memory.rss, lines
    assert receiver.memory.uss <= RECEIVER_CEILING_MB, _why(receiver)
    assert worker.memory.uss <= WORKER_CEILING_MB, _why(worker)
    assert receiver.memory.rss <= RECEIVER_RSS_MB, _why(receiver)
    assert worker.memory.rss <= WORKER_CEILING_MB, _why(worker)
    for component, forbidden in NOT_IMPORTED.items():
        modules = lines[component].modules
        # the log was read: the process's own imports are there
        assert f"akeneo_{component}.metrics" in modules, sorted(modules)
        assert "akeneo_cli.main" in modules, sorted(modules)  # the console script's
        loaded = sorted(name for name in modules if name in forbidden)
        assert not loaded, f"{component} imported {loaded} (python -X importtime)"


def _why(line: Line) -> str:
    return f"{line.text()} (find what it now imports: python -X importtime)"
