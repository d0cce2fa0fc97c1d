"""Issue 15 row 14: local mode's data dir holds what a manifest says, and nothing escapes it.

``akeneo-connector local -f`` writes each Secret key as ``<data dir>/secrets/<name>/<key>``
and derives the data dir from the connection's namespace and name. A manifest whose names or
keys are paths (``../../x``) must be refused in one line naming the bad name, before anything
is written — run here as the real process, with a deadline: a process that does not refuse
goes on to start the pipeline, and whatever it wrote outside the data dir is looked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

CLI = Path(sys.executable).parent / "akeneo-connector"


def manifest(secret_name: str = "shop-events", key: str = "eventsApiSecret",
             name: str = "shop", namespace: str = "tenant") -> str:  # fmt: skip
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace},
        "stringData": {key: "escaped-secret-value", "eventsApiSecret": "s"},
    }
    connection = {
        "apiVersion": "akeneo.connectors.dev/v1alpha1",
        "kind": "AkeneoConnection",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "pim": {"url": "https://pim.example.com"},
            "receiver": {"signatureSecret": "shop-events"},
            "worker": {"sink": {"sqlite": {"path": "catalog.db"}}},
        },
    }
    extra = {**secret, "metadata": {"name": "shop-events", "namespace": namespace},
             "stringData": {"eventsApiSecret": "s"}}  # fmt: skip
    docs = [secret, connection] if secret_name == "shop-events" else [secret, extra, connection]
    return yaml.safe_dump_all(docs)


def run_local(tmp: Path, text: str) -> tuple[int | None, str]:
    """Run local mode in ``tmp/work/run`` (data dir ``tmp/work/run/data``); stop it after a
    few seconds if it has not refused by then."""
    run_dir = tmp / "work" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "m.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKENEO_")}
    proc = subprocess.Popen(
        [str(CLI), "local", "-f", "m.yaml", "--data-dir", "data", "--port", "0"],
        cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        if list(tmp.rglob("escaped*")):
            break
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    _out, err = proc.communicate()
    return proc.returncode, err


def outside(tmp: Path) -> list[Path]:
    data = tmp / "work" / "run" / "data"
    return [p for p in tmp.rglob("*") if p.is_file() and data not in p.parents
            and p.name != "m.yaml"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"secret_name": "../../../escaped-dir"}, "../../../escaped-dir"),
        ({"key": "../../../../escaped-key"}, "../../../../escaped-key"),
        ({"key": ".."}, ".."),
        ({"secret_name": "{tmp}/escaped-abs"}, "{tmp}/escaped-abs"),
        ({"namespace": "../escaped-ns"}, "../escaped-ns"),
        ({"name": "../../escaped-name"}, "../../escaped-name"),
    ],
    ids=["secret-name", "secret-key", "dotdot-key", "absolute-name", "namespace", "name"],
)
def test_names_and_keys_cannot_leave_the_data_dir(
    tmp_path: Path, kwargs: dict[str, str], bad: str
) -> None:
    kwargs = {k: v.replace("{tmp}", str(tmp_path)) for k, v in kwargs.items()}
    bad = bad.replace("{tmp}", str(tmp_path))
    code, err = run_local(tmp_path, manifest(**kwargs))
    assert outside(tmp_path) == [], f"written outside the data dir: {outside(tmp_path)}"
    assert code == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and bad in lines[0], err
