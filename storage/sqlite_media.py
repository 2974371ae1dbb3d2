"""SQLite's media and posts: the images the store keeps (bytes in files beside the database,
storage/media.py; the rest in rows) and the messages that carry each job's results.

A mixin of `SqliteStore` (storage/sqlite.py), which owns the connection, the transactions and the
job rows these methods write together with their own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from bot.model.jobs import Job, JobState
from storage.base import NewMedia, StoredMedia
from storage.media import MediaFiles, valid_id
from storage.schema import marks
from storage.sqlite_conn import Connection

log = logging.getLogger(__name__)


class SqliteMediaPosts:
    """Media and posts on `SqliteStore`'s connection; `complete` and `delivered` move the job in the
    same transaction as their rows."""

    if TYPE_CHECKING:  # what SqliteStore provides
        clock: Any
        files: MediaFiles

        @property
        def db(self) -> Connection: ...

        def transaction(self) -> AbstractAsyncContextManager[Connection]: ...

        async def _move(self, db: Connection, job_id: str, to: JobState, fields: dict[str, Any]) -> bool: ...

        async def _job_where(self, db: Connection, where: str, args: tuple[Any, ...]) -> Job | None: ...

    async def put_media(
        self, data: bytes, content_type: str, width: int, height: int, nsfw: bool = False
    ) -> str:
        """Keep an image: its file first, then its row, so no row ever names a file not yet written."""
        media_id = secrets.token_urlsafe(16)
        await self.files.write(media_id, data)
        now = self.clock()
        try:
            async with self.transaction() as db:
                await db.execute(
                    "INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (media_id, content_type, width, height, int(nsfw), now, now),
                )
        except BaseException:
            await asyncio.shield(self.files.delete([media_id]))
            raise
        return media_id

    async def media(self, media_id: str) -> StoredMedia | None:
        """A held image, or None when it is not (never was, deleted by retention, or its file is gone)."""
        if not valid_id(media_id):
            return None
        async with self.db.execute(
            "SELECT id, content_type, width, height, nsfw FROM media WHERE id=?", (media_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        data = await self.files.read(media_id)
        if data is None:
            log.warning(
                "media %s has a row but no file in %s: answered as no longer held",
                media_id,
                self.files.folder,
            )
            return None
        return StoredMedia(row[0], data, row[1], int(row[2]), int(row[3]), bool(row[4]))

    async def held_media(self, media_ids: list[str]) -> set[str]:
        """Which of `media_ids` have a row (storage/media.py asks, to find files a crash left)."""
        async with self.db.execute(f"SELECT id FROM media WHERE id IN {marks(media_ids)}", media_ids) as cur:
            return {str(row[0]) for row in await cur.fetchall()}

    async def record_posts(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> None:
        async with self.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)

    async def _add_posts(
        self, db: Connection, job_id: str, surface: str, posts: list[tuple[str, str | None]]
    ) -> None:
        now = self.clock()
        for message_key, thread_key in posts:
            await db.execute(
                "INSERT OR IGNORE INTO posts (surface, message_key, job_id, thread_key, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (surface, message_key, job_id, thread_key, now),
            )

    async def delivered(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        async with self.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)
            return await self._move(db, job_id, JobState.DELIVERED, {})

    async def complete(self, job_id: str, images: list[NewMedia]) -> list[str] | None:
        """The files first, then the rows and the move: no row ever names a file not yet written."""
        ids = [secrets.token_urlsafe(16) for _ in images]
        moved = False
        try:
            for media_id, image in zip(ids, images, strict=True):
                await self.files.write(media_id, image.data)
            now = self.clock()
            async with self.transaction() as db:
                moved = await self._move(db, job_id, JobState.COMPLETED, {"result_media": ids})
                for media_id, image in zip(ids, images, strict=True) if moved else ():
                    await db.execute(
                        "INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (media_id, image.content_type, image.width, image.height, int(image.nsfw), now, now),
                    )
        finally:
            if not moved:
                await asyncio.shield(self.files.delete(ids))
        return ids if moved else None

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None:
        """Record one post of a job as soon as the platform has it (a later call may add its thread)."""
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (surface, message_key) DO UPDATE SET thread_key=COALESCE(excluded.thread_key, thread_key)",
                (surface, message_key, job_id, thread_key, self.clock()),
            )

    async def posts_of(self, job_id: str, surface: str) -> list[str]:
        """The message keys of a job's posts, in the order they were recorded."""
        async with self.db.execute(
            "SELECT message_key FROM posts WHERE job_id=? AND surface=? ORDER BY rowid", (job_id, surface)
        ) as cur:
            return [str(row[0]) async for row in cur]

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self._job_where(
            self.db, "id=(SELECT job_id FROM posts WHERE surface=? AND message_key=?)", (surface, message_key)
        )

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        return await self._job_where(
            self.db,
            "id=(SELECT p.job_id FROM posts p JOIN jobs j ON j.id=p.job_id WHERE p.surface=? AND p.thread_key=? "
            "AND j.state=? ORDER BY p.created_at DESC, p.rowid DESC LIMIT 1)",
            (surface, thread_key, JobState.DELIVERED),
        )

    async def forget_posts(self, job_id: str) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM posts WHERE job_id=?", (job_id,))
