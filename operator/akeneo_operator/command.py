"""``akeneo-connector operator``: run the kopf operator that reconciles AkeneoConnections."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, cast

from pydantic import ValidationError

from akeneo_operator import settings as settings_mod
from akeneo_operator.natscreds import IssuerFile

HELP = "run the kopf operator that reconciles AkeneoConnections"
# Client libraries kopf imports when installed, only to recognise their model objects; the
# operator passes plain dicts and logs in itself. kubernetes_asyncio alone (its ~700 model
# modules, pulled in by the tests' extras) costs ~40 MB of RSS, a fifth of the scale budget.
UNUSED_CLIENT_LIBRARIES = ("kubernetes", "kubernetes_asyncio", "pykube")


def skip_unused_client_libraries() -> None:
    """Make kopf's optional imports of the client libraries fail fast (``None`` in
    ``sys.modules`` means "not importable"), unless something imported them already."""
    for name in UNUSED_CLIENT_LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def configure(parser: argparse.ArgumentParser) -> None:
    settings_mod.configure(parser)


def run(args: argparse.Namespace) -> int:
    try:
        ops = settings_mod.from_sources(args, os.environ)
    except (ValidationError, ValueError) as exc:
        print(f"akeneo-connector operator: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        signing_key = IssuerFile(ops).current()  # fail fast on an unusable key, not per object
    except ValueError as exc:
        print(f"akeneo-connector operator: NATS signing key: {exc}", file=sys.stderr)
        return 2
    if ops.kubeconfig:
        os.environ["KUBECONFIG"] = ops.kubeconfig
    skip_unused_client_libraries()
    import kopf

    level = getattr(logging, ops.log_level.upper(), logging.INFO)
    kopf.configure(log_format=kopf.LogFormat.JSON, verbose=level <= logging.DEBUG)
    logging.getLogger().setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if level > logging.DEBUG:  # kopf reports every watched child event at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    if signing_key is None:
        logging.getLogger("akeneo_operator").warning(
            "no NATS account signing key (--nats-signing-key-file): connections are not "
            "isolated from each other on NATS"
        )

    from akeneo_operator.handlers import build_registry, memo_of

    registry, runtime = build_registry(ops)
    coro = kopf.operator(
        registry=registry,
        memo=memo_of(runtime),
        standalone=ops.standalone,
        priority=ops.priority,
        peering_name=None if ops.standalone else ops.peering_name,
        identity=cast(Any, runtime.identity),  # kopf's Identity is a NewType of str
        clusterwide=not ops.namespaces,
        namespaces=list(ops.namespaces),
    )
    asyncio.run(coro)
    return 0
