"""Reroll and Vary: a result asked for again, as a new job like any other. The job is the one the
asker was allowed to see (bot/usecases/access.py); what is made counts in the asker's tenant,
whoever made the result it starts from."""

from __future__ import annotations

from typing import Any, Protocol

from bot.model.config import Settings
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import ChatRequest, ImageRef
from bot.usecases.actor import Actor
from bot.words import too_old


class Admits(Protocol):
    settings: Settings

    async def submit(self, chat: ChatRequest, *, dedup_key: str | None = None) -> Job: ...


async def remake(
    admits: Admits,
    actor: Actor,
    job: Job,
    *,
    vary: bool,
    origin: dict[str, Any],
    dedup_key: str | None = None,
) -> Job:
    """Reroll (and Vary (Strong)): the same prompt, flags and references with a new seed (of a region
    edit: the same rectangle edited again, blended into the same image). Vary
    (Subtle): the job's first image as the reference instead, in its shape. Raises a UserFacingError (nothing charged) when it cannot be admitted."""
    if vary:
        if not job.result_media:
            raise BadInput(too_old(admits.settings.media_retention_days))
        references = [ImageRef(url="", media_id=job.result_media[0])]
        # An edit of the result: it keeps the result's shape (the engine sizes it by the image). A
        # region edit's variation is of its whole result, so nothing is blended back.
        request = job.request.with_changes(
            seed=None,
            keep_aspect=True,
            aspect=None,
            width=None,
            height=None,
            preset=None,
            largest=False,
            region=None,
        )
    else:
        references = [ImageRef(url="", media_id=m) for m in job.reference_media]
        request = job.request.with_changes(seed=None)
    chat = ChatRequest(
        surface=actor.surface,
        user_id=actor.user_id,
        workspace_id=actor.workspace_id,
        channel_id=actor.channel_id,
        home_channel_id=actor.home_channel,
        origin=origin,
        request=request,
        references=references,
        parent_job_id=job.id,
        # The prompt's @names were resolved when the job was made: its images already hold them.
        resolve_subjects=False,
    )
    return await admits.submit(chat, dedup_key=dedup_key)
