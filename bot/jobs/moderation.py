"""What an operator does from the moderation view (bot/web/admin.py): take an image down, and block a
person, in one tenant or everywhere. Operators are not members of any tenant: they act on every one,
and each action is logged at INFO and kept in the store's `moderation_actions` (storage/reports.py).

Taking an image down is the result's Delete button done for the operator: the surface that posted it
deletes its posts (`Withdraws`, where the surface can), the job's post records go (`Engine.mark_deleted`,
what the button's `results.forget` calls), and, unlike the button, the image bytes go too: the media
rows and their files or objects, so its signed links answer 404 from then on.

Blocking is the operators' daily limit of 0 for the person, as `hidream-bot quota set --user ... --limit 0`
sets it: in the job's tenant, or in every tenant."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.jobs.engine import Engine
from bot.model.jobs import Job, Surface, Withdraws
from storage import reports
from storage.quota import EVERY_TENANT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TakeDown:
    job_id: str
    tenant: str
    messages: int  # chat messages deleted
    images: int  # stored images deleted
    withdrawn: bool  # whether the job's surface runs here and could delete its posts


def user_key(job: Job) -> str:
    return f"{job.surface}:{job.user_id}"


async def take_down(engine: Engine, surfaces: Mapping[str, Surface], job: Job) -> TakeDown:
    """Delete the job's posts where its surface can, forget them, and delete its images' bytes."""
    surface = surfaces.get(job.surface)
    withdrawn, messages = False, 0
    if isinstance(surface, Withdraws):
        try:
            messages, withdrawn = await surface.withdraw(job), True
        except Exception:
            # The platform refused or is unreachable: the bytes still go, and the page says the
            # posts were left, so the operator can remove them by hand.
            log.warning("job %s: its posts could not be taken down", job.id, exc_info=True)
    if withdrawn:
        await engine.mark_deleted(job)  # what the Delete button's results.forget does
    await engine.approvals.withdraw(job.id)  # a pending approval: nothing is left to approve
    images = await engine.store.delete_media(list(job.result_media))
    tenant = job.tenant
    detail = f"{messages} message(s), {images} image(s)" + ("" if withdrawn else "; posts left in the chat")
    await reports.record_moderation(
        engine.store, "delete", job_id=job.id, tenant=tenant, user_key=user_key(job), detail=detail
    )
    log.info(
        "operator action delete: job %s in tenant %s (%s)",
        job.id,
        tenant,
        detail,
        extra={"job_id": job.id, "tenant": tenant, "operator_action": "delete"},
    )
    return TakeDown(job.id, tenant, messages, images, withdrawn)


async def block(engine: Engine, job: Job, where: Literal["tenant", "everywhere"]) -> str:
    """The job's requester may make no more images in its tenant (or anywhere); the tenant key set."""
    tenant = job.tenant
    scope = tenant if where == "tenant" else EVERY_TENANT
    await engine.store.set_limit(scope, "user", user_key(job), 0, by="operator")
    action = "block" if where == "tenant" else "block everywhere"
    await reports.record_moderation(
        engine.store, action, job_id=job.id, tenant=scope, user_key=user_key(job), detail=f"seen in {tenant}"
    )
    log.info(
        "operator action %s: %s, job %s in tenant %s",
        action,
        user_key(job),
        job.id,
        tenant,
        extra={"job_id": job.id, "tenant": tenant, "operator_action": action},
    )
    return scope
