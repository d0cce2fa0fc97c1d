"""Long fuzzing run of the receiver: ``python bench/fuzz_receiver.py [examples]``.

Runs ``tests/security/test_fuzz.py`` (live receiver subprocess, real TLS, real nats-server)
with ``FUZZ_EXAMPLES`` per strategy (default 5000) and prints the totals it reports: distinct
generated inputs (and how many were sent: hypothesis may draw one twice), the memory test's
replays of its four fixed bodies, counted apart, answers by status code, RSS before/after.
CI runs the same file with a smaller count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "5000"
    env = os.environ | {"FUZZ_EXAMPLES": examples}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/security/test_fuzz.py", "-q", "-s",
         "-p", "no:cacheprovider", "--timeout", "3600"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    report = [line for line in lines if line.startswith(("fuzz totals", "  "))]
    print(f"fuzz_receiver: FUZZ_EXAMPLES={examples}, {time.monotonic() - started:.0f} s")
    print("\n".join(report) or proc.stdout[-3000:])
    print(lines[-1] if lines else proc.stderr[-2000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
