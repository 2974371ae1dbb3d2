"""Make and edit: a request admitted as a job, on every surface. Whoever the request says it is
from, it is made for, and counted in the tenant of, the actor who asked: a surface parses the rest
(prompt, flags, references, where to post) and this stamps who."""

from __future__ import annotations

from bot.model.jobs import Job
from bot.model.requests import ChatRequest, ImageRef
from bot.usecases.actor import Actor
from bot.usecases.remake import Admits


async def make(admits: Admits, actor: Actor, chat: ChatRequest, *, dedup_key: str | None = None) -> Job:
    """Admit `chat` for `actor`. Raises a UserFacingError (nothing charged) when it cannot be."""
    mine = chat.model_copy(
        update={
            "surface": actor.surface,
            "workspace_id": actor.workspace_id,
            "user_id": actor.user_id,
            "channel_id": actor.channel_id,
            "home_channel_id": actor.home_channel,
        }
    )
    return await admits.submit(mine, dedup_key=dedup_key)


def result_references(job: Job, index: int | None = None) -> list[ImageRef]:
    """An edit's references from a result the lookup handed the actor: all its images, or one."""
    chosen = job.result_media if index is None else job.result_media[index : index + 1]
    return [ImageRef(url="", media_id=m) for m in chosen]
