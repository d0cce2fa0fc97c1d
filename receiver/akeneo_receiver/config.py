"""Receiver configuration: the contract's ``ReceiverSettings`` (flags with env equivalents,
the flag wins; ``akeneo_connector.settings_contract``, documented in ``docs/configuration.md``).
"""

from __future__ import annotations

import argparse

from akeneo_connector.settings_contract import ReceiverSettings, add_arguments, resolve

ReceiverConfig = ReceiverSettings


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, ReceiverSettings)


def from_args(args: argparse.Namespace) -> ReceiverConfig:
    """Raise ``ValueError`` (``SettingsError``) on a missing or unreadable setting."""
    return resolve(ReceiverSettings, args).check()
