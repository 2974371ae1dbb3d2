"""Sets: one command that makes several jobs (`{a, b}` choices, `--repeat N`), on every surface. A set
is admitted all or nothing (the engine reserves its whole count and cost in one transaction before any
provider is asked), and a set of more than CONFIRM_OVER jobs waits for its requester's confirmation
first: a button where the surface has buttons (`confirm_set`), `--yes` on the console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import CONFIRM_OVER, ChatRequest, ImageRef, ParsedSet
from bot.usecases.actor import Actor, Reply
from bot.usecases.remake import Admits


class SetAdmits(Admits, Protocol):
    async def submit_set(self, chats: list[ChatRequest], *, dedup_key: str | None = None) -> list[Job]: ...

    async def cost_of_set(self, chats: list[ChatRequest]) -> float: ...

    async def hold_set(self, chats: list[ChatRequest]) -> str: ...

    async def take_set(
        self, set_id: str, surface: str, workspace_id: str, user_id: str
    ) -> list[ChatRequest] | None: ...

    async def set_waits_for(self, set_id: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class SetOutcome:
    """What a set came to: the jobs admitted, or, while it waits for confirmation, what to tell the
    requester and the id their confirmation names (None where they confirm with `--yes`)."""

    jobs: list[Job] = field(default_factory=list)
    waiting: Reply | None = None
    set_id: str | None = None


def set_requests(
    parsed: ParsedSet,
    base: ChatRequest,
    references: Callable[[list[str]], list[ImageRef]] | None = None,
) -> list[ChatRequest]:
    """One request per job of a parsed set, each like `base` (who, where, references, parent) with its
    own image request; `references` turns a job's typed URLs into its references besides base's."""
    out = []
    for command in parsed.commands:
        typed = references(command.urls) if references is not None else []
        out.append(
            base.model_copy(update={"request": command.request, "references": [*base.references, *typed]})
        )
    return out


def _stamped(actor: Actor, chat: ChatRequest) -> ChatRequest:
    """Made for, and counted in the tenant of, the actor who asked (as bot/usecases/make.py does)."""
    return chat.model_copy(
        update={"surface": actor.surface, "workspace_id": actor.workspace_id, "user_id": actor.user_id}
    )


async def make_set(
    admits: SetAdmits,
    actor: Actor,
    chats: list[ChatRequest],
    *,
    confirmed: bool,
    can_ask: bool = True,
    dedup_key: str | None = None,
) -> SetOutcome:
    """Admit a set for `actor`, or, when it is larger than CONFIRM_OVER and not `confirmed`, hold it
    for their confirmation (`can_ask`: the surface offers a button; else they are told to add --yes).
    Raises a UserFacingError (nothing charged, nothing sent) when it cannot be admitted."""
    mine = [_stamped(actor, c) for c in chats]
    if len(mine) == 1:
        return SetOutcome(jobs=[await admits.submit(mine[0], dedup_key=dedup_key)])
    if len(mine) > CONFIRM_OVER and not confirmed:
        # Priced (and so checked) before anyone is asked: a request that cannot be made is refused now.
        cost = words.set_cost(await admits.cost_of_set(mine))
        if not can_ask:
            return SetOutcome(waiting=Reply(words.set_needs_yes(len(mine), cost)))
        set_id = await admits.hold_set(mine)
        return SetOutcome(waiting=Reply(words.set_needs_confirming(len(mine), cost)), set_id=set_id)
    return SetOutcome(jobs=await admits.submit_set(mine, dedup_key=dedup_key))


# Where each job of a confirmed set is answered, once its requests are known: one origin per request
# (a surface may post a status message for each first).
Placer = Callable[[list[ChatRequest]], Awaitable[list[dict[str, Any]]]]


async def confirm_set(
    admits: SetAdmits,
    actor: Actor,
    set_id: str,
    origins: Placer,
    *,
    dedup_key: str | None = None,
) -> list[Job]:
    """The confirmation of a held set by its requester: the set admitted, all or nothing, each job
    answered where `origins` places it. Raises BadInput when it is not theirs, was confirmed
    already, or waited too long."""
    chats = await admits.take_set(set_id, actor.surface, actor.workspace_id, actor.user_id)
    if chats is None:
        waits_for = await admits.set_waits_for(set_id)
        if waits_for is not None and waits_for != (actor.tenant, actor.user_id):
            raise BadInput(words.SET_NOT_YOURS)
        raise BadInput(words.SET_EXPIRED)
    where = await origins(chats)
    placed = [c.model_copy(update={"origin": o}) for c, o in zip(chats, where, strict=True)]
    return await admits.submit_set([_stamped(actor, c) for c in placed], dedup_key=dedup_key)
