"""Retention in the store: delete old images (their rows, then their bytes: storage/media.py),
clear the bulky columns of old finished jobs, and give the freed space back. The sweeps are written
once; giving space back is the database's own (storage/sqlite.py's `SqliteSpace`; PostgreSQL's autovacuum marks the
deleted rows' space for reuse on its own, and only a `VACUUM FULL`, a table lock the bot never
takes, would shrink its files: `NoSpaceToGive`).

Saved subjects nobody has used for long go too, with their images (`delete_unused_subjects`).

Each call does one bounded batch in its own transaction, so a sweep never holds the store for long:
other store calls run between batches. What quotas, spend and the buttons under old posts need stays:
ledger rows, grants, limits, posts, and each job's id, state, user, surface, request and cost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from bot.model.jobs import TERMINAL, UNFINISHED
from storage.media import ImageBytes
from storage.objects import ObjectStoreError
from storage.store import Store

log = logging.getLogger(__name__)


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

    async def delete_unused_subjects(self, used_before: float, limit: int) -> tuple[int, int]:
        """Delete up to `limit` saved subjects last used before `used_before`, with those of their
        images that no other subject and no unfinished job names. Returns (subjects, images) deleted.
        Rows first, then bytes, as above."""
        d = self.store.database.dialect
        unfinished, args = d.among("j.state", UNFINISHED)
        async with self.store.database.transaction() as db:
            rows = await db.fetch(
                "DELETE FROM subjects WHERE (tenant, name_key) IN (SELECT tenant, name_key FROM subjects "
                "WHERE used_at < ? ORDER BY used_at LIMIT ?) RETURNING media",
                used_before,
                limit,
            )
            named = sorted({str(m) for row in rows for m in json.loads(row[0])})
            if not named:
                return len(rows), 0
            among, ids = d.among("id", named)
            gone = await db.fetch(
                f"DELETE FROM media WHERE {among} AND id NOT IN ("
                f"SELECT r.value FROM jobs j, {d.json_items('j.reference_media', 'r')} WHERE {unfinished} "
                f"UNION SELECT r.value FROM jobs j, {d.json_items('j.result_media', 'r')} WHERE {unfinished} "
                f"UNION SELECT r.value FROM subjects s, {d.json_items('s.media', 'r')}"
                ") RETURNING id",
                *(*ids, *args, *args),
            )
        await self.store.media_bytes.drop([str(row[0]) for row in gone])
        return len(rows), len(gone)

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
    """A database that gives space back by itself (PostgreSQL's autovacuum). At start it only sweeps
    the bytes a crash left without a row, where they live apart from the rows (an object store)."""

    def __init__(
        self, media: ImageBytes | None = None, held: Callable[[list[str]], Awaitable[set[str]]] | None = None
    ) -> None:
        self.media = media
        self.held = held

    async def prepare(self) -> bool:
        if self.media is not None and self.held is not None:
            try:
                await self.media.remove_orphans(self.held)
            except (OSError, ObjectStoreError) as exc:
                log.warning("could not look for image bytes a crash left behind (%s)", exc)
        return False

    async def give_back(self) -> int:
        return 0
