"""Operator at scale: N AkeneoConnections in M namespaces on a real control plane.

The command line; the benchmark is ``akeneo_testing.scenarios.operator_scale`` (which
tests/integration/operator/test_scale.py runs at 30 connections).

    .venv/bin/python -m bench.operator_scale [--sizes 100,500,1000 --namespaces 100] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from akeneo_testing.ground.binaries import REPO
from akeneo_testing.scenarios.operator_scale import report, run_sizes
from bench import report as report_docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 500, 1000],
        help="connection counts, comma-separated (each on a fresh control plane)",
    )
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the output into docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="akeneo-operator-bench-"))
    os.chdir(REPO)
    command = report_docs.command(".venv/bin/python -m bench.operator_scale")
    try:
        with report_docs.published(
            "operator-scale", "Operator at scale", command, write=args.write_docs
        ):
            results = asyncio.run(
                run_sizes(
                    args.sizes,
                    args.namespaces,
                    root,
                    idle_seconds=args.idle_seconds,
                    steady_seconds=args.steady_seconds,
                    timeout=args.timeout,
                )
            )
            met = report(results, args.steady_seconds)
        return 0 if met else 1
    finally:
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
