"""The versions of a result thread: every job delivered into a thread is its next version (v1, v2,
...), and the thread's head is the version its next instruction edits. A new result becomes the
head; `undo` moves the head back. The same SQL runs on both store backends.

A version whose posts were deleted (the Delete button) no longer counts: it is left out of the
history, and a head that points at it falls back to the newest version before it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.model.jobs import Job, JobState
from storage.store import Store

# Two replicas delivering into one thread at once may pick the same next number; the loser retries.
_NUMBERING_ATTEMPTS = 5
# The standing versions of a thread, each with its first post there (where a link to it points).
_LIVE = (
    "SELECT v.version, v.job_id, (SELECT p.message_key FROM posts p WHERE p.job_id = v.job_id "
    "AND p.surface = v.surface AND p.thread_key = v.thread_key ORDER BY p.created_at, p.message_key "
    "LIMIT 1) AS post FROM versions v JOIN jobs j ON j.id = v.job_id "
    "WHERE v.surface=? AND v.thread_key=? AND j.state=? AND EXISTS (SELECT 1 FROM posts p "
    "WHERE p.job_id = v.job_id AND p.surface = v.surface AND p.thread_key = v.thread_key) "
)


@dataclass(frozen=True)
class Version:
    number: int
    job: Job
    thread_key: str
    post: str  # the key of its first message in the thread


class VersionStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, surface: str, thread_key: str, job_id: str) -> int:
        """Number a delivered job in its thread (once: a repeat returns the number it has) and make it
        the thread's head when it is new."""
        for _ in range(_NUMBERING_ATTEMPTS):
            known = await self.number_of(surface, thread_key, job_id)
            if known is not None:
                return known
            added = await self.store.write(
                "INSERT INTO versions (surface, thread_key, version, job_id, created_at) "
                "SELECT ?, ?, COALESCE(MAX(version), 0) + 1, ?, ? FROM versions "
                "WHERE surface=? AND thread_key=? ON CONFLICT DO NOTHING",
                surface,
                thread_key,
                job_id,
                self.store.now(),
                surface,
                thread_key,
            )
            if added:
                number = await self.number_of(surface, thread_key, job_id)
                assert number is not None
                await self.set_head(surface, thread_key, number)
                return number
        raise RuntimeError(f"could not number job {job_id} in thread {thread_key}")

    async def number_of(self, surface: str, thread_key: str, job_id: str) -> int | None:
        row = await self.store.database.fetchrow(
            "SELECT version FROM versions WHERE surface=? AND thread_key=? AND job_id=?",
            surface,
            thread_key,
            job_id,
        )
        return None if row is None else int(row[0])

    async def thread_of(self, surface: str, job_id: str) -> str | None:
        """The thread a job is a version in (the first one, should it be in several)."""
        row = await self.store.database.fetchrow(
            "SELECT thread_key FROM versions WHERE surface=? AND job_id=? ORDER BY created_at LIMIT 1",
            surface,
            job_id,
        )
        return None if row is None else str(row[0])

    async def set_head(self, surface: str, thread_key: str, number: int) -> None:
        await self.store.write(
            "INSERT INTO version_heads (surface, thread_key, version, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (surface, thread_key) DO UPDATE SET version=excluded.version, "
            "updated_at=excluded.updated_at",
            surface,
            thread_key,
            number,
            self.store.now(),
        )

    async def head(self, surface: str, thread_key: str) -> int | None:
        row = await self.store.database.fetchrow(
            "SELECT version FROM version_heads WHERE surface=? AND thread_key=?", surface, thread_key
        )
        return None if row is None else int(row[0])

    async def live(self, surface: str, thread_key: str) -> list[Version]:
        """The thread's versions that still stand, oldest first."""
        rows = await self.store.database.fetch(
            _LIVE + "ORDER BY v.version", surface, thread_key, JobState.DELIVERED.value
        )
        versions = []
        for number, job_id, post in rows:
            job = await self.store.job(str(job_id))
            if job is not None:
                versions.append(Version(int(number), job, thread_key, str(post)))
        return versions

    async def current(self, surface: str, thread_key: str) -> Version | None:
        """The version the thread's next instruction edits: the head, or the newest standing version
        before it when the head's was deleted. None for a thread with no versions recorded."""
        head = await self.head(surface, thread_key)
        if head is None:
            return None
        row = await self.store.database.fetchrow(
            _LIVE + "AND v.version <= ? ORDER BY v.version DESC LIMIT 1",
            surface,
            thread_key,
            JobState.DELIVERED.value,
            head,
        )
        if row is None:
            return None
        job = await self.store.job(str(row[1]))
        return None if job is None else Version(int(row[0]), job, thread_key, str(row[2]))
