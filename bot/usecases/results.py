"""Deleting a result, on every surface: who may (its requester, a moderator or an admin there), and
forgetting where it was posted once the surface has taken its messages down."""

from __future__ import annotations

from typing import Protocol

from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor
from bot.words import DELETE_REFUSED, NOT_FOUND


class Forgets(Protocol):
    async def mark_deleted(self, job: Job) -> None: ...


async def deletable(lookup: Lookup, actor: Actor, job_id: str) -> Job:
    """The job the actor may delete. Raises BadInput, changing nothing, when it is not theirs to
    delete, or not their tenant's (not found)."""
    job = await lookup.job(actor, job_id)
    if job is None:
        raise BadInput(NOT_FOUND)
    if job.user_id != actor.user_id and not (actor.moderator or actor.admin):
        raise BadInput(DELETE_REFUSED)
    return job


async def forget(engine: Forgets, job: Job) -> None:
    """After the surface removed the posts: the job's post records go, so nothing edits them again."""
    await engine.mark_deleted(job)
