"""Subcommand stub: re-synchronise from the PIM REST API into the stream"""

from __future__ import annotations

import argparse

HELP = "re-synchronise from the PIM REST API into the stream"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 5")
