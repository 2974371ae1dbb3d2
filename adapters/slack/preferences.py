"""`/hidream settings ...` (a person's defaults in this workspace) and `/hidream policy ...` (the
workspace's policy, for its admins), answered privately to whoever typed them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import translate as t
from adapters.slack.review import ReviewTerms
from bot.usecases import settings as usecases

if TYPE_CHECKING:
    from bot.jobs.engine import Engine


async def preference_answer(
    engine: Engine,
    inv: t.SlashInvocation,
    action: t.Preference,
    is_admin: Callable[[str], Awaitable[bool]],
    client: AsyncWebClient,
) -> str:
    """`client`: the workspace's, for `policy review` (what it names is checked there)."""
    actor = t.actor(inv.team, inv.user, inv.channel)
    if action.kind == "settings":
        return (await usecases.settings(engine, actor, action.text)).text
    # The same admins as `/hidream limit`; what they set stays in this workspace.
    actor = replace(actor, admin=await is_admin(inv.user))
    terms = ReviewTerms(client, inv.team)
    return (await usecases.policy(engine, actor, action.text, spoilers=False, review=terms)).text
