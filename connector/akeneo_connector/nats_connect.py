"""How a component's command starts: its settings (the contract in
``akeneo_connector.settings_contract``), its NATS connection with the creds watch, its logs
(``akeneo_connector.logs``). Secrets are read from files only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client

from akeneo_connector import creds_watch, logs
from akeneo_connector.nats_auth import inbox_prefix
from akeneo_connector.nats_servers import failover_options
from akeneo_connector.settings_contract import CommonSettings, SettingsError, resolve

S = TypeVar("S", bound=CommonSettings)


def read_secret(path: Path) -> str:
    """A mounted Secret key: the whole file, without the trailing newline."""
    return path.read_text().rstrip("\r\n")


def settings_of(cls: type[S], args: argparse.Namespace, **fixed: Any) -> S:
    """The command's settings (flags over env over defaults); a missing or unreadable one
    ends the command with exit code 2, as argparse does."""
    try:
        return resolve(cls, args, **fixed)
    except SettingsError as exc:
        command = getattr(args, "command", None) or "command"
        print(f"akeneo-connector {command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def connect_options(settings: CommonSettings, name: str, **overrides: Any) -> dict[str, Any]:
    """``nats.connect`` options from the common settings; ``overrides`` adjust them (e.g.
    reconnects, callbacks)."""
    options: dict[str, Any] = {
        **failover_options(settings.nats_url),  # every server: a dead one is left at once
        "name": f"akeneo-{name} {settings.names.ref}",
        "inbox_prefix": inbox_prefix(settings.names),  # replies readable by this tenant only
        **overrides,
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
    if settings.nats_password_file:
        options["password"] = read_secret(settings.nats_password_file)
    if settings.nats_creds_file:
        options["user_credentials"] = str(settings.nats_creds_file)
    return options


async def connect(
    settings: CommonSettings, name: str, *, client: Client | None = None, **overrides: Any
) -> Client:
    """Connect (``client``: a ``Client`` subclass to use, e.g. the receiver's) and, with a
    creds file, watch it so renewed JWTs are picked up in time."""
    nc = client if client is not None else Client()
    await nc.connect(**connect_options(settings, name, **overrides))
    if settings.nats_creds_file:
        creds_watch.start(nc, settings.nats_creds_file)
    return nc


def setup_logging(level: str) -> None:
    """The one JSON log schema (``akeneo_connector.logs``) at ``level``."""
    logs.setup(level)
