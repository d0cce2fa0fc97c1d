"""`akeneo-connector` console script: one subcommand per component.

Each subcommand lives in the module that owns it; that module exposes ``HELP``,
``configure(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``akeneo-connector receiver`` does not pay for kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

SUBCOMMANDS: dict[str, str] = {
    "operator": "akeneo_operator.command",
    "receiver": "akeneo_receiver.command",
    "worker": "akeneo_worker.command",
    "reconcile": "akeneo_resync.reconcile_command",
    "replay": "akeneo_resync.replay_command",
    "simulate": "akeneo_pim.simulate_command",
    "local": "akeneo_cli.local",
}

EXIT_NOT_IMPLEMENTED = 2


class Subcommand(Protocol):
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def load(name: str) -> Subcommand:
    return cast(Subcommand, importlib.import_module(SUBCOMMANDS[name]))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """All subcommands, or (``only``) just one, so that no other subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="akeneo-connector",
        description="Akeneo PIM connectors: operator, receiver, worker, reconcile job, local mode.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS if only is None else [only]:
        module = load(name)
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return load(args.command).run(args)
    except NotImplementedError as exc:
        print(f"akeneo-connector {args.command}: not implemented yet ({exc})", file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
