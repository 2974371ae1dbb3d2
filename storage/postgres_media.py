"""PostgreSQL's media and posts: the images the store keeps (bytes in their rows) and the messages
that carry each job's results.

A mixin of `PostgresStore` (storage/postgres.py), which owns the pool, the transactions and the job
rows these methods write together with their own.
"""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from bot.model.jobs import Job, JobState
from storage.base import NewMedia, StoredMedia


class PostgresMediaPosts:
    """Media and posts on `PostgresStore`'s pool; `complete` and `delivered` move the job in the same
    transaction as their rows."""

    if TYPE_CHECKING:  # what PostgresStore provides
        clock: Any

        @property
        def pool(self) -> Any: ...

        def transaction(self) -> AbstractAsyncContextManager[Any]: ...

        async def _move(self, db: Any, job_id: str, to: JobState, fields: dict[str, Any]) -> bool: ...

        async def _job_where(self, db: Any, where: str, *args: Any) -> Job | None: ...

    async def put_media(
        self, data: bytes, content_type: str, width: int, height: int, nsfw: bool = False
    ) -> str:
        media_id = secrets.token_urlsafe(16)
        now = float(self.clock())
        await self.pool.execute(
            "INSERT INTO media (id, data, content_type, width, height, nsfw, created_at, used_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            media_id,
            data,
            content_type,
            width,
            height,
            nsfw,
            now,
            now,
        )
        return media_id

    async def media(self, media_id: str) -> StoredMedia | None:
        row = await self.pool.fetchrow(
            "SELECT id, data, content_type, width, height, nsfw FROM media WHERE id=$1", media_id
        )
        if row is None:
            return None
        return StoredMedia(row[0], bytes(row[1]), row[2], int(row[3]), int(row[4]), bool(row[5]))

    async def record_posts(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> None:
        async with self.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)

    async def _add_posts(
        self, db: Any, job_id: str, surface: str, posts: list[tuple[str, str | None]]
    ) -> None:
        now = float(self.clock())
        for message_key, thread_key in posts:
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                surface,
                message_key,
                job_id,
                thread_key,
                now,
            )

    async def delivered(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        async with self.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)
            return await self._move(db, job_id, JobState.DELIVERED, {})

    async def complete(self, job_id: str, images: list[NewMedia]) -> list[str] | None:
        ids = [secrets.token_urlsafe(16) for _ in images]
        now = float(self.clock())
        async with self.transaction() as db:
            if not await self._move(db, job_id, JobState.COMPLETED, {"result_media": ids}):
                return None
            for media_id, image in zip(ids, images, strict=True):
                await db.execute(
                    "INSERT INTO media (id, data, content_type, width, height, nsfw, created_at, used_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    *(media_id, image.data, image.content_type, image.width, image.height),
                    *(image.nsfw, now, now),
                )
        return ids

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None:
        await self.pool.execute(
            "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (surface, message_key) DO UPDATE SET thread_key=COALESCE(excluded.thread_key, posts.thread_key)",
            surface,
            message_key,
            job_id,
            thread_key,
            float(self.clock()),
        )

    async def posts_of(self, job_id: str, surface: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT message_key FROM posts WHERE job_id=$1 AND surface=$2 ORDER BY seq", job_id, surface
        )
        return [str(row[0]) for row in rows]

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self._job_where(
            self.pool,
            "id=(SELECT job_id FROM posts WHERE surface=$1 AND message_key=$2)",
            surface,
            message_key,
        )

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        return await self._job_where(
            self.pool,
            "id=(SELECT p.job_id FROM posts p JOIN jobs j ON j.id=p.job_id WHERE p.surface=$1 AND p.thread_key=$2 "
            "AND j.state=$3 ORDER BY p.created_at DESC, p.seq DESC LIMIT 1)",
            surface,
            thread_key,
            JobState.DELIVERED.value,
        )

    async def forget_posts(self, job_id: str) -> None:
        await self.pool.execute("DELETE FROM posts WHERE job_id=$1", job_id)
