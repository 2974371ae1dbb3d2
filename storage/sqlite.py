"""The SQLite backend (the embedded default): the one store (storage/store.py) on one connection in
WAL mode, image bytes in files beside the database, wake-ups within the process (one process by
design), and freed pages given back by incremental vacuum."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

from bot.model.errors import ConfigError
from storage.connections import SqliteDatabase
from storage.media import ImageBytes, MediaFiles
from storage.migrations import MEDIA_DATA_EXTERNAL, MEDIA_DATA_OPTIONAL, MEDIA_MOVING, migrate
from storage.objects import ObjectStoreError
from storage.quota import QuotaDefaults, QuotaRules
from storage.sqlite_conn import Checkpoints, Connection, connect
from storage.store import Store
from storage.wakeups import LocalWakeups, Wakeups

log = logging.getLogger(__name__)


@contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created meanwhile, by any thread, are readable by their owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class SqliteStore(Store):
    def __init__(
        self,
        path: Path | str,
        *,
        default_limit: int,
        default_ceiling: int | None = None,
        admin_max: int | None = None,
        person_quota: int | None = None,
        clock: Any = time.time,
        policy: QuotaRules | None = None,
        media: ImageBytes | None = None,
        copying: bool = False,
    ) -> None:
        defaults = QuotaDefaults(default_limit, default_ceiling, admin_max, person_quota)
        super().__init__(defaults=defaults, clock=clock, policy=policy)
        self.path = str(path)
        self._database: SqliteDatabase | None = None
        self._checkpoints: Checkpoints | None = None
        # Images written before an object store was named (and by the upgrade below) are files here.
        self.files = MediaFiles(Path(self.path + ".media"))
        # Where image bytes live: the files, unless an object store is given (HIDREAM_MEDIA_URL).
        self.media_bytes: ImageBytes = media or self.files
        # Opened by `db copy`, which reads the files too: no warning about them.
        self.copying = copying
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
                self._database = SqliteDatabase(db)
                # Freed pages can be given back (storage/retention.py). Takes effect on a new file only;
                # an existing one is converted once by `use_incremental_vacuum`.
                await db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                await db.execute("PRAGMA journal_mode=WAL")
            for suffix in ("", "-wal", "-shm"):  # also a database made before this rule
                with suppress(FileNotFoundError, PermissionError):
                    os.chmod(self.path + suffix, 0o600)
            await db.execute("PRAGMA synchronous=NORMAL")
            await migrate(
                self.database, self.database.transaction, skip=(MEDIA_DATA_OPTIONAL, MEDIA_DATA_EXTERNAL)
            )
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
            if self.media_bytes is not self.files:
                await self.media_bytes.open()
                if not self.copying and await self.files.any_held():
                    log.warning(
                        "images in %s are not read while HIDREAM_MEDIA_URL names an object store: "
                        "move them there with `hidream-bot db copy --to s3://...`",
                        self.files.folder,
                    )
            await move_out_of_rows(self)
        except ObjectStoreError as exc:
            await self.__aexit__()
            raise ConfigError(f"HIDREAM_MEDIA_URL: {exc}") from exc
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


async def move_out_of_rows(store: SqliteStore) -> int:
    """Write the images an upgrade set aside (storage/migrations.py, MEDIA_TO_FILES) to their files, one
    per transaction, each deleted from the database once its file is on disk; then drop their table.
    Returns how many were moved (0 on every open after the one that finished)."""
    async with store.exclusive() as db:
        async with db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (MEDIA_MOVING,)
        ) as cur:
            if await cur.fetchone() is None:
                return 0
    moved = 0
    while True:
        async with store.transaction() as db:
            async with db.execute(f"SELECT id, data FROM {MEDIA_MOVING} LIMIT 1") as cur:
                row = await cur.fetchone()
            if row is None:
                await db.execute(f"DROP TABLE {MEDIA_MOVING}")
                break
            # An id of another shape (no version of the bot made one) cannot name a file: its
            # row stays, answered as no longer held.
            if store.media_bytes.valid(row[0]):
                await store.media_bytes.keep({row[0]: bytes(row[1])})
            await db.execute(f"DELETE FROM {MEDIA_MOVING} WHERE id=?", (row[0],))
            moved += 1
    async with store.exclusive() as db:
        # The images' pages are free now: give them back (a no-op until the file is incremental,
        # which retention's first start makes it).
        await db.executescript("PRAGMA incremental_vacuum")
    if moved:
        log.info("moved %d image(s) out of the database into %s", moved, store.files.folder)
    return moved


# SQLite's auto_vacuum modes, as `PRAGMA auto_vacuum` reports them.
INCREMENTAL = 2
# Pages given back per step (4 KiB pages: 16 MiB), so other store calls run in between.
VACUUM_STEP = 4096


class SqliteSpace:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def prepare(self) -> bool:
        # Once per start is enough: only a crash (or a kill) between a row and its file leaves one.
        try:
            await self.store.media_bytes.remove_orphans(self.store.held_media)
        except (OSError, ObjectStoreError) as exc:
            log.warning("could not look for image bytes a crash left behind (%s)", exc)
        try:
            return await use_incremental_vacuum(self.store)
        except sqlite3.Error as exc:
            # E.g. no room for the copy a VACUUM makes: retention still deletes, and SQLite reuses the
            # freed pages; only the file does not shrink. The bot starts all the same.
            log.warning(
                "could not switch the database to incremental vacuum (%s); will try on the next start", exc
            )
            return False

    async def give_back(self) -> int:
        """Return the free pages to the file system in steps, then empty the write-ahead log."""
        _, free = await free_pages(self.store)
        left = free
        while left:
            now_left = await give_back(self.store, VACUUM_STEP)
            if now_left >= left:
                break  # nothing more can be freed (another writer keeps pages in use)
            left = now_left
        await checkpoint(self.store)
        return free - left


async def use_incremental_vacuum(store: SqliteStore) -> bool:
    """Switch an existing database to `auto_vacuum=INCREMENTAL`, which needs one full VACUUM (it
    rewrites the file: a large database takes a while, once). A file made by this version is already
    incremental. True when the database was converted now."""
    async with store.exclusive() as db:
        async with db.execute("PRAGMA auto_vacuum") as cur:
            row = await cur.fetchone()
        if row is not None and int(row[0]) == INCREMENTAL:
            return False
        log.info("switching the database to incremental vacuum (a one-time VACUUM)")
        await db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        await db.execute("VACUUM")
        return True


async def free_pages(store: SqliteStore) -> tuple[int, int]:
    """The file's size in pages, and how many of them are free."""
    async with store.exclusive() as db:
        return await _pages(db)


