"""``akeneo-connector operator``: run the kopf operator that reconciles AkeneoConnections."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import kopf
from pydantic import ValidationError

from akeneo_operator import settings as settings_mod
from akeneo_operator.natscreds import IssuerFile

HELP = "run the kopf operator that reconciles AkeneoConnections"


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

    from akeneo_operator.handlers import build_registry

    registry, _runtime = build_registry(ops)
    coro = kopf.operator(
        registry=registry,
        standalone=ops.standalone,
        priority=ops.priority,
        peering_name=None if ops.standalone else ops.peering_name,
        clusterwide=not ops.namespaces,
        namespaces=list(ops.namespaces),
    )
    asyncio.run(coro)
    return 0
