"""PostgreSQL sink: upsert into a table; a removal deletes the row and keeps a tombstone.

The sink guards itself (``akeneo_worker.sinks.tombstones``): an upsert is refused when the
row or the tombstone holds a newer version, so the table never goes backwards and never
gets a removed row back. Each statement is right on its own, but under READ COMMITTED two
replicas could still miss each other's uncommitted work (an update inserting a row the
removal's transaction did not see, while its tombstone was not yet visible to the update);
so every batch runs SERIALIZABLE, and PostgreSQL's own conflict detection makes concurrent
batches equivalent to one after the other. A batch refused as a serialization conflict is
run again at once, a few times. Changes are written in key order so two batches take their
row locks in the same order.

The DSN is the tenant's: every connection goes through ``akeneo_connector.pgdsn`` first
(allowed parameters only, each host resolved and checked against the platform's address
policy, libpq pinned to the checked addresses). Errors say the class of failure, never the
DSN nor what libpq or the server said.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from akeneo_connector import pgdsn
from akeneo_connector.changes import Change
from akeneo_worker.sinks.base import SinkError
from akeneo_worker.sinks.tombstones import tombstone_table

# SQLSTATE classes worth a retry: connection, resources, operator intervention, serialization.
_RETRYABLE_CLASSES = ("08", "40", "53", "57", "58")
_CONFLICT_ATTEMPTS = 5  # serialization failures / deadlocks retried inside one ``apply``


def _error(exc: psycopg.Error) -> SinkError:
    state = exc.sqlstate or ""
    retryable = state == "" or state.startswith(_RETRYABLE_CLASSES)
    kind = type(exc).__name__
    return SinkError(f"postgres {kind} (sqlstate {state or 'none'})", retryable=retryable)


class PostgresSink:
    name = "postgres"
    max_batch = 500
    max_concurrency = 1
    self_guarding = True

    def __init__(
        self, dsn: str, *, table: str = "akeneo_resources", allow_private: bool = False
    ) -> None:
        self._dsn = dsn
        self._allow_private = allow_private
        self.table = table
        self.tombstones = tombstone_table(table)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        t, tomb = sql.Identifier(table), sql.Identifier(self.tombstones)
        self._ddl = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} ("
                " kind text NOT NULL, key text NOT NULL, version timestamptz NOT NULL,"
                " resource jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (kind, key))"
            ).format(t=t),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {tomb} ("
                " kind text NOT NULL, key text NOT NULL, version timestamptz NOT NULL,"
                " PRIMARY KEY (kind, key))"
            ).format(tomb=tomb),
        ]
        # Data-modifying CTEs see the statement's snapshot, not each other's effects; each
        # condition below is disjoint from what its CTE removes, so the order does not matter.
        self.upsert = sql.SQL(
            "WITH superseded AS (DELETE FROM {tomb} WHERE kind = %(kind)s AND key = %(key)s"
            "  AND version < %(version)s)"
            " INSERT INTO {t} AS stored (kind, key, version, resource, updated_at)"
            " SELECT %(kind)s, %(key)s, %(version)s, %(resource)s, now()"
            " WHERE NOT EXISTS (SELECT 1 FROM {tomb} WHERE kind = %(kind)s AND key = %(key)s"
            "  AND version >= %(version)s)"
            " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version,"
            " resource = excluded.resource, updated_at = excluded.updated_at"
            " WHERE stored.version <= excluded.version"
        ).format(t=t, tomb=tomb)
        self.delete = sql.SQL(
            "WITH removed AS (DELETE FROM {t} WHERE kind = %(kind)s AND key = %(key)s"
            "  AND version <= %(version)s)"
            " INSERT INTO {tomb} AS tomb (kind, key, version)"
            " SELECT %(kind)s, %(key)s, %(version)s"
            " WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE kind = %(kind)s AND key = %(key)s"
            "  AND version > %(version)s)"
            " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version"
            " WHERE tomb.version < excluded.version"
        ).format(t=t, tomb=tomb)

    def statements(self, changes: Sequence[Change]) -> list[tuple[sql.Composed, dict[str, Any]]]:
        """One statement per change, in key order (a consistent row-lock order)."""
        out = []
        for c in sorted(changes, key=lambda c: (c.kind, c.key)):
            params: dict[str, Any] = {"kind": c.kind, "key": c.key, "version": c.version}
            if c.deleted:
                out.append((self.delete, params))
            else:
                out.append((self.upsert, params | {"resource": Jsonb(c.resource)}))
        return out

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                params = await pgdsn.connect_params(self._dsn, allow_private=self._allow_private)
            except pgdsn.DsnRefused as exc:  # retried like any unreachable database
                raise SinkError(f"postgres DSN: {exc}", retryable=True) from None
            params.setdefault("connect_timeout", "10")
            conn = await psycopg.AsyncConnection.connect(**params)
            await conn.set_isolation_level(psycopg.IsolationLevel.SERIALIZABLE)
            self._conn = conn
        return self._conn

    async def open(self) -> None:
        try:
            conn = await self._connection()
            async with conn.transaction():
                for ddl in self._ddl:
                    await conn.execute(ddl)
        except psycopg.Error as exc:
            raise _error(exc) from exc

    async def _write(self, statements: list[tuple[sql.Composed, dict[str, Any]]]) -> None:
        conn = await self._connection()
        async with conn.transaction(), conn.pipeline(), conn.cursor() as cur:
            for statement, params in statements:
                await cur.execute(statement, params)

    async def apply(self, changes: Sequence[Change]) -> None:
        statements = self.statements(changes)
        if not statements:
            return
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                await self._write(statements)
                return
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
                if attempt == _CONFLICT_ATTEMPTS - 1:
                    raise _error(exc) from exc
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    self._conn = None
                raise _error(exc) from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
