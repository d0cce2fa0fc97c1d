"""Footprint per tenant: the idle memory of a receiver and a worker, next to a bare Python.

The command line; the measurement is ``akeneo_testing.scenarios.footprint`` (which
tests/e2e/test_footprint.py runs against its ceilings).

    .venv/bin/python -m bench.footprint [--markdown] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from akeneo_testing.scenarios.footprint import markdown, measure, verdict


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="also print a markdown section")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="add to every process's env (to try a runtime knob); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        lines = await measure(Path(tmp), extra_env=extra)
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
    if args.markdown:
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        print()
        print(markdown(lines, f"{when}, load average {os.getloadavg()[0]:.2f}"))


if __name__ == "__main__":
    asyncio.run(main())
