"""The rule that makes the SQL sinks guard themselves, and their tombstone table's name.

A removal deletes the row (the table holds live resources only) and records ``(kind, key,
version)`` in ``<table>_tombstones``, in the same transaction; so the table can still
answer "is this update older than the removal?" once the row is gone. Per resource:

- an upsert applies only if its version is newer than the tombstone's (a removal wins at
  equal versions, as in the guard) and not older than the row's (an equal version is a tie
  the guard chose to apply); applying it drops the older tombstone, so a key is in at most
  one of the two tables;
- a removal not older than the row deletes it and keeps the newest removal version; one
  older than the row changes nothing.

Applied one at a time, in any order, the changes leave the newest version of every
resource: the sink needs no claim in the guard (``Sink.self_guarding``). SQLite runs one
writer at a time; the postgres sink runs each batch as a serializable transaction, so
concurrent replicas behave as if they wrote one after the other.
"""

from __future__ import annotations

import hashlib

SUFFIX = "_tombstones"
_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1 bytes)


def tombstone_table(table: str) -> str:
    """``<table>_tombstones``; a name too long for PostgreSQL is shortened with a hash of
    the whole, so it can neither be truncated onto the table's own name nor collide."""
    name = table + SUFFIX
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    room = _MAX_IDENTIFIER - len(SUFFIX) - len(digest) - 1
    head = table.encode()[:room].decode(errors="ignore")
    return f"{head}_{digest}{SUFFIX}"
