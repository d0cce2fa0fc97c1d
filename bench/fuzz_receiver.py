"""Long fuzzing run of the receiver: ``python -m bench.fuzz_receiver [examples] [--write-docs]``.

Runs ``tests/security/test_fuzz.py`` (live receiver subprocess, real TLS, real nats-server)
with ``FUZZ_EXAMPLES`` per strategy (default 5000) and prints the totals it reports: distinct
generated inputs (and how many were sent: hypothesis may draw one twice), the memory test's
replays of its four fixed bodies, counted apart, answers by status code, RSS before/after.
CI runs the same file with a smaller count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import report

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="?", default="5000", help="per strategy")
    parser.add_argument("--write-docs", action="store_true",
                        help="put this run's output in docs/benchmarks.md")  # fmt: skip
    args = parser.parse_args()
    command = report.command(".venv/bin/python -m bench.fuzz_receiver")
    with report.published("fuzzing", "Fuzzing", command, write=args.write_docs):
        return run(args.examples)


def run(examples: str) -> int:
    env = os.environ | {"FUZZ_EXAMPLES": examples}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/security/test_fuzz.py", "-q", "-s",
         "-p", "no:cacheprovider", "--timeout", "3600"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    report_lines = [line for line in lines if line.startswith(("fuzz totals", "  "))]
    print(f"fuzz_receiver: FUZZ_EXAMPLES={examples}, {time.monotonic() - started:.0f} s")
    print("\n".join(report_lines) or proc.stdout[-3000:])
    print(lines[-1] if lines else proc.stderr[-2000:])
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)  # a failed run writes nothing to the docs
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
