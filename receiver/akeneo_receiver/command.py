"""Subcommand stub: run the HTTPS receiver for the PIM's events"""

from __future__ import annotations

import argparse

HELP = "run the HTTPS receiver for the PIM's events"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 3")
