"""Subcommand stub: run the worker: consume the stream, guard ordering, apply to the sink"""

from __future__ import annotations

import argparse

HELP = "run the worker: consume the stream, guard ordering, apply to the sink"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 4")
