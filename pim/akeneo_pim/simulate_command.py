"""Subcommand stub: simulate a PIM: send signed events to a receiver, serve the REST API"""

from __future__ import annotations

import argparse

HELP = "simulate a PIM: send signed events to a receiver, serve the REST API"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 5")
