"""The fault-injection scenarios, in the short form CI runs (full: `python -m bench.faults`).

Real processes, real SIGKILLs: no acknowledged change may be lost, no resource may go
backwards at the sink, a merchant de-duplicating on ``change_id`` never applies a state twice.
While nats-server is down the receiver keeps verified events on its disk and answers 200
(its event spool): they must all reach the sink once it is back. The sink outage runs twice:
webhook answering 503, and the postgres sink's real PostgreSQL stopped; the worker kills
twice: webhook replicas (which claim each resource in the guard) and postgres replicas
(which do not: the table guards itself). The clustered one kills a JetStream node that does
not lead the stream, then the stream's leader: while nats-server elects another (its Raft
election timeout, 4 to 9 s) the receiver spools, so the PIM sees non-200 answers only for the
requests in flight on a dead connection, within ``KILL_WINDOW`` (2 s) of a kill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from akeneo_testing.scenarios.faults import KILL_WINDOW, SCENARIOS, print_table, run_scenarios

# Legacy answers must come within 0.5 s (the PIM's deadline; the benchmark reports it: 0.35 s
# at worst on a quiet run). An overloaded 2-core machine stalls the processes for seconds,
# kills or not (up to 3.2 s seen at load average 9, and 1 answer in ~600 past 5 s), hence a
# margin: at most 1 legacy answer in 100 may take longer than the sender's 5 s.
# Legacy answers must come within 0.5 s (bench/faults.py asserts it); with the event spool a
# leader election costs no wait beyond the 0.4 s ack budget. A loaded 2-core machine stalls
# the processes now and then, kills or not (at load average 10: 22 of 381 legacy answers over
# 0.5 s before the first kill, the slowest 2.96 s): CI allows 2 s (LEGACY_CI_MARGIN) for all
# but 2 in 100, and no answer later than the sender's 5 s.
CI_LEGACY_OVER_MARGIN = 0.02
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
    # the fault really happened: the receiver spooled while the queue was down (and, with
    # room in its spool, refused nothing), and the PIM's storm was met with waits and
    # retries, not luck
    if scenario == "nats-restart":
        assert row.facts["answered_200_during_outage"] > 0, row
        assert row.facts["spooled"] > 0, row
        assert row.facts["answered_503_during_outage"] == 0, row
        assert row.facts["spool_drained"] == row.facts["spooled"], row
    if scenario == "pim-storm":
        assert row.facts["throttled_429"] > 0 and row.facts["retries"] > 0, row
    if scenario == "cluster-kill":
        # every client had the three URLs and the receiver spools while no leader takes
        # events: non-200 answers only within 2 s of a kill (the requests in flight on a
        # dead connection), legacy answers within the CI margin (all but 2 in 100)
        assert row.facts["refused_outside_kill_window"] == 0, row
        assert row.facts["non_leader_window_ms"] <= KILL_WINDOW * 1000, row
        assert row.facts["leader_window_ms"] <= KILL_WINDOW * 1000, row
        over = row.facts["legacy_over_ci_margin"]
        assert over <= CI_LEGACY_OVER_MARGIN * row.facts["legacy_answers"], row
        assert row.facts["legacy_timeouts"] == 0, row
        # the leader's death was felt: events were spooled, and all stored afterwards
        assert row.facts["spooled"] > 0, row
        assert row.facts["spool_drained"] == row.facts["spooled"], row
