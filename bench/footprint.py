"""Footprint per tenant: the idle memory of a receiver and a worker, next to a bare Python.

The command line; the measurement is ``akeneo_testing.scenarios.footprint`` (which
tests/e2e/test_footprint.py runs against its ceilings).

    .venv/bin/python -m bench.footprint [--write-docs] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from pathlib import Path

from akeneo_testing.scenarios.footprint import measure, verdict
from bench import report


async def run(extra_env: dict[str, str]) -> None:
    print(f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        lines = await measure(Path(tmp), extra_env=extra_env)
    for line in lines:
        print(line.text(), flush=True)
    print(
        json.dumps(
            {
                ln.component: {"rss": round(ln.memory.rss, 1), "uss": round(ln.memory.uss, 1)}
                for ln in lines
            }
        )
    )
    print(verdict(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="add to every process's env (to try a runtime knob); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    command = report.command(".venv/bin/python -m bench.footprint")
    with report.published("footprint", "Footprint per tenant", command, write=args.write_docs):
        asyncio.run(run(extra))


if __name__ == "__main__":
    main()
