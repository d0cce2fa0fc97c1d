"""Subcommand stub: run a connection's whole pipeline on this machine from its manifest"""

from __future__ import annotations

import argparse

HELP = "run a connection's whole pipeline on this machine from its manifest"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 7")
