"""Subcommand stub: re-publish dead letters or re-deliver the stream"""

from __future__ import annotations

import argparse

HELP = "re-publish dead letters or re-deliver the stream"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 4")
