"""The notification spool: bounded, in arrival order, kept across processes, never a 200 for
what is not on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from akeneo_receiver.notification_spool import Dropped, NotificationSpool, Spooled

LIMIT = 1000


def spool(path: Path | None, limit: int = 3) -> NotificationSpool:
    return NotificationSpool(path, limit=limit, max_bytes=LIMIT)


async def test_kept_in_order_once_each_until_published(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    s = spool(path)
    assert s.add(b"a") == (True, False)
    assert s.add(b"a") == (True, True)  # the platform's retry: kept once
    assert s.add(b"b") == (True, False)
    assert s.add(b"c") == (True, False)
    assert s.add(b"d") == (False, False)  # full
    assert s.add(b"b") == (True, True)  # a retry of one kept is still fine when full
    sent: list[Spooled] = []

    async def down(item: Spooled) -> None:
        raise TimeoutError

    async def up(item: Spooled) -> None:
        sent.append(item)

    assert await s.flush(down) == 0 and s.pending == 3
    # a new process finds them, in the same order
    again = spool(path)
    assert await again.flush(up) == 3
    assert [i.body for i in sent] == [b"a", b"b", c := b"c"] and not path.exists()
    assert sent[2].msg_id == hashlib.sha256(c).hexdigest()  # the normal path's Nats-Msg-Id


async def test_stops_at_the_first_failure_and_drops_what_can_never_be_stored(
    tmp_path: Path,
) -> None:
    s = spool(tmp_path / "n.json")
    for body in (b"a", b"too-large", b"c"):
        s.add(body)
    sent: list[bytes] = []

    async def publish(item: Spooled) -> None:
        if item.body == b"too-large":
            raise Dropped("event_too_large")
        if item.body == b"c":
            raise TimeoutError
        sent.append(item.body)

    assert await s.flush(publish) == 2  # a stored, too-large dropped, c failed
    assert sent == [b"a"] and [i.body for i in s.items] == [b"c"]


@pytest.mark.parametrize("where", ["none", "unwritable"])
async def test_no_200_without_a_file_on_disk(tmp_path: Path, where: str) -> None:
    path = None if where == "none" else tmp_path / "missing-dir" / "n.json"
    s = spool(path)
    assert s.add(b"a") == (False, False) and s.pending == 0


async def test_what_is_read_back_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    big = spool(path, limit=10)
    for n in range(10):
        big.add(b"x%d" % n)
    assert spool(tmp_path / "o.json").add(b"y" * (LIMIT + 1)) == (False, False)  # too large
    assert [i.body for i in spool(path, limit=4).items] == [b"x0", b"x1", b"x2", b"x3"]
    path.write_text('["not base64!", 3, "eA=="]')  # garbage is skipped
    assert [i.body for i in spool(path).items] == [b"x"]
    path.write_text("{")
    assert spool(path).pending == 0
