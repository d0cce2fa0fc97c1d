"""Flags of the worker and replay subcommands, with their env equivalents (the flag wins).

Names and defaults follow ``docs/configuration.md``. Secrets are read from files only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from akeneo_connector import creds_watch
from akeneo_connector.durations import parse_duration
from akeneo_connector.names import ConnectionNames
from akeneo_connector.nats_auth import inbox_prefix


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str) -> bool:
    return (env(name) or "").strip().lower() in ("1", "true", "yes", "on")


REST_BUDGETS = ("connection", "process")


def add_rest_budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rest-budget", choices=REST_BUDGETS, default=env("AKENEO_REST_BUDGET", "connection"),
        help="cap of 4 concurrent PIM calls for the whole connection, shared through its KV "
        "bucket by every worker replica and the reconcile job (connection), or for this "
        "process alone (process) [AKENEO_REST_BUDGET]",
    )  # fmt: skip


def seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def connection(text: str) -> ConnectionNames:
    try:
        return ConnectionNames.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_secret(path: Path) -> str:
    """A mounted Secret key: the whole file, without the trailing newline."""
    return path.read_text().rstrip("\r\n")


def add_common(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    conn = env("AKENEO_CONNECTION")
    add(
        "--connection",
        type=connection,
        default=connection(conn) if conn else None,
        required=conn is None,
        help="namespace/name of the AkeneoConnection [AKENEO_CONNECTION]",
    )
    add("--nats-url", default=env("AKENEO_NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server URL(s), comma-separated [AKENEO_NATS_URL]")  # fmt: skip
    add("--nats-user", default=env("AKENEO_NATS_USER"), help="[AKENEO_NATS_USER]")
    add("--nats-password-file", type=Path, default=env("AKENEO_NATS_PASSWORD_FILE"),
        help="file holding the NATS password [AKENEO_NATS_PASSWORD_FILE]")  # fmt: skip
    add("--nats-creds-file", type=Path, default=env("AKENEO_NATS_CREDS_FILE"),
        help="NATS .creds file [AKENEO_NATS_CREDS_FILE]")  # fmt: skip
    add("--log-level", default=env("AKENEO_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"], help="[AKENEO_LOG_LEVEL]")  # fmt: skip


async def connect(args: argparse.Namespace, name: str, **overrides: Any) -> Client:
    """Connect with the common flags; ``overrides`` adjust nats.connect (e.g. reconnects)."""
    options: dict[str, Any] = {
        "servers": [s.strip() for s in args.nats_url.split(",") if s.strip()],
        "name": f"akeneo-{name} {args.connection.ref}",
        "inbox_prefix": inbox_prefix(args.connection),  # replies readable by this tenant only
        "max_reconnect_attempts": -1,
        **overrides,
    }
    if args.nats_user:
        options["user"] = args.nats_user
    if args.nats_password_file:
        options["password"] = read_secret(Path(args.nats_password_file))
    if args.nats_creds_file:
        options["user_credentials"] = str(args.nats_creds_file)
    nc = await nats.connect(**options)
    if args.nats_creds_file:
        creds_watch.start(nc, args.nats_creds_file)  # renewed JWTs are picked up in time
    return nc


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
