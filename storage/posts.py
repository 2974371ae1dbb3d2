"""Media and posts in the store: the images it keeps (their rows here, their bytes where the backend
keeps them: storage/media.py) and the messages that carry each job's results. A base of the
one store (storage/store.py), which owns the database and the job rows these methods write together
with their own: `complete` and `delivered` move the job in the same transaction as their rows."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.model.jobs import Job, JobState
from storage.connections import Database, Queries
from storage.fencing import LeaseLost, holding
from storage.media import ImageBytes

_MEDIA_COLUMNS = "id, content_type, width, height, nsfw, created_at, used_at"


@dataclass(frozen=True)
class StoredMedia:
    id: str
    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool


@dataclass(frozen=True)
class MediaStream:
    content_type: str
    chunks: AsyncGenerator[bytes, None]


@dataclass(frozen=True)
class NewMedia:
    """An image to keep (a job's result), before it has an id."""

    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool = False
    # A result streamed to disk: its bytes are this spooled file (in the store's `spool_dir`), `data`
    # is empty. `complete` keeps the file as it is (a rename, a put from disk), never reading it whole.
    file: Path | None = None


@dataclass(frozen=True)
class FileMedia:
    """A held image as a file to stream from; `spooled`: a copy the reader deletes when done."""

    id: str
    file: Path
    spooled: bool
    content_type: str
    width: int
    height: int
    nsfw: bool


class MediaAndPosts:
    if TYPE_CHECKING:  # what the store provides
        database: Database
        media_bytes: ImageBytes

        def now(self) -> float: ...

        async def _move(self, db: Queries, job_id: str, to: JobState, fields: dict[str, Any]) -> bool: ...

        async def _job_where(self, db: Queries, where: str, *args: Any) -> Job | None: ...

    async def _insert_media(
        self, db: Queries, media_id: str, image: NewMedia, now: float, values: tuple[Any, ...] | None = None
    ) -> None:
        data = self.media_bytes.in_row(image.data) if values is None else values
        await db.execute(
            f"INSERT INTO media ({_MEDIA_COLUMNS}{self.media_bytes.column}) VALUES (?,?,?,?,?,?,?{',?' * len(data)})",
            *(media_id, image.content_type, image.width, image.height, bool(image.nsfw), now, now, *data),
        )

    async def put_media(
        self, data: bytes, content_type: str, width: int, height: int, nsfw: bool = False
    ) -> str:
        """Keep an image: its bytes first, then its row, so no row ever names bytes not yet kept."""
        media_id = secrets.token_urlsafe(16)
        await self.media_bytes.keep({media_id: data})
        try:
            async with self.database.transaction() as db:
                await self._insert_media(
                    db, media_id, NewMedia(data, content_type, width, height, nsfw), self.now()
                )
        except BaseException:
            await asyncio.shield(self.media_bytes.drop([media_id]))
            raise
        return media_id

    async def _media_row(self, media_id: str) -> Any:
        """A media row (id, type, size, nsfw, and the bytes' column where the store keeps them in the
        row), or None when the id is none the store made or no row holds it."""
        if not self.media_bytes.valid(media_id):
            return None
        return await self.database.fetchrow(
            f"SELECT id, content_type, width, height, nsfw{self.media_bytes.column} FROM media WHERE id=?",
            media_id,
        )

    async def media(self, media_id: str) -> StoredMedia | None:
        """A held image, or None when it is not (never was, deleted by retention, or its bytes are gone)."""
        row = await self._media_row(media_id)
        if row is None:
            return None
        data = await self.media_bytes.read(media_id, row)
        if data is None:
            return None
        return StoredMedia(row[0], data, row[1], int(row[2]), int(row[3]), bool(row[4]))

    async def media_stream(self, media_id: str) -> MediaStream | None:
        """A held image's type and its bytes in chunks as the store gives them (never whole in
        memory where the store keeps them apart from the row), or None when it is not held."""
        row = await self._media_row(media_id)
        if row is None:
            return None
        chunks = await self.media_bytes.chunks(media_id, row)
        return None if chunks is None else MediaStream(str(row[1]), chunks)

    async def media_file(self, media_id: str) -> FileMedia | None:
        """A held image as a file to stream from (its own file in a media folder, else a spooled copy
        streamed from the store), or None when it is not held."""
        row = await self._media_row(media_id)
        if row is None:
            return None
        found = await self.media_bytes.to_file(media_id, row)
        if found is None:
            return None
        path, spooled = found
        return FileMedia(str(row[0]), path, spooled, str(row[1]), int(row[2]), int(row[3]), bool(row[4]))

    async def media_url(self, media_id: str, seconds: float) -> str | None:
        """A URL of the media store itself that serves a held image for `seconds` (an object store's
        presigned URL), or None when the image is not held or its store has no such URLs."""
        if not self.media_bytes.valid(media_id):
            return None
        if await self.database.fetchrow("SELECT 1 FROM media WHERE id=?", media_id) is None:
            return None
        return await self.media_bytes.presign(media_id, seconds)

    async def held_media(self, media_ids: list[str]) -> set[str]:
        """Which of `media_ids` have a row (storage/media.py asks, to find files a crash left)."""
        among, args = self.database.dialect.among("id", media_ids)
        return {
            str(row[0]) for row in await self.database.fetch(f"SELECT id FROM media WHERE {among}", *args)
        }

    async def complete(self, job_id: str, images: list[NewMedia]) -> list[str] | None:
        """Keep a job's result images and move it to `completed` naming them, in one transaction;
        their ids, or None (nothing kept) when the job may not complete from its state. The bytes
        first, then the rows and the move: no row ever names bytes not yet kept."""
        ids = [secrets.token_urlsafe(16) for _ in images]
        moved = False
        try:
            pairs = list(zip(ids, images, strict=True))
            values = [
                None if image.file is None else await self.media_bytes.file_values(image.file)
                for image in images
            ]
            await self.media_bytes.keep({i: image.data for i, image in pairs if image.file is None})
            await self.media_bytes.keep_files({i: image.file for i, image in pairs if image.file is not None})
            now = self.now()
            async with self.database.transaction() as db:
                moved = await self._move(db, job_id, JobState.COMPLETED, {"result_media": ids})
                for (media_id, image), row in zip(pairs, values, strict=True) if moved else ():
                    await self._insert_media(db, media_id, image, now, row)
            del values  # a database row's bytes (RowBytes) are not held past its insert
        finally:
            if not moved:
                await asyncio.shield(self.media_bytes.drop(ids))
        return ids if moved else None

    async def record_posts(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> None:
        async with self.database.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)

    async def _add_posts(
        self, db: Queries, job_id: str, surface: str, posts: list[tuple[str, str | None]]
    ) -> None:
        now = self.now()
        for message_key, thread_key in posts:
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                *(surface, message_key, job_id, thread_key, now),
            )

    async def delivered(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        """Record the posts that carry a job and move it to `delivered`, in one transaction. The posts
        are kept even when the move is refused (they are on the platform); True when it moved."""
        async with self.database.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)
            return await self._move(db, job_id, JobState.DELIVERED, {})

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None:
        """Record one post of a job as soon as the platform has it (a later call may add its thread).
        Within a fenced delivery, the hold is checked first (storage/fencing.py): a surface records
        before and after each platform call, so a replica that lost the job stops before the next."""
        async with self.database.transaction() as db:
            await self._fence(db, job_id)
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (surface, message_key) DO UPDATE SET "
                "thread_key=COALESCE(excluded.thread_key, posts.thread_key)",
                *(surface, message_key, job_id, thread_key, self.now()),
            )

    async def posts_of(self, job_id: str, surface: str) -> list[str]:
        """The message keys of a job's posts, in the order they were recorded (a fenced delivery's
        first look: the hold is checked in the same statement)."""
        order = self.database.dialect.insertion_order
        hold = holding(job_id)
        if hold is None:
            rows = await self.database.fetch(
                f"SELECT message_key FROM posts WHERE job_id=? AND surface=? ORDER BY {order}",
                job_id,
                surface,
            )
            return [str(row[0]) for row in rows]
        # One statement: the job's row when this replica still holds it, with its posts, if any.
        rows = await self.database.fetch(
            "SELECT p.message_key FROM jobs j LEFT JOIN posts p ON p.job_id=j.id AND p.surface=? "
            f"WHERE j.id=? AND j.owner=? AND j.lease_gen=? ORDER BY p.{order}",
            *(surface, job_id, hold.owner, hold.generation()),
        )
        if not rows:
            raise LeaseLost(job_id)
        return [str(row[0]) for row in rows if row[0] is not None]

    @staticmethod
    async def _fence(db: Queries, job_id: str) -> None:
        hold = holding(job_id)
        if hold is not None:
            await hold.check(db)

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self._job_where(
            self.database,
            "id=(SELECT job_id FROM posts WHERE surface=? AND message_key=?)",
            surface,
            message_key,
        )

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        order = self.database.dialect.insertion_order
        return await self._job_where(
            self.database,
            "id=(SELECT p.job_id FROM posts p JOIN jobs j ON j.id=p.job_id WHERE p.surface=? AND p.thread_key=? "
            f"AND j.state=? ORDER BY p.created_at DESC, p.{order} DESC LIMIT 1)",
            *(surface, thread_key, JobState.DELIVERED.value),
        )

    async def delete_media(self, media_ids: list[str]) -> int:
        """Delete held images now, whatever still names them (an operator's removal): their rows,
        then their bytes. Returns how many rows went."""
        if not media_ids:
            return 0
        among, args = self.database.dialect.among("id", media_ids)
        async with self.database.transaction() as db:
            gone = [str(r[0]) for r in await db.fetch(f"SELECT id FROM media WHERE {among}", *args)]
            await db.execute(f"DELETE FROM media WHERE {among}", *args)
        await self.media_bytes.drop(gone)
        return len(gone)

    async def forget_posts(self, job_id: str) -> None:
        async with self.database.transaction() as db:
            await db.execute("DELETE FROM posts WHERE job_id=?", job_id)
