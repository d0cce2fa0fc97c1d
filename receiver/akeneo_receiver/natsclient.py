"""nats-py's client, with the ack pipeline's plain acks taken straight from the parser.

nats-py hands every message to its subscription through a ``Msg`` object, a queue and the
subscription's task, then awaits the callback: for the ten acks of every request that is
about a tenth of the receiver's CPU. ``AckClient`` gives a header-less message on one chosen
subscription to a plain function instead. Messages with headers (the no-responders status
reply) and other subscriptions take nats-py's usual way, and so does everything if nats-py's
internal hook ever changes shape: the subscription's own callback then gets every ack, as
with a plain client.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import cast

from nats.aio.client import Client

# the hook nats-py's parser calls for each MSG/HMSG
_HOOK_PARAMETERS = ["self", "sid", "subject", "reply", "data", "headers"]
HOOK_FITS = list(inspect.signature(Client._process_msg).parameters) == _HOOK_PARAMETERS

PlainHandler = Callable[[bytes, bytes], None]
"""Called with (subject, payload) of a message that has no headers."""


class AckClient(Client):
    def __init__(self) -> None:
        super().__init__()
        self._direct_sid: int | None = None
        self._direct: PlainHandler | None = None

    def take_plain(self, sid: int, handler: PlainHandler) -> bool:
        """Route plain messages of subscription ``sid`` to ``handler``; False if not possible."""
        if not HOOK_FITS:
            return False
        self._direct_sid, self._direct = sid, handler
        return True

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        if sid == self._direct_sid and not headers and self._direct is not None:
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            self._direct(subject, data)
            return
        # nats-py's parser passes None for a message without headers, despite its annotation
        await super()._process_msg(sid, subject, reply, data, cast(bytes, headers))
