"""The one tenant-checked way to a job: every use case that names a job, by id, by the message that
shows it, by the thread it was posted in, or by a console prefix, reaches it through `Lookup`,
which hands back only jobs of the asker's tenant. Another tenant's job is "not found", exactly as a
job that never was, whatever id, message, thread or file name names it.

Engine satisfies `Queries` structurally: the use cases are handed the engine, never build one.
"""

from __future__ import annotations

from typing import Protocol

from bot.jobs.versions import Versions
from bot.model.jobs import Job
from bot.usecases.actor import Actor


class Queries(Protocol):
    """The unscoped reads a `Lookup` narrows to one tenant; nothing else should call them."""

    async def job(self, job_id: str) -> Job | None: ...

    async def job_for_post(self, surface: str, message_key: str) -> Job | None: ...

    async def job_by_prefix(
        self, surface: str, workspace_id: str, user_id: str, prefix: str
    ) -> Job | None: ...

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None: ...

    @property
    def versions(self) -> Versions: ...


class Lookup:
    def __init__(self, queries: Queries) -> None:
        self._q = queries

    @staticmethod
    def _theirs(actor: Actor, job: Job | None) -> Job | None:
        return job if job is not None and actor.owns(job) else None

    async def job(self, actor: Actor, job_id: str) -> Job | None:
        return self._theirs(actor, await self._q.job(job_id)) if job_id else None

    async def job_for_post(self, actor: Actor, message_key: str) -> Job | None:
        """The job whose result is the message `message_key` on the actor's surface."""
        return self._theirs(actor, await self._q.job_for_post(actor.surface, message_key))

    async def job_by_key(self, actor: Actor, key: str) -> Job | None:
        """A job named by its whole id or the start of it (the console's way)."""
        if len(key) == 32:
            return await self.job(actor, key)
        # The query itself is the tenant's: another tenant's newer match must not hide the actor's own.
        found = await self._q.job_by_prefix(actor.surface, actor.workspace_id, actor.user_id, key)
        return self._theirs(actor, found)

    async def latest_in_thread(self, actor: Actor, thread_key: str) -> Job | None:
        """The job a thread's next instruction edits, when the thread holds the actor's tenant's work."""
        return self._theirs(actor, await self._q.latest_job_in_thread(actor.surface, thread_key))

    async def thread_of(self, actor: Actor, job_id: str) -> str | None:
        """The thread a job of the actor's tenant is a version in."""
        job = await self.job(actor, job_id)
        return None if job is None else await self._q.versions.thread_of(actor.surface, job.id)

    async def shown_in(self, actor: Actor, job_id: str, message_key: str) -> Job | None:
        """A job the actor can see: their tenant's, or the one whose result is the very message they
        acted on. The second is a channel shared by several workspaces, where a result posted for one
        is in front of people of another; what they then make counts in their own tenant."""
        own = await self.job(actor, job_id)
        if own is not None:
            return own
        posted = await self._q.job_for_post(actor.surface, message_key) if message_key else None
        return posted if posted is not None and posted.id == job_id else None
