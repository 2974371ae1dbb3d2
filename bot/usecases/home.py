"""A person's overview in one tenant (a surface's home page): images left today, their recent
results, the subjects they saved there and how many others did, and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.jobs.subjects import SubjectBook
from bot.usecases.actor import Actor
from storage.history import Recent as Recent
from storage.quota import QuotaStatus as QuotaStatus


class Overview(Protocol):
    subjects: SubjectBook

    async def quota(self, surface: str, user_id: str, workspace_id: str) -> QuotaStatus: ...

    async def recent_jobs(
        self, surface: str, workspace_id: str, user_id: str, limit: int
    ) -> list[Recent]: ...

    async def user_defaults(self, surface: str, workspace_id: str, user_id: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class HomeState:
    status: QuotaStatus
    recent: list[Recent]
    subjects: list[str]  # the names this person saved here
    others_subjects: int  # how many more are saved here by others
    defaults: dict[str, str]


async def home(engine: Overview, actor: Actor, recent: int) -> HomeState:
    """The overview, with the `recent` newest results; everything in the actor's tenant."""
    status = await engine.quota(actor.surface, actor.user_id, actor.workspace_id)
    jobs = await engine.recent_jobs(actor.surface, actor.workspace_id, actor.user_id, recent)
    saved = await engine.subjects.all(actor.tenant)
    mine = [s.name for s in saved if s.creator == actor.key]
    defaults = await engine.user_defaults(actor.surface, actor.workspace_id, actor.user_id)
    return HomeState(status, jobs, mine, len(saved) - len(mine), defaults)
