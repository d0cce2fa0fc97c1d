"""Subcommand stub: run the kopf operator that reconciles AkeneoConnections"""

from __future__ import annotations

import argparse

HELP = "run the kopf operator that reconciles AkeneoConnections"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 6")
