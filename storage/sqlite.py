"""The SQLite backend (the embedded default): the one store (storage/store.py) on one connection in
WAL mode, image bytes in files beside the database, wake-ups within the process (one process by
design), and freed pages given back by incremental vacuum."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

from bot.model.errors import ConfigError
from storage.connections import SqliteDatabase
from storage.image_bytes import FileBytes
from storage.media import MediaFiles, move_out_of_rows
from storage.migrations import migrate
from storage.retention import SqliteSpace
from storage.sqlite_conn import Checkpoints, Connection, connect
from storage.store import SqlStore, StoredMedia
from storage.wakeups import LocalWakeups, Wakeups


@contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created meanwhile, by any thread, are readable by their owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class SqliteStore(SqlStore):
    def __init__(
        self,
        path: Path | str,
        *,
        default_limit: int,
        default_ceiling: int | None = None,
        clock: Any = time.time,
    ) -> None:
        super().__init__(default_limit=default_limit, default_ceiling=default_ceiling, clock=clock)
        self.path = str(path)
        self._database: SqliteDatabase | None = None
        self._checkpoints: Checkpoints | None = None
        self.files = MediaFiles(Path(self.path + ".media"))
        self.media_bytes = FileBytes(self.files)
        self.space = SqliteSpace(self)
        # One process works the jobs of a SQLite database: its wake-ups stay within it.
        self._wakeups = LocalWakeups()

    async def __aenter__(self) -> SqliteStore:
        try:
            # The file and its -wal and -shm (SQLite gives those the file's mode) hold secrets: owner only.
            with owner_only():
                # Opened once in a thread first: making the file, or finding a stale lock, may wait.
                await asyncio.to_thread(lambda: sqlite3.connect(self.path).close())
                db = connect(self.path)
                db.row_factory = sqlite3.Row
                self._database = SqliteDatabase(db)
                # Freed pages can be given back (storage/retention.py). Takes effect on a new file only;
                # an existing one is converted once by `use_incremental_vacuum`.
                await db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                await db.execute("PRAGMA journal_mode=WAL")
            for suffix in ("", "-wal", "-shm"):  # also a database made before this rule
                with suppress(FileNotFoundError, PermissionError):
                    os.chmod(self.path + suffix, 0o600)
            await db.execute("PRAGMA synchronous=NORMAL")
            await migrate(self.database, self.database.transaction)
        except sqlite3.Error as exc:
            await self.__aexit__()
            hint = (
                " (does its folder exist, and may the bot write there?)"
                if "unable to open" in str(exc)
                else ""
            )
            raise ConfigError(f"HIDREAM_DB_PATH: cannot open the database {self.path}: {exc}{hint}") from exc
        try:
            await self.files.open()
            await move_out_of_rows(self)
        except OSError as exc:
            await self.__aexit__()
            raise ConfigError(
                f"HIDREAM_DB_PATH: cannot keep images in {self.files.folder}: {exc.strerror or exc}"
            ) from exc
        self._checkpoints = Checkpoints(self.path, self.db)
        self._checkpoints.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.stop()
            self._checkpoints = None
        if self._database is not None:
            await self._database.conn.close()
            self._database = None

    @property
    def database(self) -> SqliteDatabase:  # type: ignore[override]
        if self._database is None:
            raise RuntimeError("store is not open")
        return self._database

    @property
    def db(self) -> Connection:
        return self.database.conn

    def transaction(self) -> Any:
        """The connection inside one transaction (for the SQLite-only tools: `db copy`, upgrades)."""
        return self.database.raw_transaction()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Connection]:
        """The connection with no other store call running and no transaction open: for what cannot
        run inside one (VACUUM, a script of pragmas)."""
        async with self.database.lock:
            yield self.db

    def wakeups(self) -> Wakeups:
        return self._wakeups

    def replica_name(self) -> str:
        # Always the same name, so a restarted bot takes its jobs back at once.
        return "local"


# The name the core imported before storage/base.py's protocol took it; kept so those imports work.
Store = SqliteStore
__all__ = ["SqliteStore", "Store", "StoredMedia", "owner_only"]
