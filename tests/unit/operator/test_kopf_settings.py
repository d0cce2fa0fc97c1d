"""What the operator tells kopf: watch timeouts, finalizer, peering, lean watches."""

from __future__ import annotations

import kopf

from akeneo_operator.handlers import configure_kopf
from akeneo_operator.meta import FINALIZER
from akeneo_operator.settings import OperatorSettings


def test_stalled_watches_are_reconnected_and_peering_follows_the_settings() -> None:
    ops = OperatorSettings(
        watch_server_timeout=120, watch_client_timeout=150, peering_name="p1", priority=7
    )
    settings = kopf.OperatorSettings()
    configure_kopf(settings, ops)
    assert settings.watching.server_timeout == 120
    assert settings.watching.client_timeout == 150  # a silent watch is dropped after this
    assert settings.watching.client_timeout > settings.watching.server_timeout
    assert settings.watching.connect_timeout == 10
    assert settings.persistence.finalizer == FINALIZER
    assert (settings.peering.name, settings.peering.priority) == ("p1", 7)
    # children are watched through a server-side label selector, not filtered afterwards
    assert settings.watching.label_selectors
    assert all("app.kubernetes.io" in s for s in settings.watching.label_selectors.values())


def test_defaults_reconnect_within_minutes() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorSettings(priority=1))
    assert settings.watching.server_timeout == 300
    assert settings.watching.client_timeout == 360


def test_kopf_workers_are_bounded() -> None:
    """kopf's HTTP pool has no connection limit: unbounded workers meant one TLS connection
    per object in flight when a thousand connections appear at once."""
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorSettings(priority=1))
    assert settings.queueing.worker_limit is not None and settings.queueing.worker_limit <= 64
    assert settings.posting.worker_limit is not None and settings.posting.worker_limit <= 32
    # each poster holds its slot while idle: with kopf's 1 s, 4 slots posted 4 Events/s and
    # a hundred new connections' Events trailed their Ready by a minute
    assert settings.posting.worker_limit / settings.posting.idle_timeout >= 20
    # an idle worker holds its slot too: the objects waiting for one are queued whole, and
    # after a restart that is every listed child (2,000 Deployments at 1,000 connections)
    assert settings.queueing.worker_limit / settings.queueing.idle_timeout >= 500
