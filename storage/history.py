"""A person's recent jobs in one server or workspace, newest first, each with the message a link to
its result points at (its first post in a thread: the summary under its images). The same SQL runs
on both store backends."""

from __future__ import annotations

from dataclasses import dataclass

from bot.model.jobs import Job
from storage.store import Store

# The first post a job made in a thread; the marks a delivery leaves in `posts` have no thread.
_RECENT = (
    "SELECT j.id, p.message_key, p.thread_key FROM jobs j LEFT JOIN posts p "
    "ON p.surface = j.surface AND p.message_key = (SELECT q.message_key FROM posts q "
    "WHERE q.job_id = j.id AND q.surface = j.surface AND q.thread_key IS NOT NULL "
    "ORDER BY q.created_at, q.message_key LIMIT 1) "
    "WHERE j.surface=? AND j.workspace_id=? AND j.user_id=? "
    "ORDER BY j.created_at DESC, j.id DESC LIMIT ?"
)


@dataclass(frozen=True)
class Recent:
    job: Job
    # The key of its result's message and of that message's thread; None when nothing stands (not
    # delivered yet, failed, or deleted with the Delete button).
    post: str | None
    thread: str | None


class History:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def recent(self, surface: str, workspace_id: str, user_id: str, limit: int) -> list[Recent]:
        rows = await self.store.database.fetch(_RECENT, surface, workspace_id, user_id, limit)
        found = []
        for job_id, post, thread in rows:
            job = await self.store.job(str(job_id))
            if job is not None:
                found.append(
                    Recent(job, None if post is None else str(post), None if thread is None else str(thread))
                )
        return found
