"""Draft and Final: a `--draft` result (made on the provider's Dev model) rendered again on the full
model with the same prompt, flags, references and seed, on the same provider, as the next version in
its thread. The draft is the one the asker was allowed to see (bot/usecases/access.py); the Final
counts in the asker's tenant."""

from __future__ import annotations

from typing import Any

from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import ChatRequest, ImageRef
from bot.usecases.actor import Actor
from bot.usecases.remake import Admits


async def final(
    admits: Admits,
    actor: Actor,
    job: Job,
    *,
    origin: dict[str, Any],
    dedup_key: str | None = None,
) -> Job:
    """Render the draft `job` on the full model. Raises a UserFacingError (nothing charged) when it is
    not a draft or cannot be admitted."""
    if not job.request.draft:
        raise BadInput(words.NOT_A_DRAFT)
    request = job.request.with_changes(
        draft=False, model="full", seed=job.seed, provider=job.provider, explicit=None
    )
    chat = ChatRequest(
        surface=actor.surface,
        user_id=actor.user_id,
        workspace_id=actor.workspace_id,
        # Counted under the channel it was asked in, and reviewed as that channel is.
        channel_id=actor.channel_id,
        home_channel_id=actor.home_channel,
        origin=origin,
        request=request,
        references=[ImageRef(url="", media_id=m) for m in job.reference_media],
        parent_job_id=job.id,
        # The prompt's @names were resolved when the draft was made: its images already hold them.
        resolve_subjects=False,
    )
    return await admits.submit(chat, dedup_key=dedup_key)
