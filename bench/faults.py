"""Fault injection: real processes, real signals, a steady mixed load, and the figures.

The command line; the scenarios are ``akeneo_testing.scenarios.faults`` (which
tests/e2e/test_faults.py runs in short form).

    .venv/bin/python -m bench.faults            # every scenario, full length
    .venv/bin/python -m bench.faults --quick    # short runs
    .venv/bin/python -m bench.faults --scenario receiver-kill --scenario nats-restart
    .venv/bin/python -m bench.faults --write-docs   # and put the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from akeneo_testing.scenarios.faults import SCENARIOS, print_table, run_scenarios
from bench import report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--rate", type=float, default=None, help="events/s offered")
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    seconds = 8.0 if args.quick else 30.0
    rate = args.rate or (150.0 if args.quick else 300.0)
    command = report.command(".venv/bin/python -m bench.faults")
    with report.published("faults", "Faults", command, write=args.write_docs):
        with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
            rows = asyncio.run(
                run_scenarios(args.scenario or list(SCENARIOS), seconds, rate, Path(tmp))
            )
        print(f"load: {rate:.0f} events/s offered for {seconds:.0f} s per scenario, "
              f"mixed formats")  # fmt: skip
        print_table(rows)
    for r in rows:
        for miss in r.missed:
            print(f"target missed: {r.scenario}: {miss}")
    ok = all(r.lost == 0 and r.backwards == 0 and r.duplicates_applied == 0 for r in rows)
    return 0 if ok and not any(r.missed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
