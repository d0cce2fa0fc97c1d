"""Outages: the first and last 503 of each span in which events were answered but not stored.

The legacy PIM never sends a delivery again after a 503, and the Event Platform drops one
after three retries, so every such span is a window of lost events. The receiver cannot
record it on NATS while NATS is what failed: it keeps the span in memory (and, with
``--gap-spool-file``, in a small file that survives a restart of the container), and
publishes a ``GapRecord`` (``akeneo_connector.gaps``) on ``<prefix>.gaps.receiver-503``
once JetStream acknowledges again and no 503 came for ``QUIET`` seconds. The operator (or
local mode) turns it into a catch-up reconcile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from akeneo_connector.gaps import GapRecord, GapSource

log = logging.getLogger("akeneo_receiver.outages")

QUIET = 1.0  # seconds without a 503 before an outage is considered over
SPOOL_EVERY = 1.0  # the spool file is rewritten at most this often while an outage goes on
MAX_PENDING = 100  # closed outages kept while NATS refuses them (merged beyond that)

Publish = Callable[[GapRecord], Awaitable[None]]


class OutageRecorder:
    def __init__(
        self,
        spool: Path | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        detail: str = "",
    ) -> None:
        self.spool = spool
        self.clock = clock
        self.detail = detail[:200]
        self.first: datetime | None = None
        self.last: datetime | None = None
        self._last_hit = 0.0  # monotonic time of the last 503
        self._spooled = 0.0
        self.pending: list[GapRecord] = []  # closed, not yet stored by JetStream
        self._load()

    @property
    def open(self) -> bool:
        return self.first is not None

    def hit(self) -> None:
        """A request was answered 503: its events were not (all) stored."""
        now = self.clock()
        self._last_hit = time.monotonic()
        if self.first is None:
            self.first = now
            log.warning("outage: events answered 503 from now on are recorded as a gap")
        self.last = now
        if self._last_hit - self._spooled >= SPOOL_EVERY or self.first == now:
            self._save()

    def close_if_quiet(self, quiet: float = QUIET) -> None:
        """End the open outage when no 503 came for ``quiet`` seconds."""
        if self.first is None or self.last is None:
            return
        if time.monotonic() - self._last_hit < quiet:
            return
        record = GapRecord(
            source=GapSource.RECEIVER_503, start=self.first, end=self.last, detail=self.detail
        )
        self.first = self.last = None
        self.pending.append(record)
        if len(self.pending) > MAX_PENDING:  # NATS gone for very long: keep one wide window
            merged = GapRecord(
                source=GapSource.RECEIVER_503,
                start=min(r.start for r in self.pending),
                end=max(r.end for r in self.pending),
                detail=self.detail,
            )
            self.pending = [merged]
        self._save()

    async def flush(self, publish: Publish) -> int:
        """Store the closed outages; those JetStream refuses stay for the next try."""
        stored = 0
        while self.pending:
            record = self.pending[0]
            try:
                await publish(record)
            except Exception as exc:
                log.debug("gap record not stored yet", extra={"error": type(exc).__name__})
                break
            self.pending.pop(0)
            stored += 1
            log.warning(
                "outage recorded as a gap",
                extra={"start": record.start.isoformat(), "end": record.end.isoformat()},
            )
        if stored:
            self._save()
        return stored

    # -- the spool file ----------------------------------------------------------------------

    def _save(self) -> None:
        self._spooled = time.monotonic()
        if self.spool is None:
            return
        windows = [r.model_dump(mode="json") for r in self.pending]
        if self.first is not None and self.last is not None:
            windows.append(
                GapRecord(
                    source=GapSource.RECEIVER_503,
                    start=self.first,
                    end=self.last,
                    detail=self.detail,
                ).model_dump(mode="json")
            )
        try:
            if not windows:
                self.spool.unlink(missing_ok=True)
                return
            tmp = self.spool.with_suffix(".tmp")
            tmp.write_text(json.dumps(windows))
            os.replace(tmp, self.spool)
        except OSError as exc:  # a read-only or full disk must not fail the request
            log.warning("gap spool not written", extra={"error": type(exc).__name__})

    def _load(self) -> None:
        """Outages a previous run could not store (an open one ends at its last 503)."""
        if self.spool is None:
            return
        try:
            raw = json.loads(self.spool.read_text())
        except (OSError, ValueError):
            return
        for item in raw if isinstance(raw, list) else []:
            with contextlib.suppress(ValueError):
                self.pending.append(GapRecord.model_validate(item))
        del self.pending[:-MAX_PENDING]
        if self.pending:
            log.warning("outages of a previous run to record", extra={"count": len(self.pending)})
