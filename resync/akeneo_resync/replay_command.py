"""``akeneo-connector replay``: re-publish dead letters, or re-deliver the stream."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import datetime

from akeneo_connector.nats_connect import connect, settings_of, setup_logging
from akeneo_connector.normalized import ResourceKind
from akeneo_connector.settings_contract import CommonSettings, add_arguments
from akeneo_resync.replay import DeadLetterFilter, redeliver_stream, replay_dead_letters

HELP = "re-publish dead letters or re-deliver the stream"


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time needs an offset, e.g. {text}+00:00")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, CommonSettings)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dead-letters", action="store_true",
                      help="re-publish dead letters (the default mode)")  # fmt: skip
    mode.add_argument("--from-sequence", type=int, metavar="SEQ",
                      help="re-deliver the stream's events from this stream sequence")  # fmt: skip
    mode.add_argument("--from-time", type=_time, metavar="TIME",
                      help="re-deliver the stream's events from this time (ISO 8601)")  # fmt: skip
    mode.add_argument("--all-events", action="store_true",
                      help="re-deliver every event the stream still holds")  # fmt: skip
    add = parser.add_argument
    add("--since", type=_time, help="dead letters: dead-lettered at or after (ISO 8601)")
    add("--until", type=_time, help="dead letters: dead-lettered before (ISO 8601)")
    add("--key", help="dead letters: only this resource key (uuid, identifier or code)")
    add("--kind", choices=[k.value for k in ResourceKind], help="dead letters: only this kind")
    add("--include-malformed", action="store_true",
        help="dead letters: also re-publish messages that could not be parsed")  # fmt: skip
    add("--keep", action="store_true", help="dead letters: keep them after re-publishing")
    add("--reset-guard", action="store_true",
        help="re-delivery: forget applied versions (rebuild a sink from scratch)")  # fmt: skip


async def main(args: argparse.Namespace, settings: CommonSettings) -> int:
    nc = await connect(settings, "replay")
    try:
        js = nc.jetstream()
        if args.from_sequence is not None or args.from_time is not None or args.all_events:
            report = await redeliver_stream(
                js,
                settings.names,
                start_sequence=args.from_sequence,
                start_time=args.from_time,
                reset_guard=args.reset_guard,
            )
        else:
            selection = DeadLetterFilter(
                since=args.since,
                until=args.until,
                key=args.key,
                kind=args.kind,
                include_malformed=args.include_malformed,
            )
            report = await replay_dead_letters(js, settings.names, selection, remove=not args.keep)
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
    print(json.dumps(report.__dict__))
    return 0


def run(args: argparse.Namespace) -> int:
    settings = settings_of(CommonSettings, args)
    setup_logging(settings.log_level)
    return asyncio.run(main(args, settings))
