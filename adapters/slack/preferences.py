"""`/hidream settings ...` (a person's defaults in this workspace) and `/hidream policy ...` (the
workspace's policy, for its admins), answered privately to whoever typed them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from adapters.slack import translate as t

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

NOT_ADMIN = "Only workspace admins (or users an operator listed) can see or change this workspace's policy."
NO_SPOILERS = "Slack has no spoilers: use `/hidream policy nsfw block`, `allow` or `default`."


async def preference_answer(
    engine: Engine,
    inv: t.SlashInvocation,
    action: t.Preference,
    is_admin: Callable[[str], Awaitable[bool]],
) -> str:
    if action.kind == "settings":
        return await engine.user_settings(t.SURFACE, inv.team, inv.user, action.text)
    # The same admins as `/hidream limit`; what they set stays in this workspace.
    if not await is_admin(inv.user):
        return NOT_ADMIN
    if action.text.lower().split() == ["nsfw", "spoiler"]:
        return NO_SPOILERS
    return await engine.admin_policy(t.SURFACE, inv.team, action.text)
