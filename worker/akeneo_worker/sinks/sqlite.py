"""SQLite sink: the default of local mode, one table in a local file.

sqlite3 is blocking, so every call runs in one dedicated thread. The version check is in the
SQL (like the postgres sink), so even two workers sharing the file never go backwards.
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
        self._upsert = (
            f"INSERT INTO {table} (kind, key, version, resource, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
            "version = excluded.version, resource = excluded.resource, "
            f"updated_at = excluded.updated_at WHERE {table}.version <= excluded.version"
        )
        self._delete = f"DELETE FROM {table} WHERE kind = ? AND key = ? AND version <= ?"

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_ddl(self.table))
        self._db = db

    async def open(self) -> None:
        try:
            await self._call(self._open)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite {self.path}: {exc}", retryable=True) from exc

    def _apply(self, changes: Sequence[Change]) -> None:
        assert self._db is not None, "open() first"
        now = datetime.now(UTC).isoformat()
        upserts = [
            (c.kind, c.key, utc_version(c.version), json.dumps(c.resource), now)
            for c in changes
            if not c.deleted
        ]
        deletes = [(c.kind, c.key, utc_version(c.version)) for c in changes if c.deleted]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if upserts:
                db.executemany(self._upsert, upserts)
            if deletes:
                db.executemany(self._delete, deletes)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def apply(self, changes: Sequence[Change]) -> None:
        try:
            await self._call(self._apply, changes)
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
