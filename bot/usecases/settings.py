"""A person's defaults (`settings ...`) and a tenant's policy (`policy ...`, including `policy project
<tag>|default`, the default project of the channel it is typed in), on every surface. The
rules and their words are bot/jobs/preferences.py's; this decides who may, and what a surface
without spoilers cannot offer."""

from __future__ import annotations

from typing import Protocol

from bot.model.errors import BadInput
from bot.usecases import approvals
from bot.usecases.actor import Actor, Reply
from bot.words import NO_SPOILERS, POLICY_REFUSED, SPOILERS_NOTE
from storage.approvals import Approvals


class Preferring(Protocol):
    async def user_settings(self, surface: str, workspace_id: str, user_id: str, text: str) -> str: ...

    async def admin_policy(self, surface: str, workspace_id: str, text: str, *, channel: str = "") -> str: ...

    @property
    def approvals(self) -> Approvals: ...


async def settings(prefs: Preferring, actor: Actor, text: str) -> Reply:
    return Reply(await prefs.user_settings(actor.surface, actor.workspace_id, actor.user_id, text))


async def policy(
    prefs: Preferring, actor: Actor, text: str, *, spoilers: bool, review: approvals.ReviewTerms | None = None
) -> Reply:
    """`text` empty shows the policy. `spoilers`: whether the actor's surface can show an image
    behind one (else the `spoiler` choice is refused, and `allow` needs no note). `review`: how the
    surface reads and checks `policy review ...` (None: it has no reviews)."""
    if not actor.admin:
        raise BadInput(POLICY_REFUSED)
    choice = text.lower().split()
    if choice[:1] == ["review"]:
        # `policy review <reviewers> [to <queue>]|off` (bot/usecases/approvals.py), for this channel.
        return await approvals.set_review(prefs.approvals, actor, text.strip()[len("review") :], review)
    if choice == ["nsfw", "spoiler"] and not spoilers:
        raise BadInput(NO_SPOILERS)
    answer = await prefs.admin_policy(actor.surface, actor.workspace_id, text, channel=actor.channel_id)
    if choice == ["nsfw", "allow"] and spoilers:
        answer += SPOILERS_NOTE
    return Reply(answer)
