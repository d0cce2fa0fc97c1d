"""The components' settings tables of ``docs/configuration.md``, from the settings contract.

``generate`` rewrites the blocks between ``<!-- BEGIN GENERATED: <section> -->`` and
``<!-- END GENERATED: <section> -->``; the prose around them is by hand. The command is
``python -m akeneo_operator.settings_docs --write`` (``--check``, run by ``make lint``, fails
when a block is stale): it adds the operator's own table, which this kernel cannot import.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from akeneo_connector.settings_contract import (
    CommonSettings,
    PimSettings,
    ReceiverSettings,
    ReconcileJobSettings,
    Setting,
    WorkerSettings,
    contract_fields,
    default_of,
    render,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# section -> (settings class, the class whose fields are documented elsewhere)
SECTIONS: dict[str, tuple[type[Any], type[Any] | None]] = {
    "common": (CommonSettings, None),
    "receiver": (ReceiverSettings, CommonSettings),
    "pim": (PimSettings, CommonSettings),
    "worker": (WorkerSettings, PimSettings),
    "reconcile": (ReconcileJobSettings, PimSettings),
}
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z]+) -->\n).*?(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def _default(cls: type[Any], name: str, meta: Setting) -> str:
    if meta.default_doc is not None:
        return meta.default_doc
    if meta.required:
        return "required"
    value = default_of(cls, name)
    return "none" if value is None else f"`{render(meta, value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(section: str) -> str:
    cls, base = SECTIONS[section]
    inherited = {name for name, _ in contract_fields(base)} if base is not None else set()
    rows = [
        "| flag | env | default | in the operator's pods | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, meta in contract_fields(cls):
        if name in inherited:
            continue
        flag = meta.flag_for(name)
        shown = f"`{flag}`" if meta.kind != "bool" else f"`{flag}` (or `true`/`false` in env)"
        meaning = meta.help
        if meta.choices and meta.kind == "text":
            meaning += f"; one of {', '.join(f'`{c}`' for c in meta.choices)}"
        if meta.secret:
            meaning += " (a secret: the path of its file)"
        pod = f"`{meta.pod}`" if meta.pod else ""
        cells = (shown, f"`{meta.env}`", _default(cls, name, meta), pod, meaning)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def generate(text: str, extra: Mapping[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every generated block rewritten, the components' and ``extra``'s (a
    section name to its table); an unknown or missing section is an error."""
    tables: dict[str, Callable[[], str]] = {name: partial(table, name) for name in SECTIONS}
    tables.update(extra or {})
    seen: set[str] = set()

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in tables:
            raise ValueError(f"unknown generated section {name!r}")
        seen.add(name)
        return match.group(1) + tables[name]() + match.group(3)

    out = _BLOCK.sub(block, text)
    missing = set(tables) - seen
    if missing:
        raise ValueError(f"docs/configuration.md lacks the sections {sorted(missing)}")
    return out


def main(
    argv: list[str] | None = None,
    *,
    prog: str,
    extra: Mapping[str, Callable[[], str]] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite docs/configuration.md")
    mode.add_argument("--check", action="store_true", help="fail when it is stale")
    parser.add_argument("--path", type=Path, default=DOC)
    args = parser.parse_args(argv)
    current = args.path.read_text()
    wanted = generate(current, extra)
    if args.write:
        if wanted != current:
            args.path.write_text(wanted)
        return 0
    if wanted != current:
        print(
            f"{args.path} is stale: run `python -m {prog} --write`",
            file=sys.stderr,
        )
        return 1
    return 0