async def give_back(store: SqliteStore, pages: int) -> int:
    """Return up to `pages` free pages to the file system. Returns how many free pages remain."""
    async with store.exclusive() as db:
        # A script steps the pragma to its end; a plain execute frees one page only.
        await db.executescript(f"PRAGMA incremental_vacuum({max(1, int(pages))})")
        return (await _pages(db))[1]


# How often retention tries to empty the log while the background checkpointer is at work.
CHECKPOINT_TRIES = 100


async def checkpoint(store: SqliteStore) -> None:
    """Copy the write-ahead log into the file and empty it, so the file's new size takes effect and
    the log does not keep the deleted images' pages."""
    async with store.exclusive() as db:  # from a thread: it syncs the file to disk
        for _ in range(CHECKPOINT_TRIES):
            done = await db.checkpoint_apart("TRUNCATE")
            # Busy: the background checkpointer holds the checkpoint lock for a moment; try again.
            if done is None or done[0] == 0:
                return
            await asyncio.sleep(0.01)


async def _pages(db: Connection) -> tuple[int, int]:
    async with db.execute("PRAGMA page_count") as cur:
        total = await cur.fetchone()
    async with db.execute("PRAGMA freelist_count") as cur:
        free = await cur.fetchone()
    return int(total[0]) if total else 0, int(free[0]) if free else 0
