"""``akeneo-connector receiver``: run the HTTPS receiver for the PIM's events."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from akeneo_connector import eventloop
from akeneo_connector.logs import setup as setup_logging
from akeneo_connector.stopping import stop_on_signals
from akeneo_receiver import config as receiver_config

HELP = "run the HTTPS receiver for the PIM's events"

log = logging.getLogger("akeneo_receiver")


def configure(parser: argparse.ArgumentParser) -> None:
    receiver_config.configure(parser)


async def serve(cfg: receiver_config.ReceiverConfig) -> None:
    from akeneo_receiver.app import Receiver

    receiver = Receiver(cfg)
    stop = stop_on_signals()
    await receiver.start()
    # long-lived objects (modules, schemas, app) leave the GC's working set: every request
    # allocates many short-lived dicts, and full collections would rescan all of them
    gc.collect()
    gc.freeze()
    try:
        await stop.wait()
    finally:
        log.info("receiver stopping")
        await receiver.stop()


def run(args: argparse.Namespace) -> int:
    try:
        cfg = receiver_config.from_args(args)
    except (ValueError, OSError) as exc:
        print(f"akeneo-connector receiver: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level)
    try:
        eventloop.run(serve(cfg))
    except OSError as exc:  # port in use, unreadable key pair, ...
        log.error("receiver failed to start", extra={"error": str(exc)})
        return 1
    return 0
