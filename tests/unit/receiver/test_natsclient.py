from __future__ import annotations

from akeneo_receiver.natsclient import HOOK_FITS, AckClient


def test_the_hook_fits_the_installed_nats_py() -> None:
    # if nats-py changes it, acks still arrive (through the subscription), only slower
    assert HOOK_FITS


async def test_only_plain_messages_of_the_chosen_subscription_skip_nats_py() -> None:
    nc = AckClient()
    got: list[tuple[bytes, bytes]] = []
    assert nc.take_plain(7, lambda subject, data: got.append((subject, data)))
    ack = b'{"stream":"S","seq":1}'
    await nc._process_msg(7, b"_INBOX.x.1", b"", ack, None)
    assert got == [(b"_INBOX.x.1", ack)] and nc.stats["in_msgs"] == 1
    # a status reply (headers) and other subscriptions go nats-py's way (no such sub here)
    await nc._process_msg(7, b"_INBOX.x.2", b"", b"", b"NATS/1.0 503\r\n\r\n")
    await nc._process_msg(8, b"other", b"", b"data", None)
    assert len(got) == 1
