"""The fault-injection scenarios, in the short form CI runs (full: `python -m bench.faults`).

Real processes, real SIGKILLs: no acknowledged change may be lost, no resource may go
backwards at the sink, a merchant de-duplicating on ``change_id`` never applies a state twice,
and while nats-server is down no delivery may be answered 200. The sink outage runs twice:
webhook answering 503, and the postgres sink's real PostgreSQL stopped; the worker kills
twice: webhook replicas (which claim each resource in the guard) and postgres replicas
(which do not: the table guards itself). The clustered one kills a JetStream node that does
not lead the stream, then the stream's leader: only the leader's death is seen by the PIM,
for as long as nats-server takes to elect another (its Raft election timeout, 4 to 9 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from akeneo_testing.scenarios.faults import KILL_WINDOW, SCENARIOS, print_table, run_scenarios

# Legacy answers must come within 0.5 s (the PIM's deadline; the benchmark reports it: 0.35 s
# at worst on a quiet run). An overloaded 2-core machine stalls the processes for seconds,
# kills or not (up to 3.2 s seen at load average 9, and 1 answer in ~600 past 5 s), hence a
# margin: at most 1 legacy answer in 100 may take longer than the sender's 5 s.
# Raft election (at most 9 s) + an Event Platform request's 4 s budget + scheduling margin.
CI_LEADER_WINDOW_MS = 15_000
# The legacy sender waits 5 s here, not the PIM's 0.5 s (which bench/faults.py applies and
# reports): on a loaded 2-core machine a third or more of the answers can take longer than
# 0.5 s, kills or not, and would count as failures of the pipeline.
CI_LEGACY_TIMEOUT = 5.0
# POSTs of the load not answered 200 (503, no answer within 5 s, connection error), as a
# share of all, where the receiver and NATS are left alone: only a stalled machine refuses
# some (an ack slower than the receiver's 0.4 s budget). Where one of them is killed, the
# share depends on how long it takes to come back within these 6 s runs: reported, and
# bounded by the scenario's own figures (the outage's 503s, the refusal windows per kill).
QUIET_NOT_200 = 0.10
RECEIVING_PATH_FAULTS = {"receiver-kill", "nats-restart", "cluster-kill"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_fault_scenario_loses_nothing(scenario: str, tmp_path: Path) -> None:
    [row] = await run_scenarios(
        [scenario], seconds=6.0, rate=120.0, root=tmp_path, legacy_timeout=CI_LEGACY_TIMEOUT
    )
    print_table([row])
    assert row.lost == 0, row
    assert row.backwards == 0, row
    assert row.duplicates_applied == 0, row
    if row.dead_letters is not None:  # the outage lasted past maxDeliver: replay was needed
        assert row.dead_letters > 0, row
    assert row.applied > 0, row
    if scenario != "pim-storm":
        assert row.answered_200 > 0, row
    if scenario not in RECEIVING_PATH_FAULTS:
        assert sum(row.not_200.values()) <= QUIET_NOT_200 * row.deliveries, row
    # the fault really happened: the receiver said 503 while the queue was down, and the
    # PIM's storm was met with waits and retries, not luck
    if scenario == "nats-restart":
        assert row.facts["answered_503_during_outage"] > 0, row
    if scenario == "pim-storm":
        assert row.facts["throttled_429"] > 0 and row.facts["retries"] > 0, row
    if scenario == "cluster-kill":
        # every client had the three URLs: a dead server that leads nothing costs no more
        # than the requests in flight on it, answered 503 at once
        assert row.facts["non_leader_window_ms"] <= KILL_WINDOW * 1000, row
        assert 0 < row.facts["leader_window_ms"] <= CI_LEADER_WINDOW_MS, row
        assert row.facts["legacy_timeouts"] * 100 <= row.facts["legacy_answers"], row
