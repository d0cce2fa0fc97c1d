"""The NATS server list every component is given, and the options that fail over at once.

A clustered JetStream is reached through all its servers (``a,b,c``), not one of them: a
client whose server dies moves to another live one straight away instead of waiting for
that server to come back. A killed process closes its sockets, so the loss is seen at once;
a host that vanishes without closing them is caught by the pings (within about 20 s).
"""

from __future__ import annotations

from typing import Any

RECONNECT_WAIT = 0.5  # between two attempts at the same server; another server is tried at once


def server_list(urls: str) -> list[str]:
    """``nats://a:4222, nats://b:4222`` -> each URL, in order (nats-py shuffles them)."""
    servers = [u.strip() for u in urls.split(",") if u.strip()]
    if not servers:
        raise ValueError("no NATS server URL given")
    return servers


def failover_options(urls: str) -> dict[str, Any]:
    """nats.connect options: every server, reconnect forever, a dead peer noticed by pings."""
    return {
        "servers": server_list(urls),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT,
        "ping_interval": 10,
        "max_outstanding_pings": 2,
    }
