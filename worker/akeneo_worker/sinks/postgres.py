"""PostgreSQL sink: upsert into a table, delete removes the row (the tombstone stays in the guard).

The guard's version check is repeated in SQL (``WHERE stored.version <= excluded.version``):
whatever races happen between replicas, the table itself never goes backwards. Equal
versions are let through so a tie resolved by the guard can be applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from akeneo_worker.changes import Change
from akeneo_worker.sinks.base import SinkError

# SQLSTATE classes worth a retry: connection, resources, operator intervention, serialization.
_RETRYABLE_CLASSES = ("08", "40", "53", "57", "58")


def _error(exc: psycopg.Error) -> SinkError:
    state = exc.sqlstate or ""
    retryable = state == "" or state.startswith(_RETRYABLE_CLASSES)
    kind = type(exc).__name__
    return SinkError(f"postgres {kind} (sqlstate {state or 'none'})", retryable=retryable)


class PostgresSink:
    name = "postgres"
    max_batch = 500
    max_concurrency = 1

    def __init__(self, dsn: str, *, table: str = "akeneo_resources") -> None:
        self._dsn = dsn
        self.table = table
        self._conn: psycopg.AsyncConnection[Any] | None = None
        t = sql.Identifier(table)
        self._ddl = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {t} ("
            " kind text NOT NULL, key text NOT NULL, version timestamptz NOT NULL,"
            " resource jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (kind, key))"
        ).format(t=t)
        self._upsert = sql.SQL(
            "INSERT INTO {t} AS stored (kind, key, version, resource, updated_at)"
            " VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version,"
            " resource = excluded.resource, updated_at = excluded.updated_at"
            " WHERE stored.version <= excluded.version"
        ).format(t=t)
        self._delete = sql.SQL(
            "DELETE FROM {t} WHERE kind = %s AND key = %s AND version <= %s"
        ).format(t=t)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=10)
        return self._conn

    async def open(self) -> None:
        try:
            conn = await self._connection()
            async with conn.transaction():
                await conn.execute(self._ddl)
        except psycopg.Error as exc:
            raise _error(exc) from exc

    async def apply(self, changes: Sequence[Change]) -> None:
        upserts = [(c.kind, c.key, c.version, Jsonb(c.resource)) for c in changes if not c.deleted]
        deletes = [(c.kind, c.key, c.version) for c in changes if c.deleted]
        try:
            conn = await self._connection()
            async with conn.transaction(), conn.cursor() as cur:
                if upserts:
                    await cur.executemany(self._upsert, upserts)
                if deletes:
                    await cur.executemany(self._delete, deletes)
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.broken:
                self._conn = None
            raise _error(exc) from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
