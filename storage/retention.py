"""Retention in the store: delete old images (their rows, then their bytes: storage/image_bytes.py),
clear the bulky columns of old finished jobs, and give the freed space back. The sweeps are written
once; giving space back is the database's own (`SqliteSpace`; PostgreSQL's autovacuum marks the
deleted rows' space for reuse on its own, and only a `VACUUM FULL`, a table lock the bot never
takes, would shrink its files: `NoSpaceToGive`).

Each call does one bounded batch in its own transaction, so a sweep never holds the store for long:
other store calls run between batches. What quotas, spend and the buttons under old posts need stays:
ledger rows, grants, limits, posts, and each job's id, state, user, surface, request and cost.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from bot.model.jobs import TERMINAL, UNFINISHED
from storage.base import Store
from storage.media import MediaFiles
from storage.sqlite_conn import Connection

log = logging.getLogger(__name__)

# SQLite's auto_vacuum modes, as `PRAGMA auto_vacuum` reports them.
INCREMENTAL = 2
# Pages given back per step (4 KiB pages: 16 MiB), so other store calls run in between.
VACUUM_STEP = 4096


def sweeps_for(store: Store) -> Sweeps:
    """Retention's sweeps in `store`."""
    return Sweeps(store)


class Sweeps:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def prepare(self) -> bool:
        """Once at start: make the database able to give space back. True when it changed it now."""
        return await self.store.space.prepare()

    async def give_back(self) -> int:
        """Give freed space back after a sweep; how many pages were given back."""
        return await self.store.space.give_back()

    async def touch_media(self, media_id: str) -> bool:
        """Mark a held image as used now (a new job takes it), so a sweep does not delete it before
        that job is stored. False when it is no longer held."""
        async with self.store.database.transaction() as db:
            return await db.execute("UPDATE media SET used_at=? WHERE id=?", self.store.now(), media_id) == 1

    async def delete_old_media(self, used_before: float, limit: int) -> int:
        """Delete up to `limit` images last used before `used_before`, except those an unfinished job
        still names (its references, or results not yet delivered) and those a saved subject names.
        Returns how many were deleted.

        The rows go first, in their transaction, then their bytes: a crash in between leaves files
        without rows (removed at the next start, see storage/media.py), never a row without its file.
        The media columns of jobs and subjects are JSON arrays kept as text: expanded as JSON, never
        matched by LIKE."""
        d = self.store.database.dialect
        unfinished, args = d.among("j.state", UNFINISHED)
        async with self.store.database.transaction() as db:
            rows = await db.fetch(
                "DELETE FROM media WHERE id IN (SELECT id FROM media WHERE used_at < ? AND id NOT IN ("
                f"SELECT r.value FROM jobs j, {d.json_items('j.reference_media', 'r')} WHERE {unfinished} "
                f"UNION SELECT r.value FROM jobs j, {d.json_items('j.result_media', 'r')} WHERE {unfinished} "
                f"UNION SELECT r.value FROM subjects s, {d.json_items('s.media', 'r')}"
                ") ORDER BY used_at LIMIT ?) RETURNING id",
                *(used_before, *args, *args, limit),
            )
        gone = [str(row[0]) for row in rows]
        await self.store.media_bytes.drop(gone)
        return len(gone)

    async def clear_finished_jobs(self, finished_before: float, limit: int) -> int:
        """Clear the bulky columns (where to answer on the platform, the provider's last status) of up
        to `limit` jobs that were delivered or failed before `finished_before`. Returns how many."""
        d = self.store.database.dialect
        terminal, args = d.among(d.unindexed("state"), TERMINAL)
        # The condition repeats the partial index `jobs_bulky` word for word, and SQLite is kept from
        # preferring `jobs_state` (which would walk every finished job in each batch).
        async with self.store.database.transaction() as db:
            return await db.execute(
                "UPDATE jobs SET origin='{}', callback_status=NULL WHERE id IN (SELECT id FROM jobs "
                f"WHERE (origin != '{{}}' OR callback_status IS NOT NULL) AND updated_at < ? AND {terminal} LIMIT ?)",
                *(finished_before, *args, limit),
            )


class NoSpaceToGive:
    async def prepare(self) -> bool:
        return False

    async def give_back(self) -> int:
        return 0


class _Sqlite(Protocol):
    """What giving space back needs of the SQLite store."""

    files: MediaFiles

    def exclusive(self) -> AbstractAsyncContextManager[Connection]: ...

    async def held_media(self, media_ids: list[str]) -> set[str]: ...


class SqliteSpace:
    def __init__(self, store: _Sqlite) -> None:
        self.store = store

    async def prepare(self) -> bool:
        # Once per start is enough: only a crash (or a kill) between a row and its file leaves one.
        try:
            await self.store.files.remove_orphans(self.store.held_media)
        except OSError as exc:
            log.warning("could not look for image files a crash left behind (%s)", exc)
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


async def use_incremental_vacuum(store: _Sqlite) -> bool:
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


async def free_pages(store: _Sqlite) -> tuple[int, int]:
    """The file's size in pages, and how many of them are free."""
    async with store.exclusive() as db:
        return await _pages(db)


async def give_back(store: _Sqlite, pages: int) -> int:
    """Return up to `pages` free pages to the file system. Returns how many free pages remain."""
    async with store.exclusive() as db:
        # A script steps the pragma to its end; a plain execute frees one page only.
        await db.executescript(f"PRAGMA incremental_vacuum({max(1, int(pages))})")
        return (await _pages(db))[1]


async def checkpoint(store: _Sqlite) -> None:
    """Copy the write-ahead log into the file and empty it, so the file's new size takes effect and
    the log does not keep the deleted images' pages."""
    async with store.exclusive() as db:  # from a thread: it syncs the file to disk
        await db.checkpoint_apart("TRUNCATE")


async def _pages(db: Connection) -> tuple[int, int]:
    async with db.execute("PRAGMA page_count") as cur:
        total = await cur.fetchone()
    async with db.execute("PRAGMA freelist_count") as cur:
        free = await cur.fetchone()
    return int(total[0]) if total else 0, int(free[0]) if free else 0
