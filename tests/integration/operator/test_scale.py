"""The operator-at-scale benchmark in the short form CI runs (full: ``make bench-operator``).

Thirty connections in three namespaces on their own control plane, the operator running as
the chart's ServiceAccount: every connection becomes Ready, nothing the operator owns changes
while nothing changes (no status write, no child re-applied, no timer touching objects), and
after a restart with every spec changed meanwhile, every connection converges again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from akeneo_testing.scenarios.operator_scale import Bench, report

pytestmark = [pytest.mark.kube, pytest.mark.slow]

STEADY_SECONDS = 20.0


@pytest.mark.timeout(900)
async def test_thirty_connections_are_ready_and_nothing_churns(tmp_path: Path) -> None:
    bench = Bench(30, 3, tmp_path, idle_seconds=3, steady_seconds=STEADY_SECONDS, timeout=300)
    result = await bench.run()
    report([result], STEADY_SECONDS)
    assert result.ready_seconds is not None, result
    assert result.children > 0, result  # the window looked at real children
    assert result.children_changed == 0, result
    assert result.connections_changed == 0, result
    assert result.restart_seconds is not None, result
    assert result.handler_errors == 0, result
