"""The benchmarks write their own figures into ``docs/benchmarks.md`` (``--write-docs``).

Each script owns one block of that file, between ``<!-- bench:NAME begin -->`` and
``<!-- bench:NAME end -->`` under its ``## Title``: the command that ran, when, on what
machine, and what it printed, verbatim. Prose around the blocks is written by hand and holds
no figure; a figure in the docs is one a script printed in its latest run.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure below was printed by the script named with it, in the run described above the
figures (date, machine, load average, exact command). Each script rewrites its own block when
run with `--write-docs`; nothing between the `bench:` markers is edited by hand. The figures
are those of the latest run, on the machine it names: a shared 2-core machine gives lower
and noisier numbers than a quiet one, which is why every benchmark also measures a baseline
in the same run and states its targets as ratios to it.
"""


def machine() -> str:
    """CPU count and model, memory, Python: what the figures were measured on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} CPUs ({model}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


class _Tee(io.TextIOBase):
    def __init__(self, out: io.TextIOBase) -> None:
        self.out, self.text = out, io.StringIO()

    def write(self, s: str) -> int:
        self.text.write(s)
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """Everything printed inside, still printed, and kept."""
    tee = _Tee(sys.stdout)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(tee):
        yield tee.text


def block(name: str, command: str, output: str, started: datetime, load_before: float) -> str:
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    return (
        f"<!-- bench:{name} begin -->\n"
        f"Latest run: {when}, {machine()}, {load}.\n\n"
        f"```sh\n{command}\n```\n\n"
        f"```text\n{output.rstrip()}\n```\n"
        f"<!-- bench:{name} end -->"
    )


def write_section(name: str, title: str, text: str, path: Path = DOCS) -> None:
    """Replace block ``name`` in the doc (or add it under ``## title``, or at the end)."""
    doc = path.read_text() if path.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} begin -->.*?<!-- bench:{re.escape(name)} end -->",
        re.DOTALL,
    )
    if pattern.search(doc):
        doc = pattern.sub(lambda _: text, doc, count=1)
    elif (heading := re.search(rf"^## {re.escape(title)}\n", doc, re.MULTILINE)) is not None:
        doc = f"{doc[: heading.end()]}\n{text}\n{doc[heading.end() :]}"
    else:
        doc = f"{doc.rstrip()}\n\n## {title}\n\n{text}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)


@contextlib.contextmanager
def published(name: str, title: str, command: str, *, write: bool) -> Iterator[None]:
    """Run the benchmark inside; with ``write``, its output becomes block ``name``."""
    if not write:
        yield
        return
    started, load = datetime.now(UTC), os.getloadavg()[0]
    with captured() as text:
        yield
    write_section(name, title, block(name, command, text.getvalue(), started, load))
    print(f"written to {DOCS.relative_to(DOCS.parent.parent)}, section {title!r}")


def command(invocation: str) -> str:
    """The command as typed: ``invocation`` (e.g. ``.venv/bin/python -m bench.worker``) and
    the arguments this process got."""
    return " ".join([invocation, *sys.argv[1:]])
