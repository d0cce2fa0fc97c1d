"""Every component is given the whole NATS server list, and fails over without delay."""

from __future__ import annotations

import pytest

from akeneo_connector.nats_servers import failover_options, server_list


def test_a_comma_separated_list_gives_each_server() -> None:
    urls = " nats://a:4222, nats://b:4222 ,,nats://c:4222"
    assert server_list(urls) == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]


def test_no_server_is_refused() -> None:
    with pytest.raises(ValueError, match="no NATS server"):
        server_list(" , ")


def test_failover_never_gives_up_and_never_pins_one_server() -> None:
    options = failover_options("nats://a:4222,nats://b:4222")
    assert options["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert options["max_reconnect_attempts"] == -1  # a long outage is waited out
    assert options["reconnect_time_wait"] <= 0.5
    assert "dont_randomize" not in options  # clients spread over the servers
