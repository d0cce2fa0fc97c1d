"""SQLite sink: the default of local mode, a table and its tombstones in a local file.

A batch is one transaction of a few multi-row statements that take a few milliseconds, run
on the event loop itself: in a thread, sqlite3 hands the GIL back around every statement
step and then waits for the busy loop to return it, which made the sink ten times slower.
Only when the file is locked by another writer (another worker or a tool sharing it) does
the batch go to the sink's thread, which may wait for the lock without stalling the loop.
The sink guards itself (``akeneo_worker.sinks.tombstones``): removals are kept in
``<table>_tombstones`` and every statement checks versions against both tables; SQLite runs
one writer at a time, so even two workers sharing the file never go backwards nor
resurrect a removed row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from akeneo_connector.changes import Change
from akeneo_connector.normalized import utc_version
from akeneo_worker.sinks.base import SinkError
from akeneo_worker.sinks.tombstones import tombstone_table

DEFAULT_TABLE = "akeneo_resources"
_ROWS_PER_STATEMENT = 500  # one multi-row upsert: 2,500 parameters, below SQLite's 32,766
_LOCK_WAIT_MS = 30_000


def _chunks(changes: list[Change]) -> list[list[Change]]:
    return [
        changes[i : i + _ROWS_PER_STATEMENT] for i in range(0, len(changes), _ROWS_PER_STATEMENT)
    ]


def _keys(rows: list[Change], versions: list[str]) -> list[str]:
    """``kind, key, version`` of each row, flat: the parameters of a 3-column ``_values``."""
    return [v for c, version in zip(rows, versions, strict=True) for v in (c.kind, c.key, version)]


def _ddl(table: str, tombstones: str) -> list[str]:
    """Both tables, created if missing (a database of an earlier version gains the second)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            version TEXT NOT NULL,
            resource TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {tombstones} (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            version TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ]


def _values(rows: int, columns: int) -> str:
    """``(VALUES (?, ?), ...) AS u``: a batch as a table, its columns ``u.column1``..."""
    row = "(" + ", ".join(["?"] * columns) + ")"
    return f"(VALUES {', '.join([row] * rows)}) AS u"


def _delete_matching(table: str, rows: int, older: str) -> str:
    """Delete the entries of ``table`` whose version is ``older`` (``<`` or ``<=``) than the
    batch's row of the same resource (a 3-column ``_values``: kind, key, version)."""
    return (
        f"DELETE FROM {table} WHERE rowid IN (SELECT {table}.rowid FROM {_values(rows, 3)}"
        f" JOIN {table} ON {table}.kind = u.column1 AND {table}.key = u.column2"
        f" AND {table}.version {older} u.column3)"
    )


class SqliteSink:
    name = "sqlite"
    max_batch = 500
    max_concurrency = 1
    self_guarding = True

    def __init__(self, path: Path | str, *, table: str = DEFAULT_TABLE) -> None:
        self.path = Path(path)
        self.table = table
        self.tombstones = tombstone_table(table)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-sink")
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # timeout=0: a write on the loop never waits for a lock (see ``_write_waiting``)
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")  # in the thread: may wait
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for ddl in _ddl(self.table, self.tombstones):
            db.execute(ddl)
        db.execute("PRAGMA busy_timeout = 0")
        self._db = db

    async def open(self) -> None:
        try:
            await self._call(self._open)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite {self.path}: {exc}", retryable=True) from exc

    def _statements(self, changes: Sequence[Change]) -> list[tuple[str, list[Any]]]:
        """The batch as a few statements, 500 rows each: upserts, then removals.

        Each statement keeps the rule of ``akeneo_worker.sinks.tombstones`` on its own, so
        their order does not matter; they run as one transaction.
        """
        now = datetime.now(UTC).isoformat()
        upserts = [c for c in changes if not c.deleted]
        deletes = [c for c in changes if c.deleted]
        statements: list[tuple[str, list[Any]]] = []
        for rows in _chunks(upserts):
            versions = [utc_version(c.version) for c in rows]
            values = [
                v
                for c, version in zip(rows, versions, strict=True)
                for v in (c.kind, c.key, version, c.resource_json, now)
            ]
            keys = _keys(rows, versions)
            statements.append((self._upsert_sql(len(rows)), values))
            statements.append((self._drop_superseded_sql(len(rows)), keys))
        for rows in _chunks(deletes):
            keys = _keys(rows, [utc_version(c.version) for c in rows])
            statements.append((self._delete_sql(len(rows)), keys))
            statements.append((self._tombstone_sql(len(rows)), keys))
        return statements

    def _upsert_sql(self, rows: int) -> str:
        """Insert or update rows newer than their tombstone and not older than the row."""
        t, tomb = self.table, self.tombstones
        return (
            f"INSERT INTO {t} (kind, key, version, resource, updated_at)"
            f" SELECT u.column1, u.column2, u.column3, u.column4, u.column5 FROM {_values(rows, 5)}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {tomb} WHERE {tomb}.kind = u.column1"
            f" AND {tomb}.key = u.column2 AND {tomb}.version >= u.column3)"
            " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version,"
            " resource = excluded.resource, updated_at = excluded.updated_at"
            f" WHERE {t}.version <= excluded.version"
        )

    def _drop_superseded_sql(self, rows: int) -> str:
        """Tombstones older than an upsert of the batch: the row now holds a newer version."""
        return _delete_matching(self.tombstones, rows, "<")

    def _delete_sql(self, rows: int) -> str:
        """Rows not newer than the removal."""
        return _delete_matching(self.table, rows, "<=")

    def _tombstone_sql(self, rows: int) -> str:
        """Keep the newest removal of each resource, unless a newer row exists."""
        t, tomb = self.table, self.tombstones
        return (
            f"INSERT INTO {tomb} (kind, key, version)"
            f" SELECT u.column1, u.column2, u.column3 FROM {_values(rows, 3)}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.kind = u.column1"
            f" AND {t}.key = u.column2 AND {t}.version > u.column3)"
            " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version"
            f" WHERE {tomb}.version < excluded.version"
        )

    def _write(self, statements: list[tuple[str, list[Any]]]) -> None:
        assert self._db is not None, "open() first"
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # the write lock first: the statements read what they check
        try:
            for sql, values in statements:
                db.execute(sql, values)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _write_waiting(self, statements: list[tuple[str, list[Any]]]) -> None:
        """In the sink's thread: the same write, waiting up to 30 s for the file's lock."""
        assert self._db is not None, "open() first"
        self._db.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
        try:
            self._write(statements)
        finally:
            self._db.execute("PRAGMA busy_timeout = 0")

    async def apply(self, changes: Sequence[Change]) -> None:
        statements = self._statements(changes)
        if not statements:
            return
        try:
            try:
                self._write(statements)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                await self._call(self._write_waiting, statements)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite {self.path}: {exc}", retryable=True) from exc

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await self._call(db.close)
        self._executor.shutdown(wait=False)

    def read_tombstones(self) -> dict[tuple[str, str], str]:
        """``(kind, key) -> version`` of each removal kept: for tests and inspection."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            rows = db.execute(f"SELECT kind, key, version FROM {self.tombstones}").fetchall()
        return {(kind, key): version for kind, key, version in rows}

    def read_all(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """``(kind, key) -> (version, resource)``: for tests, benchmarks and inspection."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            rows = db.execute(f"SELECT kind, key, version, resource FROM {self.table}").fetchall()
        return {(k, key): (v, json.loads(r)) for k, key, v, r in rows}
