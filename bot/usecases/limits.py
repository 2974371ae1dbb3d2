"""Usage and a tenant admin's limits, on every surface: `usage` (one's own, or an admin's look at a
member's), a member's or everyone's daily limit, a grant for today, a reset of today's count. All of
it is kept in the actor's own tenant; an operator's ceiling still holds over it."""

from __future__ import annotations

from typing import Protocol

from bot.model.errors import BadInput
from bot.usecases.actor import Actor, Reply
from bot.words import LIMITS_REFUSED, USAGE_REFUSED, granted, limit_set, reset, usage_of, usage_text
from storage.quota import QuotaStatus


class Quotas(Protocol):
    async def quota(self, surface: str, user_id: str, workspace_id: str) -> QuotaStatus: ...

    async def admin_set_limit(
        self, surface: str, workspace_id: str, user_id: str | None, limit: int | None
    ) -> None: ...

    async def admin_grant(self, surface: str, workspace_id: str, user_id: str, images: int) -> None: ...

    async def admin_reset(self, surface: str, workspace_id: str, user_id: str) -> None: ...


async def usage(quotas: Quotas, actor: Actor, of: str | None = None) -> Reply:
    """How many images are left today: the actor's, or (for an admin) a member's."""
    someone = of if of and of != actor.user_id else None
    if someone is not None and not actor.admin:
        raise BadInput(USAGE_REFUSED)
    status = await quotas.quota(actor.surface, someone or actor.user_id, actor.workspace_id)
    return Reply(usage_of(someone, usage_text(status)))


def _admin(actor: Actor) -> None:
    if not actor.admin:
        raise BadInput(LIMITS_REFUSED)


async def set_limit(quotas: Quotas, actor: Actor, member: str | None, images: int | None) -> Reply:
    """`member` None: every member's limit; `images` None: back to the default."""
    _admin(actor)
    await quotas.admin_set_limit(actor.surface, actor.workspace_id, member, images)
    return Reply(limit_set(member, images))


async def grant(quotas: Quotas, actor: Actor, member: str, images: int) -> Reply:
    _admin(actor)
    await quotas.admin_grant(actor.surface, actor.workspace_id, member, images)
    return Reply(granted(member, images))


async def reset_today(quotas: Quotas, actor: Actor, member: str) -> Reply:
    _admin(actor)
    await quotas.admin_reset(actor.surface, actor.workspace_id, member)
    return Reply(reset(member))
