"""SQLite sink: the default of local mode, one table in a local file.

A batch is one or two statements that take a few milliseconds, run on the event loop
itself: in a thread, sqlite3 hands the GIL back around every statement step and then waits
for the busy loop to return it, which made the sink ten times slower. Only when the file is
locked by another writer (another worker or a tool sharing it) does the batch go to the
sink's thread, which may wait for the lock without stalling the loop. The version check is
in the SQL (like the postgres sink), so even two workers sharing the file never go backwards.
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

from akeneo_pim.normalized import utc_version
from akeneo_worker.changes import Change
from akeneo_worker.sinks.base import SinkError

DEFAULT_TABLE = "akeneo_resources"
_ROWS_PER_STATEMENT = 500  # one multi-row upsert: 2,500 parameters, below SQLite's 32,766
_LOCK_WAIT_MS = 30_000


def _ddl(table: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        version TEXT NOT NULL,
        resource TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    )"""


class SqliteSink:
    name = "sqlite"
    max_batch = 500
    max_concurrency = 1

    def __init__(self, path: Path | str, *, table: str = DEFAULT_TABLE) -> None:
        self.path = Path(path)
        self.table = table
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-sink")
        self._db: sqlite3.Connection | None = None
        self._upsert_tail = (
            " ON CONFLICT (kind, key) DO UPDATE SET "
            "version = excluded.version, resource = excluded.resource, "
            f"updated_at = excluded.updated_at WHERE {table}.version <= excluded.version"
        )
        self._delete = f"DELETE FROM {table} WHERE kind = ? AND key = ? AND version <= ?"

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # timeout=0: a write on the loop never waits for a lock (see ``_write_waiting``)
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")  # in the thread: may wait
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_ddl(self.table))
        db.execute("PRAGMA busy_timeout = 0")
        self._db = db

    async def open(self) -> None:
        try:
            await self._call(self._open)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite {self.path}: {exc}", retryable=True) from exc

    def _statements(self, changes: Sequence[Change]) -> list[tuple[str, list[Any]]]:
        """The batch as a few statements: one multi-row upsert per 500 rows, the deletes."""
        now = datetime.now(UTC).isoformat()
        upserts = [c for c in changes if not c.deleted]
        statements = []
        for i in range(0, len(upserts), _ROWS_PER_STATEMENT):
            rows = upserts[i : i + _ROWS_PER_STATEMENT]
            values = [
                v
                for c in rows
                for v in (c.kind, c.key, utc_version(c.version), c.resource_json, now)
            ]
            statements.append((self._upsert_sql(len(rows)), values))
        for c in changes:
            if c.deleted:
                statements.append((self._delete, [c.kind, c.key, utc_version(c.version)]))
        return statements

    def _write(self, statements: list[tuple[str, list[Any]]]) -> None:
        assert self._db is not None, "open() first"
        db = self._db
        if len(statements) == 1:  # one statement is a transaction of its own
            db.execute(*statements[0])
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, values in statements:
                db.execute(sql, values)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _upsert_sql(self, rows: int) -> str:
        values = ",".join(["(?, ?, ?, ?, ?)"] * rows)
        columns = "(kind, key, version, resource, updated_at)"
        return f"INSERT INTO {self.table} {columns} VALUES {values}{self._upsert_tail}"

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

    def read_all(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """``(kind, key) -> (version, resource)``: for tests, benchmarks and inspection."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            rows = db.execute(f"SELECT kind, key, version, resource FROM {self.table}").fetchall()
        return {(k, key): (v, json.loads(r)) for k, key, v, r in rows}
